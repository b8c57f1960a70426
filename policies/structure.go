package policies

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// yaml v3 ignores KnownFields inside types with their own UnmarshalYAML (go-yaml#460) and drops
// the line of an error such a type returns. checkNode walks the document against the Go types
// first (see walker), so an unknown field or a bad duration anywhere is reported with its path and line.

var (
	typeOfPolicy       = reflect.TypeFor[Policy]()
	typeUnmarshaler    = reflect.TypeFor[yaml.Unmarshaler]()
	typeObsoleteUnmars = reflect.TypeFor[interface {
		UnmarshalYAML(func(any) error) error
	}]()
)

// maxNodes bounds the nodes one document may expand to, aliases included: a policy is a page of
// YAML, and a few nested aliases can otherwise expand to billions of nodes.
const maxNodes = 100000

// walker checks a document's structure against the Go types, within a node budget. Fields of
// an opaque type (see opaqueTypes) it does not enter: it records them, for loadOpaque.
type walker struct {
	file   string
	budget int
	opaque []opaqueField
}

func (w *walker) check(n *yaml.Node, t reflect.Type, path string) Errors {
	file := w.file
	if w.budget--; w.budget < 0 {
		if w.budget == -1 {
			return Errors{{File: file, Line: n.Line, Field: path, Msg: fmt.Sprintf("makes the document expand to more than %d nodes (aliases?)", maxNodes)}}
		}
		return nil
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if isNull(n) {
		return nil
	}
	fieldErr := func(line int, p, msg string) *FieldError {
		return &FieldError{File: file, Line: line, Field: p, Msg: msg}
	}
	var errs Errors
	if pt := reflect.PointerTo(t); pt.Implements(typeUnmarshaler) || pt.Implements(typeObsoleteUnmars) {
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			errs = append(errs, fieldErr(n.Line, path, customValueMessage(n, err)))
		}
		if t.Kind() != reflect.Struct {
			return errs
		}
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return append(errs, fieldErr(n.Line, path, "must be a mapping"))
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				errs = append(errs, fieldErr(k.Line, p, "is not a known field"))
				continue
			}
			if isOpaque(ft) {
				w.opaque = append(w.opaque, opaqueField{parent: n, key: k, value: v, path: p, typ: ft})
				continue
			}
			errs = append(errs, w.check(v, ft, p)...)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return append(errs, fieldErr(n.Line, path, "must be a list"))
		}
		for i, v := range n.Content {
			errs = append(errs, w.check(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return append(errs, fieldErr(n.Line, path, "must be a mapping"))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			errs = append(errs, w.check(v, t.Elem(), joinPath(path, k.Value))...)
		}
	}
	return errs
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// customValueMessage words the error of a type with its own UnmarshalYAML.
func customValueMessage(n *yaml.Node, err error) string {
	msg := err.Error()
	if strings.Contains(msg, "not a valid duration string") {
		if strings.HasPrefix(strings.TrimSpace(n.Value), "-") {
			return fmt.Sprintf("must be a positive duration, got %q", n.Value)
		}
		return fmt.Sprintf("must be a duration like 30s, 5m or 1h, got %q", n.Value)
	}
	return "has a bad value: " + strings.TrimPrefix(msg, "yaml: ")
}

// yamlFields maps the YAML keys of a struct type to their Go types, following inline fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					fields[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}
