package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/coalmine/coalmine/simulator"
)

// sourcePolicies writes the example policy twice, ticking every 3 s: read from Prometheus, and
// read from the pods themselves (source: pods, the metrics named as the pods expose them).
func sourcePolicies(t *testing.T) (prom, pods string) {
	t.Helper()
	example, err := os.ReadFile("../../policies/examples/my-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := strings.Replace(string(example), "interval: 30s", "interval: 3s", 1)
	dir := t.TempDir()
	prom = filepath.Join(dir, "prometheus.yaml")
	if err := os.WriteFile(prom, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	pods = filepath.Join(dir, "pods.yaml")
	p := strings.Replace(base, "  prometheus:\n", "  source: pods\n  pods: {timeout: 2s, concurrency: 4}\n  prometheus:\n", 1)
	p = strings.Replace(p, "requests: http_requests_total{ {{.Selector}} }", "requests: http_requests_total", 1)
	p = strings.Replace(p, `errors: http_requests_total{ {{.Selector}}, code=~"5.." }`, `errors: http_requests_total{code=~"5.."}`, 1)
	p = strings.Replace(p, "buckets: request_duration_seconds_bucket{ {{.Selector}} }", "buckets: request_duration_seconds_bucket", 1)
	if err := os.WriteFile(pods, []byte(p), 0o644); err != nil {
		t.Fatal(err)
	}
	return prom, pods
}

func (e *env) report(t *testing.T, policy, ns string, args ...string) cliResult {
	t.Helper()
	all := append([]string{"report", "-f", policy, "-n", ns, "--kubeconfig", e.cluster.Kubeconfig(),
		"--prometheus-url", e.promURL, "--format", "json", "--log-format", "json"}, args...)
	return runCLI(t, all...)
}

// TestPodsSource judges the same traffic from Prometheus and from the pods, side by side, and
// checks the pods source against what its users count on: a restart is not a regression, a
// pod that stops answering holds the verdict.
func TestPodsSource(t *testing.T) {
	// v2 runs 5 pods beside v1's 10, so that a third of the traffic reaches it and the judge
	// can show a healthy v2 is no worse within the minute the reports look.
	light := func(ns string, v2 float64, lat simulator.Latency) simulator.App {
		a := app(ns, v2, lat)
		a.RPS = 2200
		return a
	}
	zero := 0.0
	noTraffic := light("pods-no-traffic", 0.01, slow)
	noTraffic.Versions[1].RPS = &zero
	e := startEnv(t, simulator.Scenario{Seed: 9, Tick: model.Duration(100 * time.Millisecond), Apps: []simulator.App{
		light("pods-healthy", 0.01, slow),
		light("pods-errors-5x", 0.05, slow),
		light("pods-slow-3x", 0.01, simulator.Latency{Median: 0.3, P99: 1.2}),
		noTraffic,
		light("pods-restart", 0.01, slow),
		light("pods-unreachable", 0.01, slow),
	}})
	promPolicy, podsPolicy := sourcePolicies(t)
	fiveCanaries := func(obj any) {
		if d, ok := obj.(*appsv1.Deployment); ok && d.Name == "my-app-v2" {
			five := int32(5)
			d.Spec.Replicas = &five
		}
	}
	for _, ns := range []string{"pods-healthy", "pods-errors-5x", "pods-slow-3x", "pods-no-traffic", "pods-restart", "pods-unreachable"} {
		applySeed(t, e.client, ns, fiveCanaries)
	}

	t.Run("both sources, same verdicts", func(t *testing.T) {
		tests := []struct {
			ns, want string
			code     int
		}{
			{"pods-healthy", "pass", exitPass},
			{"pods-errors-5x", "fail", exitFail},
			{"pods-slow-3x", "fail", exitFail},
			{"pods-no-traffic", "inconclusive", exitInconclusive},
		}
		for _, tt := range tests {
			t.Run(tt.ns, func(t *testing.T) {
				t.Parallel()
				waitReady(t, e.client, tt.ns, "my-app-v2", 5)
				if tt.want == "inconclusive" {
					// v2 serves nothing, so it has no request series to wait for.
					waitScraped(t, e, tt.ns, "v1.0.0")
				} else {
					waitScraped(t, e, tt.ns, "v1.0.0", "v2.0.0")
				}
				// The pods are watched from now; Prometheus replays the same minute once it
				// has passed. The promote side allows for errors in clumps by the dispersion
				// it sees plus one standard deviation of its estimate: over 20 intervals of
				// 3 s that allowance still leaves a healthy canary room to be shown healthy,
				// over 13 (40 s) it often did not. On a loaded machine the sandbox's 1 s scrapes (1 s timeout) miss
				// some instants, and the replay holds less than the pods served: a healthy
				// canary may not be shown healthy in time. One more minute then.
				var pods cliResult
				for attempt := 1; attempt <= 2; attempt++ {
					pods = e.report(t, podsPolicy, tt.ns, "--window", "60s")
					prom := e.report(t, promPolicy, tt.ns, "--window", "60s")
					var problems []string
					for name, r := range map[string]cliResult{"pods": pods, "prometheus": prom} {
						var rep jsonReport
						if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
							t.Fatalf("%s: not JSON (exit %d): %v\n%s\n%s", name, r.code, err, r.stdout, r.stderr)
						}
						if r.code != tt.code || rep.Verdict != tt.want {
							var reasons []string
							for _, m := range rep.Metrics {
								reasons = append(reasons, m.Name+": "+m.Verdict+": "+m.Reason)
							}
							problems = append(problems, fmt.Sprintf("%s source: exit %d, verdict %s, want %s:\n%s", name, r.code, rep.Verdict, tt.want, strings.Join(reasons, "\n")))
						}
					}
					if len(problems) == 0 {
						break
					}
					if attempt == 2 || tt.want != "pass" {
						t.Error(strings.Join(problems, "\n"))
						break
					}
					t.Logf("attempt %d:\n%s", attempt, strings.Join(problems, "\n"))
				}
				if !strings.Contains(pods.stdout, "scrape the Ready pods of app=my-app") {
					t.Errorf("the pods report does not say where it read:\n%s", pods.stdout)
				}
			})
		}
	})

	t.Run("a canary restarted mid-analysis is not a regression", func(t *testing.T) {
		ns := "pods-restart"
		waitReady(t, e.client, ns, "my-app-v2", 5)
		waitScraped(t, e, ns, "v1.0.0", "v2.0.0")
		canary := canaryPod(t, e, ns)
		before := scrapeCount(t, canary)
		done := make(chan cliResult, 1)
		go func() { done <- e.report(t, podsPolicy, ns, "--window", "60s") }()
		time.Sleep(10 * time.Second)
		// A new metrics path makes the simulator start the pod's process again: the same pod,
		// its counters back at zero, as after a container restart.
		patch := `{"metadata":{"annotations":{"prometheus.io/path":"/restarted/metrics"}}}`
		if _, err := e.client.CoreV1().Pods(ns).Patch(context.Background(), canary.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		restarted := canaryPod(t, e, ns)
		var after float64
		if err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			after = scrapeCountOK(restarted)
			return after >= 0 && after < before, nil
		}); err != nil {
			t.Fatalf("the canary's counters did not restart: %g before, %g after", before, after)
		}
		r := <-done
		var rep jsonReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("not JSON (exit %d): %v\n%s", r.code, err, r.stderr)
		}
		if r.code != exitPass || rep.Verdict != "pass" {
			t.Errorf("restarted healthy canary: exit %d, verdict %s: %+v\n%s", r.code, rep.Verdict, rep.Metrics, r.stderr)
		}
	})

	t.Run("a pod that stops answering holds the verdict", func(t *testing.T) {
		ns := "pods-unreachable"
		waitReady(t, e.client, ns, "my-app-v2", 5)
		// A Ready canary pod that nothing answers on: the simulator plays only pods that ask to
		// be scraped, and this one says it does not.
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "my-app-v2-mute", Labels: map[string]string{"app": "my-app", "version": "v2.0.0"},
				Annotations: map[string]string{"prometheus.io/scrape": "false", "prometheus.io/port": "9101"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "my-app", Image: "containersol/k8s-deployment-strategies"}}},
		}
		if _, err := e.client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			p, err := e.client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			return err == nil && podReady(p), nil
		}); err != nil {
			t.Fatalf("the mute pod never became Ready: %v", err)
		}
		r := e.report(t, podsPolicy, ns, "--window", "10s")
		if r.code != exitUnavailable || r.stdout != "" {
			t.Fatalf("exit %d (want %d, no verdict)\n%s\n%s", r.code, exitUnavailable, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "my-app-v2-mute (canary v2.0.0)") {
			t.Errorf("the unreachable pod is not named:\n%s", r.stderr)
		}
		// The gate holds rather than passing: it neither promotes nor rolls back.
		g := e.gate(t, podsPolicyFor(t, podsPolicy, ns), "--timeout", "20s")
		if g.code != exitUnavailable {
			t.Errorf("gate: exit %d, want %d\n%s", g.code, exitUnavailable, g.stdout)
		}
		// It applied its first step (one v2 pod) and went no further.
		if v1, v2 := replicasOf(t, e.client, ns, "my-app-v1"), replicasOf(t, e.client, ns, "my-app-v2"); v1 != 10 || v2 != 1 {
			t.Errorf("v1=%d v2=%d, want 10 and 1: the gate acted without data", v1, v2)
		}
	})
}

// podsPolicyFor is the pods policy with a step long enough that a 20 s gate stays at step 1.
func podsPolicyFor(t *testing.T, policy, ns string) string {
	t.Helper()
	b, err := os.ReadFile(policy)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), ns+".yaml")
	if err := os.WriteFile(out, []byte(strings.Replace(string(b), "namespace: default", "namespace: "+ns, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func canaryPod(t *testing.T, e *env, ns string) *corev1.Pod {
	t.Helper()
	pods, err := e.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=my-app,version=v2.0.0"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("no canary pod: %v", err)
	}
	return &pods.Items[0]
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// scrapeCount is a pod's total requests, read from its metrics as coalmine would.
func scrapeCount(t *testing.T, p *corev1.Pod) float64 {
	t.Helper()
	n := scrapeCountOK(p)
	if n < 0 {
		t.Fatalf("cannot scrape pod %s", p.Name)
	}
	return n
}

// scrapeCountOK is scrapeCount, -1 when the pod does not answer.
func scrapeCountOK(p *corev1.Pod) float64 {
	path := p.Annotations["prometheus.io/path"]
	if path == "" {
		path = "/metrics"
	}
	resp, err := http.Get(fmt.Sprintf("http://%s:%s%s", p.Status.PodIP, p.Annotations["prometheus.io/port"], path))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return -1
	}
	total := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "http_requests_total{") {
			fields := strings.Fields(line)
			v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
			if err == nil {
				total += v
			}
		}
	}
	return total
}
