package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"

	"github.com/coalmine/coalmine/actuator"
	"github.com/coalmine/coalmine/sandbox"
	"github.com/coalmine/coalmine/simulator"
)

// env is one real control plane, a real Prometheus 3 discovering its pods, and the simulator
// playing the app inside them, shared by the cluster tests of this package.
type env struct {
	cluster *sandbox.Cluster
	client  kubernetes.Interface
	sim     *simulator.Simulator
	promURL string
}

// clusterPodCIDR keeps this package's pod IPs apart from other packages' clusters.
const clusterPodCIDR = "127.0.2.0/24"

func startEnv(t *testing.T, sc simulator.Scenario) *env {
	t.Helper()
	return startEnvWith(t, sc, sandbox.ClusterOptions{})
}

// startEnvWith is startEnv on a cluster started with opts, with Prometheus and the pods' CIDR.
func startEnvWith(t *testing.T, sc simulator.Scenario, opts sandbox.ClusterOptions) *env {
	t.Helper()
	coalmineBinary(t)
	opts.WithPrometheus, opts.PodCIDR = true, clusterPodCIDR
	c := sandbox.StartClusterT(t, opts)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, app := range sc.Apps {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: app.Namespace}}
		if _, err := c.Client().CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sim, err := simulator.Start(ctx, sc, simulator.Options{Kube: c.Client(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Stop() })
	return &env{cluster: c, client: c.Client(), sim: sim, promURL: c.Prometheus().URL()}
}

// app is the seed's my-app in a namespace, with v2 behaving as given. The threshold judge
// looks every tick with no correction for repeated looks (the sequential judge is the cure), so
// the traffic is high enough that a healthy v2 at one pod in eleven (about 5,000 requests and
// 50 errors per 10 s window) never shows twice the baseline's error rate by chance.
func app(ns string, v2ErrorRate float64, v2Latency simulator.Latency) simulator.App {
	lat := simulator.Latency{Median: 0.1, P99: 0.4}
	return simulator.App{Namespace: ns, Name: "my-app", RPS: 5500, Versions: []simulator.Version{
		{Version: "v1.0.0", ErrorRate: 0.01, Latency: lat},
		{Version: "v2.0.0", ErrorRate: v2ErrorRate, Latency: v2Latency},
	}}
}

// applySeed creates the seed's Service and Deployments (testdata/manifests/my-app.yaml) in ns.
func applySeed(t testing.TB, client kubernetes.Interface, ns string, edit func(obj any)) {
	t.Helper()
	data, err := os.ReadFile("../../testdata/manifests/my-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, doc := range strings.Split(string(data), "\n---\n") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("decode manifest: %v", err)
		}
		if edit != nil {
			edit(obj)
		}
		switch o := obj.(type) {
		case *corev1.Service:
			_, err = client.CoreV1().Services(ns).Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.Deployment:
			_, err = client.AppsV1().Deployments(ns).Create(ctx, o, metav1.CreateOptions{})
		default:
			err = fmt.Errorf("unexpected %T", obj)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// waitReady waits until a Deployment has n Ready replicas and no others.
func waitReady(t *testing.T, client kubernetes.Interface, ns, name string, n int32) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ReadyReplicas == n && d.Status.Replicas == n && d.Status.UpdatedReplicas == n, nil
	})
	if err != nil {
		d, _ := client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		t.Fatalf("deployment %s/%s not %d/%d Ready: %v (status %+v)", ns, name, n, n, err, d.Status)
	}
}

// waitScraped waits until Prometheus has request series for every version named.
func waitScraped(t *testing.T, e *env, ns string, versions ...string) {
	t.Helper()
	q := fmt.Sprintf(`count by (version) (http_requests_total{namespace=%q})`, ns)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.cluster.Prometheus().WaitForSamples(ctx, q, len(versions)); err != nil {
		t.Fatalf("prometheus has no series for %s %v: %v", ns, versions, err)
	}
	// increase() cannot see the first increments of a series born inside its window: let a
	// whole window (the policies' 10s) of scrapes build up, as a release that has been running
	// would have.
	time.Sleep(11 * time.Second)
}

// policyFile writes a gate policy for the seed app in ns, with short steps.
func policyFile(t *testing.T, ns, strategy, target, extra string) string {
	t.Helper()
	if extra == "" {
		extra = `steps: ["1", "50%", "100%"]
    stepDuration: 6s`
	}
	return seedPolicy{ns: ns, strategy: strategy, target: target, strategyBlock: extra,
		interval: 2 * time.Second, maxDuration: "3m", readyTimeout: "12s"}.write(t)
}

// seedPolicy is a gate policy for the seed app, judged by the threshold judge over 10s.
type seedPolicy struct {
	ns, strategy string
	// target is the policy's baseline and canary lines; empty is the seed's two Deployments.
	target string
	// strategyBlock is the strategy's lines after its type.
	strategyBlock string
	interval      time.Duration
	maxDuration   string
	readyTimeout  string
}

// seedMetrics are the threshold judge's metrics of the seed app, a policy's spec.metrics.
const seedMetrics = `  metrics:
    - name: error-rate
      kind: errors
      requests: sum by ({{.VersionLabel}}) (increase(http_requests_total{ {{.Selector}} }[{{.Window}}]))
      errors: sum by ({{.VersionLabel}}) (increase(http_requests_total{ {{.Selector}}, code=~"5.." }[{{.Window}}]))
      thresholds: {maxRatio: 2}
    - name: latency-p99
      kind: latency
      buckets: sum by ({{.VersionLabel}}, le) (increase(request_duration_seconds_bucket{ {{.Selector}} }[{{.Window}}]))
      thresholds: {maxRatio: 1.5}
`

// write writes the policy to a file and returns its path.
func (sp seedPolicy) write(t *testing.T) string {
	t.Helper()
	target := sp.target
	if target == "" {
		target = `baseline: {deployment: my-app-v1, version: v1.0.0}
    canary: {deployment: my-app-v2, version: v2.0.0}`
	}
	policy := fmt.Sprintf(`apiVersion: coalmine.dev/v1alpha1
kind: CanaryPolicy
metadata: {name: my-app}
spec:
  target:
    namespace: %s
    app: my-app
    %s
  analysis: {judge: threshold, interval: %s, window: 10s, minRequests: 50, maxDuration: %s}
%s  health: {readyTimeout: %s}
  strategy:
    type: %s
    %s
`, sp.ns, target, model.Duration(sp.interval), sp.maxDuration, seedMetrics, sp.readyTimeout, sp.strategy, sp.strategyBlock)
	path := filepath.Join(t.TempDir(), sp.ns+".yaml")
	if err := os.WriteFile(path, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (e *env) gate(t testing.TB, policy string, args ...string) cliResult {
	t.Helper()
	all := append([]string{"gate", "-f", policy, "--kubeconfig", e.cluster.Kubeconfig(), "--prometheus-url", e.promURL, "--log-format", "json"}, args...)
	return runCLI(t, all...)
}

func replicasOf(t *testing.T, client kubernetes.Interface, ns, name string) int32 {
	t.Helper()
	d, err := client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas
}

// events lists the reasons of the Events coalmine recorded in ns.
func events(t *testing.T, client kubernetes.Interface, ns string) []string {
	t.Helper()
	list, err := client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Source.Component == "coalmine" {
			out = append(out, e.Reason)
		}
	}
	return out
}

func count(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

func mustCode(t *testing.T, r cliResult, want int) {
	t.Helper()
	if r.code != want {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, want, r.stdout, lastLines(r.stderr, 15))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var slow = simulator.Latency{Median: 0.1, P99: 0.4}

func TestGateScaleAndShift(t *testing.T) {
	e := startEnv(t, simulator.Scenario{Seed: 3, Tick: model.Duration(100 * time.Millisecond), Apps: []simulator.App{
		app("scale-good", 0.01, slow), app("scale-bad", 0.05, slow),
		app("shift-good", 0.01, slow), app("shift-bad", 0.05, slow),
	}})
	tests := []struct {
		ns, strategy string
		wantCode     int
		wantV1       int32
		wantV2       int32
		wantEvent    string
	}{
		{"scale-good", "scale", exitPass, 0, 10, "CanaryPromoted"},
		{"scale-bad", "scale", exitFail, 10, 0, "CanaryRolledBack"},
		{"shift-good", "shift", exitPass, 0, 10, "CanaryPromoted"},
		{"shift-bad", "shift", exitFail, 10, 0, "CanaryRolledBack"},
	}
	for _, tt := range tests {
		applySeed(t, e.client, tt.ns, nil)
	}
	for _, tt := range tests {
		t.Run(tt.ns, func(t *testing.T) {
			t.Parallel()
			waitReady(t, e.client, tt.ns, "my-app-v2", 1)
			waitScraped(t, e, tt.ns, "v1.0.0", "v2.0.0")
			junit := filepath.Join(t.TempDir(), "gate.xml")
			summary := filepath.Join(t.TempDir(), "summary.md")
			r := e.gate(t, policyFile(t, tt.ns, tt.strategy, "", ""), "--junit", junit, "--summary", summary)
			mustCode(t, r, tt.wantCode)
			v1, v2 := replicasOf(t, e.client, tt.ns, "my-app-v1"), replicasOf(t, e.client, tt.ns, "my-app-v2")
			if v1 != tt.wantV1 || v2 != tt.wantV2 {
				t.Errorf("v1=%d v2=%d, want %d and %d", v1, v2, tt.wantV1, tt.wantV2)
			}
			if tt.wantCode == exitPass {
				waitReady(t, e.client, tt.ns, "my-app-v2", 10)
			}
			if evs := events(t, e.client, tt.ns); count(evs, tt.wantEvent) != 1 || count(evs, "CanaryStarted") != 1 {
				t.Errorf("events %v, want one CanaryStarted and one %s", evs, tt.wantEvent)
			}
			if !strings.Contains(r.stdout, "step 1/3") {
				t.Errorf("no progress lines:\n%s", r.stdout)
			}
			for _, f := range []string{junit, summary} {
				if b, err := os.ReadFile(f); err != nil || len(b) == 0 {
					t.Errorf("%s not written: %v", f, err)
				}
			}
			// Run again: the canary has ended; nothing is applied twice.
			again := e.gate(t, policyFile(t, tt.ns, tt.strategy, "", ""))
			mustCode(t, again, tt.wantCode)
			if evs := events(t, e.client, tt.ns); count(evs, "CanaryStarted") != 1 {
				t.Errorf("a second run started the canary again: %v", evs)
			}
		})
	}
}

// rolloutDeployment is seed 3/4's one Deployment, selected by app alone, at v1.0.0.
func rolloutDeployment() *appsv1.Deployment {
	n := int32(10)
	labels := map[string]string{"app": "my-app", "version": "v1.0.0"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "my-app", Labels: map[string]string{"app": "my-app"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "my-app"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9101"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "my-app", Image: "containersol/k8s-deployment-strategies:v1.0.0"}}},
			},
		},
	}
}

// editDeployment changes a Deployment the way kubectl set image / label / rollout pause do.
func editDeployment(t *testing.T, client kubernetes.Interface, ns, name string, edit func(d *appsv1.Deployment)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		edit(d)
		_, err = client.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// prepareRollout makes revision 1 (v1.0.0) and revision 2 (a v1.0.0 hotfix image, the last good
// one), then pauses the Deployment and gives it the v2.0.0 template, as seed 4 does by hand.
func prepareRollout(t *testing.T, client kubernetes.Interface, ns string, unready bool) {
	t.Helper()
	if _, err := client.AppsV1().Deployments(ns).Create(context.Background(), rolloutDeployment(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReady(t, client, ns, "my-app", 10)
	editDeployment(t, client, ns, "my-app", func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = "containersol/k8s-deployment-strategies:v1.0.0-hotfix"
	})
	waitRolledOut(t, client, ns, "my-app")
	editDeployment(t, client, ns, "my-app", func(d *appsv1.Deployment) {
		d.Spec.Paused = true
		d.Spec.Template.Labels["version"] = "v2.0.0"
		if unready {
			d.Spec.Template.Labels[sandbox.UnreadyLabel] = "true"
		}
		d.Spec.Template.Spec.Containers[0].Image = "containersol/k8s-deployment-strategies:v2.0.0"
	})
}

func waitRolledOut(t *testing.T, client kubernetes.Interface, ns, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		n := *d.Spec.Replicas
		s := d.Status
		return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == n && s.ReadyReplicas == n && s.Replicas == n, nil
	})
	if err != nil {
		t.Fatalf("deployment %s/%s did not roll out: %v", ns, name, err)
	}
}

func TestGateRolloutAndBlueGreen(t *testing.T) {
	e := startEnv(t, simulator.Scenario{Seed: 5, Tick: model.Duration(100 * time.Millisecond), Apps: []simulator.App{
		app("rollout-good", 0.01, slow), app("rollout-bad", 0.05, slow), app("rollout-stall", 0.01, slow),
		app("bluegreen-good", 0.01, slow), app("bluegreen-bad", 0.05, slow),
	}})
	rolloutTarget := `baseline: {deployment: my-app, version: v1.0.0}
    canary: {deployment: my-app, version: v2.0.0}`
	rolloutSteps := `steps: ["1"]
    stepDuration: 6s`

	t.Run("rollout", func(t *testing.T) {
		tests := []struct {
			ns        string
			unready   bool
			wantCode  int
			wantImage string
			wantOut   string
		}{
			{"rollout-good", false, exitPass, "containersol/k8s-deployment-strategies:v2.0.0", "passed every step"},
			// Rolled back to revision 2, the last one that ran the baseline, not revision 1.
			{"rollout-bad", false, exitFail, "containersol/k8s-deployment-strategies:v1.0.0-hotfix", "above maxRatio 2"},
			// v2's pods never become Ready: the rollout stalls, no request fails, it still rolls back.
			{"rollout-stall", true, exitFail, "containersol/k8s-deployment-strategies:v1.0.0-hotfix", "not Ready within readyTimeout"},
		}
		for _, tt := range tests {
			prepareRollout(t, e.client, tt.ns, tt.unready)
		}
		for _, tt := range tests {
			t.Run(tt.ns, func(t *testing.T) {
				t.Parallel()
				waitScraped(t, e, tt.ns, "v1.0.0")
				r := e.gate(t, policyFile(t, tt.ns, "rollout", rolloutTarget, rolloutSteps))
				mustCode(t, r, tt.wantCode)
				if !strings.Contains(r.stdout, tt.wantOut) {
					t.Errorf("output lacks %q:\n%s", tt.wantOut, r.stdout)
				}
				waitRolledOut(t, e.client, tt.ns, "my-app")
				d, err := e.client.AppsV1().Deployments(tt.ns).Get(context.Background(), "my-app", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if img := d.Spec.Template.Spec.Containers[0].Image; img != tt.wantImage {
					t.Errorf("image %s, want %s", img, tt.wantImage)
				}
				if d.Spec.Paused {
					t.Error("left paused")
				}
				if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxSurge.String() != "25%" || ru.MaxUnavailable.String() != "25%" {
					t.Errorf("update strategy not restored: %+v", d.Spec.Strategy)
				}
				if tt.wantCode == exitPass {
					var record map[string]any
					if err := json.Unmarshal([]byte(d.Annotations[actuator.AnnotationProgress]), &record); err != nil {
						t.Errorf("canary record %s: %v", actuator.AnnotationProgress, err)
					} else if record["phase"] != "promoted" {
						t.Errorf("canary record phase %v, want promoted: %v", record["phase"], d.Annotations)
					}
				}
			})
		}
	})

	t.Run("bluegreen", func(t *testing.T) {
		tests := []struct {
			ns           string
			wantCode     int
			wantSelector string
			wantV1       int32
		}{
			{"bluegreen-good", exitPass, "v2.0.0", 0},
			{"bluegreen-bad", exitFail, "v1.0.0", 10},
		}
		for _, tt := range tests {
			applySeed(t, e.client, tt.ns, func(obj any) {
				switch o := obj.(type) {
				case *corev1.Service:
					o.Spec.Selector["version"] = "v1.0.0"
				case *appsv1.Deployment:
					n := int32(10)
					o.Spec.Replicas = &n
				}
			})
		}
		for _, tt := range tests {
			t.Run(tt.ns, func(t *testing.T) {
				t.Parallel()
				waitReady(t, e.client, tt.ns, "my-app-v2", 10)
				waitScraped(t, e, tt.ns, "v1.0.0")
				time.Sleep(10 * time.Second) // a full window of the baseline before the switch
				r := e.gate(t, policyFile(t, tt.ns, "bluegreen", "", `service: my-app
    steps: ["100%"]
    stepDuration: 6s`))
				mustCode(t, r, tt.wantCode)
				svc, err := e.client.CoreV1().Services(tt.ns).Get(context.Background(), "my-app", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if got := svc.Spec.Selector["version"]; got != tt.wantSelector {
					t.Errorf("service selects %s, want %s", got, tt.wantSelector)
				}
				if v1 := replicasOf(t, e.client, tt.ns, "my-app-v1"); v1 != tt.wantV1 {
					t.Errorf("v1 has %d replicas, want %d", v1, tt.wantV1)
				}
			})
		}
	})
}

// snapshot sums up everything coalmine could write in ns: Deployments, ReplicaSets and Services
// with their resourceVersions, and the number of Events.
func snapshot(t *testing.T, client kubernetes.Interface, ns string) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	ds, err := client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds.Items {
		fmt.Fprintf(&b, "deploy/%s@%s ", d.Name, d.ResourceVersion)
	}
	rss, err := client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range rss.Items {
		fmt.Fprintf(&b, "rs/%s@%s ", rs.Name, rs.ResourceVersion)
	}
	svcs, err := client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs.Items {
		fmt.Fprintf(&b, "svc/%s@%s ", s.Name, s.ResourceVersion)
	}
	fmt.Fprintf(&b, "coalmine-events=%d", len(events(t, client, ns)))
	return b.String()
}

// startGate runs the gate in the background and returns the command and its output buffers.
func (e *env) startGate(t *testing.T, policy string, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
	t.Helper()
	all := append([]string{"gate", "-f", policy, "--kubeconfig", e.cluster.Kubeconfig(), "--prometheus-url", e.promURL, "--log-format", "json"}, args...)
	cmd := exec.Command(coalmineBinary(t), all...)
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, stdout, stderr
}

// multi shows several outputs one after the other.
type multi []fmt.Stringer

func (m multi) String() string {
	var b strings.Builder
	for _, s := range m {
		b.WriteString(s.String())
	}
	return b.String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// waitProgress waits until the progress coalmine recorded on the canary's Deployment satisfies
// ok; output is what to show if it never does.
func waitProgress(t *testing.T, client kubernetes.Interface, ns, name string, output fmt.Stringer, ok func(p map[string]any) bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		raw := d.Annotations[actuator.AnnotationProgress]
		if raw == "" {
			return false, nil
		}
		var p map[string]any
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			return false, err
		}
		switch p["phase"] {
		case "promoted", "rolledBack", "held", "stopped":
			if !ok(p) {
				return false, fmt.Errorf("the canary ended (%v: %v) before getting there", p["phase"], p["reason"])
			}
		}
		return ok(p), nil
	})
	if err != nil {
		t.Fatalf("progress of %s/%s never got there: %v\ngate output:\n%s", ns, name, err, output)
	}
}

func processExitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// outage is a reverse proxy in front of Prometheus that can stop answering (connection refused)
// and come back on the same address, as a restarted Prometheus would.
type outage struct {
	addr   string
	target *url.URL
	mu     sync.Mutex
	srv    *http.Server
}

func newOutage(t *testing.T, target string) *outage {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &outage{addr: ln.Addr().String(), target: u}
	o.serve(ln)
	t.Cleanup(o.down)
	return o
}

func (o *outage) url() string { return "http://" + o.addr }

func (o *outage) serve(ln net.Listener) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.srv = &http.Server{Handler: httputil.NewSingleHostReverseProxy(o.target), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = o.srv.Serve(ln) }()
}

func (o *outage) down() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.srv != nil {
		_ = o.srv.Close()
		o.srv = nil
	}
}

func (o *outage) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		t.Fatal(err)
	}
	o.serve(ln)
}

func TestGateInterruptions(t *testing.T) {
	e := startEnv(t, simulator.Scenario{Seed: 9, Tick: model.Duration(100 * time.Millisecond), Apps: []simulator.App{
		app("killed", 0.01, slow), app("human", 0.01, slow), app("outage", 0.01, slow), app("dryrun", 0.05, slow),
	}})
	for _, ns := range []string{"killed", "human", "outage", "dryrun"} {
		applySeed(t, e.client, ns, nil)
	}
	longSteps := `steps: ["1", "50%", "100%"]
    stepDuration: 8s`

	t.Run("report and gate --dry-run read the cluster and write nothing", func(t *testing.T) {
		t.Parallel()
		waitReady(t, e.client, "dryrun", "my-app-v2", 1)
		waitScraped(t, e, "dryrun", "v1.0.0", "v2.0.0")
		before := snapshot(t, e.client, "dryrun")
		policy := policyFile(t, "dryrun", "scale", "", "")
		r := runCLI(t, "report", "-f", policy, "--kubeconfig", e.cluster.Kubeconfig(), "--prometheus-url", e.promURL)
		mustCode(t, r, exitFail)
		if !strings.Contains(r.stdout, "cluster: my-app-v1=10 my-app-v2=1; canary pods Ready") {
			t.Errorf("the report does not show the cluster:\n%s", r.stdout)
		}
		g := e.gate(t, policy, "--dry-run")
		mustCode(t, g, exitFail)
		if !strings.Contains(g.stderr, "would roll back") {
			t.Errorf("the dry run does not say what it would do:\n%s", lastLines(g.stderr, 10))
		}
		if after := snapshot(t, e.client, "dryrun"); after != before {
			t.Errorf("the cluster changed:\nbefore %s\nafter  %s", before, after)
		}
	})

	t.Run("SIGKILL mid-step, run again: resumes, no step applied twice", func(t *testing.T) {
		t.Parallel()
		waitReady(t, e.client, "killed", "my-app-v2", 1)
		waitScraped(t, e, "killed", "v1.0.0", "v2.0.0")
		policy := policyFile(t, "killed", "scale", "", longSteps)
		cmd, stdout, stderr := e.startGate(t, policy)
		// Kill it once the second step is recorded.
		waitProgress(t, e.client, "killed", "my-app-v2", multi{stdout, stderr}, func(p map[string]any) bool { return p["step"].(float64) >= 1 })
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		r := e.gate(t, policy)
		mustCode(t, r, exitPass)
		evs := events(t, e.client, "killed")
		if count(evs, "CanaryStarted") != 1 || count(evs, "CanaryStepAdvanced") != 2 || count(evs, "CanaryPromoted") != 1 {
			t.Errorf("events %v: want 1 CanaryStarted, 2 CanaryStepAdvanced, 1 CanaryPromoted", evs)
		}
		if strings.Contains(r.stdout, "step 1/3") {
			t.Errorf("the second run went back to step 1:\n%s", r.stdout)
		}
		if v1, v2 := replicasOf(t, e.client, "killed", "my-app-v1"), replicasOf(t, e.client, "killed", "my-app-v2"); v1 != 0 || v2 != 10 {
			t.Errorf("v1=%d v2=%d after promotion", v1, v2)
		}
	})

	t.Run("someone scales v2 by hand: coalmine stops and does not fight", func(t *testing.T) {
		t.Parallel()
		waitReady(t, e.client, "human", "my-app-v2", 1)
		waitScraped(t, e, "human", "v1.0.0", "v2.0.0")
		cmd, stdout, stderr := e.startGate(t, policyFile(t, "human", "scale", "", longSteps))
		waitProgress(t, e.client, "human", "my-app-v2", multi{stdout, stderr}, func(p map[string]any) bool { return p["fingerprint"] != "" && p["inFlight"] == nil })
		editDeployment(t, e.client, "human", "my-app-v2", func(d *appsv1.Deployment) {
			n := int32(7)
			d.Spec.Replicas = &n
		})
		if code := processExitCode(cmd.Wait()); code != exitStopped {
			t.Fatalf("exit code %d, want %d\n%s", code, exitStopped, stdout.String())
		}
		time.Sleep(3 * time.Second)
		if v2 := replicasOf(t, e.client, "human", "my-app-v2"); v2 != 7 {
			t.Errorf("v2 has %d replicas: coalmine fought the human's 7", v2)
		}
		if !strings.Contains(stdout.String(), "someone else changed the release") {
			t.Errorf("the gate did not say why it stopped:\n%s", stdout.String())
		}
		if evs := events(t, e.client, "human"); count(evs, "CanaryStopped") != 1 {
			t.Errorf("events %v, want a CanaryStopped", evs)
		}
	})

	t.Run("prometheus stops mid-canary: no promotion, no rollback; exit 4, then resumes when it is back", func(t *testing.T) {
		t.Parallel()
		waitReady(t, e.client, "outage", "my-app-v2", 1)
		waitScraped(t, e, "outage", "v1.0.0", "v2.0.0")
		prom := newOutage(t, e.promURL)
		policy := policyFile(t, "outage", "scale", "", longSteps)
		args := []string{"gate", "-f", policy, "--kubeconfig", e.cluster.Kubeconfig(), "--prometheus-url", prom.url(), "--log-format", "json", "--timeout", "20s"}
		cmd := exec.Command(coalmineBinary(t), args...)
		var stdout bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitProgress(t, e.client, "outage", "my-app-v2", &stdout, func(p map[string]any) bool { return p["verdicts"] != nil })
		prom.down()
		if code := processExitCode(cmd.Wait()); code != exitUnavailable {
			t.Fatalf("exit code %d, want %d\n%s", code, exitUnavailable, stdout.String())
		}
		if !strings.Contains(stdout.String(), "metrics unavailable") {
			t.Errorf("no progress line says the metrics are unavailable:\n%s", stdout.String())
		}
		evs := events(t, e.client, "outage")
		if count(evs, "CanaryPromoted")+count(evs, "CanaryRolledBack") != 0 {
			t.Errorf("an outage promoted or rolled back: %v", evs)
		}
		if v1, v2 := replicasOf(t, e.client, "outage", "my-app-v1"), replicasOf(t, e.client, "outage", "my-app-v2"); v1 != 10 || v2 > 5 {
			t.Errorf("v1=%d v2=%d: the outage moved the release", v1, v2)
		}
		// Prometheus comes back a few seconds into the next run: the canary resumes and ends.
		go func() { time.Sleep(4 * time.Second); prom.up(t) }()
		r := runCLI(t, "gate", "-f", policy, "--kubeconfig", e.cluster.Kubeconfig(), "--prometheus-url", prom.url(), "--log-format", "json")
		mustCode(t, r, exitPass)
		if !strings.Contains(r.stdout, "metrics unavailable") {
			t.Errorf("the second run did not start during the outage:\n%s", r.stdout)
		}
	})
}
