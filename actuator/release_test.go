package actuator

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestSaveProgress: the record is written every tick that changes it, by one merge patch of its
// one annotation: no read first, no update that could clobber what others wrote meanwhile.
func TestSaveProgress(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		policy string
		// recordOn is the Deployment that must carry the record.
		recordOn string
		before   string
	}{
		{"first record, on the canary's Deployment", "my-app.yaml", "my-app-v2", ""},
		{"record replaced", "my-app.yaml", "my-app-v2", `{"phase":"progressing","step":0}`},
		{"rollout, on the one Deployment", "my-app-rollout.yaml", "my-app", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deployment(tt.recordOn, "v2.0.0", 1, 1)
			d.Annotations = map[string]string{"team": "payments"}
			if tt.before != "" {
				d.Annotations[AnnotationProgress] = tt.before
			}
			c := fake.NewClientset(d, deployment("my-app-v1", "v1.0.0", 10, 10))
			r, err := NewRelease(c, loadPolicy(t, tt.policy), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			c.ClearActions()
			const record = `{"phase":"progressing","step":1}`
			if err := r.SaveProgress(ctx, record); err != nil {
				t.Fatal(err)
			}
			actions := c.Actions()
			if len(actions) != 1 {
				t.Fatalf("SaveProgress made %d requests, want one patch: %v", len(actions), actions)
			}
			pa, ok := actions[0].(k8stesting.PatchAction)
			if !ok || pa.GetResource().Resource != "deployments" || pa.GetName() != tt.recordOn {
				t.Fatalf("SaveProgress made %s %s/%s, want a patch of deployment %s", actions[0].GetVerb(), actions[0].GetResource().Resource, actions[0].GetSubresource(), tt.recordOn)
			}
			if pa.GetPatchType() != types.MergePatchType {
				t.Errorf("patch type %s, want a merge patch", pa.GetPatchType())
			}
			got := get(t, c, tt.recordOn)
			if got.Annotations[AnnotationProgress] != record {
				t.Errorf("record on %s: %q, want %q", tt.recordOn, got.Annotations[AnnotationProgress], record)
			}
			if got.Annotations["team"] != "payments" {
				t.Errorf("other annotations lost: %v", got.Annotations)
			}
			if p, err := r.Progress(ctx); err != nil || p != record {
				t.Errorf("Progress: %q, %v; want %q", p, err, record)
			}
		})
	}
}
