package actuator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/coalmine/coalmine/policies"
)

// ownedPaths are the only fields coalmine sets on a Deployment, as JSON patch paths; the
// resourceVersion is the precondition every patch carries.
var ownedPaths = []string{
	"/metadata/resourceVersion", "/spec/replicas", "/spec/paused", "/spec/strategy",
	"/spec/minReadySeconds", "/spec/progressDeadlineSeconds", "/spec/template",
}

// TestWritesOnlyOwnedFields drives every strategy through a step, a promotion and a rollback and
// checks each write: a patch, never an update of a whole object, of only the fields coalmine
// owns (README: GitOps), under its own field manager.
func TestWritesOnlyOwnedFields(t *testing.T) {
	ctx := context.Background()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "my-app", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "my-app", "version": "v1.0.0"}},
	}
	twoDeployments := func() []runtime.Object {
		// The canary at 1 replica; its status and pods as if 10 were Ready, so that every
		// action goes all the way.
		c := deployment("my-app-v2", "v2.0.0", 1, 10)
		c.Spec.Selector.MatchLabels = map[string]string{"app": "my-app", "track": "canary"}
		c.Spec.Template.Labels["track"] = "canary"
		b := deployment("my-app-v1", "v1.0.0", 10, 10)
		b.Spec.Selector.MatchLabels = map[string]string{"app": "my-app", "track": "stable"}
		b.Spec.Template.Labels["track"] = "stable"
		objs := []runtime.Object{b, c, svc.DeepCopy()}
		for i := range 10 {
			objs = append(objs, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("my-app-v2-%d", i), Namespace: ns, Labels: c.Spec.Template.Labels},
				Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
			})
		}
		return objs
	}
	update := func(p *policies.Policy) *policies.Policy {
		p.Spec.Strategy.BaselineAfterPromotion = policies.AfterPromotionUpdate
		return p
	}
	tests := []struct {
		name   string
		policy func(t *testing.T) *policies.Policy
		objs   func() []runtime.Object
	}{
		{"scale", func(t *testing.T) *policies.Policy { return loadPolicy(t, "my-app.yaml") }, twoDeployments},
		{"scale, the baseline takes the template", func(t *testing.T) *policies.Policy { return update(loadPolicy(t, "my-app.yaml")) }, twoDeployments},
		{"shift", func(t *testing.T) *policies.Policy { return loadPolicy(t, "my-app-shift.yaml") }, twoDeployments},
		{"bluegreen", func(t *testing.T) *policies.Policy { return loadPolicy(t, "my-app-bluegreen.yaml") }, twoDeployments},
		{"rollout", func(t *testing.T) *policies.Policy { return loadPolicy(t, "my-app-rollout.yaml") }, rolloutAtRevision3},
	}
	step := func(r *Release, s map[string]string) error { _, err := r.SetStep(ctx, 0, s); return err }
	promote := func(r *Release, s map[string]string) error { _, err := r.Promote(ctx, s); return err }
	rollback := func(r *Release, s map[string]string) error { _, err := r.Rollback(ctx, s); return err }
	record := func(r *Release, _ map[string]string) error { return r.SaveProgress(ctx, `{"phase":"progressing"}`) }
	runs := []struct {
		name string
		acts []func(r *Release, state map[string]string) error
	}{
		{"step, record, promote", []func(*Release, map[string]string) error{step, record, promote}},
		{"step, rollback", []func(*Release, map[string]string) error{step, rollback}},
	}
	for _, tt := range tests {
		for _, run := range runs {
			t.Run(tt.name+"/"+run.name, func(t *testing.T) {
				c := fake.NewClientset(tt.objs()...)
				if tt.name == "rollout" {
					pauseMidCanary(t, c)
				}
				r, err := NewRelease(c, tt.policy(t), zerolog.Nop())
				if err != nil {
					t.Fatal(err)
				}
				state := prepare(t, r)
				c.ClearActions()
				for _, act := range run.acts {
					if err := act(r, state); err != nil {
						t.Fatal(err)
					}
				}
				n := 0
				for _, action := range c.Actions() {
					switch action.GetVerb() {
					case "get", "list", "watch":
						continue
					case "create":
						if action.GetResource().Resource != "events" {
							t.Errorf("created a %s", action.GetResource().Resource)
						}
						continue
					case "delete":
						continue // baselineAfterPromotion: delete
					case "patch":
						n++
						checkOwned(t, action.(k8stesting.PatchAction), r.policy.Spec.Target.Labels.Version)
					default:
						t.Errorf("%s of %s %s: coalmine patches the fields it owns", action.GetVerb(), action.GetResource().Resource, action.GetSubresource())
					}
				}
				if n == 0 {
					t.Error("no patch: nothing was checked")
				}
			})
		}
	}
}

// checkOwned fails a patch that sets a field coalmine does not own.
func checkOwned(t *testing.T, pa k8stesting.PatchAction, versionLabel string) {
	t.Helper()
	what := pa.GetResource().Resource + "/" + pa.GetName()
	if impl, ok := pa.(k8stesting.PatchActionImpl); !ok || impl.GetPatchOptions().FieldManager != fieldManager {
		t.Errorf("%s: patched without the field manager %q", what, fieldManager)
	}
	switch {
	case pa.GetResource().Resource == "deployments" && pa.GetPatchType() == types.JSONPatchType:
		for _, p := range patchPaths(t, pa) {
			if !slices.Contains(ownedPaths, p) {
				t.Errorf("%s: patched %s, which coalmine does not own", what, p)
			}
		}
	case pa.GetPatchType() == types.MergePatchType:
		var m map[string]any
		if err := json.Unmarshal(pa.GetPatch(), &m); err != nil {
			t.Fatal(err)
		}
		for _, leaf := range leaves("", m) {
			ok := leaf == "metadata.resourceVersion" || strings.HasPrefix(leaf, "metadata.annotations.coalmine.dev/") ||
				pa.GetResource().Resource == "services" && leaf == "spec.selector."+versionLabel
			if !ok {
				t.Errorf("%s: merge patch sets %s, which coalmine does not own", what, leaf)
			}
		}
	default:
		t.Errorf("%s: a %s patch", what, pa.GetPatchType())
	}
}

// leaves lists the dotted paths of a decoded JSON object's leaves.
func leaves(prefix string, m map[string]any) []string {
	var out []string
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			out = append(out, leaves(prefix+k+".", sub)...)
			continue
		}
		out = append(out, prefix+k)
	}
	return out
}
