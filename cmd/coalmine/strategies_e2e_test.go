package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/coalmine/coalmine/actuator"
	"github.com/coalmine/coalmine/sandbox"
	"github.com/coalmine/coalmine/simulator"
)

// readiness is how the canary's new pods become Ready in one half of TestStrategiesHoldTheirSteps.
type readiness struct {
	name   string
	prefix string // of the half's namespaces
	// delay is how long after it appears a new v2 pod becomes Ready; 0 is kwok's default, at once.
	delay time.Duration
}

func (r readiness) ns(parts ...string) string { return r.prefix + "-" + strings.Join(parts, "-") }

// The steps every canary of TestStrategiesHoldTheirSteps takes, and their sizes for the seed's
// 10 replicas.
const (
	holdSteps    = `steps: ["1", "50%", "100%"]`
	holdInterval = 2 * time.Second
	seedReplicas = int32(10)
)

var holdStepSizes = []int32{1, 5, 10}

const rolloutTargetBlock = `baseline: {deployment: my-app, version: v1.0.0}
    canary: {deployment: my-app, version: v2.0.0}`

// outcome is a v2 that deserves promotion or rollback.
type outcome struct {
	name      string
	errorRate float64
	code      int
	event     string
}

var holdOutcomes = []outcome{
	{"good", 0.01, exitPass, "CanaryPromoted"},
	{"bad", 0.05, exitFail, "CanaryRolledBack"},
}

// TestStrategiesHoldTheirSteps runs every strategy on a real control plane and watches the
// cluster while it does: a rollout never has more new pods than the step the gate is at, a
// rollout resumed by hand is paused again where it is, bluegreen is one switch. Each case runs
// with pods Ready at once and with the seed app's 15s readiness delay.
func TestStrategiesHoldTheirSteps(t *testing.T) {
	modes := []readiness{
		{name: "ready at once", prefix: "now"},
		// The seed app's readiness probe passes about 15s after its container starts.
		{name: "ready after 15s", prefix: "late", delay: 15 * time.Second},
	}
	var apps []simulator.App
	for _, m := range modes {
		for _, o := range holdOutcomes {
			for _, kind := range []string{"rollout", "scale", "bluegreen"} {
				apps = append(apps, app(m.ns(kind, o.name), o.errorRate, slow))
			}
		}
		apps = append(apps, app(m.ns("resumed"), 0.01, slow))
	}
	var sum summary
	// Registered before the sandbox's, so it is printed after the sandbox's log tails on a
	// failure: the output ends with what each case measured and which cases failed.
	t.Cleanup(func() { t.Logf("summary:\n%s", sum.String()) })
	e := startEnv(t, simulator.Scenario{Seed: 16, Tick: model.Duration(100 * time.Millisecond), Apps: apps})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			for _, o := range holdOutcomes {
				t.Run("rollout beside scale/"+o.name, func(t *testing.T) {
					t.Parallel()
					defer sum.failed(t)
					rolloutBesideScale(t, e, m, o, &sum)
				})
			}
			for _, o := range holdOutcomes {
				t.Run("bluegreen/"+o.name, func(t *testing.T) {
					t.Parallel()
					defer sum.failed(t)
					blueGreenSwitch(t, e, m, o)
				})
			}
			t.Run("rollout resumed by hand", func(t *testing.T) {
				t.Parallel()
				defer sum.failed(t)
				rolloutResumedByHand(t, e, m, &sum)
			})
		})
	}
}

// rolloutBesideScale runs a rollout canary and a scale canary of the same v2 with the same
// policy at the same time: the rollout ends as the scale one does, no later than it (plus a few
// ticks), and its new ReplicaSet never outgrows the step the gate is at.
func rolloutBesideScale(t *testing.T, e *env, m readiness, o outcome, sum *summary) {
	rns, sns := m.ns("rollout", o.name), m.ns("scale", o.name)
	for _, ns := range []string{rns, sns} {
		cleanupNamespace(t, e.client, ns)
		if m.delay > 0 {
			delayReadiness(t, e.client, ns, m.delay)
		}
	}
	prepareRollout(t, e.client, rns, m.delay > 0)
	// The scale canary starts from no v2 pod, as the rollout's does.
	applySeed(t, e.client, sns, func(obj any) {
		if d, ok := obj.(*appsv1.Deployment); ok && d.Name == "my-app-v2" {
			zero := int32(0)
			d.Spec.Replicas = &zero
			if m.delay > 0 {
				d.Spec.Template.Labels[sandbox.UnreadyLabel] = "true"
			}
		}
	})
	waitReady(t, e.client, sns, "my-app-v1", seedReplicas)
	waitBaselines(t, e, rns, sns)

	rec := watchRollout(t, e.client, rns, "my-app")
	steps := holdSteps + "\n    stepDuration: 6s"
	rollout := startTimedGate(t, e, "rollout", holdPolicy(t, rns, "rollout", rolloutTargetBlock, steps, "3m"))
	scale := startTimedGate(t, e, "scale", holdPolicy(t, sns, "scale", "", steps, "3m"))
	rollout.wait(t, 5*time.Minute)
	scale.wait(t, 5*time.Minute)
	t.Logf("rollout took %s, scale took %s", rollout.took.Round(time.Millisecond), scale.took.Round(time.Millisecond))
	rollout.mustCode(t, o.code)
	scale.mustCode(t, o.code)

	rec.catchUp(t)
	res := rec.check(holdStepSizes, seedReplicas)
	t.Logf("rollout ReplicaSets:\n%s", res)
	rj, sj := judgedTicks(rollout.stdout.String()), judgedTicks(scale.stdout.String())
	t.Logf("judged ticks per step: rollout %v, scale %v", rj, sj)
	sum.add(fmt.Sprintf("%s, %s: rollout %s, scale %s; judged ticks per step: rollout %v, scale %v; largest new ReplicaSet %s", m.name, o.name,
		rollout.took.Round(100*time.Millisecond), scale.took.Round(100*time.Millisecond), rj, sj, res.largest()))
	for _, v := range res.violations {
		t.Errorf("%s", v)
	}
	if len(res.violations) > 0 {
		t.Logf("rollout gate output:\n%s", rollout.stdout)
	}

	// The rollout is no slower than scaling a second Deployment: the hold costs nothing.
	slack := 3*holdInterval + scale.took/10
	if rollout.took > scale.took+slack {
		t.Errorf("the rollout took %s, more than the scale canary's %s + %s", rollout.took.Round(time.Millisecond), scale.took.Round(time.Millisecond), slack)
	}

	// Where each release ended.
	waitRolledOut(t, e.client, rns, "my-app")
	d, err := e.client.AppsV1().Deployments(rns).Get(context.Background(), "my-app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Rolled back to revision 2, the last that ran the baseline.
	wantImage := map[int]string{exitPass: "v2.0.0", exitFail: "v1.0.0-hotfix"}[o.code]
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "containersol/k8s-deployment-strategies:"+wantImage {
		t.Errorf("the rollout's Deployment runs %s, want the %s image", img, wantImage)
	}
	// The Deployment's own settings are back: nothing of the hold is left.
	deadline := int32(-1)
	if d.Spec.ProgressDeadlineSeconds != nil {
		deadline = *d.Spec.ProgressDeadlineSeconds
	}
	if d.Spec.Paused || d.Spec.MinReadySeconds != 0 || deadline != 600 {
		t.Errorf("the rollout's Deployment is left paused=%t minReadySeconds=%d progressDeadlineSeconds=%d, want false, 0 and 600",
			d.Spec.Paused, d.Spec.MinReadySeconds, deadline)
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxSurge.String() != "25%" || ru.MaxUnavailable.String() != "25%" {
		t.Errorf("the rollout's update strategy is not restored: %+v", d.Spec.Strategy)
	}
	var r struct {
		Phase string `json:"phase"`
	}
	if err := json.Unmarshal([]byte(d.Annotations[actuator.AnnotationProgress]), &r); err != nil {
		t.Errorf("the rollout's record: %v", err)
	} else if want := map[int]string{exitPass: "promoted", exitFail: "rolledBack"}[o.code]; r.Phase != want {
		t.Errorf("the rollout's record says %s, want %s", r.Phase, want)
	}
	v1, v2 := replicasOf(t, e.client, sns, "my-app-v1"), replicasOf(t, e.client, sns, "my-app-v2")
	if want := map[int][2]int32{exitPass: {0, 10}, exitFail: {10, 0}}[o.code]; v1 != want[0] || v2 != want[1] {
		t.Errorf("scale: v1=%d v2=%d, want %d and %d", v1, v2, want[0], want[1])
	}
	for _, ns := range []string{rns, sns} {
		if evs := events(t, e.client, ns); count(evs, o.event) != 1 {
			t.Errorf("%s: events %v, want one %s", ns, evs, o.event)
		}
	}
}

// blueGreenSwitch runs the shipped bluegreen example, made fast, on the seed's two Deployments.
func blueGreenSwitch(t *testing.T, e *env, m readiness, o outcome) {
	ns := m.ns("bluegreen", o.name)
	cleanupNamespace(t, e.client, ns)
	if m.delay > 0 {
		delayReadiness(t, e.client, ns, m.delay)
	}
	applySeed(t, e.client, ns, func(obj any) {
		switch x := obj.(type) {
		case *corev1.Service:
			x.Spec.Selector["version"] = "v1.0.0"
		case *appsv1.Deployment:
			if x.Name == "my-app-v2" {
				zero := int32(0)
				x.Spec.Replicas = &zero
				if m.delay > 0 {
					x.Spec.Template.Labels[sandbox.UnreadyLabel] = "true"
				}
			}
		}
	})
	waitReady(t, e.client, ns, "my-app-v1", seedReplicas)
	waitScraped(t, e, ns, "v1.0.0")
	time.Sleep(10 * time.Second) // a full window of the baseline before the switch

	services := watchHistory(t, listWatch(
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return e.client.CoreV1().Services(ns).List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return e.client.CoreV1().Services(ns).Watch(ctx, o)
		}))
	canaries := watchHistory(t, deploymentsLW(e.client, ns, "my-app-v2"))
	// v2 fully scaled beside v1, as seed 2 has it; the gate is run right after, as a pipeline
	// would. With the readiness delay its pods are not Ready yet.
	editDeployment(t, e.client, ns, "my-app-v2", func(d *appsv1.Deployment) {
		n := seedReplicas
		d.Spec.Replicas = &n
	})
	if m.delay == 0 {
		waitReady(t, e.client, ns, "my-app-v2", seedReplicas)
	}
	start := time.Now()
	// The simulator plays a pod only once it is Ready, so in the readiness delay Prometheus
	// scrapes it and finds it down, where the seed app serves its metrics from the start: the
	// example's pods-up metric would judge that artefact the moment the pods become Ready.
	r := e.gate(t, blueGreenExample(t, ns, m.delay > 0))
	t.Logf("bluegreen took %s", time.Since(start).Round(time.Millisecond))
	mustCode(t, r, o.code)
	if !strings.Contains(r.stdout, "step 1/1") || strings.Contains(r.stdout, "step 2/") {
		t.Errorf("bluegreen is not one switch:\n%s", r.stdout)
	}
	svc, err := e.client.CoreV1().Services(ns).Get(context.Background(), "my-app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantSel, wantV1 := "v2.0.0", int32(0)
	if o.code != exitPass {
		wantSel, wantV1 = "v1.0.0", seedReplicas
	}
	if got := svc.Spec.Selector["version"]; got != wantSel {
		t.Errorf("the Service selects %s, want %s", got, wantSel)
	}
	if v1 := replicasOf(t, e.client, ns, "my-app-v1"); v1 != wantV1 {
		t.Errorf("v1 has %d replicas, want %d", v1, wantV1)
	}
	if evs := events(t, e.client, ns); count(evs, o.event) != 1 {
		t.Errorf("events %v, want one %s", evs, o.event)
	}

	// The Service never sent traffic to a v2 that could not take it.
	services.catchUp(t)
	canaries.catchUp(t)
	for _, v := range switchesToUnready(services, canaries) {
		t.Errorf("%s", v)
	}
}

// switchesToUnready lists the moments the Service was switched to v2.0.0 while my-app-v2 had
// fewer Ready pods than replicas, and for how long it then pointed at them.
func switchesToUnready(services, canaries *history) []string {
	var out []string
	prev := ""
	var ready, want int32 = 0, -1
	var switched *observed
	for _, s := range merge(services, canaries) {
		switch o := s.obj.(type) {
		case *appsv1.Deployment:
			ready, want = o.Status.ReadyReplicas, *o.Spec.Replicas
			if switched != nil && want > 0 && ready >= want {
				out[len(out)-1] += fmt.Sprintf("; all Ready %s later", s.at.Sub(switched.at).Round(100*time.Millisecond))
				switched = nil
			}
		case *corev1.Service:
			sel := o.Spec.Selector["version"]
			if sel == "v2.0.0" && prev != "v2.0.0" && (want <= 0 || ready < want) {
				out = append(out, fmt.Sprintf("the Service was switched to v2.0.0 (resourceVersion %d) while my-app-v2 had %d of %d pods Ready", s.rv, ready, want))
				switched = &s
			}
			prev = sel
		}
	}
	return out
}

// rolloutResumedByHand resumes a rollout coalmine holds at step 1, as `kubectl rollout resume`
// does: within a tick it is paused again where it was, with a warning Event, and the gate goes on.
func rolloutResumedByHand(t *testing.T, e *env, m readiness, sum *summary) {
	ns := m.ns("resumed")
	cleanupNamespace(t, e.client, ns)
	if m.delay > 0 {
		delayReadiness(t, e.client, ns, m.delay)
	}
	prepareRollout(t, e.client, ns, m.delay > 0)
	waitScraped(t, e, ns, "v1.0.0")
	rec := watchRollout(t, e.client, ns, "my-app")
	gate := startTimedGate(t, e, "rollout", holdPolicy(t, ns, "rollout", rolloutTargetBlock, holdSteps+"\n    stepDuration: 5m", "16m"))

	// Holding at step 1: the record says so and a few ticks have judged its one Ready pod.
	gate.waitFor(t, 2*time.Minute, "step 1 recorded as applied", func() bool {
		d, err := e.client.AppsV1().Deployments(ns).Get(context.Background(), "my-app", metav1.GetOptions{})
		if err != nil {
			return false
		}
		r := readRecord(d)
		return r != nil && r.Phase == "progressing" && r.Step == 0 && r.InFlight == nil
	})
	judged := func() int {
		n := 0
		for _, l := range strings.Split(gate.stdout.String(), "\n") {
			if strings.Contains(l, " step 1/3 ") && strings.Contains(l, " => ") {
				n++
			}
		}
		return n
	}
	gate.waitFor(t, time.Minute, "three judged ticks at step 1", func() bool { return judged() >= 3 })

	held, err := e.client.AppsV1().Deployments(ns).Get(context.Background(), "my-app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hold := held.Spec.MinReadySeconds
	if !held.Spec.Paused || hold == 0 {
		t.Fatalf("the step is not held: paused=%t minReadySeconds=%d", held.Spec.Paused, hold)
	}
	resumed := time.Now()
	editDeployment(t, e.client, ns, "my-app", func(d *appsv1.Deployment) { d.Spec.Paused = false })
	gate.waitFor(t, holdInterval+5*time.Second, "the Deployment paused again", func() bool {
		d, err := e.client.AppsV1().Deployments(ns).Get(context.Background(), "my-app", metav1.GetOptions{})
		return err == nil && d.Spec.Paused && d.Spec.MinReadySeconds == hold
	})
	repaused := time.Since(resumed)
	gate.waitFor(t, 5*time.Second, "a CanaryStepOvershot warning", func() bool {
		return overshootEvent(t, e.client, ns, "my-app") != ""
	})
	t.Logf("event: %s", overshootEvent(t, e.client, ns, "my-app"))

	// The gate goes on judging step 1, and the release stays where it was.
	before := judged()
	time.Sleep(3 * holdInterval)
	if gate.exited() {
		t.Fatalf("the gate ended (exit %d) after the rollout was resumed by hand:\n%s", gate.code, gate.output())
	}
	if after := judged(); after <= before {
		t.Errorf("no tick judged step 1 after the resume (%d judged before, %d after):\n%s", before, after, gate.stdout)
	}
	d, err := e.client.AppsV1().Deployments(ns).Get(context.Background(), "my-app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Spec.Paused || d.Spec.MinReadySeconds != hold {
		t.Errorf("the Deployment is paused=%t minReadySeconds=%d, want paused and held (%d)", d.Spec.Paused, d.Spec.MinReadySeconds, hold)
	}
	// Interrupted, the gate stays resumable: not stopped as if someone else had changed the release.
	if err := gate.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	gate.wait(t, 30*time.Second)
	gate.mustCode(t, exitInterrupted)

	rec.catchUp(t)
	res := rec.check(holdStepSizes, seedReplicas)
	unpaused := rec.unpausedFor()
	t.Logf("resumed by hand; paused again after %s (seen by the test's poll), unpaused for %s (seen by the watch); ReplicaSets:\n%s",
		repaused.Round(time.Millisecond), unpaused.Round(time.Millisecond), res)
	sum.add(fmt.Sprintf("%s, resumed by hand: paused again after %s; largest new ReplicaSet %s", m.name, unpaused.Round(time.Millisecond), res.largest()))
	for _, v := range res.violations {
		t.Errorf("%s", v)
	}
}

// judgedTicks counts, per step, the gate's progress lines that judged the metrics.
func judgedTicks(stdout string) []int {
	var out []int
	for _, l := range strings.Split(stdout, "\n") {
		i := strings.Index(l, " step ")
		if i < 0 || !strings.Contains(l, " => ") {
			continue
		}
		var step, steps int
		if _, err := fmt.Sscanf(l[i:], " step %d/%d", &step, &steps); err != nil || step < 1 {
			continue
		}
		for len(out) < step {
			out = append(out, 0)
		}
		out[step-1]++
	}
	return out
}

// overshootEvent is the message of the warning CanaryStepOvershot on the Deployment, "" if none.
func overshootEvent(t *testing.T, client kubernetes.Interface, ns, name string) string {
	t.Helper()
	list, err := client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range list.Items {
		if ev.Reason == "CanaryStepOvershot" && ev.Type == corev1.EventTypeWarning &&
			ev.InvolvedObject.Kind == "Deployment" && ev.InvolvedObject.Name == name && ev.Source.Component == "coalmine" {
			return ev.Message
		}
	}
	return ""
}

// TestValidateRefusesImpossiblePolicies shows that a policy the strategies cannot carry out is
// refused before it reaches a cluster, pointing at the line to change.
func TestValidateRefusesImpossiblePolicies(t *testing.T) {
	tests := []struct {
		name string
		file string
		// key is the field the error points at; want is part of the message.
		key, want string
	}{
		{"steps outlast maxDuration", "never-finishes.bad.yaml", "stepDuration:", "the canary could never be promoted"},
		{"bluegreen given steps", "bluegreen-steps.bad.yaml", "steps:", "bluegreen is one switch of the Service"},
		{"rollout deleting its baseline", "rollout-delete.bad.yaml", "baselineAfterPromotion:", "there is no baseline Deployment to delete"},
	}
	var all, prefixes []string
	for _, tt := range tests {
		path := filepath.Join("../../policies/testdata", tt.file)
		prefix := fmt.Sprintf("%s:%d: ", path, lineOf(t, path, tt.key))
		all, prefixes = append(all, path), append(prefixes, prefix)
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runArgs("validate", "-f", path)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stdout %q; stderr:\n%s", code, exitUsage, stdout, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], prefix) || !strings.Contains(lines[0], tt.want) {
				t.Errorf("stderr is not one line %q...%q:\n%s", prefix, tt.want, stderr)
			}
		})
	}
	t.Run("all at once: one line each", func(t *testing.T) {
		code, _, stderr := runArgs(append([]string{"validate", "-f"}, all...)...)
		if code != exitUsage {
			t.Errorf("exit %d, want %d", code, exitUsage)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if len(lines) != len(prefixes) {
			t.Fatalf("%d lines, want %d:\n%s", len(lines), len(prefixes), stderr)
		}
		for i, p := range prefixes {
			if !strings.HasPrefix(lines[i], p) {
				t.Errorf("line %d %q does not start with %q", i+1, lines[i], p)
			}
		}
	})
}

// lineOf is the 1-based line of the first line of path that starts, indentation aside, with key.
func lineOf(t *testing.T, path, key string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		if strings.HasPrefix(strings.TrimSpace(s.Text()), key) {
			return n
		}
	}
	t.Fatalf("%s has no line starting with %q", path, key)
	return 0
}

// holdPolicy writes a gate policy for the seed app in ns, judged every 2s over 10s by the
// threshold judge, with a readyTimeout the seed's readiness delay fits in.
func holdPolicy(t *testing.T, ns, strategy, target, steps, maxDuration string) string {
	t.Helper()
	return seedPolicy{ns: ns, strategy: strategy, target: target, strategyBlock: steps,
		interval: holdInterval, maxDuration: maxDuration, readyTimeout: "45s"}.write(t)
}

// blueGreenExample is policies/examples/my-app-bluegreen.yaml as shipped (its metrics, its
// strategy and the steps it leaves to the default), in ns and with the sandbox's timing;
// withoutPodsUp drops its pods-up metric.
func blueGreenExample(t *testing.T, ns string, withoutPodsUp bool) string {
	t.Helper()
	b, err := os.ReadFile("../../policies/examples/my-app-bluegreen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	spec := doc["spec"].(map[string]any)
	strategy := spec["strategy"].(map[string]any)
	if _, ok := strategy["steps"]; ok || strategy["type"] != "bluegreen" {
		t.Fatalf("the example's strategy is not one bluegreen switch: %v", strategy)
	}
	spec["target"].(map[string]any)["namespace"] = ns
	analysis := spec["analysis"].(map[string]any)
	analysis["interval"], analysis["window"], analysis["maxDuration"] = model.Duration(holdInterval).String(), "10s", "2m"
	strategy["stepDuration"] = "6s"
	if withoutPodsUp {
		metrics := spec["metrics"].([]any)
		kept := slices.DeleteFunc(slices.Clone(metrics), func(m any) bool { return m.(map[string]any)["name"] == "pods-up" })
		if len(kept) != len(metrics)-1 {
			t.Fatalf("the example has no pods-up metric to drop: %v", metrics)
		}
		spec["metrics"] = kept
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), ns+".yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitBaselines waits until Prometheus has v1's requests in every namespace, then a window more.
func waitBaselines(t *testing.T, e *env, namespaces ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ns := range namespaces {
		q := fmt.Sprintf(`count by (version) (http_requests_total{namespace=%q})`, ns)
		if _, err := e.cluster.Prometheus().WaitForSamples(ctx, q, 1); err != nil {
			t.Fatalf("prometheus has no series for %s: %v", ns, err)
		}
	}
	time.Sleep(11 * time.Second) // see waitScraped
}

// cleanupNamespace deletes the namespace's Deployments when the test ends, so that the pods of
// finished cases stop loading the machine while later ones run.
func cleanupNamespace(t *testing.T, client kubernetes.Interface, ns string) {
	t.Cleanup(func() {
		bg := metav1.DeletePropagationBackground
		_ = client.AppsV1().Deployments(ns).DeleteCollection(context.Background(),
			metav1.DeleteOptions{PropagationPolicy: &bg}, metav1.ListOptions{})
	})
}

// timedGate is a gate running in the background.
type timedGate struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	start          time.Time
	done           chan struct{}
	// code and took are set once done is closed.
	code int
	took time.Duration
}

func startTimedGate(t *testing.T, e *env, name, policy string) *timedGate {
	t.Helper()
	cmd, stdout, stderr := e.startGate(t, policy)
	g := &timedGate{name: name, cmd: cmd, stdout: stdout, stderr: stderr, start: time.Now(), done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		g.took, g.code = time.Since(g.start), processExitCode(err)
		close(g.done)
	}()
	// Before startGate's own cleanup: this Wait is the only one.
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-g.done })
	return g
}

func (g *timedGate) output() fmt.Stringer { return multi{g.stdout, g.stderr} }

func (g *timedGate) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

func (g *timedGate) wait(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-g.done:
	case <-time.After(limit):
		_ = g.cmd.Process.Kill()
		<-g.done
		t.Fatalf("the %s gate did not end within %s:\n%s", g.name, limit, lastLines(g.output().String(), 40))
	}
}

func (g *timedGate) mustCode(t *testing.T, want int) {
	t.Helper()
	if g.code != want {
		t.Fatalf("the %s gate exited %d, want %d\nstdout:\n%s\nstderr:\n%s", g.name, g.code, want, g.stdout, lastLines(g.stderr.String(), 15))
	}
}

// waitFor polls ok until it holds, failing after limit or when the gate ends first.
func (g *timedGate) waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if g.exited() {
			t.Fatalf("the %s gate ended (exit %d) before %s:\n%s", g.name, g.code, what, g.output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s; gate output:\n%s", what, limit, lastLines(g.output().String(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// history is every state of one kind of object in a namespace that a watch saw, started before
// coalmine acts. resourceVersions come from etcd's one revision counter, so the histories of
// different kinds can be put in the order the API server wrote them.
type history struct {
	lw    *cache.ListWatch
	mu    sync.Mutex
	items []observed
	err   error
}

type observed struct {
	rv      uint64
	at      time.Time
	obj     runtime.Object
	deleted bool
}

func listWatch(list func(context.Context, metav1.ListOptions) (runtime.Object, error), w func(context.Context, metav1.ListOptions) (watch.Interface, error)) *cache.ListWatch {
	return &cache.ListWatch{ListWithContextFunc: list, WatchFuncWithContext: w}
}

// deploymentsLW lists and watches one Deployment.
func deploymentsLW(client kubernetes.Interface, ns, name string) *cache.ListWatch {
	sel := "metadata.name=" + name
	return listWatch(
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return client.AppsV1().Deployments(ns).List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return client.AppsV1().Deployments(ns).Watch(ctx, o)
		})
}

func watchHistory(t *testing.T, lw *cache.ListWatch) *history {
	t.Helper()
	h := &history{lw: lw}
	ctx, cancel := context.WithCancel(context.Background())
	rv := listInto(t, ctx, lw, func(obj runtime.Object) { h.add(obj, false) })
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, rv, lw)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range rw.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified:
				h.add(ev.Object, false)
			case watch.Deleted:
				h.add(ev.Object, true)
			case watch.Error:
				h.mu.Lock()
				h.err = apierrors.FromObject(ev.Object)
				h.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { rw.Stop(); cancel(); <-done })
	return h
}

// listInto lists lw, hands each item to add and returns the list's resourceVersion.
func listInto(t *testing.T, ctx context.Context, lw *cache.ListWatch, add func(runtime.Object)) string {
	t.Helper()
	list, err := lw.ListWithContext(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range items {
		add(obj)
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		t.Fatal(err)
	}
	return lm.GetResourceVersion()
}

func (h *history) add(obj runtime.Object, deleted bool) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	rv, _ := strconv.ParseUint(m.GetResourceVersion(), 10, 64)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.items = append(h.items, observed{rv: rv, at: time.Now(), obj: obj, deleted: deleted})
}

func (h *history) snapshot() []observed {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.items)
}

// catchUp waits until the watch has seen every object as it is now.
func (h *history) catchUp(t *testing.T) {
	t.Helper()
	var want []observed
	listInto(t, context.Background(), h.lw, func(obj runtime.Object) { want = append(want, observed{obj: obj}) })
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		seen := map[types.UID]uint64{}
		for _, o := range h.snapshot() {
			m, _ := meta.Accessor(o.obj)
			seen[m.GetUID()] = max(seen[m.GetUID()], o.rv)
		}
		for _, o := range want {
			m, _ := meta.Accessor(o.obj)
			rv, _ := strconv.ParseUint(m.GetResourceVersion(), 10, 64)
			if seen[m.GetUID()] < rv {
				return false, nil
			}
		}
		return true, nil
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		t.Fatalf("watch: %v", h.err)
	}
	if err != nil {
		t.Fatalf("the watch did not catch up with the cluster: %v", err)
	}
}

// merge is the observations of several histories in the order the API server wrote them.
func merge(hs ...*history) []observed {
	var all []observed
	for _, h := range hs {
		all = append(all, h.snapshot()...)
	}
	slices.SortStableFunc(all, func(a, b observed) int { return cmp.Compare(a.rv, b.rv) })
	return all
}

// rolloutRecorder watches a rollout's Deployment (its spec and coalmine's record) and its
// ReplicaSets for the whole run.
type rolloutRecorder struct {
	deployment, replicaSets *history
}

func watchRollout(t *testing.T, client kubernetes.Interface, ns, name string) *rolloutRecorder {
	t.Helper()
	rs := watchHistory(t, listWatch(
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.AppsV1().ReplicaSets(ns).List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return client.AppsV1().ReplicaSets(ns).Watch(ctx, o)
		}))
	return &rolloutRecorder{deployment: watchHistory(t, deploymentsLW(client, ns, name)), replicaSets: rs}
}

func (r *rolloutRecorder) catchUp(t *testing.T) {
	t.Helper()
	r.deployment.catchUp(t)
	r.replicaSets.catchUp(t)
}

// unpausedFor is the longest time the watch saw the Deployment unpaused while coalmine's record
// held a step, by the test's clock.
func (r *rolloutRecorder) unpausedFor() time.Duration {
	var longest time.Duration
	var since time.Time
	for _, o := range r.deployment.snapshot() {
		d := o.obj.(*appsv1.Deployment)
		rec := readRecord(d)
		switch {
		case rec == nil || rec.Phase != "progressing" || rec.InFlight != nil:
			since = time.Time{}
		case !d.Spec.Paused && since.IsZero():
			since = o.at
		case d.Spec.Paused && !since.IsZero():
			longest, since = max(longest, o.at.Sub(since)), time.Time{}
		}
	}
	return longest
}

// recordView is the part of coalmine's record (analyzer.Progress as JSON) the checks read.
type recordView struct {
	Phase    string `json:"phase"`
	Step     int    `json:"step"`
	InFlight *struct {
		Action string `json:"action"`
		Step   int    `json:"step"`
	} `json:"inFlight"`
}

func readRecord(d *appsv1.Deployment) *recordView {
	raw := d.Annotations[actuator.AnnotationProgress]
	if raw == "" {
		return nil
	}
	var r recordView
	if json.Unmarshal([]byte(raw), &r) != nil {
		return nil
	}
	return &r
}

// stepReport is what the ReplicaSets did during a rollout canary.
type stepReport struct {
	// largestNew is the largest new ReplicaSet seen in each state of the record, by label.
	largestNew map[string]int32
	order      []string
	// smallestOld is the smallest the ReplicaSet serving v1 got before a promotion.
	smallestOld int32
	violations  []string
	timeline    []string
}

func (s stepReport) largest() string {
	var parts []string
	for _, k := range s.order {
		parts = append(parts, fmt.Sprintf("%s: %d", k, s.largestNew[k]))
	}
	return strings.Join(parts, ", ")
}

func (s stepReport) String() string {
	return fmt.Sprintf("largest new ReplicaSet per state of the record: %s; smallest v1 ReplicaSet before promotion: %d\n%s",
		s.largest(), s.smallestOld, strings.Join(s.timeline, "\n"))
}

// check replays the watch in resourceVersion order. The gate writes its record before it acts
// (an advance is recorded in flight before the step is applied), so every size of the new
// ReplicaSet must fit the record as it was just before: no larger than the step recorded (or in
// flight) while progressing, no larger than the last step while rolling back, and the
// ReplicaSet serving v1 never scaled down before a promotion (maxUnavailable 0).
func (r *rolloutRecorder) check(sizes []int32, replicas int32) stepReport {
	rep := stepReport{largestNew: map[string]int32{}, smallestOld: replicas}
	var (
		bound    int32 // what the new ReplicaSet may have now
		label    = "before the gate"
		phase    string
		oldUID   types.UID
		first    time.Time
		last     = map[types.UID]int32{}
		lastSpec string
	)
	note := func(o observed, format string, a ...any) {
		if first.IsZero() {
			first = o.at
		}
		rep.timeline = append(rep.timeline, fmt.Sprintf("  rv %d +%s %s", o.rv, o.at.Sub(first).Round(time.Millisecond), fmt.Sprintf(format, a...)))
	}
	for _, o := range merge(r.deployment, r.replicaSets) {
		switch x := o.obj.(type) {
		case *appsv1.Deployment:
			rec := readRecord(x)
			if rec == nil {
				continue
			}
			l := label
			switch rec.Phase {
			case "progressing":
				s := rec.Step
				if rec.InFlight != nil && rec.InFlight.Action == "advance" && rec.InFlight.Step > s {
					s = rec.InFlight.Step
				}
				bound, l = sizes[s], fmt.Sprintf("step %d/%d", s+1, len(sizes))
			case "promoting", "promoted":
				bound, l = replicas, "promoting"
			case "rollingBack", "rolledBack":
				l = "rolling back"
			}
			phase = rec.Phase
			spec := fmt.Sprintf("paused=%t minReadySeconds=%d", x.Spec.Paused, x.Spec.MinReadySeconds)
			if l != label || spec != lastSpec {
				label, lastSpec = l, spec
				note(o, "record: %s (%s); Deployment %s", label, rec.Phase, spec)
			}
		case *appsv1.ReplicaSet:
			if o.deleted || x.Spec.Replicas == nil {
				continue
			}
			n := *x.Spec.Replicas
			if was, ok := last[x.UID]; !ok || was != n {
				last[x.UID] = n
				note(o, "ReplicaSet %s (%s): %d", x.Name, x.Spec.Template.Labels["version"], n)
			}
			switch x.Spec.Template.Labels["version"] {
			case "v2.0.0":
				if _, ok := rep.largestNew[label]; !ok {
					rep.order = append(rep.order, label)
				}
				rep.largestNew[label] = max(rep.largestNew[label], n)
				if n > bound {
					rep.violations = append(rep.violations, fmt.Sprintf("the new ReplicaSet %s had %d replicas at %s (record phase %q), more than the %d allowed (rv %d)", x.Name, n, label, phase, bound, o.rv))
				}
			case "v1.0.0":
				if oldUID == "" && n == replicas {
					oldUID = x.UID
				}
				if x.UID != oldUID || phase == "promoting" || phase == "promoted" {
					continue
				}
				if n < rep.smallestOld {
					rep.smallestOld = n
					rep.violations = append(rep.violations, fmt.Sprintf("the v1 ReplicaSet %s was scaled to %d at %s (record phase %q), before any promotion (rv %d)", x.Name, n, label, phase, o.rv))
				}
			}
		}
	}
	return rep
}

// delayReadiness makes the pods of ns that carry sandbox.UnreadyLabel (kwok runs them, never
// Ready) Ready delay after they appear, as a readiness probe with that initial delay would.
func delayReadiness(t *testing.T, client kubernetes.Interface, ns string, delay time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	scheduled := map[types.UID]bool{}
	patch := []byte(`{"metadata":{"labels":{"` + sandbox.UnreadyLabel + `":null}}}`)
	onPod := func(obj runtime.Object) {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Labels[sandbox.UnreadyLabel] != "true" || p.DeletionTimestamp != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if scheduled[p.UID] {
			return
		}
		scheduled[p.UID] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			// A pod already gone (a rollback) has nothing left to become.
			_, _ = client.CoreV1().Pods(ns).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		}()
	}
	lw := listWatch(
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.CoreV1().Pods(ns).List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return client.CoreV1().Pods(ns).Watch(ctx, o)
		})
	rv := listInto(t, ctx, lw, onPod)
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, rv, lw)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range rw.ResultChan() {
			if ev.Type == watch.Added || ev.Type == watch.Modified {
				onPod(ev.Object)
			}
		}
	}()
	t.Cleanup(func() { rw.Stop(); cancel(); wg.Wait() })
}

// summary gathers the numbers of every case, to log once at the end.
type summary struct {
	mu    sync.Mutex
	lines []string
}

func (s *summary) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
}

// failed adds a line naming t when it has failed; deferred, it sees how t ended.
func (s *summary) failed(t *testing.T) {
	if t.Failed() {
		s.add("FAILED: " + t.Name() + " (its messages are above, under its name)")
	}
}

func (s *summary) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}
