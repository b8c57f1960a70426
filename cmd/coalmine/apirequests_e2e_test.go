package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/coalmine/coalmine/actuator"
	"github.com/coalmine/coalmine/simulator"
)

// The requests of coalmine's that the API server counts in apiserver_request_total. The
// controllers, kwok, Prometheus and the simulator share the API server, but none of them GETs
// Deployments or LISTs pods outside a watch, nor writes a Deployment's spec or metadata.
var (
	readKeys  = []string{"GET deployments", "LIST pods"}
	writeKeys = []string{"PATCH deployments", "PUT deployments", "PATCH deployments/scale", "PUT deployments/scale"}
)

// apiRequests is apiserver_request_total summed by "VERB resource[/subresource]".
type apiRequests map[string]float64

// scrapeAPIRequests reads the API server's own request counters from its /metrics.
func scrapeAPIRequests(t *testing.T, client kubernetes.Interface) apiRequests {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatalf("GET /metrics of the API server: %v", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse the API server's /metrics: %v", err)
	}
	mf, ok := families["apiserver_request_total"]
	if !ok {
		t.Fatal("the API server's /metrics has no apiserver_request_total")
	}
	out := apiRequests{}
	for _, m := range mf.GetMetric() {
		var verb, resource, sub string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "verb":
				verb = l.GetValue()
			case "resource":
				resource = l.GetValue()
			case "subresource":
				sub = l.GetValue()
			}
		}
		key := verb + " " + resource
		if sub != "" {
			key += "/" + sub
		}
		out[key] += m.GetCounter().GetValue()
	}
	return out
}

func (a apiRequests) delta(before apiRequests, keys ...string) float64 {
	n := 0.0
	for _, k := range keys {
		n += a[k] - before[k]
	}
	return n
}

// requestTable shows what coalmine's requests the API server counted in a window of ticks.
func requestTable(who string, before, after apiRequests, ticks int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: API server requests over %d quiet ticks\n", who, ticks)
	fmt.Fprintf(&b, "  %-26s %8s %6s %9s\n", "verb/resource", "requests", "ticks", "per tick")
	for _, k := range append(append([]string(nil), readKeys...), writeKeys...) {
		n := after.delta(before, k)
		fmt.Fprintf(&b, "  %-26s %8.0f %6d %9.2f\n", k, n, ticks, n/float64(ticks))
	}
	return b.String()
}

// tickLog finds a canary's ticks in a process's output, one per line.
type tickLog struct {
	out fmt.Stringer
	// tick says whether a line is a tick and whether it judged the canary to pass.
	tick func(line string) (isTick, pass bool)
}

func (l tickLog) ticks() (all []string, firstPass int) {
	firstPass = -1
	for _, line := range strings.Split(l.out.String(), "\n") {
		isTick, pass := l.tick(line)
		if !isTick {
			continue
		}
		if pass && firstPass < 0 {
			firstPass = len(all)
		}
		all = append(all, line)
	}
	return all, firstPass
}

// waitTicks waits until at least n ticks are out, and returns their number.
func (l tickLog) waitTicks(t *testing.T, n int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		all, _ := l.ticks()
		if len(all) >= n {
			return len(all)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ticks after %s, want %d:\n%s", len(all), timeout, n, lastLines(l.out.String(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPass waits for the first tick that judged the canary to pass, and returns the number of
// ticks out then.
func (l tickLog) waitPass(t *testing.T, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		all, first := l.ticks()
		if first >= 0 {
			return len(all)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no passing tick within %s:\n%s", timeout, lastLines(l.out.String(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quietWindow measures coalmine's API requests over quiet ticks: it scrapes the counters just
// after a tick is out and again just after the tick at least n later, so the window holds
// exactly the requests of its ticks (ticks are an interval apart; a scrape takes milliseconds).
// A scrape that comes late (a loaded machine) may count the next tick's requests before its
// line is out: the window then grows by that tick. It returns the ticks in the window. Every
// tick in it must be a passing hold: a tick that changes anything may write.
func quietWindow(t *testing.T, e *env, ns string, l tickLog, n int, interval time.Duration) (before, after apiRequests, recBefore, recAfter string, ticks int) {
	t.Helper()
	start := l.waitPass(t, 2*time.Minute)
	// The canary is at its step and Ready (it judged) and its verdict is pass: the record
	// was written when the verdict changed, before the tick was out. One more tick shows the
	// verdict holds.
	start = l.waitTicks(t, start+1, 4*interval)
	// A late scrape is tried again a few times; where every scrape is late (a loaded machine)
	// the window is taken as it is, its tick count exact unless a tick slipped in unseen.
	for attempt := 1; ; attempt++ {
		// The record is read here and after the window, not during it: the test's own GET
		// would count.
		seen := time.Now()
		recBefore = record(t, e.client, ns)
		before = scrapeAPIRequests(t, e.client)
		if all, _ := l.ticks(); len(all) == start && (time.Since(seen) < interval/2 || attempt >= 5) {
			break
		}
		start = l.waitTicks(t, start+1, 4*interval) // a tick slipped in: start again after it
	}
	end := start + n
	for attempt := 1; ; attempt++ {
		end = l.waitTicks(t, end, time.Duration(n+4)*interval)
		seen := time.Now()
		after = scrapeAPIRequests(t, e.client)
		if all, _ := l.ticks(); len(all) == end && (time.Since(seen) < interval/2 || attempt >= 5) {
			break
		}
		end++
	}
	recAfter = record(t, e.client, ns)
	all, _ := l.ticks()
	for _, line := range all[start:end] {
		if isTick, pass := l.tick(line); !isTick || !pass || !strings.Contains(line, "hold") {
			t.Fatalf("a tick in the window was not a passing hold, the window was not quiet: %s\nticks:\n%s", line, strings.Join(all, "\n"))
		}
	}
	return before, after, recBefore, recAfter, end - start
}

// record is the canary Deployment's resourceVersion and coalmine's record on it.
func record(t *testing.T, client kubernetes.Interface, ns string) string {
	t.Helper()
	d, err := client.AppsV1().Deployments(ns).Get(context.Background(), "my-app-v2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("resourceVersion=%s %s=%s", d.ResourceVersion, actuator.AnnotationProgress, d.Annotations[actuator.AnnotationProgress])
}

// checkNoWrites fails when coalmine wrote a Deployment on a quiet tick, showing the record
// before and after the window.
func checkNoWrites(t *testing.T, who string, before, after apiRequests, recBefore, recAfter string) {
	t.Helper()
	for _, k := range writeKeys {
		if n := after.delta(before, k); n != 0 {
			t.Errorf("%s: %.0f %s requests on quiet ticks, want none\nrecord before the window: %s\nrecord after the window:  %s", who, n, k, recBefore, recAfter)
		}
	}
}

// quietPolicy is the seed app's scale policy with steps too long to end during the test, so
// that the canary holds quietly at its first step.
func quietPolicy(t *testing.T, ns string) []byte {
	t.Helper()
	b, err := os.ReadFile(policyFile(t, ns, "scale", "", `steps: ["1", "50%", "100%"]
    stepDuration: 10m`))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.Replace(string(b), "maxDuration: 3m", "maxDuration: 30m", 1))
}

var progressLine = regexp.MustCompile(`^\d\d:\d\d:\d\d step \d+/\d+ `)

// TestAPIRequestsPerTick counts, on the API server's own request counters, what a canary holding
// quietly at its step costs the cluster per tick: the gate reads the cluster live and writes
// nothing; the daemon reads its informers' caches and writes nothing.
func TestAPIRequestsPerTick(t *testing.T) {
	const (
		ticks    = 10
		interval = 2 * time.Second // the policies' spec.analysis.interval
	)
	e := startEnv(t, simulator.Scenario{Seed: 13, Tick: model.Duration(100 * time.Millisecond), Apps: []simulator.App{
		app("req-gate", 0.01, slow), app("req-daemon", 0.01, slow),
	}})
	for _, ns := range []string{"req-gate", "req-daemon"} {
		applySeed(t, e.client, ns, nil)
	}
	for _, ns := range []string{"req-gate", "req-daemon"} {
		waitReady(t, e.client, ns, "my-app-v2", 1)
	}
	waitScraped(t, e, "req-daemon", "v1.0.0", "v2.0.0") // both started together

	t.Run("gate", func(t *testing.T) {
		policy := filepath.Join(t.TempDir(), "req-gate.yaml")
		if err := os.WriteFile(policy, quietPolicy(t, "req-gate"), 0o644); err != nil {
			t.Fatal(err)
		}
		startup := scrapeAPIRequests(t, e.client)
		cmd, stdout, stderr := e.startGate(t, policy)
		l := tickLog{out: stdout, tick: func(line string) (bool, bool) {
			return progressLine.MatchString(line), strings.Contains(line, "=> pass")
		}}
		before, after, recBefore, recAfter, ticks := quietWindow(t, e, "req-gate", l, ticks, interval)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// The counters see coalmine's writes: the gate wrote its record as it started the
		// canary and when the verdict became pass.
		if n := before.delta(startup, writeKeys...); n < 1 {
			t.Errorf("no Deployment write counted while the gate started the canary: the counting cannot see coalmine\n%s", lastLines(stderr.String(), 10))
		}
		t.Logf("gate: %.0f Deployment writes while the canary started, before the window", before.delta(startup, writeKeys...))
		t.Log(requestTable("gate", before, after, ticks))
		reads := after.delta(before, readKeys...) / float64(ticks)
		t.Logf("gate: %.2f reads (GET deployments + LIST pods) and %.2f writes per quiet tick", reads, after.delta(before, writeKeys...)/float64(ticks))
		checkNoWrites(t, "gate", before, after, recBefore, recAfter)
		// Per tick the gate reads both Deployments (is the release where coalmine left it?),
		// the canary's Deployment and pods (is it Ready and healthy?), and the canary's
		// Deployment once more for people's commands (coalmine abort, pause, ...), which a gate,
		// having no watch, must read every tick to honour them within one.
		if reads > 5 {
			t.Errorf("gate: %.2f reads per quiet tick, want at most 5", reads)
		}
	})

	t.Run("daemon", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "coalmine"}}
		if _, err := e.client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "req-daemon.yaml"), quietPolicy(t, "req-daemon"), 0o644); err != nil {
			t.Fatal(err)
		}
		startup := scrapeAPIRequests(t, e.client)
		d := e.startDaemon(t, "replica-a", dir, e.cluster.Kubeconfig())
		l := tickLog{out: d.stderr, tick: func(line string) (bool, bool) {
			var entry struct {
				Message, Policy, Verdict, Action string
			}
			if json.Unmarshal([]byte(line), &entry) != nil || entry.Message != "canary tick" || entry.Policy != "req-daemon/my-app" {
				return false, false
			}
			return true, entry.Verdict == "pass"
		}}
		before, after, recBefore, recAfter, ticks := quietWindow(t, e, "req-daemon", l, ticks, interval)
		if n := before.delta(startup, writeKeys...); n < 1 {
			t.Errorf("no Deployment write counted while the daemon started the canary: the counting cannot see coalmine\n%s", lastLines(d.stderr.String(), 10))
		}
		t.Logf("daemon: %.0f Deployment writes while the canary started, before the window", before.delta(startup, writeKeys...))
		t.Log(requestTable("daemon", before, after, ticks))
		t.Logf("daemon: %.2f reads (GET deployments + LIST pods) and %.2f writes per quiet tick",
			after.delta(before, readKeys...)/float64(ticks), after.delta(before, writeKeys...)/float64(ticks))
		checkNoWrites(t, "daemon", before, after, recBefore, recAfter)
		// Its reads come from the informers' caches, kept up to date by watches.
		for _, k := range readKeys {
			if n := after.delta(before, k); n != 0 {
				t.Errorf("daemon: %.0f %s requests on quiet ticks, want none: it reads from its caches", n, k)
			}
		}
	})
}
