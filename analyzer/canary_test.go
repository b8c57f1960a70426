package analyzer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// fakeRelease is a release in memory: it counts what is done to it.
type fakeRelease struct {
	steps     int
	step      int // -1 before the first step
	setSteps  []int
	promotes  int
	rollbacks int
	prepares  int
	progress  string
	saves     []string // every record written, in order
	attempts  int      // SaveProgress calls, written or not
	saveErr   func(n int, s string) error
	events    []string
	messages  []string
	ready     func(step int) bool
	// inPlace says whether step i is in place at SetStep's calls-th call for it (nil: at once),
	// as blue/green's switch waits for every canary pod to be Ready.
	inPlace   func(step, calls int) bool
	stepCalls map[int]int
	problem   string
	outsideFP string // set to simulate a change made by someone else
	changedBy string // who, as ChangedBy names them
	promoteAt int    // Promote reports done on this call (1 = at once)
	eventKeys map[string]bool
	// state is what Prepare returns; badState counts the actions handed any other state.
	state    map[string]string
	badState int
	// commands are the commands people left (see DecodeCommands); template the canary's pod
	// template (default "t1").
	commands string
	template string
	used     *policies.Policy
}

func (f *fakeRelease) Target(context.Context) (string, string, string, error) {
	t := f.template
	if t == "" {
		t = "t1"
	}
	if f.used != nil {
		return f.used.Spec.Target.Baseline.Version, f.used.Spec.Target.Canary.Version, t, nil
	}
	return "v1", "v2", t, nil
}
func (f *fakeRelease) Use(p *policies.Policy) error             { f.used = p; return nil }
func (f *fakeRelease) Commands(context.Context) (string, error) { return f.commands, nil }

func (f *fakeRelease) Steps() int { return f.steps }

// Prepare returns the state a strategy remembers (e.g. the baseline's replicas).
func (f *fakeRelease) Prepare(context.Context) (map[string]string, error) {
	f.prepares++
	if f.state == nil {
		f.state = map[string]string{"base": "10"}
	}
	return maps.Clone(f.state), nil
}

// checkState counts an action handed a state other than the one Prepare gave.
func (f *fakeRelease) checkState(state map[string]string) {
	want := f.state
	if want == nil {
		want = map[string]string{"base": "10"}
	}
	if !maps.Equal(state, want) {
		f.badState++
	}
}

func (f *fakeRelease) SetStep(_ context.Context, i int, state map[string]string) (bool, error) {
	f.checkState(state)
	if f.stepCalls == nil {
		f.stepCalls = map[int]int{}
	}
	f.stepCalls[i]++
	if f.inPlace != nil && !f.inPlace(i, f.stepCalls[i]) {
		return false, nil
	}
	f.setSteps = append(f.setSteps, i)
	f.step = i
	return true, nil
}
func (f *fakeRelease) Promote(_ context.Context, state map[string]string) (bool, error) {
	f.checkState(state)
	f.promotes++
	return f.promotes >= max(f.promoteAt, 1), nil
}
func (f *fakeRelease) Rollback(_ context.Context, state map[string]string) (bool, error) {
	f.checkState(state)
	f.rollbacks++
	return true, nil
}
func (f *fakeRelease) Health(_ context.Context, i int, state map[string]string) (bool, string, error) {
	f.checkState(state)
	if f.ready != nil && !f.ready(i) {
		return false, f.problem, nil
	}
	return true, f.problem, nil
}
func (f *fakeRelease) ChangedBy(context.Context) (string, error) { return f.changedBy, nil }
func (f *fakeRelease) Fingerprint(context.Context, bool) (string, error) {
	if f.outsideFP != "" {
		return f.outsideFP, nil
	}
	return fmt.Sprintf("step=%d promoted=%t rolledback=%t", f.step, f.promotes > 0, f.rollbacks > 0), nil
}
func (f *fakeRelease) Progress(context.Context) (string, error) { return f.progress, nil }

// SaveProgress keeps the record, unless saveErr refuses the n-th attempt (1-based).
func (f *fakeRelease) SaveProgress(_ context.Context, s string) error {
	f.attempts++
	if f.saveErr != nil {
		if err := f.saveErr(f.attempts, s); err != nil {
			return err
		}
	}
	f.saves = append(f.saves, s)
	f.progress = s
	return nil
}

// Event keeps one Event per key, as the API server does with coalmine's named Events.
func (f *fakeRelease) Event(_ context.Context, key string, _ bool, r, msg string) error {
	if f.eventKeys == nil {
		f.eventKeys = map[string]bool{}
	}
	if !f.eventKeys[key] {
		f.eventKeys[key] = true
		f.events = append(f.events, r)
		f.messages = append(f.messages, msg)
	}
	return nil
}

// clock is a fake clock that moves only when the engine sleeps.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }
func (c *clock) sleep(_ context.Context, d time.Duration) error {
	c.t = c.t.Add(d)
	return nil
}

func gatePolicy(t *testing.T) *policies.Policy {
	t.Helper()
	p := examplePolicy(t)
	p.Spec.Strategy.Steps = []string{"1", "50%", "100%"}
	p.Spec.Strategy.StepDuration = model.Duration(2 * time.Minute)
	p.Spec.Analysis.Interval = model.Duration(30 * time.Second)
	p.Spec.Analysis.MaxDuration = model.Duration(30 * time.Minute)
	return p
}

type timedObserver struct {
	obs func(q metrics.Query, at time.Time) (metrics.Observation, error)
}

func (o timedObserver) Observe(_ context.Context, q metrics.Query, at time.Time) (metrics.Observation, error) {
	return o.obs(q, at)
}

func healthyObs(q metrics.Query) metrics.Observation {
	if q.Kind == policies.KindErrors {
		return errorsObs(1000, 10, 100, 1)
	}
	b := []metrics.Bucket{{UpperBound: 0.25, Count: 900}, {UpperBound: 1, Count: 1000}, {UpperBound: posInf(), Count: 1000}}
	return latencyObs(b, b)
}

func badObs(q metrics.Query) metrics.Observation {
	if q.Kind == policies.KindErrors {
		return errorsObs(1000, 10, 100, 5)
	}
	return healthyObs(q)
}

func newCanary(t *testing.T, p *policies.Policy, rel *fakeRelease, obs func(q metrics.Query, at time.Time) (metrics.Observation, error)) (*Canary, *clock) {
	clk := &clock{t: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)}
	return &Canary{
		Policy: p, Release: rel, Analyzer: New(timedObserver{obs}, zerolog.Nop()), Logger: zerolog.Nop(),
		Now: clk.now, Sleep: clk.sleep,
	}, clk
}

func TestCanaryRun(t *testing.T) {
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	unavailable := fmt.Errorf("%w: connection refused", metrics.ErrUnavailable)
	tests := []struct {
		name          string
		rel           *fakeRelease
		obs           func(q metrics.Query, at time.Time) (metrics.Observation, error)
		onInconc      policies.InconclusiveAction
		want          Outcome
		wantSteps     []int
		wantPromotes  bool
		wantRollbacks bool
		wantEvents    []string
	}{
		{
			name: "healthy canary goes through every step and is promoted",
			rel:  &fakeRelease{steps: 3},
			obs:  func(q metrics.Query, _ time.Time) (metrics.Observation, error) { return healthyObs(q), nil },
			want: OutcomePromoted, wantSteps: []int{0, 1, 2}, wantPromotes: true,
			wantEvents: []string{"CanaryStarted", "CanaryStepAdvanced", "CanaryStepAdvanced", "CanaryPromoted"},
		},
		{
			name: "5x errors roll back at the first step",
			rel:  &fakeRelease{steps: 3},
			obs:  func(q metrics.Query, _ time.Time) (metrics.Observation, error) { return badObs(q), nil },
			want: OutcomeRolledBack, wantSteps: []int{0}, wantRollbacks: true,
			wantEvents: []string{"CanaryStarted", "CanaryRolledBack"},
		},
		{
			name: "errors starting at step 2 roll back there",
			rel:  &fakeRelease{steps: 3},
			obs: func(q metrics.Query, at time.Time) (metrics.Observation, error) {
				if at.Sub(start) > 3*time.Minute {
					return badObs(q), nil
				}
				return healthyObs(q), nil
			},
			want: OutcomeRolledBack, wantSteps: []int{0, 1}, wantRollbacks: true,
		},
		{
			name: "pods never Ready: rolled back at readyTimeout with no request errors at all",
			rel:  &fakeRelease{steps: 3, ready: func(int) bool { return false }},
			obs:  func(q metrics.Query, _ time.Time) (metrics.Observation, error) { return healthyObs(q), nil },
			want: OutcomeRolledBack, wantSteps: []int{0}, wantRollbacks: true,
		},
		{
			name: "a step never in place (blue/green's canary pods never all Ready): rolled back at readyTimeout, never switched",
			rel:  &fakeRelease{steps: 3, inPlace: func(int, int) bool { return false }},
			obs:  func(q metrics.Query, _ time.Time) (metrics.Observation, error) { return healthyObs(q), nil },
			want: OutcomeRolledBack, wantSteps: []int{}, wantRollbacks: true,
			wantEvents: []string{"CanaryRolledBack"},
		},
		{
			name: "a stalled rollout fails whatever the metrics say",
			rel:  &fakeRelease{steps: 3, problem: "Deployment my-app: ProgressDeadlineExceeded"},
			obs:  func(q metrics.Query, _ time.Time) (metrics.Observation, error) { return healthyObs(q), nil },
			want: OutcomeRolledBack, wantSteps: []int{0}, wantRollbacks: true,
		},
		{
			name: "prometheus down the whole time: neither promoted nor rolled back, unavailable at the deadline",
			rel:  &fakeRelease{steps: 3},
			obs:  func(metrics.Query, time.Time) (metrics.Observation, error) { return metrics.Observation{}, unavailable },
			want: OutcomeUnavailable, wantSteps: []int{0},
		},
		{
			name: "prometheus down for a while, then back: goes on and promotes",
			rel:  &fakeRelease{steps: 3},
			obs: func(q metrics.Query, at time.Time) (metrics.Observation, error) {
				if d := at.Sub(start); d > time.Minute && d < 6*time.Minute {
					return metrics.Observation{}, unavailable
				}
				return healthyObs(q), nil
			},
			want: OutcomePromoted, wantSteps: []int{0, 1, 2}, wantPromotes: true,
		},
		{
			name: "no data until the deadline: held as it is",
			rel:  &fakeRelease{steps: 3},
			obs: func(q metrics.Query, _ time.Time) (metrics.Observation, error) {
				return metrics.Observation{Kind: q.Kind, Baseline: metrics.Arm{Present: true, Requests: 1000}, Canary: metrics.Arm{Version: "v2.0.0"}}, nil
			},
			want: OutcomeInconclusive, wantSteps: []int{0},
			wantEvents: []string{"CanaryStarted", "CanaryInconclusive"},
		},
		{
			name: "no data until the deadline, onInconclusive rollback",
			rel:  &fakeRelease{steps: 3},
			obs: func(q metrics.Query, _ time.Time) (metrics.Observation, error) {
				return metrics.Observation{Kind: q.Kind, Baseline: metrics.Arm{Present: true, Requests: 1000}, Canary: metrics.Arm{Version: "v2.0.0"}}, nil
			},
			onInconc: policies.InconclusiveRollback,
			want:     OutcomeInconclusive, wantSteps: []int{0}, wantRollbacks: true,
			wantEvents: []string{"CanaryStarted", "CanaryRolledBackAtDeadline"},
		},
		{
			name: "someone scales the canary by hand: coalmine stops and does not fight",
			rel:  &fakeRelease{steps: 3, outsideFP: "my-app-v2=7"},
			obs:  func(q metrics.Query, _ time.Time) (metrics.Observation, error) { return healthyObs(q), nil },
			want: OutcomeStopped, wantSteps: []int{0},
			wantEvents: []string{"CanaryStarted", "CanaryStopped"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := gatePolicy(t)
			if tt.onInconc != "" {
				p.Spec.Analysis.OnInconclusive = tt.onInconc
			}
			tt.rel.step = -1
			c, clk := newCanary(t, p, tt.rel, tt.obs)
			if tt.rel.outsideFP != "" {
				// the hand-made change happens after coalmine's first step
				fp := tt.rel.outsideFP
				tt.rel.outsideFP = ""
				c.OnTick = nil
				c.Sleep = func(ctx context.Context, d time.Duration) error { tt.rel.outsideFP = fp; return clk.sleep(ctx, d) }
			}
			rep, err := c.Run(context.Background(), clk.now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Outcome != tt.want {
				t.Fatalf("outcome %s (%s), want %s", rep.Outcome, rep.Reason, tt.want)
			}
			if fmt.Sprint(tt.rel.setSteps) != fmt.Sprint(tt.wantSteps) {
				t.Errorf("steps applied %v, want %v (each once)", tt.rel.setSteps, tt.wantSteps)
			}
			if (tt.rel.promotes > 0) != tt.wantPromotes || (tt.rel.rollbacks > 0) != tt.wantRollbacks {
				t.Errorf("promotes %d rollbacks %d, want promote %t rollback %t", tt.rel.promotes, tt.rel.rollbacks, tt.wantPromotes, tt.wantRollbacks)
			}
			if tt.wantEvents != nil && fmt.Sprint(tt.rel.events) != fmt.Sprint(tt.wantEvents) {
				t.Errorf("events %v, want %v", tt.rel.events, tt.wantEvents)
			}
			if tt.rel.prepares != 1 || tt.rel.badState != 0 {
				t.Errorf("prepared %d times, %d actions handed another state; want once, none", tt.rel.prepares, tt.rel.badState)
			}
			prog, err := DecodeProgress(tt.rel.progress, p)
			if err != nil || prog == nil || prog.InFlight != nil {
				t.Fatalf("recorded progress: %v %v", prog, err)
			}
			// An outage leaves the canary where it was, for the next run to resume.
			if final := prog.Phase.Final(); final != (tt.want != OutcomeUnavailable) {
				t.Errorf("recorded phase %s after outcome %s", prog.Phase, tt.want)
			}
		})
	}
}

// TestStepTimeStartsWhenInPlace shows a step that takes 90 s to be put in place (blue/green
// waiting for its canary pods): nothing is judged before, its stepDuration counts from then, and
// the readiness wait does not count against it.
func TestStepTimeStartsWhenInPlace(t *testing.T) {
	rel := &fakeRelease{steps: 3, step: -1, inPlace: func(step, calls int) bool { return step != 0 || calls > 90 }}
	p := gatePolicy(t)
	c, clk := newCanary(t, p, rel, func(q metrics.Query, _ time.Time) (metrics.Observation, error) { return healthyObs(q), nil })
	var ticks []Tick
	c.OnTick = func(t Tick) { ticks = append(ticks, t) }
	rep, err := c.Run(context.Background(), clk.now().Add(time.Hour))
	if err != nil || rep.Outcome != OutcomePromoted {
		t.Fatalf("outcome %s (%s), err %v; want promoted", rep.Outcome, rep.Reason, err)
	}
	if len(ticks) == 0 || ticks[0].Elapsed < 90*time.Second || ticks[0].StepElapsed > time.Second {
		t.Fatalf("first judged tick %+v: want it after the 90 s the step took, at the step's start", ticks)
	}
	for _, tk := range ticks {
		if tk.Decision.Action == Advance {
			if tk.Step != 0 || tk.StepElapsed < time.Duration(p.Spec.Strategy.StepDuration) || tk.Elapsed < 90*time.Second+time.Duration(p.Spec.Strategy.StepDuration) {
				t.Errorf("advanced from step %d after %s of it, %s in: want step 1's full %s after it was in place", tk.Step+1, tk.StepElapsed, tk.Elapsed, p.Spec.Strategy.StepDuration)
			}
			break
		}
	}
}

func TestCanaryResumes(t *testing.T) {
	healthy := func(q metrics.Query, _ time.Time) (metrics.Observation, error) { return healthyObs(q), nil }
	started := time.Date(2026, 11, 22, 2, 59, 0, 0, time.UTC)
	passedLast := []StepVerdict{{Step: 0, Verdict: Pass}, {Step: 1, Verdict: Pass}, {Step: 2, Verdict: Pass}}
	state := map[string]string{"base": "10"}
	tests := []struct {
		name string
		// edit turns a new canary's record (step 0 applied) into the one to resume.
		edit          func(p *Progress)
		relStep       int
		wantSteps     []int
		wantPromotes  int
		wantRollbacks int
		wantStarted   bool
		want          Outcome
	}{
		{
			name: "a step recorded but maybe not applied is applied, once",
			edit: func(p *Progress) {
				p.InFlight = &InFlight{Action: Advance, Step: 1, Cause: CauseVerdict, Since: started}
				p.Verdicts = passedLast[:1]
			},
			relStep: 0, wantSteps: []int{1, 2}, wantPromotes: 1, want: OutcomePromoted,
		},
		{
			name: "a promotion cut short is finished, no step applied again",
			edit: func(p *Progress) {
				p.Step, p.Phase, p.Verdicts, p.Fingerprint = 2, PhasePromoting, passedLast, "step=2 promoted=false rolledback=false"
				p.InFlight = &InFlight{Action: Promote, Cause: CauseVerdict, Since: started}
			},
			relStep: 2, wantPromotes: 1, want: OutcomePromoted,
		},
		{
			name: "a rollback cut short is finished",
			edit: func(p *Progress) {
				p.Step, p.Phase, p.Fingerprint = 1, PhaseRollingBack, "step=1 promoted=false rolledback=false"
				p.Verdicts = []StepVerdict{{Step: 0, Verdict: Pass}, {Step: 1, Verdict: Fail}}
				p.InFlight = &InFlight{Action: Rollback, Cause: CauseVerdict, Since: started}
			},
			relStep: 1, wantRollbacks: 1, want: OutcomeRolledBack,
		},
		{
			name: "an ended canary is not touched again",
			edit: func(p *Progress) {
				p.Step, p.Phase, p.Verdicts, p.Fingerprint = 2, PhasePromoted, passedLast, "x"
			},
			relStep: 2, want: OutcomePromoted,
		},
		{
			name: "the record of an earlier canary version is not reused: a new canary starts from its own state",
			edit: func(p *Progress) {
				p.Canary, p.Step, p.Phase, p.Verdicts = "v1.9.0", 2, PhasePromoted, passedLast
				p.Release = map[string]string{"base": "3"}
			},
			relStep: 2, wantSteps: []int{0, 1, 2}, wantPromotes: 1, wantStarted: true, want: OutcomePromoted,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := gatePolicy(t)
			prog := NewProgress(p, started)
			prog.Release = maps.Clone(state)
			prog.Done("step=0 promoted=false rolledback=false", prog.StepStarted)
			tt.edit(prog)
			raw, err := EncodeProgress(prog)
			if err != nil {
				t.Fatal(err)
			}
			rel := &fakeRelease{steps: 3, step: tt.relStep, progress: raw}
			c, clk := newCanary(t, p, rel, healthy)
			rep, err := c.Run(context.Background(), clk.now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Outcome != tt.want || fmt.Sprint(rel.setSteps) != fmt.Sprint(tt.wantSteps) || rel.promotes != tt.wantPromotes || rel.rollbacks != tt.wantRollbacks {
				t.Errorf("outcome %s (%s), steps %v, promotes %d, rollbacks %d; want %s, %v, %d, %d",
					rep.Outcome, rep.Reason, rel.setSteps, rel.promotes, rel.rollbacks, tt.want, tt.wantSteps, tt.wantPromotes, tt.wantRollbacks)
			}
			if rel.badState != 0 {
				t.Errorf("%d actions handed a state other than the record's", rel.badState)
			}
			if started := slices.Contains(rel.events, "CanaryStarted"); started != tt.wantStarted || (rel.prepares == 1) != tt.wantStarted {
				t.Errorf("started again: %t (Prepare called %d times), want %t", started, rel.prepares, tt.wantStarted)
			}
		})
	}
}

func TestCanaryProgressLines(t *testing.T) {
	p := gatePolicy(t)
	rel := &fakeRelease{steps: 3, step: -1}
	c, clk := newCanary(t, p, rel, func(q metrics.Query, _ time.Time) (metrics.Observation, error) { return healthyObs(q), nil })
	var ticks []Tick
	c.OnTick = func(t Tick) { ticks = append(ticks, t) }
	if _, err := c.Run(context.Background(), clk.now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if len(ticks) < 12 {
		t.Fatalf("got %d ticks, want one per interval over three 2m steps", len(ticks))
	}
	last := ticks[len(ticks)-1]
	if last.Action != "promote" || last.Result == nil || last.Result.Verdict != Pass || !strings.Contains(last.Reason, "passed every step") {
		t.Errorf("last tick: %+v", last)
	}
}

// panickyRelease is a release whose health check panics.
type panickyRelease struct{ *fakeRelease }

func (panickyRelease) Health(context.Context, int, map[string]string) (bool, string, error) {
	panic("nil map in the health check")
}

func TestCanaryRunErrors(t *testing.T) {
	healthy := func(q metrics.Query, _ time.Time) (metrics.Observation, error) { return healthyObs(q), nil }
	tests := []struct {
		name    string
		rel     *fakeRelease
		release func(f *fakeRelease) Release
		wantErr string
		// maxSteps is how many steps may have been applied before the error.
		maxSteps int
	}{
		{
			name: "a panic in a tick is that canary's error, not a crash",
			rel:  &fakeRelease{steps: 3, step: -1}, release: func(f *fakeRelease) Release { return panickyRelease{f} },
			wantErr: "panic: nil map in the health check", maxSteps: 1,
		},
		{
			name:    "a canary whose record cannot be written is not started",
			rel:     &fakeRelease{steps: 3, step: -1, saveErr: func(int, string) error { return errors.New("forbidden") }},
			release: func(f *fakeRelease) Release { return f },
			wantErr: "forbidden",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := gatePolicy(t)
			c, clk := newCanary(t, p, tt.rel, healthy)
			c.Release = tt.release(tt.rel)
			_, err := c.Run(context.Background(), clk.now().Add(time.Hour))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
			if len(tt.rel.setSteps) > tt.maxSteps || tt.rel.promotes+tt.rel.rollbacks > 0 {
				t.Errorf("steps %v, %d promotes, %d rollbacks after the error", tt.rel.setSteps, tt.rel.promotes, tt.rel.rollbacks)
			}
		})
	}
}

// TestOneDriverAtATime shows two drivers on one canary (a CI gate and the daemon, or two
// installs): the one whose claim in the record is still good keeps the canary; the other
// refuses, with an Event, and writes nothing; a claim that has lapsed is taken over.
func TestOneDriverAtATime(t *testing.T) {
	healthy := func(q metrics.Query, _ time.Time) (metrics.Observation, error) { return healthyObs(q), nil }
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	recordBy := func(t *testing.T, p *policies.Policy, driver string, until time.Time) string {
		t.Helper()
		rec := NewProgress(p, start.Add(-time.Minute))
		rec.Release = map[string]string{"base": "10"}
		rec.Done("fp", start.Add(-time.Minute))
		rec.Driver, rec.DriverUntil = driver, until
		s, err := EncodeProgress(rec)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("another driver's claim is good: refused, nothing written", func(t *testing.T) {
		p := gatePolicy(t)
		rel := &fakeRelease{steps: 3, step: -1, outsideFP: "fp"}
		rel.progress = recordBy(t, p, "daemon coalmine/coalmine", start.Add(time.Hour))
		c, _ := newCanary(t, p, rel, healthy)
		c.Driver = "gate on ci-7"
		rep, err := c.Run(context.Background(), start.Add(time.Hour))
		if err != nil || rep.Outcome != OutcomeBusy {
			t.Fatalf("outcome %s (%s), err %v; want busy", rep.Outcome, rep.Reason, err)
		}
		if rel.attempts != 0 || len(rel.setSteps) != 0 || rel.promotes+rel.rollbacks != 0 {
			t.Errorf("%d writes, steps %v, %d promotes, %d rollbacks: want nothing done", rel.attempts, rel.setSteps, rel.promotes, rel.rollbacks)
		}
		if !slices.Contains(rel.events, "CanaryDriverConflict") || !strings.Contains(rep.Reason, "daemon coalmine/coalmine") {
			t.Errorf("events %v, reason %q: want a CanaryDriverConflict naming the other driver", rel.events, rep.Reason)
		}
	})
	t.Run("a lapsed claim is taken over", func(t *testing.T) {
		p := gatePolicy(t)
		rel := &fakeRelease{steps: 3, step: -1, outsideFP: "fp"}
		rel.progress = recordBy(t, p, "daemon coalmine/coalmine", start.Add(-time.Second))
		c, _ := newCanary(t, p, rel, healthy)
		c.Driver = "gate on ci-7"
		rep, err := c.Run(context.Background(), start.Add(time.Hour))
		if err != nil || rep.Outcome != OutcomePromoted {
			t.Fatalf("outcome %s (%s), err %v; want promoted", rep.Outcome, rep.Reason, err)
		}
		rec, err := DecodeProgress(rel.progress, p)
		if err != nil || rec.Driver != "gate on ci-7" {
			t.Errorf("record's driver %q (err %v), want the gate's", rec.Driver, err)
		}
	})
	t.Run("a driver that took over meanwhile keeps the canary", func(t *testing.T) {
		p := gatePolicy(t)
		rel := &fakeRelease{steps: 3, step: -1}
		c, clk := newCanary(t, p, rel, healthy)
		c.Driver = "gate on ci-7"
		ticks := 0
		c.OnTick = func(Tick) {
			if ticks++; ticks == 2 {
				// The daemon writes its own claim between two of the gate's ticks.
				rec, err := DecodeProgress(rel.progress, p)
				if err != nil {
					t.Fatal(err)
				}
				rec.Driver, rec.DriverUntil = "daemon other/coalmine", clk.now().Add(time.Hour)
				if rel.progress, err = EncodeProgress(rec); err != nil {
					t.Fatal(err)
				}
			}
		}
		rep, err := c.Run(context.Background(), start.Add(time.Hour))
		if err != nil || rep.Outcome != OutcomeBusy {
			t.Fatalf("outcome %s (%s), err %v; want busy", rep.Outcome, rep.Reason, err)
		}
		if rel.promotes+rel.rollbacks != 0 || len(rel.setSteps) > 2 {
			t.Errorf("steps %v, %d promotes, %d rollbacks after the other driver took over", rel.setSteps, rel.promotes, rel.rollbacks)
		}
		if rec, _ := DecodeProgress(rel.progress, p); rec == nil || rec.Driver != "daemon other/coalmine" {
			t.Errorf("the other driver's record was overwritten: %+v", rec)
		}
	})
}

// TestStopNamesWhoChangedTheRelease: when the release is not where coalmine left it, the stop's
// reason and its CanaryStopped Event name who changed it, as the release tells.
func TestStopNamesWhoChangedTheRelease(t *testing.T) {
	const by = "spec.replicas of Deployment my-app-v2 last written by argocd-controller (Apply) at 2026-12-03T07:12:03Z"
	rel := &fakeRelease{steps: 3, step: -1, changedBy: by}
	c, clk := newCanary(t, gatePolicy(t), rel, func(q metrics.Query, _ time.Time) (metrics.Observation, error) { return healthyObs(q), nil })
	c.OnTick = nil
	c.Sleep = func(ctx context.Context, d time.Duration) error {
		rel.outsideFP = "my-app-v2=1"
		return clk.sleep(ctx, d)
	}
	rep, err := c.Run(context.Background(), clk.now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != OutcomeStopped || !strings.Contains(rep.Reason, "; "+by) {
		t.Errorf("outcome %s, reason %q; want stopped, naming %q", rep.Outcome, rep.Reason, by)
	}
	if n := len(rel.events); n == 0 || rel.events[n-1] != "CanaryStopped" || !strings.Contains(rel.messages[n-1], "argocd-controller (Apply)") {
		t.Errorf("events %v %q, want a CanaryStopped naming argocd-controller", rel.events, rel.messages)
	}
}
