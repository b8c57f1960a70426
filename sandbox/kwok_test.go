package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// podReadyYAML is the shape of kwok's pod-ready stage, shortened.
const podReadyYAML = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Pending'
  next:
    statusTemplate: |
      phase: Running
      podIP: {{ "x" }}
`

func TestKwokConfig(t *testing.T) {
	dir := t.TempDir()
	for _, f := range kwokStageFiles {
		body := "kind: Stage\nmetadata:\n  name: " + strings.TrimSuffix(f, ".yaml") + "\n"
		if f == "pod-ready.yaml" {
			body = podReadyYAML
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := kwokConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(cfg)))
	stages := map[string]map[string]any{}
	var names []string
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			break
		}
		name := doc["metadata"].(map[string]any)["name"].(string)
		stages[name] = doc
		names = append(names, name)
	}
	want := []string{"node-initialize", "node-heartbeat", "pod-ready", "pod-complete", "pod-delete", "coalmine-pod-unready", "coalmine-pod-recover"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("stages %v, want %v", names, want)
	}
	ready := stages["pod-ready"]["spec"].(map[string]any)
	exprs := ready["selector"].(map[string]any)["matchExpressions"].([]any)
	last := exprs[len(exprs)-1].(map[string]any)
	if last["key"] != `.metadata.labels["coalmine.dev/sandbox-unready"]` || last["operator"] != "NotIn" {
		t.Errorf("pod-ready's last expression is %v, want NotIn on %s", last, UnreadyLabel)
	}
	tmpl := ready["next"].(map[string]any)["statusTemplate"].(string)
	if tmpl != "phase: Running\npodIP: {{ \"x\" }}\n" {
		t.Errorf("pod-ready's template changed: %q", tmpl)
	}
	unready := stages["coalmine-pod-unready"]["spec"].(map[string]any)["selector"].(map[string]any)["matchExpressions"].([]any)
	if !strings.Contains(string(mustYAML(t, unready)), UnreadyLabel) {
		t.Errorf("unready stage does not select on %s", UnreadyLabel)
	}

	if err := os.Remove(filepath.Join(dir, "pod-delete.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := kwokConfig(dir); err == nil || !strings.Contains(err.Error(), "pod-delete.yaml") {
		t.Errorf("missing stage: got %v, want an error naming it", err)
	}
}

func TestPodReadyStageRejectsOtherShapes(t *testing.T) {
	if _, err := podReadyStage([]byte("kind: Stage\nspec: {}\n")); err == nil {
		t.Error("a stage without a selector was accepted")
	}
}

func mustYAML(t *testing.T, v any) []byte {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
