package policies

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/common/config"
	"github.com/prometheus/sigv4"
	yamlv2 "go.yaml.in/yaml/v2"
	"go.yaml.in/yaml/v3"
)

// Prometheus's own configuration types (config.HTTPClientConfig for spec.prometheus.http,
// sigv4.SigV4Config for spec.prometheus.sigv4) are loaded as Prometheus loads them: yaml v2,
// strictly, through their own UnmarshalYAML, which validates. yaml v3 and the walker cannot do
// that faithfully: the types inline maps (http_headers), have their own unmarshalers
// (proxy_url) and were written against yaml v2. So the walker leaves their nodes alone, and
// each is re-encoded and loaded by itself, its errors placed back at the file's lines and
// field paths.

// opaqueTypes are the types the walker does not enter.
var opaqueTypes = map[reflect.Type]bool{
	reflect.TypeFor[config.HTTPClientConfig](): true,
	reflect.TypeFor[sigv4.SigV4Config]():       true,
}

func isOpaque(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return opaqueTypes[t]
}

// opaqueField is a field of an opaque type as written in a document: the key and value nodes
// and the mapping that holds them.
type opaqueField struct {
	parent, key, value *yaml.Node
	path               string
	typ                reflect.Type
}

// position is where a line of a re-encoded node came from, and the Go type its value loads
// into (nil when unknown).
type position struct {
	line int
	path string
	typ  reflect.Type
}

// lineMap maps the lines of a re-encoded node back to the policy file.
type lineMap struct {
	// keys holds the lines that start a key or a list item.
	keys map[int]position
	// holders holds, by line and kind ("map", "seq"), the field that holds a mapping or a list:
	// yaml v2 places an error about a whole collection at its first line, which is its first
	// key's or item's.
	holders map[holder]position
}

type holder struct {
	line int
	kind string
}

// at is where yaml v2's error at line came from; tag is the kind of node it is about, when
// the error says.
func (m lineMap) at(line int, tag string) (position, bool) {
	if pos, ok := m.holders[holder{line, tag}]; ok {
		return pos, true
	}
	pos, ok := m.keys[line]
	return pos, ok
}

// loadOpaque loads the field's node into a new value of its type, or returns the errors it
// makes, placed in the policy file. A null node loads nothing: the default stays.
func (w *walker) loadOpaque(f opaqueField) (reflect.Value, Errors) {
	if isNull(f.value) || (f.value.Kind == yaml.AliasNode && f.value.Alias != nil && isNull(f.value.Alias)) {
		return reflect.Value{}, nil
	}
	fieldErr := func(line int, p, msg string) Errors {
		return Errors{{File: w.file, Line: line, Field: p, Msg: msg}}
	}
	plain, err := w.plainCopy(f.value)
	if err != nil {
		return reflect.Value{}, fieldErr(f.key.Line, f.path, err.Error())
	}
	t := f.typ
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && plain.Kind != yaml.MappingNode {
		return reflect.Value{}, fieldErr(f.key.Line, f.path, "must be a mapping")
	}
	data, lines, err := encodeForV2(plain, position{line: f.key.Line, path: f.path, typ: t})
	if err != nil {
		return reflect.Value{}, fieldErr(f.key.Line, f.path, "cannot be re-encoded: "+err.Error())
	}
	v := reflect.New(t)
	err = yamlv2.UnmarshalStrict(data, v.Interface())
	if err == nil {
		return v, nil
	}
	var te *yamlv2.TypeError
	if !errors.As(err, &te) {
		line, p := locate(plain, t, f.key.Line, f.path, err.Error())
		return reflect.Value{}, fieldErr(line, p, "has a bad value: "+err.Error())
	}
	var errs Errors
	for _, e := range te.Errors {
		m := yamlLine.FindStringSubmatch(e)
		if m == nil {
			errs = append(errs, fieldErr(f.key.Line, f.path, "has a bad value: "+e)...)
			continue
		}
		n, _ := strconv.Atoi(m[1])
		var tag string
		if tm := v2Type.FindStringSubmatch(m[2]); tm != nil && tm[2] == "" {
			tag = tm[1]
		}
		pos, ok := lines.at(n, tag)
		if !ok {
			pos = position{line: f.key.Line, path: f.path}
		}
		errs = append(errs, fieldErr(pos.line, pos.path, v2Message(m[2], pos.typ))...)
	}
	return reflect.Value{}, errs
}

var (
	v2Unknown = regexp.MustCompile(`^field (.*) not found in type `)
	v2Twice   = regexp.MustCompile(`^(?:field .* already set in type |key .* already set in map)`)
	v2Type    = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")
)

// v2Message words one of yaml v2's unmarshal errors as the walker words its own; t is the
// type of the value it is about, when known.
func v2Message(msg string, t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch m := v2Type.FindStringSubmatch(msg); {
	case v2Unknown.MatchString(msg):
		return "is not a known field"
	case v2Twice.MatchString(msg):
		return "is set twice"
	case m == nil:
		return "has a bad value: " + msg
	// A struct decodes from a mapping, unless it has its own unmarshaler (config.URL takes a
	// string); those that decode a mapping through one say so with their "plain" type.
	case strings.HasPrefix(m[3], "map[") || strings.HasSuffix(m[3], ".plain") ||
		t != nil && t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(typeObsoleteUnmars):
		return "must be a mapping" + got(m[1], m[2])
	case strings.HasPrefix(m[3], "[]"):
		return "must be a list" + got(m[1], m[2])
	case m[2] == "":
		return "must be a " + m[3] + got(m[1], m[2])
	}
	return typeMessage(msg)
}

// got says what was written instead: the scalar, or the kind of node.
func got(tag, value string) string {
	switch {
	case value != "":
		return fmt.Sprintf(", got %q", value)
	case tag == "seq":
		return ", got a list"
	case tag == "map":
		return ", got a mapping"
	}
	return ""
}

// plainCopy copies a node with its aliases expanded (within the walker's budget), its anchors
// dropped and its collections in block style, so that it encodes alone, one key a line.
// The copies keep the lines of the nodes they copy.
func (w *walker) plainCopy(n *yaml.Node) (*yaml.Node, error) {
	if w.budget--; w.budget < 0 {
		return nil, fmt.Errorf("makes the document expand to more than %d nodes (aliases?)", maxNodes)
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		c, err := w.plainCopy(n.Alias)
		if c != nil {
			c.Line = n.Line
		}
		return c, err
	}
	c := &yaml.Node{Kind: n.Kind, Style: n.Style, Tag: n.Tag, Value: n.Value, Line: n.Line, Column: n.Column}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		c.Style &^= yaml.FlowStyle
	}
	for _, child := range n.Content {
		cc, err := w.plainCopy(child)
		if err != nil {
			return nil, err
		}
		c.Content = append(c.Content, cc)
	}
	return c, nil
}

// encodeForV2 encodes a plain node, held by the field at, and maps the lines of the encoding
// back to where they came from.
func encodeForV2(plain *yaml.Node, at position) ([]byte, lineMap, error) {
	lines := lineMap{keys: map[int]position{}, holders: map[holder]position{}}
	data, err := yaml.Marshal(plain)
	if err != nil {
		return nil, lines, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, lines, err
	}
	if len(doc.Content) == 1 {
		mapLines(plain, doc.Content[0], at.typ, at, lines)
	}
	return data, lines, nil
}

// mapLines walks a plain node and its re-parsed encoding together; at is the field that
// holds them. A key's line wins over the list item it starts.
func mapLines(orig, enc *yaml.Node, t reflect.Type, at position, lines lineMap) {
	if orig.Kind != enc.Kind || len(orig.Content) != len(enc.Content) {
		return
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch orig.Kind {
	case yaml.MappingNode:
		lines.holders[holder{enc.Line, "map"}] = at
		for i := 0; i+1 < len(orig.Content); i += 2 {
			var ft reflect.Type
			if t != nil {
				ft = fieldType(t, orig.Content[i].Value)
			}
			pos := position{line: orig.Content[i].Line, path: joinPath(at.path, orig.Content[i].Value), typ: ft}
			lines.keys[enc.Content[i].Line] = pos
			mapLines(orig.Content[i+1], enc.Content[i+1], ft, pos, lines)
		}
	case yaml.SequenceNode:
		lines.holders[holder{enc.Line, "seq"}] = at
		var et reflect.Type
		if t != nil && t.Kind() == reflect.Slice {
			et = t.Elem()
		}
		for i := range orig.Content {
			pos := position{line: orig.Content[i].Line, path: fmt.Sprintf("%s[%d]", at.path, i), typ: et}
			lines.keys[enc.Content[i].Line] = pos
			mapLines(orig.Content[i], enc.Content[i], et, pos, lines)
		}
	}
}

// locate finds the deepest field under n that fails to load alone with the same message: an
// error from a type's own UnmarshalYAML carries no line. Errors that only the whole makes
// (two settings that exclude each other) stay at the field that holds them.
func locate(n *yaml.Node, t reflect.Type, keyLine int, path, msg string) (int, string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	try := func(v *yaml.Node, ct reflect.Type, line int, p string) (int, string, bool) {
		if ct == nil {
			return 0, "", false
		}
		for ct.Kind() == reflect.Pointer {
			ct = ct.Elem()
		}
		data, err := yaml.Marshal(v)
		if err != nil {
			return 0, "", false
		}
		err = yamlv2.UnmarshalStrict(data, reflect.New(ct).Interface())
		var te *yamlv2.TypeError
		if err == nil || errors.As(err, &te) || err.Error() != msg {
			return 0, "", false
		}
		l, lp := locate(v, ct, line, p, msg)
		return l, lp, true
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if l, p, ok := try(n.Content[i+1], fieldType(t, k.Value), k.Line, joinPath(path, k.Value)); ok {
				return l, p
			}
		}
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice {
			for i, v := range n.Content {
				if l, p, ok := try(v, t.Elem(), v.Line, fmt.Sprintf("%s[%d]", path, i)); ok {
					return l, p
				}
			}
		}
	}
	return keyLine, path
}

// fieldType is the Go type of the value under key in a mapping decoded into t: a struct's
// field, inline ones followed, else the element of its inline map; a map's element. Nil when
// none.
func fieldType(t reflect.Type, key string) reflect.Type {
	switch t.Kind() {
	case reflect.Map:
		return t.Elem()
	case reflect.Struct:
		if ft, ok := yamlFields(t)[key]; ok {
			return ft
		}
		return inlineMap(t)
	}
	return nil
}

// inlineMap is the element type of a struct's inline map, nil when it has none.
func inlineMap(t reflect.Type) reflect.Type {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if _, opts, _ := strings.Cut(f.Tag.Get("yaml"), ","); strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Map {
			return f.Type.Elem()
		}
	}
	return nil
}

// detach removes the field from its mapping, so that decoding the rest of the document into
// the Go types with yaml v3 does not decode it a second time, by other rules.
func (f opaqueField) detach() {
	c := f.parent.Content
	for i := 0; i+1 < len(c); i += 2 {
		if c[i] == f.key {
			f.parent.Content = append(c[:i:i], c[i+2:]...)
			return
		}
	}
}

// setPath stores v in the field of root (a pointer to a struct) at the YAML path p, which
// goes through struct fields only.
func setPath(root reflect.Value, p string, v reflect.Value) error {
	cur := root
	for _, name := range strings.Split(p, ".") {
		for cur.Kind() == reflect.Pointer {
			if cur.IsNil() {
				cur.Set(reflect.New(cur.Type().Elem()))
			}
			cur = cur.Elem()
		}
		if cur.Kind() != reflect.Struct {
			return fmt.Errorf("%s: %s is not a struct", p, cur.Type())
		}
		i := fieldIndex(cur.Type(), name)
		if i < 0 {
			return fmt.Errorf("%s: no field %q in %s", p, name, cur.Type())
		}
		cur = cur.Field(i)
	}
	switch {
	case v.Type() == cur.Type():
		cur.Set(v)
	case v.Type() == reflect.PointerTo(cur.Type()):
		cur.Set(v.Elem())
	default:
		return fmt.Errorf("%s: cannot store a %s in a %s", p, v.Type(), cur.Type())
	}
	return nil
}

// fieldIndex is the index of the field of struct type t whose YAML name is name, -1 if none.
func fieldIndex(t reflect.Type, name string) int {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		if f.IsExported() && tag == name {
			return i
		}
	}
	return -1
}
