package simulator

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// normalCDF is the standard normal distribution function.
func normalCDF(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }

// TestStepRates drives a minute of simulated traffic and checks request counts, error shares and
// latencies against the scenario, within five standard deviations.
func TestStepRates(t *testing.T) {
	type want struct {
		rps       float64 // per pod
		errorRate float64
		latency   Latency
	}
	withCanary := func(v Version) Scenario { return testScenario(10, v) }
	tests := []struct {
		name string
		s    Scenario
		want map[string]want // by version
	}{
		{
			name: "healthy split evenly",
			s:    withCanary(canaryVersion(1, 0.01)),
			want: map[string]want{
				"v1.0.0": {rps: 200.0 / 11, errorRate: 0.01, latency: Latency{0.1, 0.4}},
				"v2.0.0": {rps: 200.0 / 11, errorRate: 0.01, latency: Latency{0.1, 0.4}},
			},
		},
		{
			name: "canary errors and latency",
			s: func() Scenario {
				v := canaryVersion(1, 0.05)
				v.Latency = Latency{Median: 0.1, P99: 1.2}
				return withCanary(v)
			}(),
			want: map[string]want{
				"v1.0.0": {rps: 200.0 / 11, errorRate: 0.01, latency: Latency{0.1, 0.4}},
				"v2.0.0": {rps: 200.0 / 11, errorRate: 0.05, latency: Latency{0.1, 1.2}},
			},
		},
		{
			name: "canary with its own rps",
			s: func() Scenario {
				v := canaryVersion(2, 0.2)
				v.RPS = ptr(100.0)
				return withCanary(v)
			}(),
			want: map[string]want{
				"v1.0.0": {rps: 20, errorRate: 0.01, latency: Latency{0.1, 0.4}},
				"v2.0.0": {rps: 50, errorRate: 0.2, latency: Latency{0.1, 0.4}},
			},
		},
		{
			name: "canary without traffic",
			s: func() Scenario {
				v := canaryVersion(1, 0.05)
				v.RPS = ptr(0.0)
				return withCanary(v)
			}(),
			want: map[string]want{
				"v1.0.0": {rps: 20, errorRate: 0.01, latency: Latency{0.1, 0.4}},
				"v2.0.0": {rps: 0},
			},
		},
	}
	const seconds = 60
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, err := newSimulator(tt.s, Options{})
			if err != nil {
				t.Fatalf("newSimulator: %v", err)
			}
			t.Cleanup(func() { _ = sim.Stop() })
			for range seconds * 10 {
				sim.step(100 * time.Millisecond)
			}
			total := map[string]podStats{}
			for _, tg := range sim.Targets() {
				mfs := scrape(t, tg.Address)
				st := statsOf(mfs)
				w := tt.want[tg.Version]
				mean := w.rps * seconds
				if math.Abs(st.requests-mean) > 5*math.Sqrt(mean)+1e-9 {
					t.Errorf("pod %s: %v requests, want about %v", tg.Pod, st.requests, mean)
				}
				if w.rps == 0 && len(mfs) != 0 {
					t.Errorf("pod %s without traffic exposes %d metric families, want none: the seed app creates series on first request", tg.Pod, len(mfs))
				}
				agg := total[tg.Version]
				agg.requests += st.requests
				agg.errors += st.errors
				agg.posts += st.posts
				agg.observed += st.observed
				agg.fast += st.fast
				total[tg.Version] = agg
			}
			for version, st := range total {
				w := tt.want[version]
				if w.rps == 0 {
					continue
				}
				if float64(st.observed) != st.requests {
					t.Errorf("%s: %d observations for %v requests", version, st.observed, st.requests)
				}
				checkShare(t, version+" error share", st.errors, st.requests, w.errorRate)
				checkShare(t, version+" POST share", st.posts, st.requests, postShare)
				d := fitLogNormal(w.latency)
				checkShare(t, version+" share under 250ms", float64(st.fast), st.requests, normalCDF((math.Log(0.25)-d.mu)/d.sigma))
			}
		})
	}
}

// checkShare checks that part/n is p within five binomial standard deviations.
func checkShare(t *testing.T, what string, part, n, p float64) {
	t.Helper()
	if n == 0 {
		t.Errorf("%s: no requests", what)
		return
	}
	if tol := 5 * math.Sqrt(p*(1-p)/n); math.Abs(part/n-p) > tol+1e-9 {
		t.Errorf("%s = %.4f (%v of %v), want %.4f ± %.4f", what, part/n, part, n, p, tol)
	}
}

// TestStepDeterministic checks that the seed alone decides the counters.
func TestStepDeterministic(t *testing.T) {
	run := func(seed uint64) map[string]podStats {
		s := testScenario(3, canaryVersion(1, 0.05))
		s.Seed = seed
		sim, err := newSimulator(s, Options{})
		if err != nil {
			t.Fatalf("newSimulator: %v", err)
		}
		defer func() { _ = sim.Stop() }()
		for range 20 {
			sim.step(100 * time.Millisecond)
		}
		return scrapeAll(t, sim)
	}
	a, b, c := run(7), run(7), run(8)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same seed, different counters:\n%v\n%v", a, b)
	}
	if reflect.DeepEqual(a, c) {
		t.Errorf("different seeds, same counters and pod names: %v", a)
	}
}

// readTargetsFile decodes a file_sd file.
func readTargetsFile(t *testing.T, path string) []targetGroup {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read targets file: %v", err)
	}
	var groups []targetGroup
	if err := json.Unmarshal(data, &groups); err != nil {
		t.Fatalf("decode targets file: %v\n%s", err, data)
	}
	return groups
}

// wantGroups is the targets file content for targets.
func wantGroups(targets []Target) []targetGroup {
	groups := []targetGroup{}
	for _, tg := range targets {
		groups = append(groups, targetGroup{
			Targets: []string{tg.Address},
			Labels: map[string]string{
				"namespace": tg.Namespace, "pod": tg.Pod, "app": tg.App, "version": tg.Version,
				"pod_template_hash": tg.PodTemplateHash,
			},
		})
	}
	return groups
}

func TestApply(t *testing.T) {
	path := filepath.Join(t.TempDir(), "targets.json")
	sim, err := newSimulator(testScenario(3, canaryVersion(1, 0)), Options{TargetsFile: path})
	if err != nil {
		t.Fatalf("newSimulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Stop() })

	before := sim.Targets()
	for _, tg := range before {
		if want := deploymentName(tg.App, tg.Version) + "-" + tg.PodTemplateHash + "-"; !strings.HasPrefix(tg.Pod, want) {
			t.Errorf("pod %q, want prefix %q with its pod template hash", tg.Pod, want)
		}
	}
	if got, want := readTargetsFile(t, path), wantGroups(before); !reflect.DeepEqual(got, want) {
		t.Fatalf("targets file = %+v, want %+v", got, want)
	}
	for range 50 {
		sim.step(100 * time.Millisecond)
	}
	statsBefore := scrapeAll(t, sim)

	// One stable pod goes away, a second canary pod comes and the canary starts failing.
	next := testScenario(2, canaryVersion(2, 1))
	if err := sim.Apply(next); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	after := sim.Targets()
	if len(after) != 4 {
		t.Fatalf("%d targets after Apply, want 4: %+v", len(after), after)
	}
	byKey := func(ts []Target) map[[2]string]Target {
		m := map[[2]string]Target{}
		for _, tg := range ts {
			m[[2]string{tg.Version, strconv.Itoa(tg.Index)}] = tg
		}
		return m
	}
	old, cur := byKey(before), byKey(after)
	for _, k := range [][2]string{{"v1.0.0", "0"}, {"v1.0.0", "1"}, {"v2.0.0", "0"}} {
		if old[k] != cur[k] {
			t.Errorf("pod %v changed from %+v to %+v, want it kept", k, old[k], cur[k])
		}
	}
	if _, ok := cur[[2]string{"v1.0.0", "2"}]; ok {
		t.Errorf("removed pod v1.0.0/2 still listed")
	}
	added, ok := cur[[2]string{"v2.0.0", "1"}]
	if !ok {
		t.Fatalf("new pod v2.0.0/1 missing")
	}
	if got, want := readTargetsFile(t, path), wantGroups(after); !reflect.DeepEqual(got, want) {
		t.Errorf("targets file after Apply = %+v, want %+v", got, want)
	}

	statsAfter := scrapeAll(t, sim)
	for name, st := range statsAfter {
		if name == added.Pod {
			if st != (podStats{}) {
				t.Errorf("new pod %s starts with %+v, want zero counters", name, st)
			}
			continue
		}
		if st != statsBefore[name] {
			t.Errorf("pod %s counters went from %+v to %+v across Apply, want them kept", name, statsBefore[name], st)
		}
	}
	removed := old[[2]string{"v1.0.0", "2"}]
	if resp, err := http.Get("http://" + removed.Address + "/metrics"); err == nil {
		resp.Body.Close()
		t.Errorf("removed pod %s still serves /metrics", removed.Pod)
	}

	// The surviving canary now fails every request: only its 500s grow.
	for range 50 {
		sim.step(100 * time.Millisecond)
	}
	canary := old[[2]string{"v2.0.0", "0"}].Pod
	st := scrapeAll(t, sim)[canary]
	if okBefore, okAfter := statsBefore[canary].requests-statsBefore[canary].errors, st.requests-st.errors; okAfter != okBefore {
		t.Errorf("canary 200s went from %v to %v, want unchanged after errorRate 1", okBefore, okAfter)
	}
	if st.errors <= statsBefore[canary].errors {
		t.Errorf("canary errors stayed at %v, want growth after errorRate 1", st.errors)
	}

	// An invalid scenario changes nothing.
	bad := testScenario(5, canaryVersion(1, 2))
	if err := sim.Apply(bad); err == nil {
		t.Errorf("Apply of an invalid scenario succeeded")
	}
	if got := sim.Targets(); !reflect.DeepEqual(got, after) {
		t.Errorf("targets after a failed Apply = %+v, want %+v", got, after)
	}
	if got := sim.Scenario(); !reflect.DeepEqual(got, next) {
		t.Errorf("scenario after a failed Apply = %+v, want %+v", got, next)
	}
}

func TestStopEmptiesTargets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "targets.json")
	sim, err := Start(context.Background(), testScenario(1, canaryVersion(1, 0)), Options{TargetsFile: path})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	targets := sim.Targets()
	if err := sim.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := sim.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if got := readTargetsFile(t, path); len(got) != 0 {
		t.Errorf("targets file after Stop = %+v, want empty", got)
	}
	for _, tg := range targets {
		if resp, err := http.Get("http://" + tg.Address + "/metrics"); err == nil {
			resp.Body.Close()
			t.Errorf("pod %s still serves /metrics after Stop", tg.Pod)
		}
	}
	if err := sim.Apply(testScenario(1, canaryVersion(1, 0))); !errors.Is(err, ErrStopped) {
		t.Errorf("Apply after Stop = %v, want ErrStopped", err)
	}
}

// TestStartTicks checks the real-time loop: counters grow without manual steps, including after
// a tick change.
func TestStartTicks(t *testing.T) {
	s := testScenario(1, canaryVersion(0, 0))
	s.Apps[0].RPS = 1000
	s.Tick = model.Duration(10 * time.Millisecond)
	sim, err := Start(context.Background(), s, Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = sim.Stop() })
	addr := sim.Targets()[0].Address

	waitForRequests := func(min float64) float64 {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for {
			if n := statsOf(scrape(t, addr)).requests; n >= min {
				return n
			}
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %v requests after 3s", min)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	start := time.Now()
	n := waitForRequests(100)
	// 1000 requests/s: 100 requests take about 100ms of real time, not much less.
	if elapsed := time.Since(start); n > 1000*elapsed.Seconds()*1.5+50 {
		t.Errorf("%v requests after %v, want about 1000/s", n, elapsed)
	}

	s.Tick = model.Duration(5 * time.Millisecond)
	if err := sim.Apply(s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	waitForRequests(n + 100)
}

// TestConcurrentUse runs scrapes, Apply, Targets and the ticker together, for -race to check.
func TestConcurrentUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "targets.json")
	s := testScenario(2, canaryVersion(1, 0.05))
	s.Tick = model.Duration(time.Millisecond)
	sim, err := Start(context.Background(), s, Options{TargetsFile: path})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = sim.Stop() })

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				for _, tg := range sim.Targets() {
					// Pods come and go, so a failed scrape is expected here.
					if resp, err := http.Get("http://" + tg.Address + "/metrics"); err == nil {
						resp.Body.Close()
					}
				}
				_ = sim.Scenario()
			}
		})
	}
	for i := 0; ctx.Err() == nil; i++ {
		next := testScenario(1+i%3, canaryVersion(i%2, 0.01*float64(i%5)))
		next.Tick = model.Duration(time.Duration(1+i%2) * time.Millisecond)
		if err := sim.Apply(next); err != nil {
			t.Errorf("Apply: %v", err)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	if got, want := readTargetsFile(t, path), wantGroups(sim.Targets()); !reflect.DeepEqual(got, want) {
		t.Errorf("targets file = %+v, want %+v", got, want)
	}
}

func TestOptionsAddresses(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	base := free.Addr().(*net.TCPAddr).Port
	free.Close()
	tests := []struct {
		name     string
		opts     Options
		wantHost string
		wantBase int
	}{
		{name: "defaults", opts: Options{}, wantHost: "127.0.0.1"},
		{name: "wildcard host advertises loopback", opts: Options{Host: "0.0.0.0"}, wantHost: "127.0.0.1"},
		{name: "target host", opts: Options{TargetHost: "host.docker.internal"}, wantHost: "host.docker.internal"},
		{name: "base port", opts: Options{BasePort: base}, wantHost: "127.0.0.1", wantBase: base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, err := newSimulator(testScenario(2, canaryVersion(0, 0)), tt.opts)
			// Another test may take a port of the range between the probe and the start: try
			// other ranges rather than skip.
			for attempt := 0; err != nil && tt.wantBase != 0 && attempt < 5; attempt++ {
				probe, lerr := net.Listen("tcp", "127.0.0.1:0")
				if lerr != nil {
					t.Fatalf("listen: %v", lerr)
				}
				tt.wantBase = probe.Addr().(*net.TCPAddr).Port
				probe.Close()
				tt.opts.BasePort = tt.wantBase
				sim, err = newSimulator(testScenario(2, canaryVersion(0, 0)), tt.opts)
			}
			if err != nil {
				t.Fatalf("newSimulator: %v", err)
			}
			defer func() { _ = sim.Stop() }()
			for i, tg := range sim.Targets() {
				host, port, err := net.SplitHostPort(tg.Address)
				if err != nil {
					t.Fatalf("address %q: %v", tg.Address, err)
				}
				if host != tt.wantHost {
					t.Errorf("target host = %q, want %q", host, tt.wantHost)
				}
				if tt.wantBase != 0 && port != strconv.Itoa(tt.wantBase+i) {
					t.Errorf("pod %d port = %s, want %d", i, port, tt.wantBase+i)
				}
				if tt.opts.TargetHost == "" {
					scrape(t, tg.Address)
				}
			}
		})
	}
}
