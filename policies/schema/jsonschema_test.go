package schema_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/coalmine/coalmine/policies/schema"
)

var update = flag.Bool("update", false, "rewrite canarypolicy.schema.json from the CustomResourceDefinition")

const (
	crdFile    = "../../deploy/crd/coalmine.dev_canarypolicies.yaml"
	schemaFile = "canarypolicy.schema.json"
)

// TestJSONSchema checks that the committed JSON Schema is the one the CustomResourceDefinition
// gives (make generate rewrites both).
func TestJSONSchema(t *testing.T) {
	crd, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatal(err)
	}
	want, err := schema.FromCRD(crd)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(schemaFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("policies/schema/%s is not what %s gives: run make generate", schemaFile, crdFile)
	}
}

// TestExamplesFollowTheSchema checks the example policies against the JSON Schema as an editor
// would, and that it catches what the loader refuses for its structure.
func TestExamplesFollowTheSchema(t *testing.T) {
	b, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			for _, doc := range documents(t, f) {
				if problems := check(s, doc, ""); len(problems) > 0 {
					t.Errorf("%s does not follow the schema:\n%s", f, strings.Join(problems, "\n"))
				}
			}
		})
	}
	for _, tc := range []struct {
		name, edit, want string
	}{
		{"unknown field", "spec.analysis.treshold: 3", "spec.analysis.treshold: not allowed"},
		{"unknown judge", "spec.analysis.judge: magic", "spec.analysis.judge: not one of"},
		{"duration as a number", "spec.analysis.interval: 30", "spec.analysis.interval: want string"},
		{"negative duration", "spec.analysis.interval: -30s", "spec.analysis.interval: does not match"},
		{"alpha of 0", "spec.analysis.alpha: 0", "spec.analysis.alpha: must be > 0"},
		{"wrong kind", "kind: Policy", "kind: not one of"},
		{"server field in metadata", "metadata.uid: x", "metadata.uid: not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := documents(t, "../examples/my-app.yaml")[0]
			path, value, _ := strings.Cut(tc.edit, ": ")
			var v any
			if err := yaml.Unmarshal([]byte(value), &v); err != nil {
				t.Fatal(err)
			}
			set(doc, strings.Split(path, "."), v)
			problems := strings.Join(check(s, doc, ""), "\n")
			if !strings.Contains(problems, tc.want) {
				t.Errorf("want a problem %q, got:\n%s", tc.want, problems)
			}
		})
	}
}

func documents(t *testing.T, file string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			break
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s holds no document", file)
	}
	return docs
}

func set(m map[string]any, path []string, v any) {
	for _, k := range path[:len(path)-1] {
		m = m[k].(map[string]any)
	}
	m[path[len(path)-1]] = v
}

// check is the part of JSON Schema draft-07 the generated schema uses.
func check(s map[string]any, v any, path string) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, path+": "+fmt.Sprintf(format, args...)) }
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		bad("not one of %v", enum)
	}
	switch s["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			bad("want object")
			return out
		}
		props, _ := s["properties"].(map[string]any)
		for _, r := range asList(s["required"]) {
			if _, ok := m[r.(string)]; !ok {
				bad("%s is required", r)
			}
		}
		for k, x := range m {
			p := strings.TrimPrefix(path+"."+k, ".")
			if ps, ok := props[k].(map[string]any); ok {
				out = append(out, check(ps, x, p)...)
			} else if ap, ok := s["additionalProperties"].(map[string]any); ok {
				out = append(out, check(ap, x, p)...)
			} else if s["additionalProperties"] == false {
				out = append(out, p+": not allowed")
			}
		}
	case "array":
		l, ok := v.([]any)
		if !ok {
			bad("want array")
			return out
		}
		if n, ok := s["minItems"].(float64); ok && float64(len(l)) < n {
			bad("fewer than %v items", n)
		}
		for i, x := range l {
			out = append(out, check(s["items"].(map[string]any), x, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			bad("want string, got %v", v)
			return out
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			bad("does not match %s", p)
		}
	case "number", "integer":
		var x float64
		switch n := v.(type) {
		case int:
			x = float64(n)
		case float64:
			x = n
		default:
			bad("want number, got %v", v)
			return out
		}
		if b, ok := s["exclusiveMinimum"].(float64); ok && x <= b {
			bad("must be > %v", b)
		}
		if b, ok := s["minimum"].(float64); ok && x < b {
			bad("must be >= %v", b)
		}
		if b, ok := s["exclusiveMaximum"].(float64); ok && x >= b {
			bad("must be < %v", b)
		}
		if b, ok := s["maximum"].(float64); ok && x > b {
			bad("must be <= %v", b)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("want boolean")
		}
	}
	return out
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}
