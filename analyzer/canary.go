package analyzer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// Release is the cluster side of a canary, as the analyzer needs it. The actuator implements
// it; a dry run logs instead of writing. Every method is idempotent.
type Release interface {
	// Steps is the number of canary steps before promotion.
	Steps() int
	// SetStep makes the canary the size of step i (0-based).
	SetStep(ctx context.Context, i int) error
	// Promote and Rollback move the release a bit further each call, until done.
	Promote(ctx context.Context) (done bool, err error)
	Rollback(ctx context.Context) (done bool, err error)
	// Health says whether step i's canary pods are all Ready, and names a problem that fails
	// the canary whatever its metrics say.
	Health(ctx context.Context, i int) (ready bool, problem string, err error)
	// Fingerprint summarises the state coalmine controls.
	Fingerprint(ctx context.Context) (string, error)
	// Progress and SaveProgress read and write the analyzer's record on the cluster.
	Progress(ctx context.Context) (string, error)
	SaveProgress(ctx context.Context, progress string) error
	// Event tells people what happened, on the Deployment, once per key: recording the same
	// key again (after a crash) records nothing.
	Event(ctx context.Context, key string, warning bool, reason, message string) error
}

// Outcome is how a canary ended.
type Outcome string

// The outcomes, each with its exit code in the gate.
const (
	OutcomePromoted     Outcome = "promoted"
	OutcomeRolledBack   Outcome = "rolledBack"
	OutcomeInconclusive Outcome = "inconclusive"
	OutcomeUnavailable  Outcome = "unavailable"
	OutcomeStopped      Outcome = "stopped"
)

// Tick is what one evaluation of a running canary saw and did.
type Tick struct {
	Time    time.Time     `json:"time"`
	Step    int           `json:"step"`
	Steps   int           `json:"steps"`
	Elapsed time.Duration `json:"elapsed"`
	// StepElapsed is the time since the step was applied.
	StepElapsed time.Duration `json:"stepElapsed"`
	Ready       bool          `json:"ready"`
	// Result is nil when the tick did not judge (pods not Ready, metrics unavailable).
	Result *Result `json:"result,omitempty"`
	Err    error   `json:"-"`
	// Action is what the tick did: hold, wait, advance, promote, rollback, stop.
	Action string `json:"action"`
	// Duration is how long the tick took: reading the cluster and Prometheus, judging, acting.
	Duration time.Duration `json:"duration"`
	Reason   string        `json:"reason"`
}

// Report is a canary's end: its outcome, the reason, and every tick on the way.
type Report struct {
	Outcome  Outcome   `json:"outcome"`
	Reason   string    `json:"reason"`
	Progress *Progress `json:"progress"`
	Ticks    []Tick    `json:"ticks"`
}

// Canary drives one release to an end: per step it waits for the canary's pods, analyses for
// the step's duration (or until a decisive verdict), then advances, promotes or rolls back.
type Canary struct {
	Policy   *policies.Policy
	Release  Release
	Analyzer *Analyzer
	Logger   zerolog.Logger
	// OnTick, when set, is called after every tick (progress lines, JUnit, metrics).
	OnTick func(Tick)
	// Now and Sleep default to the wall clock; tests replace them.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

func (c *Canary) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Canary) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errStopped means someone else changed the release.
var errStopped = errors.New("the release was changed by someone else")

// Run drives the canary until it is promoted, rolled back, stopped, or deadline passes. It
// resumes from the progress recorded on the cluster. An error is returned only when the cluster
// cannot be read or written; metrics being unavailable is an outcome.
func (c *Canary) Run(ctx context.Context, deadline time.Time) (Report, error) {
	p := c.Policy
	var rep Report
	prog, err := c.load(ctx)
	if err != nil {
		return rep, err
	}
	rep.Progress = prog
	if prog.Phase.Final() {
		rep.Outcome, rep.Reason = outcomeOf(prog), "already "+string(prog.Phase)+": "+prog.Reason
		return rep, nil
	}
	if d := prog.Started.Add(time.Duration(p.Spec.Analysis.MaxDuration)); d.Before(deadline) {
		deadline = d
	}
	interval := time.Duration(p.Spec.Analysis.Interval)
	var lastErr error
	for {
		if err := c.finishPending(ctx, prog); err != nil {
			return rep, err
		}
		switch prog.Phase {
		case PhasePromoting:
			return c.end(ctx, &rep, prog, OutcomePromoted, pendingPromote, prog.Reason)
		case PhaseRollingBack:
			return c.end(ctx, &rep, prog, OutcomeRolledBack, pendingRollback, prog.Reason)
		}
		tick, next, err := c.tick(ctx, prog)
		if errors.Is(err, errStopped) {
			prog.Phase, prog.Reason = PhaseStopped, tick.Reason
			c.event(ctx, prog, "stopped", true, "CanaryStopped", tick.Reason)
			c.record(&rep, tick)
			rep.Outcome, rep.Reason = OutcomeStopped, tick.Reason
			return rep, c.save(ctx, prog)
		}
		if err != nil {
			return rep, err
		}
		lastErr = tick.Err
		c.record(&rep, tick)
		switch next {
		case PhasePromoting, PhaseRollingBack:
			prog.Phase, prog.Reason = next, tick.Reason
			if err := c.save(ctx, prog); err != nil {
				return rep, err
			}
			continue
		}
		// Ticks fall on the interval's grid, so canaries with the same interval evaluate at the
		// same instants and their shared queries can go to Prometheus as one.
		now := c.now()
		wait := now.Truncate(interval).Add(interval).Sub(now)
		if !now.Add(wait).Before(deadline) {
			break
		}
		if err := c.sleep(ctx, wait); err != nil {
			return rep, err
		}
	}
	// Out of time.
	if lastErr != nil {
		rep.Outcome, rep.Reason = OutcomeUnavailable, "deadline passed while metrics were unavailable: "+lastErr.Error()
		return rep, nil
	}
	reason := "deadline passed without a decisive verdict"
	if n := len(rep.Ticks); n > 0 && rep.Ticks[n-1].Reason != "" {
		reason += ": " + rep.Ticks[n-1].Reason
	}
	if p.Spec.Analysis.OnInconclusive == policies.InconclusiveRollback {
		prog.Phase, prog.Reason = PhaseRollingBack, reason
		if err := c.save(ctx, prog); err != nil {
			return rep, err
		}
		r, err := c.end(ctx, &rep, prog, OutcomeRolledBack, pendingRollback, reason)
		r.Outcome = OutcomeInconclusive
		return r, err
	}
	prog.Phase, prog.Reason = PhaseHeld, reason
	c.event(ctx, prog, "held", true, "CanaryInconclusive", reason+"; left as it is (onInconclusive: hold)")
	rep.Outcome, rep.Reason = OutcomeInconclusive, reason
	return rep, c.save(ctx, prog)
}

// load reads the recorded progress, or starts a canary at step 0.
func (c *Canary) load(ctx context.Context) (*Progress, error) {
	raw, err := c.Release.Progress(ctx)
	if err != nil {
		return nil, err
	}
	prog, err := parseProgress(raw)
	if err != nil {
		return nil, err
	}
	canary := c.Policy.Spec.Target.Canary.Version
	if prog != nil && prog.Canary == canary && prog.Policy == c.Policy.Metadata.Name {
		c.Logger.Info().Str("phase", string(prog.Phase)).Int("step", prog.Step).Str("pending", prog.Pending).Msg("resuming canary")
		return prog, nil
	}
	now := c.now()
	prog = &Progress{Policy: c.Policy.Metadata.Name, Canary: canary, Phase: PhaseProgressing, Started: now, Step: 0, StepStarted: now, Pending: pendingStep(0)}
	if err := c.save(ctx, prog); err != nil {
		return nil, err
	}
	return prog, nil
}

// finishPending completes a step that was recorded but maybe not applied, and its Event: both
// are idempotent, so a crash anywhere in here is mended by the next run, once.
func (c *Canary) finishPending(ctx context.Context, prog *Progress) error {
	var step int
	if _, err := fmt.Sscanf(prog.Pending, "step:%d", &step); err != nil || prog.Pending == "" {
		return nil
	}
	if err := c.Release.SetStep(ctx, step); err != nil {
		return err
	}
	fp, err := c.Release.Fingerprint(ctx)
	if err != nil {
		return err
	}
	steps := c.Release.Steps()
	if step == 0 {
		c.event(ctx, prog, "step-0", false, "CanaryStarted", fmt.Sprintf("canary %s started: step 1/%d (%s)", prog.Canary, steps, c.stepName(0)))
	} else {
		c.event(ctx, prog, fmt.Sprintf("step-%d", step), false, "CanaryStepAdvanced", fmt.Sprintf("step %d passed; now step %d/%d (%s)", step, step+1, steps, c.stepName(step)))
	}
	prog.Step, prog.Pending, prog.Fingerprint = step, "", fp
	return c.save(ctx, prog)
}

// tick looks at the release once and says what happens next.
func (c *Canary) tick(ctx context.Context, prog *Progress) (Tick, Phase, error) {
	p := c.Policy
	now := c.now()
	t := Tick{Time: now, Step: prog.Step, Steps: c.Release.Steps(), Elapsed: now.Sub(prog.Started), StepElapsed: now.Sub(prog.StepStarted)}
	fp, err := c.Release.Fingerprint(ctx)
	if err != nil {
		return t, "", err
	}
	if fp != prog.Fingerprint {
		t.Action, t.Reason = "stop", fmt.Sprintf("someone else changed the release (%s, coalmine left %s); coalmine stopped acting on it", fp, prog.Fingerprint)
		return t, "", errStopped
	}
	ready, problem, err := c.Release.Health(ctx, prog.Step)
	if err != nil {
		return t, "", err
	}
	t.Ready = ready
	if problem != "" {
		t.Action, t.Reason = "rollback", "unhealthy canary: "+problem
		return t, PhaseRollingBack, nil
	}
	if !ready {
		if t.StepElapsed > time.Duration(p.Spec.Health.ReadyTimeout) {
			t.Action, t.Reason = "rollback", fmt.Sprintf("canary pods of step %d not Ready within readyTimeout %s", prog.Step+1, p.Spec.Health.ReadyTimeout)
			return t, PhaseRollingBack, nil
		}
		t.Action, t.Reason = "wait", "waiting for the canary pods to be Ready"
		return t, "", nil
	}
	window := time.Duration(p.Spec.Analysis.Window)
	baselineAt := now
	if p.Spec.Strategy.Type == policies.StrategyBlueGreen {
		// After the switch the baseline serves nothing: judge against it as it was before.
		baselineAt = prog.StepStarted
	}
	var res Result
	if p.Spec.Analysis.Judge.Streams() {
		if prog.Evidence == nil {
			prog.Evidence = NewEvidence()
		}
		res, err = c.Analyzer.Step(ctx, p, now, prog.Evidence)
	} else {
		res, err = c.Analyzer.EvaluateSplit(ctx, p, now, baselineAt, window)
	}
	if err != nil {
		if errors.Is(err, metrics.ErrUnavailable) {
			t.Err = err
			t.Action, t.Reason = "hold", "metrics unavailable; neither promoting nor rolling back: "+err.Error()
			return t, "", nil
		}
		return t, "", fmt.Errorf("evaluate: %w", err)
	}
	t.Result = &res
	prog.setVerdict(prog.Step, res.Verdict, res.Reason)
	switch res.Verdict {
	case Fail:
		t.Action, t.Reason = "rollback", res.Reason
		return t, PhaseRollingBack, nil
	case Inconclusive:
		t.Action, t.Reason = "hold", res.Reason
		return t, "", c.save(ctx, prog)
	}
	if t.StepElapsed < time.Duration(p.Spec.Strategy.StepDuration) {
		t.Action, t.Reason = "hold", fmt.Sprintf("passing; step %d/%d runs for %s", prog.Step+1, t.Steps, p.Spec.Strategy.StepDuration)
		return t, "", c.save(ctx, prog)
	}
	if prog.Step+1 >= c.Release.Steps() {
		t.Action, t.Reason = "promote", fmt.Sprintf("passed every step: %s", res.Reason)
		return t, PhasePromoting, nil
	}
	next := prog.Step + 1
	prog.Pending, prog.StepStarted = pendingStep(next), now
	if err := c.save(ctx, prog); err != nil {
		return t, "", err
	}
	if err := c.finishPending(ctx, prog); err != nil {
		return t, "", err
	}
	t.Action, t.Reason = "advance", fmt.Sprintf("step %d passed; now step %d/%d (%s)", next, next+1, t.Steps, c.stepName(next))
	return t, "", nil
}

// end promotes or rolls back until done, records the result and emits the Event.
func (c *Canary) end(ctx context.Context, rep *Report, prog *Progress, outcome Outcome, action, reason string) (Report, error) {
	prog.Pending = action
	if err := c.save(ctx, prog); err != nil {
		return *rep, err
	}
	act, final, evReason, warning := c.Release.Promote, PhasePromoted, "CanaryPromoted", false
	if action == pendingRollback {
		act, final, evReason, warning = c.Release.Rollback, PhaseRolledBack, "CanaryRolledBack", true
	}
	for {
		done, err := act(ctx)
		if err != nil {
			return *rep, err
		}
		if done {
			break
		}
		if err := c.sleep(ctx, time.Second); err != nil {
			return *rep, err
		}
	}
	fp, err := c.Release.Fingerprint(ctx)
	if err != nil {
		return *rep, err
	}
	c.event(ctx, prog, action, warning, evReason, reason)
	prog.Phase, prog.Pending, prog.Fingerprint, prog.Reason = final, "", fp, reason
	rep.Outcome, rep.Reason, rep.Progress = outcome, reason, prog
	return *rep, c.save(ctx, prog)
}

func (c *Canary) save(ctx context.Context, prog *Progress) error {
	prog.Updated = c.now()
	s, err := prog.encode()
	if err != nil {
		return err
	}
	return c.Release.SaveProgress(ctx, s)
}

// event emits an Event, once per canary and key; failing to is logged, never fatal: the action
// it reports is done.
func (c *Canary) event(ctx context.Context, prog *Progress, key string, warning bool, reason, message string) {
	key = fmt.Sprintf("%s/%s/%d/%s", prog.Policy, prog.Canary, prog.Started.UnixNano(), key)
	if err := c.Release.Event(ctx, key, warning, reason, message); err != nil {
		c.Logger.Warn().Err(err).Str("reason", reason).Msg("event not recorded")
	}
}

func (c *Canary) record(rep *Report, t Tick) {
	t.Duration = c.now().Sub(t.Time)
	rep.Ticks = append(rep.Ticks, t)
	if c.OnTick != nil {
		c.OnTick(t)
	}
}

func (c *Canary) stepName(i int) string {
	steps := c.Policy.Spec.Strategy.Steps
	if i < len(steps) {
		return steps[i]
	}
	return "?"
}

func outcomeOf(p *Progress) Outcome {
	switch p.Phase {
	case PhasePromoted:
		return OutcomePromoted
	case PhaseRolledBack:
		return OutcomeRolledBack
	case PhaseStopped:
		return OutcomeStopped
	}
	return OutcomeInconclusive
}
