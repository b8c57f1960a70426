package analyzer

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// counterSim plays an app's counters: each read advances them to the time asked, with Poisson
// traffic and binomial errors; latency is the same for both versions.
type counterSim struct {
	rng       *rand.Rand
	rps       float64 // per version
	pb, pc    float64 // error rates
	last      time.Time
	req, errs [2]float64
	buckets   [2][3]float64 // le 0.25, 1, +Inf
	down      func(at time.Time) bool
	resetAt   time.Time // the canary restarts then: its counters drop to 0
	// warmUntil: the canary's errors are at warmPC until then (new pods warming up).
	warmUntil time.Time
	warmPC    float64
	wasReset  bool
	// past keeps the counters at every time read, so that a second metric's range query
	// over the same times sees the same history.
	past map[time.Time]simState
}

type simState struct {
	req, errs [2]float64
	buckets   [2][3]float64
}

// at returns the counters at time at: read before, or advanced from the latest reading.
func (s *counterSim) at(at time.Time) simState {
	if st, ok := s.past[at]; ok {
		return st
	}
	if s.past == nil {
		s.past = map[time.Time]simState{}
	}
	if s.last.IsZero() {
		s.last = at.Add(-time.Minute)
	}
	dt := at.Sub(s.last).Seconds()
	if dt <= 0 {
		panic("counterSim: a time before the last one that was never read")
	}
	s.last = at
	if !s.resetAt.IsZero() && !s.wasReset && !at.Before(s.resetAt) {
		s.wasReset = true
		s.req[1], s.errs[1], s.buckets[1] = 0, 0, [3]float64{}
	}
	pc := s.pc
	if at.Before(s.warmUntil) {
		pc = s.warmPC
	}
	for v, p := range []float64{s.pb, pc} {
		n := binomial(s.rng, 1e9, s.rps*dt/1e9)
		s.req[v] += n
		s.errs[v] += binomial(s.rng, n, p)
		fast := binomial(s.rng, n, 0.9)
		mid := binomial(s.rng, n-fast, 0.9)
		s.buckets[v][0] += fast
		s.buckets[v][1] += fast + mid
		s.buckets[v][2] += n
	}
	st := simState{s.req, s.errs, s.buckets}
	s.past[at] = st
	return st
}

func (s *counterSim) Observe(context.Context, metrics.Query, time.Time) (metrics.Observation, error) {
	return metrics.Observation{}, errors.New("windowed queries are not played")
}

func (s *counterSim) Counters(_ context.Context, q metrics.Query, at time.Time) (metrics.Snapshot, error) {
	if s.down != nil && s.down(at) {
		return metrics.Snapshot{}, metrics.ErrUnavailable
	}
	st := s.at(at)
	snap := metrics.Snapshot{Time: at}
	for v, name := range []string{"b", "c"} {
		canary := v == 1
		switch q.Kind {
		case policies.KindErrors:
			snap.Samples = append(snap.Samples,
				metrics.Sample{Key: name + "-req", Canary: canary, Part: "requests", Value: st.req[v]},
				metrics.Sample{Key: name + "-err", Canary: canary, Part: "errors", Value: st.errs[v]})
		case policies.KindLatency:
			for i, le := range []float64{0.25, 1, math.Inf(1)} {
				snap.Samples = append(snap.Samples, metrics.Sample{Key: name + model.SampleValue(le).String(), Canary: canary, Part: "bucket", LE: le, Value: st.buckets[v][i]})
			}
		}
	}
	return snap, nil
}

func (s *counterSim) CountersRange(ctx context.Context, q metrics.Query, start, end time.Time, step time.Duration) ([]metrics.Snapshot, error) {
	return countersRange(ctx, s, q, start, end, step)
}

// countersRange is CountersRange for a fake whose Counters answers at any time: each step read
// as an instant.
func countersRange(ctx context.Context, c CounterReader, q metrics.Query, start, end time.Time, step time.Duration) ([]metrics.Snapshot, error) {
	var out []metrics.Snapshot
	for t := start; !t.After(end); t = t.Add(step) {
		s, err := c.Counters(ctx, q, t)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func sequentialPolicy(t *testing.T) *policies.Policy {
	t.Helper()
	ps, err := policies.LoadFile("../policies/examples/my-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0]
	p.Spec.Strategy.Steps = []string{"1", "50%", "100%"}
	p.Spec.Strategy.StepDuration = model.Duration(2 * time.Minute)
	p.Spec.Analysis.Interval = model.Duration(10 * time.Second)
	p.Spec.Analysis.MaxDuration = model.Duration(30 * time.Minute)
	return p
}

func TestCanaryRunSequential(t *testing.T) {
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		sim       *counterSim
		want      Outcome
		wantSteps int
		maxTime   time.Duration
		minTime   time.Duration
		warm      time.Duration // the policy's warm-up: 0 the default (one interval), -1 none
	}{
		{name: "2x errors are rolled back", sim: &counterSim{rps: 50, pb: 0.01, pc: 0.02}, want: OutcomeRolledBack, wantSteps: 1, maxTime: 10 * time.Minute},
		{name: "a healthy canary is promoted", sim: &counterSim{rps: 50, pb: 0.02, pc: 0.02}, want: OutcomePromoted, wantSteps: 3, maxTime: 25 * time.Minute},
		{name: "a canary restarted mid-analysis is not failed for it", sim: &counterSim{rps: 50, pb: 0.02, pc: 0.02, resetAt: start.Add(3 * time.Minute)}, want: OutcomePromoted, wantSteps: 3, maxTime: 25 * time.Minute},
		{
			name: "10x errors in a warm-up of 1m: left out, promoted",
			sim:  &counterSim{rps: 50, pb: 0.02, pc: 0.02, warmUntil: start.Add(time.Minute), warmPC: 0.2},
			warm: time.Minute, want: OutcomePromoted, wantSteps: 3, maxTime: 25 * time.Minute,
		},
		{
			name: "10x errors in the first minute with no warm-up: rolled back",
			sim:  &counterSim{rps: 50, pb: 0.02, pc: 0.02, warmUntil: start.Add(time.Minute), warmPC: 0.2},
			warm: -1, want: OutcomeRolledBack, wantSteps: 1, maxTime: 2 * time.Minute,
		},
		{
			name: "Prometheus down for five minutes: no verdict meanwhile, then carries on",
			sim: &counterSim{rps: 50, pb: 0.01, pc: 0.05, down: func(at time.Time) bool {
				return at.Sub(start) < 5*time.Minute
			}},
			want: OutcomeRolledBack, wantSteps: 1, minTime: 5 * time.Minute, maxTime: 8 * time.Minute,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.sim.rng = rand.New(rand.NewPCG(11, 12))
			p := sequentialPolicy(t)
			if tt.warm != 0 {
				w := model.Duration(max(tt.warm, 0))
				p.Spec.Analysis.Warmup = &w
			}
			rel := &fakeRelease{steps: 3, step: -1}
			clk := &clock{t: start}
			c := &Canary{Policy: p, Release: rel, Analyzer: New(tt.sim, zerolog.Nop()), Logger: zerolog.Nop(), Now: clk.now, Sleep: clk.sleep}
			rep, err := c.Run(context.Background(), start.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Outcome != tt.want {
				t.Fatalf("outcome %s (%s), want %s", rep.Outcome, rep.Reason, tt.want)
			}
			if len(rel.setSteps) != tt.wantSteps {
				t.Errorf("steps %v, want %d", rel.setSteps, tt.wantSteps)
			}
			if took := clk.now().Sub(start); took > tt.maxTime || took < tt.minTime {
				t.Errorf("took %s, want %s to %s", took, tt.minTime, tt.maxTime)
			}
			prog, err := DecodeProgress(rel.progress, p)
			if err != nil || prog.Evidence == nil || prog.Evidence.Intervals == 0 {
				t.Fatalf("the evidence is not in the progress record: %v", err)
			}
			t.Logf("progress record: %d bytes", len(rel.progress))
			if len(rel.progress) > 100_000 {
				t.Errorf("progress record is %d bytes; annotations hold 256 KiB in all", len(rel.progress))
			}
		})
	}
}

func TestCanaryResumesWithItsEvidence(t *testing.T) {
	// A gate that dies mid-analysis: the next one reads the evidence back from the record (as
	// of its last write: a transition or the checkpoint) and goes on from it rather than from
	// nothing.
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	p := sequentialPolicy(t)
	p.Spec.Strategy.StepDuration = model.Duration(10 * time.Minute)
	sim := &counterSim{rng: rand.New(rand.NewPCG(1, 1)), rps: 20, pb: 0.01, pc: 0.015}
	rel := &fakeRelease{steps: 3, step: -1}
	clk := &clock{t: start}
	killed := errors.New("killed")
	c := &Canary{Policy: p, Release: rel, Analyzer: New(sim, zerolog.Nop()), Logger: zerolog.Nop(), Now: clk.now,
		Sleep: func(ctx context.Context, d time.Duration) error {
			if clk.now().Sub(start) >= 6*time.Minute {
				return killed
			}
			return clk.sleep(ctx, d)
		}}
	if _, err := c.Run(context.Background(), start.Add(time.Hour)); !errors.Is(err, killed) {
		t.Fatalf("the first run ended with %v, want it killed", err)
	}
	before, err := DecodeProgress(rel.progress, p)
	if err != nil {
		t.Fatal(err)
	}
	n := before.Evidence.Intervals
	if n < 20 {
		t.Fatalf("%d intervals in the record after six minutes, want the 5-minute checkpoint's", n)
	}
	c2 := &Canary{Policy: p, Release: rel, Analyzer: New(sim, zerolog.Nop()), Logger: zerolog.Nop(), Now: clk.now, Sleep: clk.sleep}
	var ticks int
	c2.OnTick = func(tk Tick) {
		ticks++
		if ticks == 2 && tk.Result != nil {
			for _, m := range tk.Result.Metrics {
				if m.Stats == nil || m.Stats.Intervals <= n {
					t.Errorf("metric %s after resuming: intervals %v, want more than the %d recorded", m.Name, m.Stats, n)
				}
			}
		}
	}
	rep, err := c2.Run(context.Background(), start.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if ticks < 2 || slices.Contains(rel.events[1:], "CanaryStarted") || len(rel.setSteps) == 0 || rel.setSteps[0] != 0 || slices.Contains(rel.setSteps[1:], 0) {
		t.Errorf("after %d ticks: events %v, steps %v; want the canary resumed, not started again", ticks, rel.events, rel.setSteps)
	}
	if rep.Outcome != OutcomeRolledBack {
		t.Errorf("outcome %s after %s (%s), want rolled back", rep.Outcome, clk.now().Sub(start), rep.Reason)
	}
}

func TestReplay(t *testing.T) {
	p := sequentialPolicy(t)
	sim := &counterSim{rng: rand.New(rand.NewPCG(2, 2)), rps: 200, pb: 0.01, pc: 0.05}
	end := time.Date(2026, 11, 22, 3, 10, 0, 0, time.UTC)
	a := New(sim, zerolog.Nop())
	res, ev, err := a.Replay(context.Background(), p, end.Add(-5*time.Minute), end)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != Fail || ev.Intervals != 30 {
		t.Fatalf("verdict %s after %d intervals (%s)", res.Verdict, ev.Intervals, res.Reason)
	}
	m := res.Metrics[0]
	if m.Stats == nil || !(float64(m.Stats.Low) > 1) || !(float64(m.Stats.PValue) <= float64(m.Stats.Alpha)) {
		t.Fatalf("error-rate stats %+v", m.Stats)
	}
	if float64(m.CanaryRequests) < 5000 || len(m.History) != 30 {
		t.Errorf("canary requests %v, history %d", m.CanaryRequests, len(m.History))
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatalf("result does not encode: %v", err)
	}
	if len(b) == 0 {
		t.Fatal("empty JSON")
	}
}
