package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/coalmine/coalmine/actuator"
	"github.com/coalmine/coalmine/sandbox"
	"github.com/coalmine/coalmine/simulator"
)

// hpaManager is the field manager the HPA controller's writes are recorded under: it sets none,
// so the API server takes the start of kube-controller-manager's user agent.
const hpaManager = "kube-controller-manager"

// startEnvWithAutoscaling is startEnv with kube-controller-manager's HPA controller running too,
// syncing every second. The sandbox has no metrics API: the controller cannot compute a metric,
// but it holds every target within its HPA's [minReplicas, maxReplicas] before it looks at one,
// and leaves a target at 0 replicas alone. That is the part of it coalmine's pins act on.
func startEnvWithAutoscaling(t *testing.T, sc simulator.Scenario) *env {
	t.Helper()
	return startEnvWith(t, sc, sandbox.ClusterOptions{
		Controllers:           []string{"horizontal-pod-autoscaler-controller"},
		ControllerManagerArgs: []string{"--horizontal-pod-autoscaler-sync-period=1s"},
	})
}

// createHPA makes an autoscaling/v2 HPA of a Deployment, as kubectl autoscale would.
func createHPA(t *testing.T, client kubernetes.Interface, ns, target string, minReplicas, maxReplicas int32) {
	t.Helper()
	h := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: target, Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
			MinReplicas:    &minReplicas, MaxReplicas: maxReplicas,
		},
	}
	if _, err := client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(context.Background(), h, metav1.CreateOptions{FieldManager: "kubectl-autoscale"}); err != nil {
		t.Fatal(err)
	}
}

func getHPA(t *testing.T, client kubernetes.Interface, ns, name string) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	h, err := client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// hpaRange shows an HPA's range and whether coalmine pinned it.
func hpaRange(h *autoscalingv2.HorizontalPodAutoscaler) string {
	minReplicas := "nil"
	if h.Spec.MinReplicas != nil {
		minReplicas = fmt.Sprint(*h.Spec.MinReplicas)
	}
	s := fmt.Sprintf("%s..%d", minReplicas, h.Spec.MaxReplicas)
	if r, ok := h.Annotations[actuator.AnnotationPinned]; ok {
		s += " pinned (" + actuator.AnnotationPinned + "=" + r + ")"
	}
	return s
}

// autoscaler acts as an HPA's controller does on one tick: it wants `want` replicas for its
// target (what a metric would ask for), holds that within the HPA's range, and writes it
// through the target's scale subresource only when it differs. It returns what the target has.
func autoscaler(t *testing.T, client kubernetes.Interface, ns, name string, want int32) int32 {
	t.Helper()
	ctx := context.Background()
	h := getHPA(t, client, ns, name)
	minReplicas := int32(1)
	if h.Spec.MinReplicas != nil {
		minReplicas = *h.Spec.MinReplicas
	}
	desired := min(max(want, minReplicas), h.Spec.MaxReplicas)
	scale, err := client.AppsV1().Deployments(ns).GetScale(ctx, h.Spec.ScaleTargetRef.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("autoscaler: %s has %d replicas, the metric asks for %d, its HPA allows %s: %d", name, scale.Spec.Replicas, want, hpaRange(h), desired)
	if scale.Spec.Replicas == 0 || scale.Spec.Replicas == desired {
		return scale.Spec.Replicas
	}
	scale.Spec.Replicas = desired
	if _, err := client.AppsV1().Deployments(ns).UpdateScale(ctx, h.Spec.ScaleTargetRef.Name, scale, metav1.UpdateOptions{FieldManager: hpaManager}); err != nil {
		t.Fatal(err)
	}
	return desired
}

// waitFor polls ok every 200ms until it holds or timeout passes, then fails with what.
func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) { return ok(), nil })
	if err != nil {
		t.Fatalf("%s: not within %s", what, timeout)
	}
}

// TestGateAutoscalers runs a scale canary with an HPA on each Deployment and the real HPA
// controller running, while a scaler acting as an autoscaler does changes both mid-canary. The
// baseline's scaling is not a person stepping in: the canary goes on, sized from the live
// baseline. The canary's HPA is pinned to each step, so neither the scaler nor the HPA
// controller moves it. When the canary is promoted, both HPAs have their ranges back, and the
// HPA controller takes over the canary's replicas again.
func TestGateAutoscalers(t *testing.T) {
	const ns = "hpa"
	e := startEnvWithAutoscaling(t, simulator.Scenario{Seed: 21, Tick: model.Duration(100 * time.Millisecond), Apps: []simulator.App{
		app(ns, 0.01, slow),
	}})
	ctx := context.Background()
	applySeed(t, e.client, ns, nil)
	waitReady(t, e.client, ns, "my-app-v2", 1)
	waitScraped(t, e, ns, "v1.0.0", "v2.0.0")
	// The canary's HPA wants at least 2 and at most 8; the baseline's 5 to 20.
	createHPA(t, e.client, ns, "my-app-v2", 2, 8)
	createHPA(t, e.client, ns, "my-app-v1", 5, 20)

	cmd, stdout, stderr := e.startGate(t, policyFile(t, ns, "scale", "", `steps: ["1", "50%", "100%"]
    stepDuration: 10s`))
	output := multi{stdout, stderr}
	inPlace := func(step float64) func(p map[string]any) bool {
		return func(p map[string]any) bool {
			s, _ := p["step"].(float64)
			return s >= step && p["fingerprint"] != "" && p["inFlight"] == nil
		}
	}

	// Step 1: one canary pod, its HPA pinned to 1 although it asks for at least 2.
	waitProgress(t, e.client, ns, "my-app-v2", output, inPlace(0))
	h := getHPA(t, e.client, ns, "my-app-v2")
	t.Logf("step 1: canary HPA %s, my-app-v2=%d", hpaRange(h), replicasOf(t, e.client, ns, "my-app-v2"))
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != 1 || h.Spec.MaxReplicas != 1 || h.Annotations[actuator.AnnotationPinned] != `{"minReplicas":2,"maxReplicas":8}` {
		t.Errorf("step 1: canary HPA %s, want pinned to 1..1, its range 2..8 recorded", hpaRange(h))
	}
	// The baseline under load: its autoscaler takes it from 10 to 12.
	if got := autoscaler(t, e.client, ns, "my-app-v1", 12); got != 12 {
		t.Fatalf("the baseline's autoscaler left it at %d", got)
	}
	// The canary under load too: its autoscaler would make it 4, its pin keeps it at 1.
	if got := autoscaler(t, e.client, ns, "my-app-v2", 4); got != 1 {
		t.Errorf("the canary's autoscaler moved it to %d past coalmine's pin", got)
	}
	time.Sleep(3 * time.Second) // three syncs of the HPA controller
	if v2 := replicasOf(t, e.client, ns, "my-app-v2"); v2 != 1 {
		t.Errorf("my-app-v2=%d during step 1: something moved the canary off its step", v2)
	}

	// Step 2: 50% of the live baseline's 12.
	waitProgress(t, e.client, ns, "my-app-v2", output, inPlace(1))
	h = getHPA(t, e.client, ns, "my-app-v2")
	v2 := replicasOf(t, e.client, ns, "my-app-v2")
	t.Logf("step 2: canary HPA %s, my-app-v2=%d, my-app-v1=%d", hpaRange(h), v2, replicasOf(t, e.client, ns, "my-app-v1"))
	if v2 != 6 || *h.Spec.MinReplicas != 6 || h.Spec.MaxReplicas != 6 {
		t.Errorf("step 2: my-app-v2=%d, HPA %s; want 6 (50%% of the baseline's 12), pinned", v2, hpaRange(h))
	}
	// The baseline's autoscaler again, down this time.
	autoscaler(t, e.client, ns, "my-app-v1", 11)

	// Step 3, 100%: the live baseline's 11.
	waitProgress(t, e.client, ns, "my-app-v2", output, inPlace(2))
	h = getHPA(t, e.client, ns, "my-app-v2")
	v2 = replicasOf(t, e.client, ns, "my-app-v2")
	t.Logf("step 3: canary HPA %s, my-app-v2=%d, my-app-v1=%d", hpaRange(h), v2, replicasOf(t, e.client, ns, "my-app-v1"))
	if v2 != 11 || *h.Spec.MinReplicas != 11 || h.Spec.MaxReplicas != 11 {
		t.Errorf("step 3: my-app-v2=%d, HPA %s; want 11 (100%% of the baseline's 11), pinned", v2, hpaRange(h))
	}

	if code := processExitCode(cmd.Wait()); code != exitPass {
		t.Fatalf("gate exit code %d, want %d\n%s", code, exitPass, lastLines(output.String(), 30))
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		t.Logf("gate: %s", line)
	}
	if strings.Contains(stdout.String(), "someone else changed the release") {
		t.Errorf("the autoscalers' changes stopped the canary:\n%s", stdout.String())
	}
	evs := events(t, e.client, ns)
	if count(evs, "CanaryPromoted") != 1 || count(evs, "CanaryStopped") != 0 {
		t.Errorf("events %v, want one CanaryPromoted and no CanaryStopped", evs)
	}
	v1, v2 := replicasOf(t, e.client, ns, "my-app-v1"), replicasOf(t, e.client, ns, "my-app-v2")
	t.Logf("promoted: my-app-v1=%d my-app-v2=%d", v1, v2)
	// 11 as promoted, or 8 if the HPA controller, its range back, was quicker than this read.
	if v1 != 0 || v2 != 11 && v2 != 8 {
		t.Errorf("after the promotion my-app-v1=%d my-app-v2=%d, want 0 and the live baseline's 11", v1, v2)
	}

	// Both HPAs have their own ranges back, and the HPA controller acts on them: it brings the
	// canary, now serving everything, within its 2..8; it leaves the baseline at 0 alone.
	for _, name := range []string{"my-app-v2", "my-app-v1"} {
		h := getHPA(t, e.client, ns, name)
		t.Logf("after the canary: HPA %s %s", name, hpaRange(h))
		if _, pinned := h.Annotations[actuator.AnnotationPinned]; pinned {
			t.Errorf("HPA %s still pinned after the promotion", name)
		}
	}
	if h := getHPA(t, e.client, ns, "my-app-v2"); *h.Spec.MinReplicas != 2 || h.Spec.MaxReplicas != 8 {
		t.Errorf("canary HPA restored to %s, want 2..8", hpaRange(h))
	}
	if h := getHPA(t, e.client, ns, "my-app-v1"); *h.Spec.MinReplicas != 5 || h.Spec.MaxReplicas != 20 {
		t.Errorf("baseline HPA %s, want its own 5..20, never pinned", hpaRange(h))
	}
	waitFor(t, 30*time.Second, "the HPA controller brings the canary within 2..8", func() bool {
		return replicasOf(t, e.client, ns, "my-app-v2") == 8
	})
	d, err := e.client.AppsV1().Deployments(ns).Get(ctx, "my-app-v2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range d.ManagedFields {
		if strings.Contains(string(m.FieldsV1.Raw), `"f:replicas"`) && m.Subresource != "status" {
			t.Logf("my-app-v2 spec.replicas owned by %s (%s %s) at %s", m.Manager, m.Operation, m.Subresource, m.Time)
		}
	}
	waitFor(t, 30*time.Second, "the HPA controller reports the baseline at 0 as ScalingDisabled", func() bool {
		for _, c := range getHPA(t, e.client, ns, "my-app-v1").Status.Conditions {
			if c.Type == autoscalingv2.ScalingActive && c.Status == corev1.ConditionFalse && c.Reason == "ScalingDisabled" {
				t.Logf("baseline HPA: %s %s %s: %s", c.Type, c.Status, c.Reason, c.Message)
				return true
			}
		}
		return false
	})
	if v1 := replicasOf(t, e.client, ns, "my-app-v1"); v1 != 0 {
		t.Errorf("my-app-v1=%d: its HPA scaled the promoted-away baseline back up", v1)
	}
}
