package policies_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/coalmine/coalmine/policies"
)

// object reads a policy file as the API server would serve it: YAML to JSON and back into
// maps, with server fields added.
func object(t *testing.T, file, namespace string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(j, &obj); err != nil {
		t.Fatal(err)
	}
	meta := obj["metadata"].(map[string]any)
	meta["namespace"] = namespace
	meta["uid"], meta["generation"], meta["resourceVersion"] = "0b5c", float64(3), "812"
	meta["annotations"] = map[string]any{"kubectl.kubernetes.io/last-applied-configuration": string(j)}
	obj["status"] = map[string]any{"phase": "Analyzing"}
	return obj
}

func TestLoadObject(t *testing.T) {
	for _, tc := range []struct {
		name, file, namespace string
		edit                  func(spec map[string]any)
		want                  string // an error's text; "" for none
		wantNamespace         string
	}{
		{name: "example in its namespace", file: "examples/my-app.yaml", namespace: "default", wantNamespace: "default"},
		{name: "target namespace unset takes the object's", file: "examples/my-app.yaml", namespace: "shop",
			edit: func(s map[string]any) { delete(s["target"].(map[string]any), "namespace") }, wantNamespace: "shop"},
		{name: "another namespace is refused", file: "examples/my-app.yaml", namespace: "team-a",
			want: `spec.target.namespace must be the policy's own namespace "team-a" (metadata.namespace) or unset: a policy acts only in its own namespace, got "default"`},
		{name: "same words as a file", file: "examples/my-app.yaml", namespace: "default",
			edit: func(s map[string]any) { s["analysis"].(map[string]any)["treshold"] = 3 }, want: "spec.analysis.treshold is not a known field"},
		{name: "numbers as JSON gives them", file: "examples/my-app.yaml", namespace: "default",
			edit: func(s map[string]any) { s["analysis"].(map[string]any)["alpha"] = float64(0) }, want: "spec.analysis.alpha must be in (0, 0.5], got 0"},
		{name: "bluegreen example", file: "examples/my-app-bluegreen.yaml", namespace: "default", wantNamespace: "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := object(t, tc.file, tc.namespace)
			if tc.edit != nil {
				tc.edit(obj["spec"].(map[string]any))
			}
			p, err := policies.LoadObject(obj)
			if tc.want != "" {
				if err == nil || err.Error() != tc.want {
					t.Fatalf("want error %q, got %v", tc.want, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Spec.Target.Namespace != tc.wantNamespace || p.Metadata.Namespace != tc.namespace {
				t.Errorf("target namespace %q, metadata.namespace %q; want %q, %q", p.Spec.Target.Namespace, p.Metadata.Namespace, tc.wantNamespace, tc.namespace)
			}
		})
	}
}

// TestFileWithNamespace: a file may carry the metadata kubectl apply writes, and the same
// namespace rule holds for it.
func TestFileWithNamespace(t *testing.T) {
	b, err := os.ReadFile("examples/my-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	withMeta := strings.Replace(string(b), "  name: my-app\n", "  name: my-app\n  namespace: default\n  labels: {team: shop}\n  annotations: {owner: shop}\n", 1)
	if _, err := policies.Load("a.yaml", []byte(withMeta)); err != nil {
		t.Errorf("a file with the object's metadata: %v", err)
	}
	other := strings.Replace(withMeta, "  namespace: default\n", "  namespace: staging\n", 1)
	_, err = policies.Load("b.yaml", []byte(other))
	if err == nil || !strings.HasPrefix(err.Error(), `b.yaml:20: spec.target.namespace must be the policy's own namespace "staging"`) {
		t.Errorf("want the namespace refused at its line, got %v", err)
	}
}
