package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/coalmine/coalmine/notify"
	"github.com/coalmine/coalmine/simulator"
)

// receiver is a webhook receiver that fails the first attempts of every delivery, as a
// receiver being deployed or overloaded does, and checks every signature.
type receiver struct {
	key   []byte
	fails int

	mu        sync.Mutex
	attempts  map[string]int // by delivery ID
	delivered map[string]int // 2xx answers by delivery ID
	order     []delivery     // the deliveries answered 2xx, in order
	bad       []string       // signatures that did not verify
}

type delivery struct {
	id, ns, canary, kind string
	attempts             int
}

func newReceiver(t *testing.T, key string, fails int) (*receiver, string) {
	r := &receiver{key: []byte(key), fails: fails, attempts: map[string]int{}, delivered: map[string]int{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv.URL
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := notify.Verify(r.key, req.Header, body, time.Now(), 0); err != nil {
		r.bad = append(r.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	id := req.Header.Get(notify.HeaderDelivery)
	r.attempts[id]++
	if r.attempts[id] <= r.fails {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var p notify.Payload
	_ = json.Unmarshal(body, &p)
	r.delivered[id]++
	r.order = append(r.order, delivery{id: id, ns: p.Namespace, canary: p.CanaryVersion, kind: string(p.Event), attempts: r.attempts[id]})
	w.WriteHeader(http.StatusNoContent)
}

// kinds are the notices delivered for one canary version in a namespace, in order.
func (r *receiver) kinds(ns, canary string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, d := range r.order {
		if d.ns == ns && d.canary == canary {
			out = append(out, d.kind)
		}
	}
	return out
}

// check says what is wrong with the deliveries: a signature that did not verify, a notice
// delivered twice, or one delivered without the failures before it.
func (r *receiver) check() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var problems []string
	problems = append(problems, r.bad...)
	for id, n := range r.delivered {
		if n != 1 {
			problems = append(problems, fmt.Sprintf("%s delivered %d times", id, n))
		}
		if r.attempts[id] <= r.fails {
			problems = append(problems, fmt.Sprintf("%s delivered at attempt %d", id, r.attempts[id]))
		}
	}
	return problems
}

func (r *receiver) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, d := range r.order {
		fmt.Fprintf(&b, "%s %s %-15s attempt %d  %s\n", d.ns, d.canary, d.kind, d.attempts, d.id)
	}
	return b.String()
}

// releasePolicy is a CanaryPolicy that pins no versions: every new pod template of the canary
// is a canary, judged against what the baseline runs.
func releasePolicy(ns, target, strategy, hook string) string {
	return fmt.Sprintf(`apiVersion: coalmine.dev/v1alpha1
kind: CanaryPolicy
metadata: {name: my-app, namespace: %s}
spec:
  target:
    app: my-app
    %s
  # A new pod's first window would hold a few seconds of its series, extrapolated to ten: the
  # warm-up leaves the first window out.
  analysis: {judge: threshold, interval: 2s, window: 10s, warmup: 10s, minRequests: 50, maxDuration: 3m}
%s  health: {readyTimeout: 30s}
  strategy:
    type: %s
    steps: ["1", "50%%"]
    stepDuration: 12s
  notifications:
    - name: hooks
      type: webhook
      url: %s/hook
      secret: {secretKeyRef: {name: hooks, key: hmac}}
`, ns, target, seedMetrics, strategy, hook)
}

// gitDeployment is a Deployment as Git holds it: no replicas when coalmine owns them.
func gitDeployment(name, track, version string, replicas int) string {
	selector, labels := "{app: my-app}", fmt.Sprintf("{app: my-app, version: %s}", version)
	if track != "" {
		selector = fmt.Sprintf("{app: my-app, track: %s}", track)
		labels = fmt.Sprintf("{app: my-app, track: %s, version: %s}", track, version)
	}
	reps := ""
	if replicas >= 0 {
		reps = fmt.Sprintf("replicas: %d\n  ", replicas)
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, labels: {app: my-app}}
spec:
  %sselector: {matchLabels: %s}
  template:
    metadata:
      labels: %s
      annotations: {prometheus.io/scrape: "true", prometheus.io/port: "9101"}
    spec:
      containers:
        - name: my-app
          image: containersol/k8s-deployment-strategies
          ports: [{name: http, containerPort: 8080}]
          env: [{name: VERSION, value: %s}]
`, name, reps, selector, labels, version)
}

const myAppService = `apiVersion: v1
kind: Service
metadata: {name: my-app, labels: {app: my-app}}
spec:
  ports: [{name: http, port: 80, targetPort: http}]
  selector: {app: my-app}
`

// TestReleaseAfterRelease drives the seed app through release after release with the daemon,
// as a team shipping every day would, without editing a policy or an annotation by hand: new
// versions arrive as Git would apply them (server-side apply by another field manager), and a
// real HTTP receiver that fails its first attempts hears of every step once. Then people step
// in: an abort, an approval, the status as it goes.
func TestReleaseAfterRelease(t *testing.T) {
	begin := time.Now()
	lat := simulator.Latency{Median: 0.1, P99: 0.4}
	versions := func(bad ...string) []simulator.Version {
		var vs []simulator.Version
		for _, v := range []string{"v1.0.0", "v2.0.0", "v3.0.0", "v4.0.0", "v5.0.0", "v6.0.0"} {
			rate := 0.01
			if slices.Contains(bad, v) {
				rate = 0.2
			}
			vs = append(vs, simulator.Version{Version: v, ErrorRate: rate, Latency: lat})
		}
		return vs
	}
	e := startEnv(t, simulator.Scenario{Seed: 15, Tick: model.Duration(100 * time.Millisecond), Apps: []simulator.App{
		{Namespace: "rel-scale", Name: "my-app", RPS: 5500, Versions: versions("v3.0.0")},
		{Namespace: "rel-rollout", Name: "my-app", RPS: 5500, Versions: versions("v3.0.0")},
	}})
	kubectl := func(args ...string) string { t.Helper(); return e.kubectl(t, args...) }
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Git applies, as Argo CD does: server-side, its own field manager, forcing conflicts.
	gitApply := func(ns, name, content string) {
		t.Helper()
		kubectl("apply", "-n", ns, "--server-side", "--field-manager=argocd-controller", "--force-conflicts", "-f", file(ns+"-"+name, content))
	}
	kubectl("apply", "-f", "../../deploy/crd/")
	kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/canarypolicies.coalmine.dev")
	kubectl("create", "namespace", "coalmine")
	hooks, hookURL := newReceiver(t, "s3cret", 2)
	dyn, err := dynamic.NewForConfig(e.cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"rel-scale", "rel-rollout"} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hooks"}, StringData: map[string]string{"hmac": "s3cret"}}
		if _, err := e.client.CoreV1().Secrets(ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		gitApply(ns, "service", myAppService)
	}
	// Two Deployments told apart by a track label: the baseline takes each promoted template.
	gitApply("rel-scale", "primary", gitDeployment("my-app-primary", "primary", "v1.0.0", 10))
	// Created once at 0 replicas; Git leaves replicas out from then on: coalmine owns them.
	kubectl("create", "-n", "rel-scale", "-f", file("rel-scale-canary-0", gitDeployment("my-app", "canary", "v1.0.0", 0)))
	// One Deployment, rolled out step by step, parked (paused) between releases.
	gitApply("rel-rollout", "app", gitDeployment("my-app", "", "v1.0.0", 10))
	waitReady(t, e.client, "rel-scale", "my-app-primary", 10)
	waitReady(t, e.client, "rel-rollout", "my-app", 10)

	startDaemon := func(name string) *daemonProc {
		return e.runDaemon(t, name, e.cluster.Kubeconfig(), "--lease-namespace", "coalmine", "--identity", name, "--log-level", "debug")
	}
	daemon := startDaemon("releases-1")
	logs := multi{daemon.stderr}
	status := map[string]*statusLog{}
	for ns, target := range map[string]string{
		"rel-scale":   "baseline: {deployment: my-app-primary}\n    canary: {deployment: my-app}",
		"rel-rollout": "baseline: {deployment: my-app}\n    canary: {deployment: my-app}",
	} {
		strategy := "scale"
		if ns == "rel-rollout" {
			strategy = "rollout"
		}
		status[ns] = watchStatus(t, dyn, ns, "my-app")
		kubectl("apply", "-f", file(ns+"-policy.yaml", releasePolicy(ns, target, strategy, hookURL)))
		waitPhase(t, dyn, ns, "my-app", "Pending", logs)
	}
	// coalmine status --watch, all along: every phase as it happens.
	watch := exec.Command(coalmineBinary(t), "status", "-A", "--watch", "--watch-interval", "500ms", "--kubeconfig", e.cluster.Kubeconfig())
	watchOut := &syncBuffer{}
	watch.Stdout, watch.Stderr = watchOut, watchOut
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = watch.Process.Kill(); _ = watch.Wait() })

	// The rollout's Deployment is parked before its first release: Git's next template starts
	// no pod until coalmine takes the first step.
	if err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := e.client.AppsV1().Deployments("rel-rollout").Get(ctx, "my-app", metav1.GetOptions{})
		return err == nil && d.Spec.Paused, nil
	}); err != nil {
		t.Fatalf("rel-rollout/my-app not parked:\n%s", daemon.stderr)
	}

	// settled waits until no pod of ns is terminating. The sandbox's kwok hands a new pod the
	// address of one just deleted, and the simulator, which plays one process per address,
	// would go on playing the old pod's version under the new pod's labels (a cluster gives a
	// new pod a new address).
	settled := func(t *testing.T, ns string) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			pods, err := e.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for _, p := range pods.Items {
				if p.DeletionTimestamp != nil {
					return false, nil
				}
			}
			return true, nil
		}); err != nil {
			t.Fatalf("%s: pods still terminating: %v", ns, err)
		}
	}
	release := func(t *testing.T, ns, version, want string) map[string]any {
		t.Helper()
		settled(t, ns)
		before := status[ns].writes()
		if ns == "rel-scale" {
			gitApply(ns, "canary", gitDeployment("my-app", "canary", version, -1))
		} else {
			gitApply(ns, "app", gitDeployment("my-app", "", version, 10))
		}
		st := waitPhaseAfter(t, dyn, ns, version, want, logs)
		t.Logf("%s %s: %s after %d status writes", ns, version, want, status[ns].writes()-before)
		return st
	}
	primaryVersion := func() string {
		d, err := e.client.AppsV1().Deployments("rel-scale").Get(context.Background(), "my-app-primary", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d.Spec.Template.Labels["version"]
	}

	t.Run("v2 promoted, v3 rolled back", func(t *testing.T) {
		for _, ns := range []string{"rel-scale", "rel-rollout"} {
			t.Run(ns, func(t *testing.T) {
				t.Parallel()
				release(t, ns, "v2.0.0", "Promoted")
				release(t, ns, "v3.0.0", "RolledBack")
			})
		}
	})
	// A crash right after a rollback: the next daemon carries on, sends the notices left, and
	// nothing twice.
	_ = daemon.cmd.Process.Kill()
	daemon = startDaemon("releases-2")
	logs = append(logs, daemon.stderr)
	t.Run("v4 promoted", func(t *testing.T) {
		for _, ns := range []string{"rel-scale", "rel-rollout"} {
			t.Run(ns, func(t *testing.T) {
				t.Parallel()
				release(t, ns, "v4.0.0", "Promoted")
			})
		}
	})
	t.Run("three releases in a row, each heard of once", func(t *testing.T) {
		if v := primaryVersion(); v != "v4.0.0" {
			t.Errorf("rel-scale/my-app-primary runs %s, want v4.0.0", v)
		}
		if n := replicasOf(t, e.client, "rel-scale", "my-app"); n != 0 {
			t.Errorf("rel-scale/my-app has %d replicas between releases, want 0", n)
		}
		d, _ := e.client.AppsV1().Deployments("rel-rollout").Get(context.Background(), "my-app", metav1.GetOptions{})
		if d.Spec.Template.Labels["version"] != "v4.0.0" || !d.Spec.Paused || d.Status.UpdatedReplicas != 10 {
			t.Errorf("rel-rollout/my-app: version %s paused=%t updated %d, want v4.0.0 rolled out and parked", d.Spec.Template.Labels["version"], d.Spec.Paused, d.Status.UpdatedReplicas)
		}
		// Every notice, delivered once, each after the receiver's two failures.
		want := map[string][]string{"v2.0.0": {"started", "step", "promoted"}, "v3.0.0": {"started", "rolledBack"}, "v4.0.0": {"started", "step", "promoted"}}
		if err := wait.PollUntilContextTimeout(context.Background(), time.Second, 2*time.Minute, true, func(context.Context) (bool, error) {
			for _, ns := range []string{"rel-scale", "rel-rollout"} {
				for v, kinds := range want {
					if got := hooks.kinds(ns, v); !slices.Equal(got, kinds) && !(v == "v3.0.0" && slices.Equal(got, []string{"started", "step", "rolledBack"})) {
						return false, nil
					}
				}
			}
			return true, nil
		}); err != nil {
			var lines []string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "notice") || strings.Contains(l, "canary ended") {
					lines = append(lines, l)
				}
			}
			t.Errorf("notices delivered:\n%s\nwant, per namespace, %v\ndaemon lines:\n%s", hooks, want, strings.Join(lines, "\n"))
		}
		if p := hooks.check(); len(p) > 0 {
			t.Errorf("deliveries: %v\n%s", p, hooks)
		}
		t.Logf("deliveries:\n%s", hooks)
		for _, ns := range []string{"rel-scale", "rel-rollout"} {
			ev := events(t, e.client, ns)
			t.Logf("%s events: %v", ns, ev)
			if count(ev, "CanaryStarted") != 3 || count(ev, "CanaryPromoted") != 2 || count(ev, "CanaryRolledBack") != 1 {
				t.Errorf("%s: events %v, want 3 CanaryStarted, 2 CanaryPromoted, 1 CanaryRolledBack", ns, ev)
			}
		}
	})

	t.Run("coalmine abort rolls back within one tick", func(t *testing.T) {
		settled(t, "rel-scale")
		gitApply("rel-scale", "canary", gitDeployment("my-app", "canary", "v5.0.0", -1))
		waitPhaseAfter(t, dyn, "rel-scale", "v5.0.0", "Analyzing", logs)
		asked := time.Now()
		r := runCLI(t, "abort", "my-app", "-n", "rel-scale", "--reason", "dashboards look odd", "--kubeconfig", e.cluster.Kubeconfig(), "--wait", "10s")
		if r.code != 0 {
			t.Fatalf("coalmine abort: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		taken := time.Since(asked)
		waitPhaseAfter(t, dyn, "rel-scale", "v5.0.0", "RolledBack", logs)
		t.Logf("abort: taken after %s (interval 2s), rolled back after %s\n%s", taken.Round(time.Millisecond), time.Since(asked).Round(time.Millisecond), r.stdout)
		if taken > 2*time.Second+time.Second {
			t.Errorf("the abort was taken after %s, more than one tick", taken)
		}
		if v := primaryVersion(); v != "v4.0.0" {
			t.Errorf("primary runs %s after the abort, want v4.0.0", v)
		}
		if msg := eventMessage(t, e, "rel-scale", "CanaryCommand"); !strings.Contains(msg, "abort requested by ") || !strings.Contains(msg, "dashboards look odd") {
			t.Errorf("CanaryCommand event %q does not name who asked and why", msg)
		}
	})

	t.Run("an approval step waits until coalmine approve", func(t *testing.T) {
		kubectl("patch", "-n", "rel-scale", "canarypolicy/my-app", "--type=merge", "-p", `{"spec":{"strategy":{"approveBefore":[3]}}}`)
		time.Sleep(time.Second) // the new generation in force
		settled(t, "rel-scale")
		gitApply("rel-scale", "canary", gitDeployment("my-app", "canary", "v6.0.0", -1))
		waitPhaseAfter(t, dyn, "rel-scale", "v6.0.0", "WaitingForApproval", logs)
		time.Sleep(6 * time.Second) // three ticks: nothing moves
		if st := currentStatus(t, dyn, "rel-scale"); st["phase"] != "WaitingForApproval" || primaryVersion() != "v4.0.0" {
			t.Fatalf("status %v, primary %s: want it still waiting, v4.0.0 serving", st, primaryVersion())
		}
		out := runCLI(t, "status", "-n", "rel-scale", "--kubeconfig", e.cluster.Kubeconfig())
		t.Logf("coalmine status, waiting:\n%s", out.stdout)
		if !regexpLine(out.stdout, `^rel-scale\s+my-app\s+v4\.0\.0\s+v6\.0\.0\s+WaitingForApproval\s+2/2\s+pass\s+`) {
			t.Errorf("coalmine status does not show the canary waiting:\n%s%s", out.stdout, out.stderr)
		}
		r := runCLI(t, "approve", "my-app", "-n", "rel-scale", "--kubeconfig", e.cluster.Kubeconfig())
		if r.code != 0 {
			t.Fatalf("coalmine approve: exit %d\n%s", r.code, r.stderr)
		}
		waitPhaseAfter(t, dyn, "rel-scale", "v6.0.0", "Promoted", logs)
		if v := primaryVersion(); v != "v6.0.0" {
			t.Errorf("primary runs %s, want v6.0.0", v)
		}
		if got := hooks.kinds("rel-scale", "v6.0.0"); !slices.Contains(got, "approvalNeeded") {
			// Delivered a few seconds late at most: the receiver fails twice first.
			time.Sleep(10 * time.Second)
			if got = hooks.kinds("rel-scale", "v6.0.0"); !slices.Contains(got, "approvalNeeded") {
				t.Errorf("notices for v6: %v, want approvalNeeded among them", got)
			}
		}
	})

	time.Sleep(time.Second)
	phases := watchedPhases(watchOut.String(), "rel-scale")
	t.Logf("coalmine status --watch, rel-scale:\n%s", strings.Join(phases, "\n"))
	for _, want := range []string{"Pending", "Analyzing", "Promoted", "RolledBack", "WaitingForApproval"} {
		if !slices.ContainsFunc(phases, func(l string) bool { return strings.Contains(l, " "+want+" ") }) {
			t.Errorf("coalmine status --watch never showed %s", want)
		}
	}
	t.Logf("whole test %s", time.Since(begin).Round(time.Second))
}

// waitPhaseAfter waits for the CanaryPolicy's status to show the canary version in phase.
func waitPhaseAfter(t *testing.T, dyn dynamic.Interface, ns, version, phase string, log fmt.Stringer) map[string]any {
	t.Helper()
	var st map[string]any
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 3*time.Minute, true, func(context.Context) (bool, error) {
		st = currentStatus(t, dyn, ns)
		return st["phase"] == phase && st["canaryVersion"] == version, nil
	})
	if err != nil {
		t.Fatalf("%s: status %v, want %s %s\n%s", ns, st, version, phase, log)
	}
	return st
}

func currentStatus(t *testing.T, dyn dynamic.Interface, ns string) map[string]any {
	o, err := dyn.Resource(policyGVR).Namespace(ns).Get(context.Background(), "my-app", metav1.GetOptions{})
	if err != nil {
		return nil
	}
	st, _ := o.Object["status"].(map[string]any)
	return st
}

// eventMessage is the message of the last Event with reason in ns.
func eventMessage(t *testing.T, e *env, ns, reason string) string {
	t.Helper()
	list, err := e.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	msg := ""
	for _, ev := range list.Items {
		if ev.Reason == reason {
			msg = ev.Message
		}
	}
	return msg
}

// watchedPhases are the lines coalmine status --watch printed for a namespace.
func watchedPhases(out, ns string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, ns+" ") {
			lines = append(lines, strings.Join(strings.Fields(l), " ")+" ")
		}
	}
	return lines
}
