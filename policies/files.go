package policies

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/common/config"
)

// FileSetting is a file that the Prometheus settings read, and the field that names it.
type FileSetting struct {
	// Field is the field's path in the policy, e.g. "spec.prometheus.http.basic_auth.password_file".
	Field string
	Path  string
}

// FileSettings lists the files the Prometheus settings read (credentials_file, password_file,
// ca_file, the files of http_headers, ...), in a fixed order.
func (pr Prometheus) FileSettings() []FileSetting {
	var out []FileSetting
	pr.walk(func(path, field string, v reflect.Value) {
		switch {
		case v.Kind() == reflect.String && strings.HasSuffix(field, "_file") && v.String() != "":
			out = append(out, FileSetting{Field: path, Path: v.String()})
		case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String && field == "files":
			for i := range v.Len() {
				out = append(out, FileSetting{Field: fmt.Sprintf("%s[%d]", path, i), Path: v.Index(i).String()})
			}
		}
	})
	return out
}

// Files lists the files the Prometheus settings read: a policy names them, the process that
// runs it reads them, so a daemon bounds where they may be.
func (pr Prometheus) Files() []string {
	var out []string
	for _, f := range pr.FileSettings() {
		out = append(out, f.Path)
	}
	return out
}

var (
	secretType = reflect.TypeFor[config.Secret]()
	urlType    = reflect.TypeFor[config.URL]()
)

// Secrets lists the secrets of the Prometheus settings, with the map keys they sit under, in a
// fixed order: what tells apart two settings that print alike (secrets print as "<secret>",
// and a proxy URL with its password as "xxxxx").
func (pr Prometheus) Secrets() []string {
	var out []string
	pr.walk(func(_, _ string, v reflect.Value) {
		switch {
		case v.Kind() == reflect.String && v.Type() == secretType:
			out = append(out, v.String())
		case v.Type() == urlType:
			if u := v.Interface().(config.URL); u.URL != nil && u.User != nil {
				out = append(out, u.String())
			}
		case v.Kind() == reflect.Map:
			out = append(out, sortedKeys(v)...)
		}
	})
	return out
}

// walk visits the settings of the HTTP client and of its signing.
func (pr Prometheus) walk(visit func(path, field string, v reflect.Value)) {
	walkSettings(reflect.ValueOf(pr.HTTP), "spec.prometheus.http", visit)
	walkSettings(reflect.ValueOf(pr.SigV4), "spec.prometheus.sigv4", visit)
}

// walkSettings calls visit with every value under v, its field path and the YAML name of the
// field it is in ("" for a map's or a slice's elements): struct fields in order, map entries
// by key.
func walkSettings(v reflect.Value, path string, visit func(path, field string, v reflect.Value)) {
	var walk func(path, field string, v reflect.Value)
	walk = func(path, field string, v reflect.Value) {
		visit(path, field, v)
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(path, field, v.Elem())
			}
		case reflect.Struct:
			t := v.Type()
			for i := range t.NumField() {
				f := t.Field(i)
				if !f.IsExported() {
					continue
				}
				name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				switch {
				case strings.Contains(","+opts+",", ",inline,"):
					walk(path, "", v.Field(i))
				case name == "-":
				default:
					if name == "" {
						name = strings.ToLower(f.Name)
					}
					walk(joinPath(path, name), name, v.Field(i))
				}
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk(fmt.Sprintf("%s[%d]", path, i), "", v.Index(i))
			}
		case reflect.Map:
			keys := v.MapKeys()
			slices.SortFunc(keys, func(a, b reflect.Value) int {
				return strings.Compare(fmt.Sprint(a.Interface()), fmt.Sprint(b.Interface()))
			})
			for _, k := range keys {
				walk(joinPath(path, fmt.Sprint(k.Interface())), "", v.MapIndex(k))
			}
		}
	}
	walk(path, "", v)
}

// sortedKeys are a map's keys as strings, sorted.
func sortedKeys(m reflect.Value) []string {
	var out []string
	for _, k := range m.MapKeys() {
		out = append(out, fmt.Sprint(k.Interface()))
	}
	slices.Sort(out)
	return out
}

// CheckFiles reports each file the Prometheus settings name that this process cannot read,
// by the field that names it: a typo in a password_file is the policy's mistake, found when
// the client is built rather than at the first query. Loading does not check: a daemon's
// policy names files in the daemon's pod, not where the policy is validated.
func (pr Prometheus) CheckFiles() Errors {
	var errs Errors
	for _, f := range pr.FileSettings() {
		if err := readable(f.Path); err != nil {
			errs = append(errs, &FieldError{Field: f.Field, Msg: err.Error()})
		}
	}
	return errs
}

// CheckFiles is Prometheus.CheckFiles with each problem placed in the policy's file.
func (p *Policy) CheckFiles() Errors {
	errs := p.Spec.Prometheus.CheckFiles()
	for _, e := range errs {
		e.File, e.Line = p.Origin.File, p.Origin.Line(e.Field)
	}
	return errs
}

// readable reports why the file at path cannot be read, nil when it can.
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %q: %w", path, unwrapPathError(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cannot read %q: %w", path, unwrapPathError(err))
	}
	if fi.IsDir() {
		return fmt.Errorf("cannot read %q: is a directory", path)
	}
	return nil
}
