package daemon

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/policies"
)

// sighting is what the controller saw of a policy's release, for its CanaryPolicy's status.
type sighting struct {
	phase       policies.Phase
	step, steps int    // step is 1-based; 0 when no canary is at a step
	verdict     string // "" keeps the last one, but for Pending, which clears it
	reason      string
	message     string
	canary      string
	baseline    string
}

// phaseOf is the status phase of a canary whose record is in rec's phase.
func phaseOf(rec *analyzer.Progress) policies.Phase {
	switch rec.Phase {
	case analyzer.PhasePromoting:
		return policies.PhasePromoting
	case analyzer.PhaseRollingBack:
		return policies.PhaseRollingBack
	case analyzer.PhasePromoted:
		return policies.PhasePromoted
	case analyzer.PhaseRolledBack:
		if rec.Cause == analyzer.CauseDeadline {
			return policies.PhaseInconclusive // rolled back at maxDuration under onInconclusive: rollback
		}
		return policies.PhaseRolledBack
	case analyzer.PhaseHeld:
		return policies.PhaseInconclusive
	case analyzer.PhaseStopped:
		return policies.PhaseStopped
	}
	return policies.PhaseAnalyzing
}

// recorded is the sighting of a canary as its record says.
func recorded(rec *analyzer.Progress) sighting {
	s := sighting{phase: phaseOf(rec), step: rec.Step + 1, steps: rec.Steps, message: rec.Reason, canary: rec.Canary, baseline: rec.Baseline}
	if s.phase == policies.PhaseAnalyzing {
		switch {
		case rec.Paused != nil:
			s.phase = policies.PhasePaused
		case rec.Asked > rec.Approved:
			s.phase = policies.PhaseWaitingForApproval
		}
	}
	if rec.Cause != "" {
		s.reason = camel(string(rec.Cause))
	}
	for _, v := range rec.Verdicts {
		if v.Step == rec.Step {
			s.verdict = string(v.Verdict)
		}
	}
	return s
}

// stepped is the sighting after one step of a canary's engine.
func stepped(rec *analyzer.Progress, st analyzer.StepResult) sighting {
	var s sighting
	if rec != nil {
		s = recorded(rec)
	}
	if t := st.Tick; t != nil {
		s.reason, s.message = camel(t.Action), t.Reason
		if t.Result != nil {
			s.verdict = string(t.Result.Verdict)
		}
		if rec == nil {
			s.step, s.steps = t.Step+1, t.Steps
		}
	}
	if s.phase == "" {
		s.phase = policies.PhaseAnalyzing
	}
	switch st.Outcome {
	case "":
		return s
	case analyzer.OutcomeBusy:
		s.phase, s.step, s.steps = policies.PhaseBusy, 0, 0
	case analyzer.OutcomeUnavailable:
		s.phase = policies.PhaseAnalyzing // held through the outage; it goes on when the metrics answer
	case analyzer.OutcomeWaiting:
		return s // waiting for a person, as recorded
	case analyzer.OutcomePromoted:
		s.phase = policies.PhasePromoted
	case analyzer.OutcomeRolledBack:
		s.phase = policies.PhaseRolledBack
	case analyzer.OutcomeInconclusive:
		s.phase = policies.PhaseInconclusive
	case analyzer.OutcomeStopped:
		s.phase = policies.PhaseStopped
	}
	s.reason, s.message = camel(string(st.Outcome)), st.Reason
	return s
}

// camel makes a CamelCase reason of a lowerCamel word: "rolledBack" -> "RolledBack".
func camel(s string) string {
	if s == "" {
		return ""
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// conditionAccepted says whether the daemon runs the object's policy.
const conditionAccepted = "Accepted"

// nextStatus is the status an object should have after a sighting, and whether it differs
// from st in what is written on a transition: the phase, the step, the verdict, the generation
// observed, or a refusal's message. Anything else (a tick's reason and numbers) waits for the
// next transition. refused is the object's current generation's problem, nil when none.
func nextStatus(st policies.Status, generation int64, p *policies.Policy, s sighting, refused error, now metav1.Time) (policies.Status, bool) {
	next := st
	next.ObservedGeneration = generation
	accepted := metav1.Condition{Type: conditionAccepted, Status: metav1.ConditionTrue, Reason: "Valid", Message: "the policy is in force", ObservedGeneration: generation}
	if refused != nil {
		s.phase, s.reason, s.message = policies.PhaseInvalid, "Invalid", message(refused)
		if p != nil {
			s.message += "\n(the last valid generation stays in force)"
		}
		accepted = metav1.Condition{Type: conditionAccepted, Status: metav1.ConditionFalse, Reason: "Invalid", Message: s.message, ObservedGeneration: generation}
	}
	next.Phase, next.Reason, next.Message = s.phase, s.reason, s.message
	next.Step, next.CurrentStep, next.Steps = "", int32(s.step), int32(s.steps)
	if s.step > 0 {
		next.Step = fmt.Sprintf("%d/%d", s.step, s.steps)
	}
	if s.verdict != "" || s.phase == policies.PhasePending || (refused != nil && p == nil) {
		next.Verdict = s.verdict
	}
	if p != nil {
		next.BaselineVersion = p.Spec.Target.Baseline.Version
		next.CanaryVersion = p.Spec.Target.Canary.Version
	}
	if s.canary != "" {
		next.CanaryVersion = s.canary
	}
	if s.baseline != "" {
		next.BaselineVersion = s.baseline
	}
	changed := next.Phase != st.Phase || next.Step != st.Step || next.Verdict != st.Verdict ||
		next.ObservedGeneration != st.ObservedGeneration || (refused != nil && next.Message != st.Message)
	if !changed {
		return st, false
	}
	if next.Phase != st.Phase || next.LastTransitionTime == nil {
		next.LastTransitionTime = &now
	}
	next.Conditions = append([]metav1.Condition(nil), st.Conditions...)
	accepted.LastTransitionTime = now
	meta.SetStatusCondition(&next.Conditions, accepted)
	return next, true
}

// report writes a sighting to the status of the policy's CanaryPolicy object, when it is a
// transition; a quiet tick sends nothing (the comparison is with the informer's copy).
func (c *controller) report(ctx context.Context, key string, p *policies.Policy, s sighting) {
	if c.objects == nil {
		return // policies from files have no status
	}
	ns, name, _ := strings.Cut(key, "/")
	lister, ok := c.policyListers[ns]
	if !ok {
		lister, ok = c.policyListers[""]
	}
	if !ok {
		return
	}
	cached, err := lister.ByNamespace(ns).Get(name)
	if err != nil {
		return // deleted: nothing to report on
	}
	o, ok := cached.(*unstructured.Unstructured)
	if !ok {
		return
	}
	refused, gen := c.objects.refusedAt(key)
	if refused != nil && gen != o.GetGeneration() {
		refused = nil // the informer has a newer generation on its way to the store
	}
	if refused == nil && p == nil {
		return
	}
	var cur policies.Status
	if raw, ok := o.Object["status"].(map[string]any); ok {
		_ = runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &cur)
	}
	now := metav1.Now()
	if _, changed := nextStatus(cur, o.GetGeneration(), p, s, refused, now); !changed {
		return
	}
	written, err := c.status.Update(ctx, ns, name, func(fresh *unstructured.Unstructured, st *policies.Status) bool {
		if fresh.GetGeneration() != o.GetGeneration() {
			return false // a new generation: its own sync reports on it
		}
		next, changed := nextStatus(*st, fresh.GetGeneration(), p, s, refused, now)
		*st = next
		return changed
	})
	if err != nil {
		c.d.metrics.tickErrors.WithLabelValues("kubernetes").Inc()
		c.d.logger.Warn().Err(err).Str("policy", key).Msg("status not written")
		return
	}
	if written == nil {
		return
	}
	c.d.logger.Info().Str("policy", key).Str("phase", string(s.phase)).Int("step", s.step).Str("verdict", s.verdict).Msg("status written")
	if refused != nil {
		err := c.status.Event(ctx, written, fmt.Sprintf("invalid/%d", gen), true, "CanaryPolicyInvalid", message(refused))
		if err != nil {
			c.d.logger.Warn().Err(err).Str("policy", key).Msg("event not recorded")
		}
	}
}

// RecordPhase is the phase a canary's record puts it in, as CanaryPolicy status shows it.
func RecordPhase(rec *analyzer.Progress) policies.Phase { return recorded(rec).phase }
