package policies

import (
	"reflect"
	"strings"
)

// Files lists the files the Prometheus settings read (credentials_file, password_file,
// ca_file, header files, ...): a policy names them, the process that runs it reads them, so a
// daemon bounds where they may be.
func (pr Prometheus) Files() []string {
	var out []string
	files(reflect.ValueOf(pr.HTTP), &out)
	return out
}

func files(v reflect.Value, out *[]string) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			files(v.Elem(), out)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			files(v.MapIndex(k), out)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			files(v.Index(i), out)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			fv := v.Field(i)
			switch {
			case fv.Kind() == reflect.String && strings.HasSuffix(name, "_file"):
				if s := fv.String(); s != "" {
					*out = append(*out, s)
				}
			case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String && name == "files":
				for j := range fv.Len() {
					*out = append(*out, fv.Index(j).String())
				}
			default:
				files(fv, out)
			}
		}
	}
}
