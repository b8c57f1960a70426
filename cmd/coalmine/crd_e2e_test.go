package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/coalmine/coalmine/actuator"
	"github.com/coalmine/coalmine/simulator"
)

var canaryPolicies = schema.GroupVersionResource{Group: "coalmine.dev", Version: "v1alpha1", Resource: "canarypolicies"}

// statusLog records every status a CanaryPolicy object goes through, from a watch.
type statusLog struct {
	mu   sync.Mutex
	seen []map[string]any
}

func (l *statusLog) add(status map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, status)
}

// writes is how many statuses have been seen.
func (l *statusLog) writes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// phases is the sequence of distinct phases seen, and the steps seen on the way.
func (l *statusLog) phases() (phases, steps []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.seen {
		if p, _ := s["phase"].(string); p != "" && (len(phases) == 0 || phases[len(phases)-1] != p) {
			phases = append(phases, p)
		}
		if st, _ := s["step"].(string); st != "" && !slices.Contains(steps, st) {
			steps = append(steps, st)
		}
	}
	return phases, steps
}

func (l *statusLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, s := range l.seen {
		fmt.Fprintf(&b, "%v %v %v %v\n", s["phase"], s["step"], s["verdict"], s["message"])
	}
	return b.String()
}

// watchStatus records the status of one CanaryPolicy object until the test ends.
func watchStatus(t *testing.T, dyn dynamic.Interface, ns, name string) *statusLog {
	t.Helper()
	l := &statusLog{}
	w, err := dyn.Resource(canaryPolicies).Namespace(ns).Watch(t.Context(), metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	go func() {
		for ev := range w.ResultChan() {
			if o, ok := ev.Object.(*unstructured.Unstructured); ok {
				if st, ok := o.Object["status"].(map[string]any); ok {
					l.add(st)
				}
			}
		}
	}()
	return l
}

// waitPhase waits until a CanaryPolicy's status is in phase, and returns the status.
func waitPhase(t *testing.T, dyn dynamic.Interface, ns, name, phase string, log fmt.Stringer) map[string]any {
	t.Helper()
	var status map[string]any
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		o, err := dyn.Resource(canaryPolicies).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		status, _ = o.Object["status"].(map[string]any)
		return status["phase"] == phase, nil
	})
	if err != nil {
		t.Fatalf("canarypolicy %s/%s never reached %s (status %v): %v\ndaemon:\n%s", ns, name, phase, status, err, log)
	}
	return status
}

// startObjectDaemon starts `coalmine run` watching CanaryPolicy objects: no --policies.
func (e *env) startObjectDaemon(t *testing.T, name, kubeconfig string) *daemonProc {
	t.Helper()
	return e.runDaemon(t, name, kubeconfig, "--lease-namespace", "coalmine", "--identity", name)
}

// TestCanaryPolicyObjects runs the daemon as deploy/ installs it, with policies as CanaryPolicy
// objects applied with kubectl: one is driven to Promoted with its status following every
// phase, and one that names another namespace is refused and acts nowhere.
func TestCanaryPolicyObjects(t *testing.T) {
	begin := time.Now()
	e := startEnv(t, simulator.Scenario{Seed: 13, Tick: model.Duration(100 * time.Millisecond), Apps: []simulator.App{
		app("crd-good", 0.01, slow), app("crd-b", 0.01, slow),
	}})
	kubectl := func(args ...string) string { t.Helper(); return e.kubectl(t, args...) }
	// What deploy/ installs for the daemon: the CRD, its namespace, ServiceAccount and RBAC.
	kubectl("apply", "-f", "../../deploy/crd/", "-f", "../../deploy/namespace.yaml", "-f", "../../deploy/serviceaccount.yaml", "-f", "../../deploy/rbac.yaml")
	kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/canarypolicies.coalmine.dev")
	kubectl("create", "namespace", "crd-a")
	token, err := e.cluster.TokenFor(context.Background(), "coalmine", "coalmine")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := e.cluster.KubeconfigFor(token)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(e.cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}

	// crd-good's canary Deployment starts at 0 replicas: the policy waits for it (Pending).
	applySeed(t, e.client, "crd-good", func(obj any) {
		if d, ok := obj.(*appsv1.Deployment); ok && d.Name == "my-app-v2" {
			d.Spec.Replicas = new(int32)
		}
	})
	applySeed(t, e.client, "crd-b", nil)
	waitReady(t, e.client, "crd-good", "my-app-v1", 10)
	waitReady(t, e.client, "crd-b", "my-app-v2", 1)
	waitScraped(t, e, "crd-b", "v1.0.0", "v2.0.0")
	daemon := e.startObjectDaemon(t, "replica-a", kubeconfig)

	// No 100% step: the promotion itself scales v2 up, so it is seen in progress (Promoting).
	good := seedPolicy{ns: "crd-good", strategy: "scale", strategyBlock: `steps: ["1", "50%"]
    stepDuration: 4s`, interval: 2 * time.Second, maxDuration: "3m", readyTimeout: "12s"}.write(t)
	// The same file names namespace crd-b: applied in crd-a, it must act nowhere.
	foreign := seedPolicy{ns: "crd-b", strategy: "scale", strategyBlock: `steps: ["1", "50%", "100%"]
    stepDuration: 4s`, interval: 2 * time.Second, maxDuration: "3m", readyTimeout: "12s"}.write(t)
	bBefore := snapshotDeployments(t, e, "crd-b")

	t.Run("a CanaryPolicy is driven to Promoted, its status following every phase", func(t *testing.T) {
		log := watchStatus(t, dyn, "crd-good", "my-app")
		out := kubectl("apply", "-n", "crd-good", "-f", good)
		if !strings.Contains(out, "canarypolicy.coalmine.dev/my-app created") {
			t.Fatalf("kubectl apply: %s", out)
		}
		waitPhase(t, dyn, "crd-good", "my-app", "Pending", daemon.stderr)
		pending := kubectl("get", "canarypolicies", "-A")
		t.Logf("kubectl get canarypolicies -A, before the canary:\n%s", pending)
		if !strings.Contains(pending, "PHASE") || !regexpLine(pending, `^crd-good\s+my-app\s+Pending\s+v2\.0\.0\s+`) {
			t.Errorf("kubectl get canarypolicies -A does not show crd-good/my-app Pending:\n%s", pending)
		}
		kubectl("scale", "-n", "crd-good", "deployment/my-app-v2", "--replicas=1")
		final := waitPhase(t, dyn, "crd-good", "my-app", "Promoted", multi{daemon.stderr, log})
		done := kubectl("get", "canarypolicies", "-A")
		wide := kubectl("get", "cpol", "-n", "crd-good", "-o", "wide")
		t.Logf("kubectl get canarypolicies -A, promoted:\n%s\nkubectl get cpol -o wide:\n%s", done, wide)
		if !regexpLine(done, `^crd-good\s+my-app\s+Promoted\s+2/2\s+pass\s+v2\.0\.0\s+`) {
			t.Errorf("kubectl get canarypolicies -A does not show crd-good/my-app Promoted 2/2 pass:\n%s", done)
		}
		if v1, v2 := replicasOf(t, e.client, "crd-good", "my-app-v1"), replicasOf(t, e.client, "crd-good", "my-app-v2"); v1 != 0 || v2 != 10 {
			t.Errorf("crd-good: v1=%d v2=%d, want 0 and 10", v1, v2)
		}
		// The status went through every phase, in order, and every step.
		time.Sleep(500 * time.Millisecond) // the watch's last event
		phases, steps := log.phases()
		ticks := strings.Count(daemon.stderr.String(), `"canary tick"`)
		t.Logf("phases seen: %v; steps seen: %v; %d status writes over %d ticks", phases, steps, len(log.seen), ticks)
		if want := []string{"Pending", "Analyzing", "Promoting", "Promoted"}; !slices.Equal(phases, want) {
			t.Errorf("phases seen %v, want %v; statuses:\n%s", phases, want, log)
		}
		if want := []string{"1/2", "2/2"}; !slices.Equal(steps, want) {
			t.Errorf("steps seen %v, want %v", steps, want)
		}
		if final["observedGeneration"] != int64(1) || final["canaryVersion"] != "v2.0.0" || final["baselineVersion"] != "v1.0.0" || final["lastTransitionTime"] == nil {
			t.Errorf("final status %v", final)
		}
		// Written on transitions only: a canary of about 10 ticks writes a handful of statuses,
		// not one per tick.
		if len(log.seen) >= ticks || len(log.seen) > 12 {
			t.Errorf("%d status writes for %d ticks: want only the transitions", len(log.seen), ticks)
		}
	})

	t.Run("an invalid edit is refused with the loader's words; the fix is taken", func(t *testing.T) {
		// The API server accepts it (a valid duration); the loader does not (2 steps of 4s
		// cannot finish in 5s).
		kubectl("patch", "-n", "crd-good", "canarypolicy/my-app", "--type=merge", "-p", `{"spec":{"analysis":{"maxDuration":"5s"}}}`)
		st := waitPhase(t, dyn, "crd-good", "my-app", "Invalid", daemon.stderr)
		want := "spec.strategy.stepDuration 2 steps x 4s = 8s is longer than spec.analysis.maxDuration 5s: the canary could never be promoted\n(the last valid generation stays in force)"
		if st["message"] != want || st["observedGeneration"] != int64(2) {
			t.Errorf("status %v, want message %q at generation 2", st, want)
		}
		var ev []string
		err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			ev = events(t, e.client, "crd-good")
			return count(ev, "CanaryPolicyInvalid") == 1, nil
		})
		if err != nil {
			t.Errorf("events in crd-good %v: want one CanaryPolicyInvalid", ev)
		}
		kubectl("patch", "-n", "crd-good", "canarypolicy/my-app", "--type=merge", "-p", `{"spec":{"analysis":{"maxDuration":"3m"}}}`)
		st = waitPhase(t, dyn, "crd-good", "my-app", "Promoted", daemon.stderr)
		if st["observedGeneration"] != int64(3) {
			t.Errorf("status %v, want generation 3 observed", st)
		}
	})

	t.Run("a CanaryPolicy naming another namespace is refused and touches nothing", func(t *testing.T) {
		out := kubectl("apply", "-n", "crd-a", "-f", foreign)
		if !strings.Contains(out, "canarypolicy.coalmine.dev/my-app created") {
			t.Fatalf("kubectl apply: %s", out)
		}
		st := waitPhase(t, dyn, "crd-a", "my-app", "Invalid", daemon.stderr)
		msg, _ := st["message"].(string)
		if want := `spec.target.namespace must be the policy's own namespace "crd-a" (metadata.namespace) or unset: a policy acts only in its own namespace, got "crd-b"`; msg != want {
			t.Errorf("message %q, want %q", msg, want)
		}
		listing := kubectl("get", "canarypolicies", "-A")
		t.Logf("kubectl get canarypolicies -A:\n%s", listing)
		if !regexpLine(listing, `^crd-a\s+my-app\s+Invalid\s+`) {
			t.Errorf("kubectl get canarypolicies -A does not show crd-a/my-app Invalid:\n%s", listing)
		}
		var ev []string
		err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			ev = events(t, e.client, "crd-a")
			return count(ev, "CanaryPolicyInvalid") == 1, nil
		})
		if err != nil {
			t.Errorf("events in crd-a %v: want one CanaryPolicyInvalid", ev)
		}
		// Give the daemon every chance to act, then check crd-b as it was.
		time.Sleep(5 * time.Second)
		if after := snapshotDeployments(t, e, "crd-b"); after != bBefore {
			t.Errorf("crd-b's Deployments changed:\nbefore %s\nafter  %s", bBefore, after)
		}
		if ev := events(t, e.client, "crd-b"); count(ev, "CanaryStarted") != 0 {
			t.Errorf("a canary started in crd-b: %v", ev)
		}
	})
	t.Logf("whole test %s", time.Since(begin).Round(time.Second))
}

// regexpLine reports whether a line of out matches re.
func regexpLine(out, re string) bool {
	return regexp.MustCompile("(?m)" + re).MatchString(out)
}

// snapshotDeployments is what coalmine could change about a namespace's Deployments: their
// generation, replicas and progress record.
func snapshotDeployments(t *testing.T, e *env, ns string) string {
	t.Helper()
	list, err := e.client.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, d := range list.Items {
		fmt.Fprintf(&b, "%s gen=%d replicas=%d record=%q; ", d.Name, d.Generation, *d.Spec.Replicas, d.Annotations[actuator.AnnotationProgress])
	}
	return b.String()
}
