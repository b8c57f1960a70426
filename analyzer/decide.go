package analyzer

import (
	"fmt"
	"strings"

	"github.com/coalmine/coalmine/policies"
)

// Action is what the engine does about a verdict.
type Action string

// The actions.
const (
	// Promote moves the release forward: the next step, or all of the canary at the last one.
	Promote Action = "promote"
	// Rollback takes the canary back.
	Rollback Action = "rollback"
	// Hold keeps the current state and analyses again.
	Hold Action = "hold"
)

// Decision is an action with its reason and, in words, what it changes in the cluster. It is a
// value: a dry run prints it, a real actuator applies it.
type Decision struct {
	Action Action `json:"action"`
	Reason string `json:"reason"`
	// Effect says what the action changes, in the terms of the policy's strategy.
	Effect string `json:"effect"`
}

// Decide turns one evaluation into a decision.
func Decide(p *policies.Policy, r Result) Decision {
	var d Decision
	switch r.Verdict {
	case Pass:
		d = Decision{Action: Promote, Reason: r.Reason}
	case Fail:
		d = Decision{Action: Rollback, Reason: r.Reason}
	default:
		d = Decision{Action: Hold, Reason: r.Reason}
	}
	d.Effect = effect(p, d.Action)
	return d
}

// effect describes an action on the policy's strategy.
func effect(p *policies.Policy, a Action) string {
	t, s := p.Spec.Target, p.Spec.Strategy
	ns := t.Namespace
	canary, baseline := t.Canary.Deployment, t.Baseline.Deployment
	if a == Hold {
		return fmt.Sprintf("change nothing and analyse again in %s", p.Spec.Analysis.Interval)
	}
	after := "scale to 0"
	if s.BaselineAfterPromotion == "delete" {
		after = "delete"
	}
	switch s.Type {
	case policies.StrategyScale:
		if a == Promote {
			return fmt.Sprintf("scale Deployment %s/%s to its next step (steps %s); after the last, to the replicas of %s, then %s %s",
				ns, canary, strings.Join(s.Steps, ", "), baseline, after, baseline)
		}
		return fmt.Sprintf("scale Deployment %s/%s to 0 replicas", ns, canary)
	case policies.StrategyShift:
		if a == Promote {
			return fmt.Sprintf("move replicas from Deployment %s/%s to %s/%s, keeping the total", ns, baseline, ns, canary)
		}
		return fmt.Sprintf("move every replica back from Deployment %s/%s to %s/%s", ns, canary, ns, baseline)
	case policies.StrategyRollout:
		if canary == "" {
			canary = baseline
		}
		if a == Promote {
			return fmt.Sprintf("resume the rollout of Deployment %s/%s and restore its update strategy", ns, canary)
		}
		return fmt.Sprintf("resume Deployment %s/%s, then undo it to the last revision that passed analysis", ns, canary)
	case policies.StrategyBlueGreen:
		if a == Promote {
			return fmt.Sprintf("keep Service %s/%s on version %s, then %s %s", ns, s.Service, t.Canary.Version, after, baseline)
		}
		return fmt.Sprintf("switch Service %s/%s back to version %s", ns, s.Service, t.Baseline.Version)
	}
	return string(a)
}
