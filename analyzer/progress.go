package analyzer

import (
	"encoding/json"
	"fmt"
	"time"
)

// Phase is where a canary is.
type Phase string

// The phases. Promoted, RolledBack, Held and Stopped are final.
const (
	PhaseProgressing Phase = "progressing"
	PhasePromoting   Phase = "promoting"
	PhaseRollingBack Phase = "rollingBack"
	PhasePromoted    Phase = "promoted"
	PhaseRolledBack  Phase = "rolledBack"
	// PhaseHeld is a canary left as it was when its time ran out, by policy.
	PhaseHeld Phase = "held"
	// PhaseStopped is a canary someone else changed: coalmine stopped acting on it.
	PhaseStopped Phase = "stopped"
)

// Final reports whether nothing more will be done in this phase.
func (p Phase) Final() bool {
	switch p {
	case PhasePromoted, PhaseRolledBack, PhaseHeld, PhaseStopped:
		return true
	}
	return false
}

// Progress is what coalmine records on the Deployment it drives, so that any process that
// restarts carries on exactly where the last one was.
type Progress struct {
	Policy string `json:"policy"`
	// Canary is the canary version this record is about; a record of another version is stale.
	Canary  string    `json:"canary"`
	Phase   Phase     `json:"phase"`
	Started time.Time `json:"started"`
	// Step is the current step (0-based) and StepStarted when it was applied.
	Step        int       `json:"step"`
	StepStarted time.Time `json:"stepStarted"`
	// Pending is the action in flight: written before acting and cleared after, so that an
	// action cut short is finished by whoever comes next, never forgotten nor applied twice.
	Pending string `json:"pending,omitempty"`
	// Fingerprint is the state of the release after coalmine's last action; any other change
	// is someone else's.
	Fingerprint string `json:"fingerprint"`
	// Verdicts holds the last verdict of each step.
	Verdicts []StepVerdict `json:"verdicts,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	Updated  time.Time     `json:"updated"`
	// Evidence is what the counter-reading judges have gathered so far.
	Evidence *Evidence `json:"evidence,omitempty"`
}

// StepVerdict is the last verdict seen at a step.
type StepVerdict struct {
	Step    int     `json:"step"`
	Verdict Verdict `json:"verdict"`
	Reason  string  `json:"reason,omitempty"`
}

// Pending actions.
const (
	pendingPromote  = "promote"
	pendingRollback = "rollback"
)

func pendingStep(i int) string { return fmt.Sprintf("step:%d", i) }

// ParseProgress reads a progress record; nil when s is empty.
func ParseProgress(s string) (*Progress, error) { return parseProgress(s) }

func parseProgress(s string) (*Progress, error) {
	if s == "" {
		return nil, nil
	}
	var p Progress
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return nil, fmt.Errorf("progress record: %w", err)
	}
	return &p, nil
}

func (p *Progress) encode() (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("progress record: %w", err)
	}
	return string(b), nil
}

func (p *Progress) setVerdict(step int, v Verdict, reason string) {
	for i := range p.Verdicts {
		if p.Verdicts[i].Step == step {
			p.Verdicts[i] = StepVerdict{Step: step, Verdict: v, Reason: reason}
			return
		}
	}
	p.Verdicts = append(p.Verdicts, StepVerdict{Step: step, Verdict: v, Reason: reason})
}
