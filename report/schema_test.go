package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// checkSchema checks v against the subset of JSON Schema the documented schemas use: $ref to
// $defs, type, const, enum, properties, required, additionalProperties: false and items.
func checkSchema(root, s map[string]any, v any, path string) []string {
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/$defs/")
		def, _ := root["$defs"].(map[string]any)[name].(map[string]any)
		if def == nil {
			return []string{path + ": unknown $ref " + ref}
		}
		return checkSchema(root, def, v, path)
	}
	var errs []string
	if c, ok := s["const"]; ok && c != v {
		errs = append(errs, fmt.Sprintf("%s: %v, want %v", path, v, c))
	}
	if e, ok := s["enum"].([]any); ok && !slices.Contains(e, v) {
		errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", path, v, e))
	}
	if t, ok := s["type"]; ok {
		types := []any{t}
		if ts, ok := t.([]any); ok {
			types = ts
		}
		if !slices.ContainsFunc(types, func(t any) bool { return typeOf(v, t.(string)) }) {
			return append(errs, fmt.Sprintf("%s: %v is not %v", path, v, t))
		}
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := v[r]; !ok {
				errs = append(errs, path+": missing required "+r)
			}
		}
		for k, x := range v {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if s["additionalProperties"] == false {
					errs = append(errs, path+": undocumented field "+k)
				}
				continue
			}
			errs = append(errs, checkSchema(root, ps, x, path+"."+k)...)
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, x := range v {
				errs = append(errs, checkSchema(root, items, x, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	return errs
}

func typeOf(v any, t string) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	case "null":
		return v == nil
	}
	return false
}

func asStrings(v any) []string {
	var out []string
	xs, _ := v.([]any)
	for _, x := range xs {
		out = append(out, x.(string))
	}
	return out
}

func TestJSONFollowsTheDocumentedSchema(t *testing.T) {
	raw, err := os.ReadFile("schema/report.v1alpha1.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("the schema is not JSON: %v", err)
	}
	if schema["$id"] != SchemaVersion {
		t.Errorf("schema $id %v, want %s", schema["$id"], SchemaVersion)
	}
	withCluster := sampleReport()
	withCluster.Cluster = &Cluster{State: "my-app-v1=10 my-app-v2=1", CanaryReady: true}
	for name, rep := range map[string]Report{"threshold": sampleReport(), "sequential": sequentialReport(), "cluster": withCluster} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, "json", rep); err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
				t.Fatal(err)
			}
			for _, e := range checkSchema(schema, schema, v, "$") {
				t.Error(e)
			}
		})
	}
	t.Run("the check catches an undocumented field", func(t *testing.T) {
		v := map[string]any{"schema": SchemaVersion, "surprise": 1}
		errs := checkSchema(schema, schema, v, "$")
		if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, "undocumented field surprise") }) {
			t.Errorf("errors %v", errs)
		}
	})
}

func TestBacktestJSONFollowsTheDocumentedSchema(t *testing.T) {
	raw, err := os.ReadFile("schema/backtest.v1alpha1.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("the schema is not JSON: %v", err)
	}
	var buf bytes.Buffer
	if err := WriteBacktest(&buf, "json", sampleBacktest()); err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	for _, e := range checkSchema(schema, schema, v, "$") {
		t.Error(e)
	}
}
