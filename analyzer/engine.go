package analyzer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// Canary drives one release to an end, one tick at a time: look at the release, read the
// metrics once, judge, Decide, act, and write the record only when something changed.
type Canary struct {
	Policy   *policies.Policy
	Release  Release
	Analyzer *Analyzer
	Logger   zerolog.Logger
	// OnTick, when set, is called after every tick (progress lines, JUnit, metrics).
	OnTick func(Tick)
	// Driver names this driver in the record it writes ("gate on HOST", "daemon NS/LEASE"):
	// one canary has one driver at a time. Empty claims nothing and checks nothing.
	Driver string
	// Now and Sleep default to the wall clock; tests replace them.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	// rec is the canary's record between ticks, with the evidence and the counters' last
	// readings that only a running process has.
	rec *Progress
	// template identifies the canary's pod template, as read when the record was.
	template string
}

// Record returns a copy of the canary's record as of its last step, without the evidence: where
// the canary stands, for a status to report. It is nil before the record is read.
func (c *Canary) Record() *Progress {
	if c.rec == nil {
		return nil
	}
	r := *c.rec
	r.Evidence, r.Verdicts, r.Release = nil, slices.Clone(r.Verdicts), maps.Clone(r.Release)
	if r.InFlight != nil {
		f := *r.InFlight
		r.InFlight = &f
	}
	return &r
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

// tickBudget is the least time one tick may take (the interval when longer): reading the
// cluster and the metrics, judging, and one step of an action (a rollout step waits for its new
// ReplicaSet to grow before pausing).
const tickBudget = 30 * time.Second

// actionRetry is how soon a promotion or rollback in progress is looked at again.
const actionRetry = time.Second

// Run drives the canary until it is promoted, rolled back, stopped, or deadline passes. It
// resumes from the record on the cluster. An error is returned only when the cluster cannot be
// read or written; metrics being unavailable is an outcome.
func (c *Canary) Run(ctx context.Context, deadline time.Time) (Report, error) {
	var rep Report
	for {
		st, err := c.Step(ctx, deadline)
		if st.Tick != nil {
			c.record(&rep, *st.Tick)
		}
		rep.Progress = c.rec
		if err != nil {
			return rep, err
		}
		if st.Outcome != "" {
			rep.Outcome, rep.Reason = st.Outcome, st.Reason
			return rep, nil
		}
		if err := c.sleep(ctx, st.Next); err != nil {
			return rep, err
		}
	}
}

// StepResult is what one Step did, and when the next one is due.
type StepResult struct {
	// Tick is what the step saw and decided; nil when it only carried on an action.
	Tick *Tick
	// Outcome is set when the canary has ended (or, for OutcomeUnavailable, when its time ran
	// out during an outage: it stays resumable).
	Outcome Outcome
	Reason  string
	// Next is how long until the next step is due.
	Next time.Duration
}

// Step is one tick of the engine, under its own time budget: the daemon's workqueue calls it
// with AddAfter(Next), the gate in a loop. deadline is the caller's own limit; the record's
// maxDuration applies too.
func (c *Canary) Step(ctx context.Context, deadline time.Time) (st StepResult, err error) {
	p := c.Policy
	interval := time.Duration(p.Spec.Analysis.Interval)
	ctx, cancel := context.WithTimeout(ctx, max(interval, tickBudget))
	defer cancel()
	defer func() {
		// A panic in one canary is that canary's problem: it ends as an error, never a crash.
		if r := recover(); r != nil {
			err = fmt.Errorf("canary %s: panic: %v", p.Metadata.Name, r)
		}
		var b *busyError
		if errors.As(err, &b) {
			tick := st.Tick
			st, err = c.busy(ctx, b), nil
			st.Tick = tick
		}
	}()
	if c.rec == nil {
		if st, done, err := c.load(ctx); done || err != nil {
			return st, err
		}
	}
	rec := c.rec
	took, err := c.take(ctx)
	if err != nil {
		return StepResult{}, err
	}
	if d := rec.Started.Add(time.Duration(p.Spec.Analysis.MaxDuration) + rec.PausedFor); d.Before(deadline) {
		deadline = d
	}
	if rec.InFlight != nil {
		if took {
			if err := c.save(ctx); err != nil {
				return StepResult{}, err
			}
		}
		if st, err := c.carryOut(ctx, deadline); err != nil || st.Outcome != "" || rec.InFlight != nil {
			return st, err
		}
	}
	now := c.now()
	t := Tick{Time: now, Step: rec.Step, Steps: rec.Steps, Elapsed: now.Sub(rec.Started), StepElapsed: now.Sub(rec.StepStarted)}
	obs, res, err := c.look(ctx, &t)
	if err != nil {
		return StepResult{}, err
	}
	d := Decide(p, rec, obs, res, now, deadline)
	t.Decision, t.Action, t.Reason = d, string(d.Action), d.Reason
	t.Duration = c.now().Sub(now)
	st = StepResult{Tick: &t}
	changed := rec.Apply(d, res, now) || took
	if d.Await != 0 && rec.Asked != d.Await {
		// Asked once per gate: an Event and a notice.
		rec.Asked, changed = d.Await, true
		key := fmt.Sprintf("%s/%s/%d/approval-%d", rec.Policy, rec.Canary, rec.Started.UnixNano(), d.Await)
		if err := c.Release.Event(ctx, key, false, "CanaryApprovalNeeded", d.Reason); err != nil {
			c.Logger.Warn().Err(err).Msg("event not recorded")
		}
		rec.notify(NoticeApprovalNeeded, d.Reason, "", now)
	}
	switch d.Action {
	case Advance, Promote, Rollback:
		// Write-ahead: the action is recorded before it is made. Nothing blocks a rollback: if
		// the record cannot be written, the rollback goes ahead and its Event says so.
		if err := c.save(ctx); err != nil {
			var b *busyError
			if d.Action != Rollback || errors.As(err, &b) {
				return st, err
			}
			c.Logger.Error().Err(err).Msg("record not written; rolling back anyway")
			rec.Reason = clip(rec.Reason + " (the record could not be written: " + err.Error() + ")")
		}
		next, err := c.carryOut(ctx, deadline)
		next.Tick = st.Tick
		if err == nil && next.Outcome == "" && rec.InFlight == nil {
			next.Next = c.untilNextTick(deadline)
		}
		return next, err
	case Stop:
		c.end(ctx, rec, d)
		st.Outcome, st.Reason = outcomeOf(rec), d.Reason
		return st, c.save(ctx)
	}
	if changed || now.Sub(rec.Saved) >= checkpointEvery {
		if err := c.save(ctx); err != nil {
			return st, err
		}
	}
	if !now.Before(deadline) && obs.Unavailable != "" {
		st.Outcome, st.Reason = OutcomeUnavailable, d.Reason
		return st, nil
	}
	if !now.Before(deadline) && d.Waiting {
		st.Outcome, st.Reason = OutcomeWaiting, d.Reason
		return st, nil
	}
	st.Next = c.untilNextTick(deadline)
	return st, nil
}

// untilNextTick is the time to the next tick. Ticks fall on the interval's grid, so canaries
// with the same interval evaluate at the same instants and their shared queries can go to
// Prometheus as one; the deadline gets a tick of its own.
func (c *Canary) untilNextTick(deadline time.Time) time.Duration {
	interval := time.Duration(c.Policy.Spec.Analysis.Interval)
	now := c.now()
	next := now.Truncate(interval).Add(interval).Sub(now)
	if now.Add(next).After(deadline) && deadline.After(now) {
		next = deadline.Sub(now)
	}
	return next
}

// load reads the record, or starts a canary at step 0. done is set when the canary has
// already ended or its record cannot be trusted.
func (c *Canary) load(ctx context.Context) (StepResult, bool, error) {
	// A policy that pins its versions drives one canary of that version, whatever its pod
	// template; one that does not, a canary per pod template.
	pinned := !c.Policy.FollowsReleases()
	p, err := c.resolve(ctx)
	if err != nil {
		return StepResult{}, false, err
	}
	raw, err := c.Release.Progress(ctx)
	if err != nil {
		return StepResult{}, false, err
	}
	rec, err := DecodeProgress(raw, p)
	if errors.Is(err, ErrUntrusted) {
		// Never obeyed, never overwritten: a person has to look.
		h := sha256.Sum256([]byte(raw))
		key := fmt.Sprintf("%s/%s/record/%s", p.Metadata.Name, p.Spec.Target.Canary.Version, hex.EncodeToString(h[:8]))
		reason := "coalmine stopped acting on this canary: its " + err.Error() + "; remove the record (kubectl annotate ... coalmine.dev/progress-) to start the canary again"
		if eerr := c.Release.Event(ctx, key, true, "CanaryRecordRefused", reason); eerr != nil {
			c.Logger.Warn().Err(eerr).Msg("event not recorded")
		}
		c.Logger.Warn().Err(err).Msg("record refused")
		return StepResult{Outcome: OutcomeStopped, Reason: reason}, true, nil
	}
	if err != nil {
		return StepResult{}, false, err
	}
	if rec != nil && rec.Policy == p.Metadata.Name && rec.Undone(p.Spec.Target.Baseline.Version, p.Spec.Target.Canary.Version) {
		// The last canary's own rollback, not a new canary.
		c.rec = rec
		return StepResult{Outcome: outcomeOf(rec), Reason: "already " + string(rec.Phase) + ": " + rec.Reason}, true, nil
	}
	var retry *Command
	if rec != nil && rec.Canary == p.Spec.Target.Canary.Version && rec.Policy == p.Metadata.Name && (rec.Template == "" || rec.Template == c.template || pinned) {
		if other := c.heldBy(rec, c.now()); other != "" && !rec.Phase.Final() {
			return c.busy(ctx, &busyError{driver: other, until: rec.DriverUntil}), true, nil
		}
		if !rec.Phase.Final() {
			c.rec = rec
			c.Logger.Info().Str("record", rec.String()).Msg("resuming canary")
			return StepResult{}, false, nil
		}
		if retry, err = c.retried(ctx, rec); err != nil {
			return StepResult{}, false, err
		}
		if retry == nil {
			c.rec = rec
			return StepResult{Outcome: outcomeOf(rec), Reason: "already " + string(rec.Phase) + ": " + rec.Reason}, true, nil
		}
	}
	// A new canary: nothing an earlier one recorded is reused but its notices, which may not
	// all have been sent.
	old := rec
	rec = NewProgress(p, c.now())
	if old != nil && old.Policy == p.Metadata.Name {
		rec.Notices = slices.Clone(old.Notices)
	}
	rec.Template = c.template
	if rec.Release, err = c.Release.Prepare(ctx); err != nil {
		return StepResult{}, false, err
	}
	if retry != nil {
		// The commands the ended attempt took stay taken.
		rec.Handled = append(c.handledBy(ctx), retry.ID)
		c.announce(ctx, rec, Taken{Command: *retry})
	}
	c.rec = rec
	return StepResult{}, false, c.save(ctx)
}

// handledBy is the commands the record on the cluster has taken.
func (c *Canary) handledBy(ctx context.Context) []string {
	raw, err := c.Release.Progress(ctx)
	if err != nil {
		return nil
	}
	old, err := DecodeProgress(raw, c.Policy)
	if err != nil || old == nil {
		return nil
	}
	return old.Handled
}

// resolve reads the release's versions, those the policy does not pin from its Deployments,
// and makes the canary act on them: the policy in force from then on is the one with both
// versions written.
func (c *Canary) resolve(ctx context.Context) (*policies.Policy, error) {
	p := c.Policy
	baseline, canary, template, err := c.Release.Target(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case canary == "" || baseline == "":
		l := p.Spec.Target.Labels.Version
		return nil, fmt.Errorf("%w: the Deployments' pod templates carry no %s label to tell the versions apart (label them, or pin spec.target.*.version)", ErrNoCanary, l)
	case canary == baseline:
		return nil, fmt.Errorf("%w: baseline and canary both run version %s", ErrNoCanary, canary)
	}
	if !p.Pinned() {
		p = p.WithVersions(baseline, canary)
		if err := c.Release.Use(p); err != nil {
			return nil, err
		}
		c.Policy = p
	}
	c.template = template
	return p, nil
}

// retried returns the command that starts an ended canary again, nil when there is none.
func (c *Canary) retried(ctx context.Context, rec *Progress) (*Command, error) {
	raw, err := c.Release.Commands(ctx)
	if err != nil {
		return nil, err
	}
	return retryOf(rec, raw), nil
}

// take takes the commands people left since the last tick into the record, each with an Event
// and a notice; it reports whether any was.
func (c *Canary) take(ctx context.Context) (bool, error) {
	raw, err := c.Release.Commands(ctx)
	if err != nil {
		return false, err
	}
	cmds, err := DecodeCommands(raw)
	if err != nil {
		// Written by someone who is not coalmine: nothing of it is obeyed, once said.
		c.Logger.Warn().Err(err).Msg("commands refused")
		return false, nil
	}
	taken := c.rec.Take(cmds, c.Policy.Spec.Strategy.ApproveBefore, c.now())
	for _, t := range taken {
		c.announce(ctx, c.rec, t)
	}
	return len(taken) > 0, nil
}

// announce tells people a command was taken (or why it was not): an Event naming who asked,
// and a notice.
func (c *Canary) announce(ctx context.Context, rec *Progress, t Taken) {
	cmd := t.Command
	msg := fmt.Sprintf("%s requested by %s", cmd.Verb, orSomeone(cmd.By))
	if cmd.Reason != "" {
		msg += ": " + cmd.Reason
	}
	if t.Ignored != "" {
		msg += "; ignored: " + t.Ignored
	}
	key := fmt.Sprintf("%s/%s/command/%s", rec.Policy, rec.Canary, cmd.ID)
	if err := c.Release.Event(ctx, key, t.Ignored != "", "CanaryCommand", msg); err != nil {
		c.Logger.Warn().Err(err).Msg("event not recorded")
	}
	c.Logger.Info().Str("command", string(cmd.Verb)).Str("by", cmd.By).Str("ignored", t.Ignored).Msg("command taken")
	rec.notify(NoticeCommand, msg, clipText(cmd.By), c.now())
}

func orSomeone(s string) string {
	if s == "" {
		return "someone"
	}
	return s
}

// carryOut carries the action in flight on as far as it goes now.
func (c *Canary) carryOut(ctx context.Context, deadline time.Time) (StepResult, error) {
	rec := c.rec
	now := c.now()
	d := Decide(c.Policy, rec, Observed{}, nil, now, deadline)
	switch {
	case d.Action == Stop:
		rec.Apply(d, nil, now)
		c.end(ctx, rec, d)
		return StepResult{Outcome: OutcomeStopped, Reason: d.Reason}, c.save(ctx)
	case d.Action != rec.InFlight.Action:
		// An advance not in place within readyTimeout becomes a rollback: recorded first, made
		// even when the record cannot be written.
		rec.Apply(d, nil, now)
		if err := c.save(ctx); err != nil {
			var b *busyError
			if errors.As(err, &b) {
				return StepResult{}, err
			}
			c.Logger.Error().Err(err).Msg("record not written; rolling back anyway")
		}
	}
	f := rec.InFlight
	switch f.Action {
	case Advance:
		done, err := c.Release.SetStep(ctx, f.Step, rec.Release)
		if err != nil {
			return StepResult{}, err
		}
		if !done {
			return StepResult{Next: actionRetry}, nil
		}
	case Promote, Rollback:
		act := c.Release.Promote
		if f.Action == Rollback {
			act = c.Release.Rollback
		}
		done, err := act(ctx, rec.Release)
		if err != nil {
			return StepResult{}, err
		}
		if !done {
			return StepResult{Next: actionRetry}, nil
		}
	}
	fp, err := c.Release.Fingerprint(ctx, true)
	if err != nil {
		return StepResult{}, err
	}
	rec.Done(fp, c.now())
	dd := Decision{Action: f.Action, Step: f.Step, Cause: f.Cause, Reason: rec.Reason}
	c.end(ctx, rec, dd)
	if f.Action == Advance {
		return StepResult{}, c.save(ctx)
	}
	st := StepResult{Outcome: outcomeOf(rec), Reason: rec.Reason}
	if err := c.save(ctx); err != nil {
		// The release is promoted or rolled back: that is the outcome. The record says
		// otherwise until the next run finds the release ended and writes it.
		c.Logger.Error().Err(err).Str("outcome", string(st.Outcome)).Msg("record not written after the canary ended")
	}
	return st, nil
}

// look observes the release and, when its canary is Ready and nothing is wrong, reads the
// metrics once and judges them.
func (c *Canary) look(ctx context.Context, t *Tick) (Observed, *Result, error) {
	p, rec := c.Policy, c.rec
	var obs Observed
	fp, err := c.Release.Fingerprint(ctx, false)
	if err != nil {
		return obs, nil, err
	}
	if fp != rec.Fingerprint {
		// A cache can lag behind coalmine's own last write: ask the API server before
		// concluding that someone else changed the release.
		if fp, err = c.Release.Fingerprint(ctx, true); err != nil {
			return obs, nil, err
		}
		if fp != rec.Fingerprint {
			obs.Changed = fmt.Sprintf("%s, coalmine left %s", fp, rec.Fingerprint)
			if by, err := c.Release.ChangedBy(ctx); err != nil {
				c.Logger.Warn().Err(err).Msg("who changed the release not read")
			} else if by != "" {
				obs.Changed += "; " + by
			}
			return obs, nil, nil
		}
	}
	ready, problem, err := c.Release.Health(ctx, rec.Step, rec.Release)
	if err != nil {
		return obs, nil, err
	}
	obs.Ready, obs.Problem, t.Ready = ready, problem, ready
	if !ready || problem != "" {
		return obs, nil, nil
	}
	// Read once, then judge: the same two pieces report, watch and backtest loop over.
	var baselineAt time.Time
	if p.Spec.Strategy.Type == policies.StrategyBlueGreen {
		// After the switch the baseline serves nothing: judge against it as it was before.
		baselineAt = rec.Started
	}
	if !p.Spec.Analysis.Judge.Streams() && warming(p, rec, t.Time) {
		return obs, nil, nil // a windowed judge has nothing to keep up to date: nothing read
	}
	if p.Spec.Analysis.Judge.Streams() && rec.Evidence == nil {
		rec.Evidence = NewEvidence()
	}
	if rec.Evidence != nil {
		rec.Evidence.KeepHistory = c.keepHistory()
		rec.Evidence.WarmUntil = warmUntil(p, rec)
	}
	var res Result
	r, err := c.Analyzer.Read(ctx, p, t.Time, baselineAt)
	if err == nil {
		res, err = c.Analyzer.Judge(p, r, rec.Evidence)
	}
	if errors.Is(err, metrics.ErrUnavailable) {
		t.Err, obs.Unavailable = err, err.Error()
		return obs, nil, nil
	}
	if err != nil {
		return obs, nil, fmt.Errorf("evaluate: %w", err)
	}
	t.Result = &res
	return obs, &res, nil
}

// keepHistory is how much of its history the judge reads, which the record must keep.
func (c *Canary) keepHistory() int {
	if c.Policy.Spec.Analysis.Judge != policies.JudgeMannWhitney {
		return 0
	}
	a := c.Policy.Spec.Analysis
	return int(time.Duration(a.Window)/time.Duration(a.Interval)) + 1
}

// end emits the Event of a transition, once per canary and transition.
func (c *Canary) end(ctx context.Context, rec *Progress, d Decision) {
	key, warning, reason, message := "", false, "", d.Reason
	switch d.Action {
	case Advance:
		switch {
		case d.Step == 0 && c.Policy.Spec.Strategy.Type == policies.StrategyBlueGreen:
			// One switch: a step number would mean nothing.
			key, reason = "step-0", "CanaryStarted"
			message = fmt.Sprintf("canary %s started: Service %s switched to it, judged against %s as it served before the switch",
				rec.Canary, c.Policy.Spec.Strategy.Service, c.Policy.Spec.Target.Baseline.Version)
		case d.Step == 0:
			key, reason, message = "step-0", "CanaryStarted", fmt.Sprintf("canary %s started: step 1/%d (%s)", rec.Canary, rec.Steps, stepName(c.Policy, 0))
		default:
			key, reason = fmt.Sprintf("step-%d", d.Step), "CanaryStepAdvanced"
		}
	case Promote:
		key, reason = "promote", "CanaryPromoted"
	case Rollback:
		key, warning, reason = "rollback", true, "CanaryRolledBack"
		if d.Cause == CauseDeadline {
			reason = "CanaryRolledBackAtDeadline"
		}
	case Stop:
		key, warning, reason = "stopped", true, "CanaryStopped"
		if d.Final == PhaseHeld {
			key, reason = "held", "CanaryInconclusive"
			message += "; left as it is (onInconclusive: hold)"
		}
	default:
		return
	}
	rec.notify(noticeOf(reason), message, byOf(rec, d), c.now())
	key = fmt.Sprintf("%s/%s/%d/%s", rec.Policy, rec.Canary, rec.Started.UnixNano(), key)
	if err := c.Release.Event(ctx, key, warning, reason, message); err != nil {
		c.Logger.Warn().Err(err).Str("reason", reason).Msg("event not recorded")
	}
}

func (c *Canary) save(ctx context.Context) error {
	now := c.now()
	if c.Driver != "" {
		// The record is read again before it is written (writes are rare: transitions and
		// checkpoints): a driver that took over while this one was away keeps the canary.
		raw, err := c.Release.Progress(ctx)
		if err != nil {
			return err
		}
		if cur, err := DecodeProgress(raw, c.Policy); err == nil && cur != nil && cur.Canary == c.rec.Canary {
			if other := c.heldBy(cur, now); other != "" {
				return &busyError{driver: other, until: cur.DriverUntil}
			}
		}
		c.rec.Driver, c.rec.DriverUntil = c.Driver, now.Add(c.claim())
	}
	c.rec.Saved = now
	s, err := EncodeProgress(c.rec)
	if err != nil {
		return err
	}
	return c.Release.SaveProgress(ctx, s)
}

// claim is how long a driver's claim lasts past a write: past the next checkpoint of a quiet
// canary, with room for ticks that come late.
func (c *Canary) claim() time.Duration {
	return checkpointEvery + 3*max(time.Duration(c.Policy.Spec.Analysis.Interval), tickBudget)
}

// heldBy names the other driver whose claim on rec is still good at now; "" when none.
func (c *Canary) heldBy(rec *Progress, now time.Time) string {
	if c.Driver == "" || rec.Driver == "" || rec.Driver == c.Driver || !now.Before(rec.DriverUntil) {
		return ""
	}
	return rec.Driver
}

// busyError is another driver's claim on the canary.
type busyError struct {
	driver string
	until  time.Time
}

func (e *busyError) Error() string {
	return fmt.Sprintf("the canary is driven by %s (its claim lasts until %s, renewed as it writes); coalmine did not act",
		e.driver, e.until.UTC().Format(time.RFC3339))
}

// busy ends a step on another driver's claim: nothing was done, the record is theirs, and an
// Event says so once per driver.
func (c *Canary) busy(ctx context.Context, b *busyError) StepResult {
	p := c.Policy
	key := fmt.Sprintf("%s/%s/busy/%s", p.Metadata.Name, p.Spec.Target.Canary.Version, b.driver)
	msg := fmt.Sprintf("%s: %s", c.Driver, b.Error())
	if err := c.Release.Event(ctx, key, true, "CanaryDriverConflict", msg); err != nil {
		c.Logger.Warn().Err(err).Msg("event not recorded")
	}
	c.Logger.Warn().Str("driver", b.driver).Time("until", b.until).Msg("canary driven by another")
	c.rec = nil // read again, from the cluster, by the next step
	return StepResult{Outcome: OutcomeBusy, Reason: b.Error()}
}

func (c *Canary) record(rep *Report, t Tick) {
	rep.Ticks = append(rep.Ticks, t)
	if c.OnTick != nil {
		c.OnTick(t)
	}
}

// outcomeOf is how a canary in rec's phase ended; a rollback at the deadline is inconclusive.
func outcomeOf(rec *Progress) Outcome {
	switch rec.Phase {
	case PhasePromoted:
		return OutcomePromoted
	case PhaseRolledBack:
		if rec.Cause == CauseDeadline {
			return OutcomeInconclusive
		}
		return OutcomeRolledBack
	case PhaseStopped:
		return OutcomeStopped
	}
	return OutcomeInconclusive
}

// noticeOf is the kind of notice of a transition with the Event reason reason.
func noticeOf(reason string) NoticeKind {
	switch reason {
	case "CanaryStarted":
		return NoticeStarted
	case "CanaryStepAdvanced":
		return NoticeStep
	case "CanaryPromoted":
		return NoticePromoted
	case "CanaryRolledBack":
		return NoticeRolledBack
	case "CanaryRolledBackAtDeadline", "CanaryInconclusive":
		return NoticeInconclusive
	}
	return NoticeStopped
}

// byOf names the person behind a transition a command made; "" for coalmine's own.
func byOf(rec *Progress, d Decision) string {
	if d.Cause != CauseCommand {
		return ""
	}
	switch {
	case d.Action == Rollback && rec.Abort != nil:
		return rec.Abort.By
	case d.Action == Promote && rec.Promote != nil:
		return rec.Promote.By
	}
	return ""
}
