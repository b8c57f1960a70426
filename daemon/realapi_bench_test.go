package daemon

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"k8s.io/client-go/kubernetes"

	"github.com/coalmine/coalmine/policies"
	"github.com/coalmine/coalmine/sandbox"
)

// Flags of BenchmarkDaemonRealAPIServer (go test ... -args -real-canaries=200,500).
var (
	realCanaries   = flag.String("real-canaries", "200", "BenchmarkDaemonRealAPIServer: comma-separated numbers of canaries, one sandbox cluster each")
	realTicks      = flag.Int("real-ticks", 3, "BenchmarkDaemonRealAPIServer: quiet ticks measured")
	realV1Replicas = flag.Int("real-v1-replicas", 10, "BenchmarkDaemonRealAPIServer: replicas of each baseline Deployment (the canary has 1)")
	realReport     = flag.String("real-report", "", "BenchmarkDaemonRealAPIServer: append the detailed report to this file (a benchmark's log is cut at 10 lines)")
)

const (
	// realInterval is the policies' spec.analysis.interval.
	realInterval = 10 * time.Second
	// realPodCIDR keeps this package's pod IPs apart from other packages' clusters; it is wide
	// because every pod takes an address (kwok does not bound its pool by the range).
	realPodCIDR = "127.8.0.0/16"
	// kwokNodePods is the pods a sandbox node takes (sandbox.createKwokNode).
	kwokNodePods = 1000
)

// realPolicy is the seed's default policy (policies/examples/my-app.yaml: the sequential judge,
// counters read raw, scale strategy) for namespace NAMESPACE, ticking every 10s, with steps long
// enough that every canary holds at its first step while it is measured.
const realPolicy = `apiVersion: coalmine.dev/v1alpha1
kind: CanaryPolicy
metadata:
  name: my-app
spec:
  target:
    namespace: NAMESPACE
    app: my-app
    baseline: {deployment: my-app-v1, version: v1.0.0}
    canary: {deployment: my-app-v2, version: v2.0.0}
  analysis:
    interval: 10s
    window: 5m
    minRequests: 50
    maxDuration: 3h
    judge: sequential
    alpha: 0.05
    tolerance: 1.5
  prometheus:
    url: http://prometheus.monitoring.svc:9090
    timeout: 10s
  metrics:
    - name: error-rate
      kind: errors
      requests: http_requests_total{ {{.Selector}} }
      errors: http_requests_total{ {{.Selector}}, code=~"5.." }
    - name: latency-p99
      kind: latency
      quantile: 0.99
      buckets: request_duration_seconds_bucket{ {{.Selector}} }
  strategy:
    type: scale
    steps: ["1", "50%", "100%"]
    stepDuration: 1h
    baselineAfterPromotion: scaleToZero
`

// BenchmarkDaemonRealAPIServer runs the daemon in this process against a sandbox cluster's real
// API server (etcd, kube-apiserver, controller-manager, scheduler, kwok; no Prometheus: a stub
// serves growing healthy counters), with N canaries each in its own namespace: Deployments
// my-app-v1 (-real-v1-replicas) and my-app-v2 (1 replica, Ready), a headless Service and a
// policy file. Once every canary holds quietly at step 1 and the controllers have caught up with
// the daemon's writes, it measures -real-ticks ticks:
//   - API requests per canary per tick on deployments, replicasets, pods, services and events,
//     from the API server's apiserver_request_total, less the larger of two backgrounds of the
//     same length without the daemon, before it started and after it stopped (the controllers
//     and kwok share the API server), and as counted on the daemon's own transport;
//   - the daemon's CPU per tick (getrusage of this process: the daemon, plus the stub Prometheus,
//     whose own time is logged) and its share of one core;
//   - peak and live heap over the heap before the daemon started, and the process's RSS;
//   - startup: from daemon.Run until every canary has reached step 1 and judged once.
//
// The daemon's client is limited as `coalmine run` limits it: 50 QPS, burst 100.
func BenchmarkDaemonRealAPIServer(b *testing.B) {
	var sizes []int
	for _, s := range strings.Split(*realCanaries, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			b.Fatalf("-real-canaries=%q: want numbers above 0, comma-separated", *realCanaries)
		}
		sizes = append(sizes, n)
	}
	if *realTicks < 1 || *realV1Replicas < 1 {
		b.Fatal("-real-ticks and -real-v1-replicas must be at least 1")
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("canaries=%d", n), func(b *testing.B) { benchRealAPIServer(b, n, *realTicks, int32(*realV1Replicas)) })
	}
}

func benchRealAPIServer(b *testing.B, n, ticks int, v1Replicas int32) {
	begin := time.Now()
	ctx := b.Context()
	rep := openReport(b)
	window := time.Duration(ticks) * realInterval

	cluster := sandbox.StartClusterT(b, sandbox.ClusterOptions{PodCIDR: realPodCIDR, StartTimeout: 3 * time.Minute})
	setupCfg := cluster.RESTConfig()
	setupCfg.QPS, setupCfg.Burst = 300, 600
	setup, err := kubernetes.NewForConfig(setupCfg)
	if err != nil {
		b.Fatal(err)
	}
	pods := n * (int(v1Replicas) + 1)
	addKwokNodes(ctx, b, setup, pods)
	createReleases(ctx, b, setup, n, v1Replicas)
	waitReleasesReady(ctx, b, setup, n, v1Replicas, 20*time.Minute)
	rep.logf("canaries=%d: %d namespaces, %d pods Ready in %s", n, n, pods, time.Since(begin).Round(time.Second))

	// Background: the same window without the daemon, once the controllers have settled.
	settled := waitSettled(b, cluster.Client(), 4*time.Minute)
	rep.logf("canaries=%d: controllers settled (10 s without writes to the release's resources) %s", n, settled)
	bg0, bgStart := scrapeAPIServer(b, cluster.Client()), time.Now()
	time.Sleep(window)
	bg1, bgLen := scrapeAPIServer(b, cluster.Client()), time.Since(bgStart)
	bgBefore := bg1.minus(bg0)

	prom := startTrafficPrometheus(b)
	dir := b.TempDir()
	for i := range n {
		ns := fmt.Sprintf("team-%d", i)
		if err := os.WriteFile(filepath.Join(dir, ns+".yaml"), []byte(strings.ReplaceAll(realPolicy, "NAMESPACE", ns)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := policies.LoadFile(filepath.Join(dir, "team-0.yaml")); err != nil {
		b.Fatalf("the benchmark's policy does not load: %v", err)
	}
	cfg := cluster.RESTConfig()
	cfg.QPS, cfg.Burst, cfg.UserAgent = 50, 100, "coalmine" // `coalmine run`'s defaults
	sent := countRequests(cfg)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	opts := DefaultOptions()
	opts.PoliciesDir, opts.PrometheusURL, opts.MetricsAddr, opts.LeaderElect = dir, prom.srv.URL, "127.0.0.1:0", false
	reg := prometheus.NewRegistry()

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := sampleHeap()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	aStart, started := scrapeAPIServer(b, cluster.Client()), time.Now()
	go func() { done <- New(client, opts, zerolog.Nop(), reg).Run(runCtx) }()

	// Startup: every canary at step 1, judged once.
	waitDaemon(b, reg, n, 20*time.Minute, done, "every canary at step 1", func(s daemonState) bool {
		return len(s.verdicts) == n
	})
	startup := time.Since(started)
	atStep1, aStep1 := sent.snapshot(), scrapeAPIServer(b, cluster.Client())
	rep.logf("canaries=%d: requests until every canary was at step 1, per canary: sent by the daemon (the informers' LIST and WATCH are shared)\n%s\n  counted by the API server on the release's resources, every client's\n%s",
		n, perCanary(atStep1, n, false), perCanary(aStep1.minus(aStart), n, true))
	rep.logf("canaries=%d: all at step 1 %s after the daemon started; %.1f requests per canary so far (client side)",
		n, startup.Round(100*time.Millisecond), sum(atStep1)/float64(n))

	// Quiet: every canary passing, and one more tick of each with no other verdict.
	s := waitDaemon(b, reg, n, 20*time.Minute, done, "every canary passing", func(s daemonState) bool {
		for _, v := range s.verdicts {
			if v["pass"] == 0 {
				return false
			}
		}
		return true
	})
	rep.logf("canaries=%d: all passing %s after the daemon started", n, time.Since(started).Round(100*time.Millisecond))
	quiet := s
	waitDaemon(b, reg, n, 3*realInterval+time.Minute, done, "one more passing tick of every canary", func(s daemonState) bool {
		for p, v := range s.verdicts {
			if v["pass"] <= quiet.verdicts[p]["pass"] || s.others(p) != quiet.others(p) {
				return false
			}
		}
		return true
	})

	// The controllers answer the daemon's writes with their own (the deployment controller copies
	// each record written onto the canary's ReplicaSet), at their client's 20 QPS: let them catch
	// up, or the window would count the tail of the start.
	settled = waitSettled(b, cluster.Client(), 3*time.Minute)
	rep.logf("canaries=%d: once every canary held, the controllers settled again %s (10 s without writes to the release's resources)", n, settled)

	// The window: from mid-interval (ticks fall on the interval's grid and take well under half
	// of it), for exactly `ticks` ticks of every canary.
	now := time.Now()
	wStart := now.Truncate(realInterval).Add(realInterval / 2)
	if !wStart.After(now) {
		wStart = wStart.Add(realInterval)
	}
	time.Sleep(time.Until(wStart))
	s0, a0, c0, busy0 := gatherDaemon(b, reg), scrapeAPIServer(b, cluster.Client()), sent.snapshot(), prom.busy.Load()
	cpu0, t0 := cpuTime(), time.Now()
	time.Sleep(time.Until(wStart.Add(window)))
	cpu1, wLen := cpuTime(), time.Since(t0)
	s1, a1, c1, busy1 := gatherDaemon(b, reg), scrapeAPIServer(b, cluster.Client()), sent.snapshot(), prom.busy.Load()

	// Live heap while the daemon still runs, after a collection.
	runtime.GC()
	var live runtime.MemStats
	runtime.ReadMemStats(&live)
	peakHeap := peak.stop()
	rss := procStatusKiB("VmRSS")
	recordSize(ctx, b, rep, setup, n)
	stop()
	select {
	case err := <-done:
		if err != nil {
			b.Errorf("daemon: %v", err)
		}
	case <-time.After(time.Minute):
		b.Error("the daemon did not stop within a minute")
	}
	// Background again, now that the records are on the Deployments: the controllers' own
	// requests, as they were around the window.
	bg2, bgStart := scrapeAPIServer(b, cluster.Client()), time.Now()
	time.Sleep(window)
	bg3, bgAfterLen := scrapeAPIServer(b, cluster.Client()), time.Since(bgStart)
	bgAfter := bg3.minus(bg2)

	// Every canary ticked in the window, passing and holding: nothing else happened.
	ticked, spread := 0.0, map[float64]int{}
	for p, v := range s1.verdicts {
		d := v["pass"] - s0.verdicts[p]["pass"]
		ticked += d
		spread[d]++
		if s1.others(p) != s0.others(p) {
			b.Errorf("%s: a verdict other than pass in the window: %v, before %v", p, v, s0.verdicts[p])
		}
	}
	if s1.outcomes != s0.outcomes || s1.inProgress != float64(n) || s1.errors != s0.errors {
		b.Errorf("the window was not quiet: outcomes %v -> %v, in progress %v (want %d), errors %v -> %v",
			s0.outcomes, s1.outcomes, s1.inProgress, n, s0.errors, s1.errors)
	}
	if len(spread) != 1 || spread[float64(ticks)] != n {
		rep.logf("canaries=%d: ticks per canary in the window (ticks: canaries) %v, want %d each; per-tick figures divide by the ticks counted", n, spread, ticks)
	}
	perTick := ticked // canary-ticks
	if perTick == 0 {
		b.Fatal("no tick in the window")
	}
	tickRounds := perTick / float64(n)

	verbs := map[string]bool{}
	for k := range a1 {
		verb, _, _ := strings.Cut(k, " ")
		verbs[verb] = true
	}
	rep.logf("canaries=%d: verbs in the API server's apiserver_request_total: %s", n, strings.Join(sortedKeys(verbs), " "))
	apiserver := a1.minus(a0)
	bgB := bgBefore.scaled(wLen.Seconds() / bgLen.Seconds())
	bgA := bgAfter.scaled(wLen.Seconds() / bgAfterLen.Seconds())
	// The daemon's share: what the API server counted less the larger background.
	bgMax := apiRequests{}
	for _, m := range []apiRequests{bgB, bgA} {
		for k, v := range m {
			bgMax[k] = max(bgMax[k], v)
		}
	}
	daemonReqs := apiRequests{}
	for k, v := range apiserver.minus(bgMax) {
		daemonReqs[k] = max(0, v)
	}
	mine := c1.minus(c0)
	reads := daemonReqs.sum(readVerbs) / perTick
	writes := daemonReqs.sum(writeVerbs) / perTick
	cpu := cpu1 - cpu0
	cpuMsPerTick := float64(cpu.Microseconds()) / 1000 / tickRounds
	share := cpu.Seconds() / wLen.Seconds()
	rep.logf("canaries=%d: API requests over %.0f quiet ticks of every canary (%s): apiserver = apiserver_request_total; before, after = the same length without the daemon, before it started and after it stopped; daemon = apiserver less the larger of them (at least 0); client = sent by the daemon's own client\n%s",
		n, tickRounds, wLen.Round(time.Millisecond), requestTable(apiserver, bgB, bgA, daemonReqs, mine, perTick))
	rep.logf("canaries=%d: client side, every request the daemon sent in the window: %.0f (%.4f per canary per tick), of which reads %.0f and writes %.0f",
		n, sum(mine), sum(mine)/perTick, mine.sum(readVerbs), mine.sum(writeVerbs))
	stubMs := float64(busy1-busy0) / 1e6 / tickRounds
	rep.logf("canaries=%d: CPU %.1f ms per tick of all canaries (%.3f ms per canary), %.1f%% of one core; of it, at most %.1f ms per tick is the stub Prometheus answering (%d queries in all)",
		n, cpuMsPerTick, cpuMsPerTick/float64(n), 100*share, stubMs, prom.queries.Load())
	liveMiB := float64(int64(live.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
	peakMiB := float64(int64(peakHeap)-int64(before.HeapAlloc)) / (1 << 20)
	rep.logf("canaries=%d: heap over the heap before the daemon: peak %.1f MiB, live %.1f MiB (%.1f KiB per canary); process RSS %.0f MiB (the benchmark's own included)",
		n, peakMiB, liveMiB, liveMiB*1024/float64(n), float64(rss)/1024)
	rep.logf("canaries=%d: extrapolated linearly to 1,000 canaries (an extrapolation, not a measurement): %.0f%% of one core, live heap %.0f MiB, peak heap %.0f MiB",
		n, 100*share*1000/float64(n), liveMiB*1000/float64(n), peakMiB*1000/float64(n))

	b.ReportMetric(reads, "reads/canary/tick")
	b.ReportMetric(writes, "writes/canary/tick")
	b.ReportMetric(sum(mine)/perTick, "client-requests/canary/tick")
	b.ReportMetric(cpuMsPerTick, "cpu-ms/tick")
	b.ReportMetric(share, "cpu-share-of-1-core")
	b.ReportMetric(peakMiB, "peak-heap-MiB")
	b.ReportMetric(liveMiB, "live-heap-MiB")
	b.ReportMetric(float64(rss)/1024, "rss-MiB")
	b.ReportMetric(startup.Seconds(), "startup-s")
	b.ReportMetric(sum(atStep1)/float64(n), "startup-requests/canary")
}

// report is the benchmark's findings: logged, and appended to -real-report when set.
type report struct {
	b    *testing.B
	file string
}

func openReport(b *testing.B) *report { return &report{b: b, file: *realReport} }

func (r *report) logf(format string, args ...any) {
	r.b.Helper()
	r.b.Logf(format, args...)
	if r.file == "" {
		return
	}
	f, err := os.OpenFile(r.file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		r.b.Errorf("report: %v", err)
		return
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, format+"\n", args...); err != nil {
		r.b.Errorf("report: %v", err)
	}
}

// heapPeak samples the heap until stopped.
type heapPeak struct {
	max  atomic.Uint64
	quit chan struct{}
	done chan struct{}
}

func sampleHeap() *heapPeak {
	h := &heapPeak{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > h.max.Load() {
				h.max.Store(m.HeapAlloc)
			}
			select {
			case <-h.quit:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapPeak) stop() uint64 {
	close(h.quit)
	<-h.done
	return h.max.Load()
}

// procStatusKiB reads a field of /proc/self/status in KiB (VmRSS, VmHWM); 0 if it cannot.
func procStatusKiB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
