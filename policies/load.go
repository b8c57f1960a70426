package policies

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LoadFile reads every policy document in a file and validates each.
// Problems come back as Errors, each naming the file, line and field.
func LoadFile(path string) ([]*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("cannot read: %v", unwrapPathError(err))}}
	}
	return Load(path, data)
}

// LoadFiles reads and validates the policies in several files, gathering every problem.
func LoadFiles(paths ...string) ([]*Policy, error) {
	var (
		all  []*Policy
		errs Errors
	)
	for _, path := range paths {
		ps, err := LoadFile(path)
		all = append(all, ps...)
		var fe Errors
		if errors.As(err, &fe) {
			errs = append(errs, fe...)
		} else if err != nil {
			return nil, err
		}
	}
	if len(errs) > 0 {
		return all, errs
	}
	return all, nil
}

// Load parses every policy document in data, fills defaults and validates each. name is used
// in error positions. On problems it returns the policies it could read and an Errors value.
func Load(name string, data []byte) ([]*Policy, error) {
	var (
		policies []*Policy
		errs     Errors
	)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, syntaxError(name, err))
			break
		}
		if len(doc.Content) == 0 {
			continue // a document holding only comments
		}
		p, perrs := decodeDocument(name, &doc)
		errs = append(errs, perrs...)
		if p != nil {
			policies = append(policies, p)
		}
	}
	if len(policies) == 0 && len(errs) == 0 {
		errs = append(errs, &FieldError{File: name, Msg: "holds no policy"})
	}
	if len(errs) > 0 {
		return policies, errs
	}
	return policies, nil
}

func decodeDocument(name string, doc *yaml.Node) (*Policy, Errors) {
	src := Origin{File: name, lines: map[string]int{}}
	indexLines(doc.Content[0], "", src.lines)
	src.lines[""] = doc.Content[0].Line

	w := &walker{file: name, budget: maxNodes}
	errs := w.check(doc.Content[0], typeOfPolicy, "")
	loaded := make([]reflect.Value, len(w.opaque))
	for i, f := range w.opaque {
		v, ferrs := w.loadOpaque(f)
		errs = append(errs, ferrs...)
		loaded[i] = v
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for _, f := range w.opaque {
		f.detach()
	}
	p := Default()
	if err := doc.Decode(&p); err != nil {
		return nil, decodeErrors(name, src, err)
	}
	for i, f := range w.opaque {
		if loaded[i].IsValid() {
			if err := setPath(reflect.ValueOf(&p), f.path, loaded[i]); err != nil {
				return nil, Errors{{File: name, Line: f.key.Line, Field: f.path, Msg: err.Error()}}
			}
		}
	}
	p.Origin = src // before the defaults: some depend on what the document writes
	p.applyElementDefaults()
	if errs := p.Validate(); len(errs) > 0 {
		return &p, errs
	}
	return &p, nil
}

// indexLines records, for every field path in the document, the line it is written on.
func indexLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			lines[p] = k.Line
			indexLines(v, p, lines)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = v.Line
			indexLines(v, p, lines)
		}
	}
	// An alias's fields are written where its anchor is; following it would add no line and can
	// expand exponentially.
}

var typeErr = regexp.MustCompile("^cannot unmarshal !!\\w+ `(.*)` into (\\S+)$")

// typeMessage words yaml's "cannot unmarshal !!str `x` into int" for people.
func typeMessage(msg string) string {
	m := typeErr.FindStringSubmatch(msg)
	if m == nil {
		return "has a bad value: " + msg
	}
	want := map[string]string{
		"int": "an integer", "float64": "a number", "bool": "true or false", "string": "a string",
		"[]string": "a list of strings", "[]policies.Metric": "a list of metrics",
	}[m[2]]
	if want == "" {
		want = "a " + strings.TrimPrefix(m[2], "policies.")
	}
	return fmt.Sprintf("must be %s, got %q", want, m[1])
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func syntaxError(name string, err error) *FieldError {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &FieldError{File: name, Line: line, Msg: "yaml: " + m[2]}
	}
	return &FieldError{File: name, Msg: msg}
}

// decodeErrors turns yaml's "line N: cannot unmarshal ..." into errors that name the field.
func decodeErrors(name string, src Origin, err error) Errors {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return Errors{{File: name, Line: src.lines[""], Msg: err.Error()}}
	}
	var errs Errors
	for _, e := range te.Errors {
		m := yamlLine.FindStringSubmatch(e)
		if m == nil {
			errs = append(errs, &FieldError{File: name, Msg: e})
			continue
		}
		line, _ := strconv.Atoi(m[1])
		errs = append(errs, &FieldError{File: name, Line: line, Field: src.pathAt(line), Msg: typeMessage(m[2])})
	}
	return errs
}

// pathAt returns the deepest field path written on a line.
func (s Origin) pathAt(line int) string {
	var paths []string
	for p, l := range s.lines {
		if l == line && p != "" {
			paths = append(paths, p)
		}
	}
	sort.Slice(paths, func(i, j int) bool {
		if len(paths[i]) != len(paths[j]) {
			return len(paths[i]) > len(paths[j])
		}
		return paths[i] < paths[j]
	})
	if len(paths) == 0 {
		return ""
	}
	return paths[0]
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Files lists the policy files in a directory: *.yaml and *.yml, sorted, not recursing. Links
// are followed: in a mounted ConfigMap every file is a link into a hidden "..data" directory,
// whose own entries (names starting with ".") are skipped.
func Files(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list policies in %s: %w", dir, err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		ext := strings.ToLower(filepath.Ext(name))
		if strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("list policies in %s: %w", dir, err)
		}
		if fi.Mode().IsRegular() {
			files = append(files, path)
		}
	}
	return files, nil
}
