package policies

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/common/config"
)

// Files lists the files the Prometheus settings read (credentials_file, password_file,
// ca_file, header files, ...): a policy names them, the process that runs it reads them, so a
// daemon bounds where they may be.
func (pr Prometheus) Files() []string {
	var out []string
	walkSettings(reflect.ValueOf(pr.HTTP), func(field string, v reflect.Value) {
		switch {
		case v.Kind() == reflect.String && strings.HasSuffix(field, "_file") && v.String() != "":
			out = append(out, v.String())
		case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String && field == "files":
			for i := range v.Len() {
				out = append(out, v.Index(i).String())
			}
		}
	})
	return out
}

var secretType = reflect.TypeOf(config.Secret(""))

// Secrets lists the secrets of the Prometheus settings, with the map keys they sit under, in a
// fixed order: what tells apart two settings that print alike (secrets print as "<secret>").
func (pr Prometheus) Secrets() []string {
	var out []string
	walkSettings(reflect.ValueOf(pr.HTTP), func(field string, v reflect.Value) {
		switch {
		case v.Kind() == reflect.String && v.Type() == secretType:
			out = append(out, v.String())
		case v.Kind() == reflect.Map:
			for _, k := range sortedKeys(v) {
				out = append(out, k)
			}
		}
	})
	return out
}

// walkSettings calls visit with every value under v and the YAML name of the field it is in
// ("" for a map's or a slice's elements): struct fields in order, map entries by key.
func walkSettings(v reflect.Value, visit func(field string, v reflect.Value)) {
	var walk func(field string, v reflect.Value)
	walk = func(field string, v reflect.Value) {
		visit(field, v)
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(field, v.Elem())
			}
		case reflect.Struct:
			t := v.Type()
			for i := range t.NumField() {
				if f := t.Field(i); f.IsExported() {
					name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
					walk(name, v.Field(i))
				}
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk("", v.Index(i))
			}
		case reflect.Map:
			keys := v.MapKeys()
			slices.SortFunc(keys, func(a, b reflect.Value) int {
				return strings.Compare(fmt.Sprint(a.Interface()), fmt.Sprint(b.Interface()))
			})
			for _, k := range keys {
				walk("", v.MapIndex(k))
			}
		}
	}
	walk("", v)
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
