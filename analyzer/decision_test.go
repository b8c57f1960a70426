package analyzer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// readings is one reading stream: an app's cumulative counters as one deterministic function of
// time, so that a reading at an instant (the gate) and a range read (Simulate, Backtest) give
// the same numbers. The counters move cell by cell, each cell's traffic drawn from a source
// seeded by the cell's index: Poisson requests, binomial errors, log-normal latencies (median
// 70 ms, p99 700 ms, the same for both versions) in the seed app's buckets.
type readings struct {
	origin time.Time
	cell   time.Duration
	rps    float64 // per version
	pb     float64
	// pc is the canary's error rate at a time since origin.
	pc   func(since time.Duration) float64
	seed uint64

	mu  sync.Mutex
	cum []cellCounts // cum[k]: the counters at origin + k cells
}

// readingsSlow scales the latencies of latencyShare so that p99 falls inside a bucket.
const readingsSlow = 0.7

type cellCounts struct {
	req, errs [2]float64
	buckets   [2][]float64 // cumulative, at seedBuckets then +Inf
}

func (c cellCounts) plus(d cellCounts, f float64) cellCounts {
	out := c
	for v := range 2 {
		out.req[v] += f * d.req[v]
		out.errs[v] += f * d.errs[v]
		out.buckets[v] = make([]float64, len(seedBuckets)+1)
		for i := range out.buckets[v] {
			if c.buckets[v] != nil {
				out.buckets[v][i] = c.buckets[v][i]
			}
			out.buckets[v][i] += f * d.buckets[v][i]
		}
	}
	return out
}

// increase is the traffic of cell k.
func (r *readings) increase(k int) cellCounts {
	rng := rand.New(rand.NewPCG(r.seed, uint64(k)))
	var c cellCounts
	mean := r.rps * r.cell.Seconds()
	lat := policies.Metric{Kind: policies.KindLatency}
	for v, p := range []float64{r.pb, r.pc(time.Duration(k) * r.cell)} {
		n := binomial(rng, 1e9, mean/1e9)
		c.req[v] = n
		c.errs[v] = binomial(rng, n, p)
		for _, b := range draw(rng, lat, seedBuckets, n, 0, readingsSlow).Buckets {
			c.buckets[v] = append(c.buckets[v], b.Count)
		}
	}
	return c
}

// at is the counters at time t: whole cells summed, the cell t falls in counted pro rata.
func (r *readings) at(t time.Time) cellCounts {
	d := t.Sub(r.origin)
	if d < 0 {
		panic("readings: a time before the origin")
	}
	k := int(d / r.cell)
	frac := float64(d%r.cell) / float64(r.cell)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cum) == 0 {
		r.cum = []cellCounts{cellCounts{}.plus(cellCounts{buckets: [2][]float64{make([]float64, len(seedBuckets)+1), make([]float64, len(seedBuckets)+1)}}, 0)}
	}
	for len(r.cum) <= k+1 {
		r.cum = append(r.cum, r.cum[len(r.cum)-1].plus(r.increase(len(r.cum)-1), 1))
	}
	return r.cum[k].plus(r.increase(k), frac)
}

func (r *readings) Observe(context.Context, metrics.Query, time.Time) (metrics.Observation, error) {
	return metrics.Observation{}, errors.New("windowed queries are not played")
}

func (r *readings) Counters(_ context.Context, q metrics.Query, at time.Time) (metrics.Snapshot, error) {
	c := r.at(at)
	snap := metrics.Snapshot{Time: at}
	for v, name := range []string{"b", "c"} {
		canary := v == 1
		switch q.Kind {
		case policies.KindErrors:
			snap.Samples = append(snap.Samples,
				metrics.Sample{Key: name + "-req", Canary: canary, Part: "requests", Value: c.req[v]},
				metrics.Sample{Key: name + "-err", Canary: canary, Part: "errors", Value: c.errs[v]})
		case policies.KindLatency:
			for i, le := range append(slices.Clone(seedBuckets), math.Inf(1)) {
				snap.Samples = append(snap.Samples, metrics.Sample{Key: fmt.Sprintf("%s-%g", name, le), Canary: canary, Part: "bucket", LE: le, Value: c.buckets[v][i]})
			}
		}
	}
	return snap, nil
}

func (r *readings) CountersRange(ctx context.Context, q metrics.Query, start, end time.Time, step time.Duration) ([]metrics.Snapshot, error) {
	return countersRange(ctx, r, q, start, end, step)
}

// decided is one path's decision: what and when, and the numbers behind it.
type decided struct {
	action Action
	at     time.Time
	res    Result
}

func (d decided) String() string { return fmt.Sprintf("%s at %s", d.action, d.at.Format("15:04:05")) }

// TestOneDecision feeds one reading stream to the gate's engine, to Simulate (report's replay)
// and to Backtest: all three must decide the same thing at the same time, on the same numbers.
func TestOneDecision(t *testing.T) {
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC) // on the 30 s grid
	constant := func(p float64) func(time.Duration) float64 { return func(time.Duration) float64 { return p } }
	regressAfter := func(d time.Duration) func(time.Duration) float64 {
		return func(since time.Duration) float64 {
			if since >= time.Hour+d { // the origin is an hour before the canary starts
				return 0.05
			}
			return 0.01
		}
	}
	tests := []struct {
		name  string
		judge policies.Judge
		pc    func(time.Duration) float64
		want  Action
		// after and before bound when the decision falls, after the canary started.
		after, before time.Duration
		// advances is set when the canary advances before the decision (see zeroInterval).
		advances bool
	}{
		{
			name: "healthy: promoted after every step's stepDuration", judge: policies.JudgeSequential, pc: constant(0.01),
			want: Promote, after: 15 * time.Minute, before: 30 * time.Minute, advances: true,
		},
		{name: "5x errors: rolled back", judge: policies.JudgeSequential, pc: constant(0.05), want: Rollback, before: 5 * time.Minute},
		{
			// Mid-step, after a first pass of the promote side. (A regression after a long
			// healthy run is tempered as dispersion and detected late: see issue 12.)
			name: "regressing after 3 minutes: rolled back", judge: policies.JudgeSequential, pc: regressAfter(3 * time.Minute),
			want: Rollback, after: 3 * time.Minute, before: 15 * time.Minute,
		},
		{
			name: "mannwhitney, healthy: promoted", judge: policies.JudgeMannWhitney, pc: constant(0.01),
			want: Promote, after: 15 * time.Minute, before: 30 * time.Minute, advances: true,
		},
		{name: "mannwhitney, 5x errors: rolled back", judge: policies.JudgeMannWhitney, pc: constant(0.05), want: Rollback, before: 5 * time.Minute},
		{
			name: "mannwhitney, regressing after 7 minutes: rolled back", judge: policies.JudgeMannWhitney, pc: regressAfter(7 * time.Minute),
			want: Rollback, after: 7 * time.Minute, before: 15 * time.Minute, advances: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := recordPolicy(t)
			p.Spec.Analysis.Judge = tt.judge
			maxDuration := time.Duration(p.Spec.Analysis.MaxDuration)
			src := &readings{origin: start.Add(-time.Hour), cell: 10 * time.Second, rps: 100, pb: 0.01, pc: tt.pc, seed: 42}
			ctx := context.Background()

			// (a) The gate: the engine on a fake clock, the canary Ready at once.
			rel := &fakeRelease{steps: 3, step: -1}
			c, _ := streamCanary(p, rel, src, start)
			rep, err := c.Run(ctx, start.Add(maxDuration))
			if err != nil {
				t.Fatal(err)
			}
			var gate decided
			for _, tk := range rep.Ticks {
				if a := tk.Decision.Action; a == Promote || a == Rollback || a == Stop {
					gate = decided{a, tk.Time, *tk.Result}
					break
				}
			}

			// (b) Simulate over the canary's whole time: what report's replay calls.
			a := New(src, zerolog.Nop())
			run, err := a.Simulate(ctx, p, start, start.Add(maxDuration))
			if err != nil {
				t.Fatal(err)
			}
			sim := decided{run.Decision.Action, run.End, run.Result}

			// (c) Backtest with one canary starting at start.
			bt, err := a.Backtest(ctx, p, start, start.Add(maxDuration), maxDuration, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(bt.Runs) != 1 {
				t.Fatalf("backtest of one canary: %d runs", len(bt.Runs))
			}
			back := decided{bt.Runs[0].Decision.Action, bt.Runs[0].End, bt.Runs[0].Result}
			t.Logf("gate: %s; simulate: %s; backtest: %s (%s)", gate, sim, back, run.Decision.Reason)

			switch {
			case gate.action == tt.want:
				if took := gate.at.Sub(start); took < tt.after || took > tt.before {
					t.Errorf("decided after %s, want between %s and %s", took, tt.after, tt.before)
				}
			default:
				t.Fatalf("the gate decided %s (outcome %s: %s), want %s", gate, rep.Outcome, rep.Reason, tt.want)
			}
			for _, other := range []struct {
				name string
				d    decided
			}{{"simulate", sim}, {"backtest", back}} {
				if other.d.action != gate.action {
					t.Errorf("%s decided %s, the gate %s", other.name, other.d, gate)
					continue
				}
				var errs []error
				if !other.d.at.Equal(gate.at) {
					errs = append(errs, fmt.Errorf("%s decided %s, the gate %s", other.name, other.d, gate))
				} else if err := sameNumbers(gate.res, other.d.res); err != nil {
					errs = append(errs, fmt.Errorf("%s decided on other numbers than the gate: %w", other.name, err))
				}
				for _, err := range errs {
					t.Error(err)
				}
				if err := sameIntervals(gate.res, other.d.res); err != nil {
					t.Errorf("%s: %v", other.name, err)
				}
			}
		})
	}
}

// sameNumbers compares the verdicts, p-values and counts behind two decisions.
func sameNumbers(a, b Result) error {
	if a.Verdict != b.Verdict || len(a.Metrics) != len(b.Metrics) {
		return fmt.Errorf("%s with %d metrics, then %s with %d", a.Verdict, len(a.Metrics), b.Verdict, len(b.Metrics))
	}
	for i := range a.Metrics {
		x, y := a.Metrics[i], b.Metrics[i]
		if x.Verdict != y.Verdict || x.Stats == nil || y.Stats == nil ||
			fmt.Sprint(x.Stats.PValue, x.Stats.PromoteP, x.Stats.Estimate, x.CanaryRequests, x.CanaryErrors, x.BaselineRequests) !=
				fmt.Sprint(y.Stats.PValue, y.Stats.PromoteP, y.Stats.Estimate, y.CanaryRequests, y.CanaryErrors, y.BaselineRequests) {
			return fmt.Errorf("metric %s: %s %+v, then %s %+v", x.Name, x.Verdict, x.Stats, y.Verdict, y.Stats)
		}
	}
	return nil
}

// sameIntervals compares how many intervals two decisions' judges saw.
func sameIntervals(a, b Result) error {
	for i := range min(len(a.Metrics), len(b.Metrics)) {
		x, y := a.Metrics[i].Stats, b.Metrics[i].Stats
		if x != nil && y != nil && x.Intervals != y.Intervals {
			return fmt.Errorf("metric %s judged after %d intervals, then %d", a.Metrics[i].Name, x.Intervals, y.Intervals)
		}
	}
	return nil
}
