package analyzer

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/coalmine/coalmine/policies"
)

// Action is what a decision does to the release.
type Action string

// The actions.
const (
	// Wait: the canary's pods are not Ready yet; nothing is judged.
	Wait Action = "wait"
	// Hold keeps the release as it is and analyses again.
	Hold Action = "hold"
	// Advance moves the canary to the next step.
	Advance Action = "advance"
	// Promote moves the release all the way to the canary.
	Promote Action = "promote"
	// Rollback takes the canary back.
	Rollback Action = "rollback"
	// Stop ends the canary without changing the release: someone else changed it, an action did
	// not complete in time, or its time ran out under onInconclusive: hold.
	Stop Action = "stop"
)

// Cause is why a decision that ends or moves a canary was made.
type Cause string

// The causes.
const (
	CauseVerdict       Cause = "verdict"
	CauseHealth        Cause = "health"
	CauseReadyTimeout  Cause = "readyTimeout"
	CauseDeadline      Cause = "deadline"
	CauseChanged       Cause = "changed"
	CauseActionTimeout Cause = "actionTimeout"
	CauseUntrusted     Cause = "untrustedRecord"
	// CauseCommand is a person's command: coalmine abort or promote.
	CauseCommand Cause = "command"
)

// Decision is what to do about one look at a canary, with its reason and, in words, what it
// changes in the cluster. It is a value: the gate and the daemon apply it, a dry run and a
// report print it, a backtest and a replay apply it to a record in memory. Decide is the only
// place decisions are made.
type Decision struct {
	Action Action `json:"action"`
	// Step is the step an Advance goes to (0-based).
	Step   int    `json:"step,omitempty"`
	Cause  Cause  `json:"cause,omitempty"`
	Final  Phase  `json:"-"`
	Reason string `json:"reason"`
	// Waiting is set on a hold that waits for a person (paused, or for approval): the deadline
	// does not end it. Await is the approval gate it waits for, if any.
	Waiting bool `json:"waiting,omitempty"`
	Await   int  `json:"await,omitempty"`
	// Effect says what the action changes, in the terms of the policy's strategy.
	Effect string `json:"effect"`
}

// Observed is what one look at the release saw before judging.
type Observed struct {
	// Changed, when set, says how the release is not where coalmine left it.
	Changed string
	// Ready says whether the current step's canary pods are all Ready.
	Ready bool
	// Problem names a health problem that fails the canary whatever its metrics say.
	Problem string
	// Unavailable, when set, says why the metrics could not be read: no verdict either way.
	Unavailable string
}

// actionTimeout bounds a promotion or a rollback: one that has not completed by then (pods that
// never become Ready, a controller that never acts) ends as stopped, with an Event, instead of
// looping.
func actionTimeout(p *policies.Policy) time.Duration {
	return max(2*time.Duration(p.Spec.Health.ReadyTimeout), 5*time.Minute)
}

// Decide is the one decision: from the record of a canary, what was observed of its release
// and the judged result (nil when nothing was judged), at now, with deadline the end of its
// time. It is pure: the gate, the daemon, report and backtest all call it, so they agree by
// construction.
func Decide(p *policies.Policy, rec *Progress, obs Observed, res *Result, now, deadline time.Time) Decision {
	d := decide(p, rec, obs, res, now, deadline)
	d.Effect = effect(p, d)
	return d
}

func decide(p *policies.Policy, rec *Progress, obs Observed, res *Result, now, deadline time.Time) Decision {
	if rec.Phase.Final() {
		return Decision{Action: Stop, Final: rec.Phase, Reason: "already " + string(rec.Phase) + ": " + rec.Reason}
	}
	if f := rec.InFlight; f != nil {
		switch ready := time.Duration(p.Spec.Health.ReadyTimeout); {
		case f.Action == Advance && now.Sub(f.Since) > ready:
			// A step that cannot be put in place (blue/green waits for every canary pod to be
			// Ready before it switches) is a canary that never became Ready.
			return Decision{Action: Rollback, Cause: CauseReadyTimeout,
				Reason: fmt.Sprintf("step %d/%d not in place within readyTimeout %s", f.Step+1, rec.Steps, p.Spec.Health.ReadyTimeout)}
		case f.Action != Advance && now.Sub(f.Since) > actionTimeout(p):
			return Decision{Action: Stop, Cause: CauseActionTimeout, Final: PhaseStopped,
				Reason: fmt.Sprintf("%s did not complete within %s; coalmine stopped acting on the release", f.Action, actionTimeout(p))}
		}
		if f.Action == Advance && rec.Abort != nil {
			return Decision{Action: Rollback, Cause: CauseCommand, Reason: "aborted by " + rec.Abort.who()}
		}
		return Decision{Action: f.Action, Step: f.Step, Cause: f.Cause, Reason: "finishing the " + string(f.Action) + " in flight: " + rec.Reason}
	}
	if obs.Changed != "" {
		return Decision{Action: Stop, Cause: CauseChanged, Final: PhaseStopped,
			Reason: "someone else changed the release (" + obs.Changed + "); coalmine stopped acting on it"}
	}
	switch {
	case rec.Abort != nil:
		return Decision{Action: Rollback, Cause: CauseCommand, Reason: "aborted by " + rec.Abort.who()}
	case rec.Promote != nil && rec.Promote.SkipAnalysis:
		return Decision{Action: Promote, Cause: CauseCommand, Reason: "promoted without analysis by " + rec.Promote.who()}
	}
	if obs.Problem != "" {
		return Decision{Action: Rollback, Cause: CauseHealth, Reason: "unhealthy canary: " + obs.Problem}
	}
	stepElapsed := now.Sub(rec.StepStarted)
	var d Decision
	switch {
	case !obs.Ready && stepElapsed > time.Duration(p.Spec.Health.ReadyTimeout):
		return Decision{Action: Rollback, Cause: CauseReadyTimeout,
			Reason: fmt.Sprintf("canary pods of step %d not Ready within readyTimeout %s", rec.Step+1, p.Spec.Health.ReadyTimeout)}
	case !obs.Ready:
		d = Decision{Action: Wait, Reason: "waiting for the canary pods to be Ready"}
	case obs.Unavailable != "":
		d = Decision{Action: Hold, Reason: "metrics unavailable; neither promoting nor rolling back: " + obs.Unavailable}
	case warming(p, rec, now) && (res == nil || res.Verdict != Fail):
		d = Decision{Action: Hold, Reason: fmt.Sprintf("warming up: step %d/%d's first %s are left out of the evidence (warmup)",
			rec.Step+1, rec.Steps, model.Duration(p.Spec.Analysis.WarmUp()))}
	case res == nil:
		d = Decision{Action: Hold, Reason: "nothing judged yet"}
	case res.Verdict == Fail:
		return Decision{Action: Rollback, Cause: CauseVerdict, Reason: res.Reason}
	case res.Verdict == Inconclusive:
		d = Decision{Action: Hold, Reason: res.Reason}
	case rec.Promote != nil:
		return Decision{Action: Promote, Cause: CauseCommand,
			Reason: fmt.Sprintf("promoted by %s once step %d/%d passed: %s", rec.Promote.who(), rec.Step+1, rec.Steps, res.Reason)}
	case stepElapsed < time.Duration(p.Spec.Strategy.StepDuration):
		d = Decision{Action: Hold, Reason: fmt.Sprintf("passing; step %d/%d runs for %s", rec.Step+1, rec.Steps, p.Spec.Strategy.StepDuration)}
	case rec.Paused != nil:
		// A person holds it: passing or not, nothing moves forward, and the deadline waits.
		return Decision{Action: Hold, Waiting: true,
			Reason: fmt.Sprintf("paused by %s at step %d/%d (coalmine resume to go on): %s", rec.Paused.who(), rec.Step+1, rec.Steps, res.Reason)}
	case awaiting(p, rec) != 0:
		g := awaiting(p, rec)
		what := fmt.Sprintf("step %d/%d (%s)", g, rec.Steps, stepName(p, g-1))
		if g > rec.Steps {
			what = "promotion"
		}
		return Decision{Action: Hold, Waiting: true, Await: g,
			Reason: fmt.Sprintf("step %d/%d passed; waiting for approval before %s (coalmine approve)", rec.Step+1, rec.Steps, what)}
	case rec.Step+1 >= rec.Steps:
		return Decision{Action: Promote, Cause: CauseVerdict, Reason: "passed every step: " + res.Reason}
	case !now.Before(deadline):
		// Passing, but no time left for the next step: the deadline decides, below.
		d = Decision{Action: Hold, Reason: fmt.Sprintf("passing at step %d/%d", rec.Step+1, rec.Steps)}
	default:
		next := rec.Step + 1
		return Decision{Action: Advance, Step: next, Cause: CauseVerdict,
			Reason: fmt.Sprintf("step %d passed; now step %d/%d (%s)", next, next+1, rec.Steps, stepName(p, next))}
	}
	if now.Before(deadline) {
		return d
	}
	if rec.Paused != nil {
		// Paused: the canary waits for a person, not for the deadline.
		d.Waiting = true
		d.Reason = fmt.Sprintf("paused by %s: %s", rec.Paused.who(), d.Reason)
		return d
	}
	if obs.Unavailable != "" {
		// An outage never promotes nor rolls back: the canary stays as it is, resumable.
		d.Reason = "deadline passed while metrics were unavailable: " + obs.Unavailable
		return d
	}
	reason := "deadline passed without a decisive verdict: " + d.Reason
	if p.Spec.Analysis.OnInconclusive == policies.InconclusiveRollback {
		return Decision{Action: Rollback, Cause: CauseDeadline, Reason: reason}
	}
	return Decision{Action: Stop, Cause: CauseDeadline, Final: PhaseHeld, Reason: reason}
}

// awaiting is the approval gate the canary's next move waits for (a 1-based step, the number of
// steps plus one for the promotion); 0 when it need not wait.
func awaiting(p *policies.Policy, rec *Progress) int {
	next := rec.Step + 2
	for _, g := range p.Spec.Strategy.ApproveBefore {
		if g == next && rec.Approved < g {
			return g
		}
	}
	return 0
}

// warming reports whether the current step is in its warm-up at now: its evidence is left out.
func warming(p *policies.Policy, rec *Progress, now time.Time) bool {
	return now.Before(warmUntil(p, rec))
}

// warmUntil is the end of the current step's warm-up.
func warmUntil(p *policies.Policy, rec *Progress) time.Time {
	return rec.StepStarted.Add(p.Spec.Analysis.WarmUp())
}

// Decisive reports whether a decision moves or ends the canary.
func (d Decision) Decisive() bool { return d.Action != Wait && d.Action != Hold }

func stepName(p *policies.Policy, i int) string {
	steps := p.Spec.Strategy.Steps
	if i >= 0 && i < len(steps) {
		return steps[i]
	}
	return "?"
}

// effect describes a decision on the policy's strategy.
func effect(p *policies.Policy, d Decision) string {
	t, s := p.Spec.Target, p.Spec.Strategy
	ns := t.Namespace
	canary, baseline := t.Canary.Deployment, t.Baseline.Deployment
	switch d.Action {
	case Wait, Hold:
		return fmt.Sprintf("change nothing and analyse again in %s", p.Spec.Analysis.Interval)
	case Stop:
		return "change nothing; coalmine stops acting on this canary"
	}
	after := "scale to 0"
	switch p.AfterPromotion() {
	case policies.AfterPromotionDelete:
		after = "delete"
	case policies.AfterPromotionUpdate:
		if d.Action == Promote && (s.Type == policies.StrategyScale || s.Type == policies.StrategyShift || s.Type == policies.StrategyBlueGreen) {
			return fmt.Sprintf("give Deployment %s/%s the pod template of %s/%s and wait for it to roll out, then scale %s/%s to 0 for the next release", ns, baseline, ns, canary, ns, canary)
		}
	}
	switch s.Type {
	case policies.StrategyScale:
		switch d.Action {
		case Advance:
			return fmt.Sprintf("scale Deployment %s/%s to step %d (%s)", ns, canary, d.Step+1, stepName(p, d.Step))
		case Promote:
			return fmt.Sprintf("scale Deployment %s/%s to the replicas of %s, then %s %s", ns, canary, baseline, after, baseline)
		}
		return fmt.Sprintf("scale Deployment %s/%s to 0 replicas", ns, canary)
	case policies.StrategyShift:
		switch d.Action {
		case Advance:
			return fmt.Sprintf("move replicas from Deployment %s/%s to %s/%s for step %d (%s), keeping the total", ns, baseline, ns, canary, d.Step+1, stepName(p, d.Step))
		case Promote:
			return fmt.Sprintf("move every replica from Deployment %s/%s to %s/%s", ns, baseline, ns, canary)
		}
		return fmt.Sprintf("move every replica back from Deployment %s/%s to %s/%s", ns, canary, ns, baseline)
	case policies.StrategyRollout:
		if canary == "" {
			canary = baseline
		}
		switch d.Action {
		case Advance:
			return fmt.Sprintf("let the rollout of Deployment %s/%s reach step %d (%s), then pause it", ns, canary, d.Step+1, stepName(p, d.Step))
		case Promote:
			return fmt.Sprintf("resume the rollout of Deployment %s/%s and restore its update strategy", ns, canary)
		}
		return fmt.Sprintf("resume Deployment %s/%s, then undo it to the last revision that passed analysis", ns, canary)
	case policies.StrategyBlueGreen:
		switch d.Action {
		case Advance:
			return fmt.Sprintf("keep Service %s/%s on version %s", ns, s.Service, t.Canary.Version)
		case Promote:
			return fmt.Sprintf("keep Service %s/%s on version %s, then %s %s", ns, s.Service, t.Canary.Version, after, baseline)
		}
		return fmt.Sprintf("switch Service %s/%s back to the version it selected before the canary", ns, s.Service)
	}
	return strings.ToLower(string(d.Action))
}

// NewProgress is the record of a canary starting at now: step 0 decided, not yet applied.
func NewProgress(p *policies.Policy, now time.Time) *Progress {
	return &Progress{
		Version: RecordVersion, Policy: p.Metadata.Name, Canary: p.Spec.Target.Canary.Version, Baseline: p.Spec.Target.Baseline.Version,
		Phase: PhaseProgressing, Started: now, Steps: len(p.Spec.Strategy.Steps), StepStarted: now,
		InFlight: &InFlight{Action: Advance, Step: 0, Since: now},
	}
}

// Apply records a decision in the record, before it is carried out (write-ahead). It reports
// whether the record changed in a way worth writing at once: a transition.
func (rec *Progress) Apply(d Decision, res *Result, now time.Time) bool {
	changed := false
	if res != nil && rec.setVerdict(rec.Step, res.Verdict, res.Reason) {
		changed = true
	}
	switch d.Action {
	case Advance:
		if rec.InFlight == nil {
			rec.InFlight, rec.StepStarted = &InFlight{Action: Advance, Step: d.Step, Cause: d.Cause, Since: now}, now
			changed = true
		}
	case Promote, Rollback:
		// A rollback may replace an advance that could not be made; nothing replaces a promotion
		// or a rollback in flight.
		if rec.InFlight == nil || d.Action == Rollback && rec.InFlight.Action == Advance {
			rec.InFlight = &InFlight{Action: d.Action, Cause: d.Cause, Since: now}
			rec.Phase, rec.Reason, rec.Cause = PhasePromoting, clip(d.Reason), d.Cause
			if d.Action == Rollback {
				rec.Phase = PhaseRollingBack
			}
			changed = true
		}
	case Stop:
		if !rec.Phase.Final() {
			rec.Phase, rec.Reason, rec.Cause, rec.InFlight = d.Final, clip(d.Reason), d.Cause, nil
			changed = true
		}
	}
	return changed
}

// Done records that the action in flight has been carried out at now, leaving the release with
// fingerprint fp. A step's time starts when it is in place, not when it was decided.
func (rec *Progress) Done(fp string, now time.Time) {
	f := rec.InFlight
	if f == nil {
		return
	}
	rec.InFlight, rec.Fingerprint = nil, fp
	switch f.Action {
	case Advance:
		rec.Step = f.Step
		if now.After(rec.StepStarted) {
			rec.StepStarted = now
		}
	case Promote:
		rec.Phase = PhasePromoted
	case Rollback:
		rec.Phase = PhaseRolledBack
	}
}
