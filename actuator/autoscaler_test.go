package actuator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// hpa is an autoscaler of the Deployment target, with the range min..max.
func hpa(name, target string, minReplicas, maxReplicas int32) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
			MinReplicas:    &minReplicas, MaxReplicas: maxReplicas,
		},
	}
}

func getHPA(t *testing.T, c *fake.Clientset, name string) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	h, err := c.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// rangeIs fails unless the HPA's range is min..max, pinned (carrying its range) or not.
func rangeIs(t *testing.T, c *fake.Clientset, name string, minReplicas, maxReplicas int32, pinned bool) {
	t.Helper()
	h := getHPA(t, c, name)
	_, annotated := h.Annotations[AnnotationPinned]
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != minReplicas || h.Spec.MaxReplicas != maxReplicas || annotated != pinned {
		got := "nil"
		if h.Spec.MinReplicas != nil {
			got = fmt.Sprint(*h.Spec.MinReplicas)
		}
		t.Errorf("autoscaler %s: %s..%d pinned=%t (%q), want %d..%d pinned=%t", name, got, h.Spec.MaxReplicas, annotated, h.Annotations[AnnotationPinned], minReplicas, maxReplicas, pinned)
	}
}

// autoscale changes a Deployment's replicas as an autoscaler does, through its scale.
func autoscale(t *testing.T, c *fake.Clientset, name string, n int32) {
	t.Helper()
	d := get(t, c, name)
	d.Spec.Replicas = &n
	if _, err := c.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{FieldManager: "kube-controller-manager"}); err != nil {
		t.Fatal(err)
	}
}

// ready makes a Deployment's status say n replicas are Ready, as its controller would.
func ready(t *testing.T, c *fake.Clientset, name string, n int32) {
	t.Helper()
	d := get(t, c, name)
	d.Status = appsv1.DeploymentStatus{Replicas: n, ReadyReplicas: n, UpdatedReplicas: n, AvailableReplicas: n}
	if _, err := c.AppsV1().Deployments(ns).UpdateStatus(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// hpaRequests counts the requests made for autoscalers, by verb.
func hpaRequests(c *fake.Clientset) map[string]int {
	out := map[string]int{}
	for _, a := range c.Actions() {
		if a.GetResource().Resource == "horizontalpodautoscalers" {
			out[a.GetVerb()]++
		}
	}
	return out
}

func TestTargets(t *testing.T) {
	tests := []struct {
		name             string
		apiVersion, kind string
		target           string
		want             bool
	}{
		{"apps/v1 Deployment", "apps/v1", "Deployment", "my-app-v2", true},
		{"another version of apps", "apps/v1beta2", "Deployment", "my-app-v2", true},
		{"another Deployment", "apps/v1", "Deployment", "my-app-v1", false},
		// The HPA controller finds no Deployment kind outside apps: it fails, scales nothing.
		{"no apiVersion", "", "Deployment", "my-app-v2", false},
		{"a version without a group", "v1", "Deployment", "my-app-v2", false},
		{"the group alone", "apps", "Deployment", "my-app-v2", false},
		{"extensions", "extensions/v1beta1", "Deployment", "my-app-v2", false},
		{"a StatefulSet of that name", "apps/v1", "StatefulSet", "my-app-v2", false},
		{"kind in lower case", "apps/v1", "deployment", "my-app-v2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hpa("x", tt.target, 1, 2)
			h.Spec.ScaleTargetRef.APIVersion, h.Spec.ScaleTargetRef.Kind = tt.apiVersion, tt.kind
			if got := targets(h, "my-app-v2"); got != tt.want {
				t.Errorf("targets: %t, want %t", got, tt.want)
			}
		})
	}
}

// TestScaleWithAutoscalers: an HPA on each Deployment, the baseline's changing the baseline
// mid-canary as it would under load. The canary goes on, sized from the live baseline, its own
// HPA pinned to each step and restored after the promotion; the baseline's is never touched.
func TestScaleWithAutoscalers(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app.yaml") // steps "1", "50%", "100%"
	c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 0, 0),
		hpa("my-app-v2", "my-app-v2", 2, 10), hpa("my-app-v1", "my-app-v1", 5, 20))
	r, err := NewRelease(c, p, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	state := prepare(t, r)
	if got := state[stateCanaryAutoscalers]; got != `[{"name":"my-app-v2","minReplicas":2,"maxReplicas":10}]` {
		t.Errorf("canary autoscalers remembered as %s", got)
	}
	if got := state[stateBaselineAutoscalers]; got != `[{"name":"my-app-v1","minReplicas":5,"maxReplicas":20}]` {
		t.Errorf("baseline autoscalers remembered as %s", got)
	}
	if _, err := r.SetStep(ctx, 0, state); err != nil {
		t.Fatal(err)
	}
	rangeIs(t, c, "my-app-v2", 1, 1, true)
	if got := replicas(get(t, c, "my-app-v2")); got != 1 {
		t.Errorf("step 1: canary at %d, want 1", got)
	}
	fp, err := r.Fingerprint(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	// The baseline's autoscaler scales it up: not a person stepping in.
	autoscale(t, c, "my-app-v1", 12)
	c.ClearActions()
	if again, err := r.Fingerprint(ctx, false); err != nil || again != fp {
		t.Errorf("fingerprint %q after the baseline's autoscaler scaled it, want %q as before (%v)", again, fp, err)
	}
	if n := hpaRequests(c); len(n) != 0 {
		t.Errorf("a fingerprint read autoscalers again: %v", n)
	}
	// Sized from the live baseline: 50% of 12.
	if _, err := r.SetStep(ctx, 1, state); err != nil {
		t.Fatal(err)
	}
	rangeIs(t, c, "my-app-v2", 6, 6, true)
	if got := replicas(get(t, c, "my-app-v2")); got != 6 {
		t.Errorf("step 2: canary at %d, want 6 (50%% of the baseline's 12)", got)
	}
	// A person scaling the canary still shows.
	scaleTo(t, c, "my-app-v2", 7)
	if changed, _ := r.Fingerprint(ctx, false); changed == fp || !strings.Contains(changed, "my-app-v2=7") {
		t.Errorf("fingerprint %q after a person scaled the canary", changed)
	}
	scaleTo(t, c, "my-app-v2", 6)
	autoscale(t, c, "my-app-v1", 14)
	if done, err := r.Promote(ctx, state); err != nil || done {
		t.Fatalf("promote with an unready canary: done=%t err=%v", done, err)
	}
	rangeIs(t, c, "my-app-v2", 14, 14, true) // pinned to the promotion's size until it is done
	ready(t, c, "my-app-v2", 14)
	if done, err := r.Promote(ctx, state); err != nil || !done {
		t.Fatalf("promote: done=%t err=%v", done, err)
	}
	if v1, v2 := replicas(get(t, c, "my-app-v1")), replicas(get(t, c, "my-app-v2")); v1 != 0 || v2 != 14 {
		t.Errorf("after the promotion v1=%d v2=%d, want 0 and the live baseline's 14", v1, v2)
	}
	rangeIs(t, c, "my-app-v2", 2, 10, false)
	rangeIs(t, c, "my-app-v1", 5, 20, false)
	// Promoting again (a crash before the record said so) changes nothing.
	c.ClearActions()
	if done, err := r.Promote(ctx, state); err != nil || !done {
		t.Fatalf("promote again: done=%t err=%v", done, err)
	}
	if n := writes(c); n != 0 {
		t.Errorf("promoting again wrote %d times: %v", n, c.Actions())
	}
}

// TestShiftWithAutoscalers: shift moves the baseline's replicas itself, so the baseline's HPA is
// pinned to what it keeps at each step, and both are restored after a rollback.
func TestShiftWithAutoscalers(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app-shift.yaml") // steps 1, 2, 5, 10
	c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 0, 0),
		hpa("my-app-v2", "my-app-v2", 2, 10), hpa("my-app-v1", "my-app-v1", 5, 20))
	r, _ := NewRelease(c, p, zerolog.Nop())
	state := prepare(t, r)
	for i, want := range []int32{1, 2, 5, 10} {
		if _, err := r.SetStep(ctx, i, state); err != nil {
			t.Fatal(err)
		}
		rangeIs(t, c, "my-app-v2", want, want, true)
		rangeIs(t, c, "my-app-v1", max(10-want, 1), max(10-want, 1), true)
		if v1, v2 := replicas(get(t, c, "my-app-v1")), replicas(get(t, c, "my-app-v2")); v1 != 10-want || v2 != want {
			t.Errorf("step %d: v1=%d v2=%d", i+1, v1, v2)
		}
	}
	ready(t, c, "my-app-v2", 10)
	if done, err := r.Rollback(ctx, state); err != nil || done {
		t.Fatalf("rollback with the canary's pods still there: done=%t err=%v", done, err)
	}
	rangeIs(t, c, "my-app-v1", 10, 10, true) // the baseline back at its size, held there
	ready(t, c, "my-app-v2", 0)
	if done, err := r.Rollback(ctx, state); err != nil || !done {
		t.Fatalf("rollback: done=%t err=%v", done, err)
	}
	if v1, v2 := replicas(get(t, c, "my-app-v1")), replicas(get(t, c, "my-app-v2")); v1 != 10 || v2 != 0 {
		t.Errorf("after the rollback v1=%d v2=%d", v1, v2)
	}
	// The canary at 0 keeps its restored HPA: the HPA controller leaves a target at 0 alone.
	rangeIs(t, c, "my-app-v2", 2, 10, false)
	rangeIs(t, c, "my-app-v1", 5, 20, false)
}

// TestRolloutWithAutoscaler: the one Deployment's HPA is pinned to its replicas when the canary
// started, from the first step until the rollout is complete.
func TestRolloutWithAutoscaler(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app-rollout.yaml")
	objs := append(rolloutAtRevision3(), hpa("my-app", "my-app", 4, 30))
	c := fake.NewClientset(objs...)
	r, _ := NewRelease(c, p, zerolog.Nop())
	state := prepare(t, r)
	if state[stateAutoscaledReplicas] != "10" || !strings.Contains(state[stateCanaryAutoscalers], `"maxReplicas":30`) {
		t.Errorf("remembered %v", state)
	}
	autoscale(t, c, "my-app", 12) // before the first step: the pin holds what prepare saw
	if _, err := r.SetStep(ctx, 0, state); err != nil {
		t.Fatal(err)
	}
	rangeIs(t, c, "my-app", 10, 10, true)
	if done, err := r.Promote(ctx, state); err != nil || done {
		t.Fatalf("promote mid-rollout: done=%t err=%v", done, err)
	}
	rangeIs(t, c, "my-app", 10, 10, true) // until the rollout is complete
	autoscale(t, c, "my-app", 10)
	ready(t, c, "my-app", 10)
	if done, err := r.Promote(ctx, state); err != nil || !done {
		t.Fatalf("promote: done=%t err=%v", done, err)
	}
	rangeIs(t, c, "my-app", 4, 30, false)
}

// TestRestoreResumes: a restore cut short (one of two HPAs written) is completed by the next
// call; a restored HPA is not written again; an HPA deleted meanwhile is no error.
func TestRestoreResumes(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app.yaml")
	c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 0, 0),
		hpa("a", "my-app-v2", 2, 10), hpa("b", "my-app-v2", 3, 9), hpa("gone", "my-app-v2", 1, 5))
	r, _ := NewRelease(c, p, zerolog.Nop())
	state := prepare(t, r)
	if _, err := r.SetStep(ctx, 0, state); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "gone"} {
		rangeIs(t, c, name, 1, 1, true)
	}
	fail := true
	c.PrependReactor("patch", "horizontalpodautoscalers", func(a k8stesting.Action) (bool, runtime.Object, error) {
		switch name := a.(k8stesting.PatchAction).GetName(); {
		case name == "b" && fail:
			fail = false
			return true, nil, errors.New("connection reset")
		case name == "gone":
			return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: "autoscaling", Resource: "horizontalpodautoscalers"}, name)
		}
		return false, nil, nil
	})
	if done, err := r.Rollback(ctx, state); err == nil || done {
		t.Fatalf("rollback with a write failing: done=%t err=%v, want the error", done, err)
	}
	rangeIs(t, c, "a", 2, 10, false)
	rangeIs(t, c, "b", 1, 1, true)
	if done, err := r.Rollback(ctx, state); err != nil || !done {
		t.Fatalf("rollback again: done=%t err=%v", done, err)
	}
	rangeIs(t, c, "a", 2, 10, false)
	rangeIs(t, c, "b", 3, 9, false)
	c.ClearActions()
	if done, err := r.Rollback(ctx, state); err != nil || !done {
		t.Fatalf("rollback a third time: done=%t err=%v", done, err)
	}
	if n := hpaRequests(c); n["patch"] != 1 { // "gone" only, NotFound
		t.Errorf("restoring again wrote %v", n)
	}
}

// TestAutoscalerPinnedBefore: an HPA left pinned by a canary that never ended (stopped, then
// started again) is remembered with its own range, recorded on it, not with the pin.
func TestAutoscalerPinnedBefore(t *testing.T) {
	ctx := context.Background()
	left := hpa("my-app-v2", "my-app-v2", 1, 1)
	left.Annotations = map[string]string{AnnotationPinned: `{"minReplicas":2,"maxReplicas":10}`}
	c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 1, 0), left)
	r, _ := NewRelease(c, loadPolicy(t, "my-app.yaml"), zerolog.Nop())
	state := prepare(t, r)
	if got := state[stateCanaryAutoscalers]; got != `[{"name":"my-app-v2","minReplicas":2,"maxReplicas":10}]` {
		t.Errorf("remembered %s, want the range before the old pin", got)
	}
	ready(t, c, "my-app-v2", 0)
	if _, err := r.Rollback(ctx, state); err != nil {
		t.Fatal(err)
	}
	rangeIs(t, c, "my-app-v2", 2, 10, false)
}

// TestAutoscalersForbidden: without the right to list HPAs, coalmine cannot see them and goes on.
func TestAutoscalersForbidden(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 0, 0), hpa("my-app-v2", "my-app-v2", 2, 10))
	c.PrependReactor("list", "horizontalpodautoscalers", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "autoscaling", Resource: "horizontalpodautoscalers"}, "", errors.New("RBAC"))
	})
	r, _ := NewRelease(c, loadPolicy(t, "my-app.yaml"), zerolog.Nop())
	state := prepare(t, r)
	if _, ok := state[stateCanaryAutoscalers]; ok {
		t.Errorf("remembered autoscalers it cannot list: %v", state)
	}
	if _, err := r.SetStep(ctx, 0, state); err != nil {
		t.Fatal(err)
	}
	rangeIs(t, c, "my-app-v2", 2, 10, false)
}

// TestFingerprintReadsAutoscalersOnce: a release that did not start the canary (a restarted gate
// or daemon) reads whether the baseline is autoscaled once, at its first fingerprint.
func TestFingerprintReadsAutoscalersOnce(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 1, 1), hpa("my-app-v1", "my-app-v1", 5, 20))
	r, _ := NewRelease(c, loadPolicy(t, "my-app.yaml"), zerolog.Nop())
	for range 3 {
		fp, err := r.Fingerprint(ctx, false)
		if err != nil || fp != "my-app-v1=autoscaled my-app-v2=1" {
			t.Errorf("fingerprint %q, %v", fp, err)
		}
	}
	if n := hpaRequests(c); n["list"] != 1 || len(n) != 1 {
		t.Errorf("autoscaler requests over 3 fingerprints: %v, want one list", n)
	}
	shift, _ := NewRelease(c, loadPolicy(t, "my-app-shift.yaml"), zerolog.Nop())
	if fp, err := shift.Fingerprint(ctx, false); err != nil || fp != "my-app-v1=10 my-app-v2=1" {
		t.Errorf("shift fingerprint %q, %v: shift pins the baseline's autoscaler and keeps its replicas", fp, err)
	}
}
