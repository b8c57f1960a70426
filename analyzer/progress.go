package analyzer

import (
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
	// PhaseStopped is a canary coalmine stopped acting on: someone else changed it, an action
	// did not complete in time, or its record could not be trusted.
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

func (p Phase) known() bool {
	switch p {
	case PhaseProgressing, PhasePromoting, PhaseRollingBack:
		return true
	}
	return p.Final()
}

// Progress is the record coalmine keeps of one canary on the cluster: all of its state for that
// canary, so that any process that restarts carries on exactly where the last one was, and
// nothing a previous canary left is reused by the next. It is small (the judge's sufficient
// statistics, not its charts), versioned, checksummed, and validated before it is believed
// (DecodeProgress); it is written on transitions and at most every checkpoint in between.
type Progress struct {
	// Version is the record's format; a record of another version is not obeyed.
	Version int    `json:"v"`
	Policy  string `json:"policy"`
	// Canary is the canary version this record is about; a record of another version belongs
	// to an earlier canary and is never reused.
	Canary string `json:"canary"`
	// Baseline is the version the canary is judged against.
	Baseline string `json:"baseline,omitempty"`
	// Template identifies the canary's pod template: a record of another template, even of the
	// same version, belongs to an earlier canary.
	Template string    `json:"template,omitempty"`
	Phase    Phase     `json:"phase"`
	Started  time.Time `json:"started"`
	// Step is the current step (0-based) of Steps, and StepStarted when it was decided.
	Step        int       `json:"step"`
	Steps       int       `json:"steps"`
	StepStarted time.Time `json:"stepStarted"`
	// InFlight is the action in flight: written before acting and cleared once done, so that
	// an action cut short is finished by whoever comes next, never forgotten nor applied twice.
	InFlight *InFlight `json:"inFlight,omitempty"`
	// Fingerprint is the state of the release after coalmine's last action; any other change
	// is someone else's.
	Fingerprint string `json:"fingerprint"`
	// Release is what the strategy remembered when this canary started (the baseline's
	// replicas, the Service's version, the revision to undo to): the actuator's, opaque here.
	Release map[string]string `json:"release,omitempty"`
	// Verdicts holds the last verdict of each step.
	Verdicts []StepVerdict `json:"verdicts,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	// Cause is why the canary is promoting, rolling back or ended.
	Cause Cause `json:"cause,omitempty"`
	// Saved is when the record was last written.
	Saved time.Time `json:"saved"`
	// Driver names who drives the canary (a gate on a host, a daemon's install), and
	// DriverUntil when that claim ends unless renewed: every write renews it. Another driver
	// refuses the canary until then, instead of overwriting the record.
	Driver      string    `json:"driver,omitempty"`
	DriverUntil time.Time `json:"driverUntil,omitzero"`
	// Paused, Promote and Abort are people's standing requests (coalmine pause, promote,
	// abort), and Approved the last approval gate let through (a 1-based step; the number of
	// steps plus one is the promotion): Decide reads them. Asked is the gate whose approval
	// was last asked for. Handled are the commands taken, newest last.
	Paused   *Request `json:"paused,omitempty"`
	Promote  *Request `json:"promote,omitempty"`
	Abort    *Request `json:"abort,omitempty"`
	Approved int      `json:"approved,omitempty"`
	// PausedFor is how long the canary was paused, added to its deadline.
	PausedFor time.Duration `json:"pausedFor,omitempty"`
	Asked     int           `json:"asked,omitempty"`
	Handled   []string      `json:"handled,omitempty"`
	// Notices are what the canary has to tell people (its outbox), newest last, with the last
	// canaries' before them (a canary that ended as the next one started may not have been
	// heard of yet); Seq numbers this canary's. Whoever sends them records elsewhere which each
	// receiver has had, so each is sent once across restarts.
	Notices []Notice `json:"notices,omitempty"`
	Seq     int      `json:"seq,omitempty"`
	// Evidence is what the counter-reading judges have gathered so far; it is stored compactly
	// (see encodeEvidence).
	Evidence *Evidence `json:"-"`
	// Sum is the record's checksum: a record edited by hand does not match it.
	Sum string `json:"sum"`
}

// InFlight is an action in flight: the typed decision being carried out, not a string to parse.
type InFlight struct {
	// Action is Advance, Promote or Rollback.
	Action Action `json:"action"`
	// Step is the step an Advance applies.
	Step int `json:"step,omitempty"`
	// Cause is why it was decided.
	Cause Cause `json:"cause,omitempty"`
	// Since is when it was decided; a promotion or rollback that does not complete within
	// actionTimeout ends the canary as stopped.
	Since time.Time `json:"since"`
}

// Notice is one thing a canary tells people: started, a step, approval needed, promoted, rolled
// back, inconclusive, stopped, or a command taken.
type Notice struct {
	// ID names the notice wherever it is sent, the same on every attempt: its canary's policy,
	// version and attempt, and Seq, its number in that attempt (from 1).
	ID   string     `json:"id"`
	Seq  int        `json:"seq"`
	Kind NoticeKind `json:"kind"`
	// Canary and Baseline are the versions of the canary it is about: an outbox carries an
	// earlier canary's notices that were not yet delivered into the next canary's record.
	Canary   string `json:"canary"`
	Baseline string `json:"baseline,omitempty"`
	// Step is the canary's step (1-based) when the notice was made.
	Step   int       `json:"step"`
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by,omitempty"`
	At     time.Time `json:"at"`
}

// NoticeKind is what a notice is about.
type NoticeKind string

// The kinds of notices.
const (
	NoticeStarted        NoticeKind = "started"
	NoticeStep           NoticeKind = "step"
	NoticeApprovalNeeded NoticeKind = "approvalNeeded"
	NoticePromoted       NoticeKind = "promoted"
	NoticeRolledBack     NoticeKind = "rolledBack"
	NoticeInconclusive   NoticeKind = "inconclusive"
	NoticeStopped        NoticeKind = "stopped"
	NoticeCommand        NoticeKind = "command"
)

// maxNotices bounds the outbox: a receiver down for longer than that many notices misses the
// oldest.
const maxNotices = 16

// notify adds a notice to the outbox.
func (p *Progress) notify(kind NoticeKind, reason, by string, now time.Time) {
	p.Seq++
	id := fmt.Sprintf("%s.%s.%d.%d", p.Policy, p.Canary, p.Started.UnixNano(), p.Seq)
	p.Notices = append(p.Notices, Notice{ID: id, Seq: p.Seq, Kind: kind, Canary: p.Canary, Baseline: p.Baseline,
		Step: p.Step + 1, Reason: clip(reason), By: by, At: now})
	if len(p.Notices) > maxNotices {
		p.Notices = p.Notices[len(p.Notices)-maxNotices:]
	}
}

// StepVerdict is the last verdict seen at a step.
type StepVerdict struct {
	Step    int     `json:"step"`
	Verdict Verdict `json:"verdict"`
	Reason  string  `json:"reason,omitempty"`
}

// maxReason bounds each reason kept in the record: reasons are for people, and the record rides
// in an annotation.
const maxReason = 512

func clip(s string) string {
	if len(s) <= maxReason {
		return s
	}
	return s[:maxReason-3] + "..."
}

// setVerdict records the last verdict of a step; it reports whether anything changed.
func (p *Progress) setVerdict(step int, v Verdict, reason string) bool {
	reason = clip(reason)
	for i := range p.Verdicts {
		if p.Verdicts[i].Step == step {
			changed := p.Verdicts[i].Verdict != v
			p.Verdicts[i] = StepVerdict{Step: step, Verdict: v, Reason: reason}
			return changed
		}
	}
	p.Verdicts = append(p.Verdicts, StepVerdict{Step: step, Verdict: v, Reason: reason})
	return true
}

// lastVerdict is the verdict recorded at the current step, "" when none.
func (p *Progress) lastVerdict() Verdict {
	for _, v := range p.Verdicts {
		if v.Step == p.Step {
			return v.Verdict
		}
	}
	return ""
}

// String is a one-line summary for logs.
func (p *Progress) String() string {
	s := fmt.Sprintf("%s %s step %d/%d", p.Canary, p.Phase, p.Step+1, p.Steps)
	if p.InFlight != nil {
		s += " in flight: " + string(p.InFlight.Action)
	}
	return s
}

// Undone reports whether a release running baseline beside canary is this ended canary taken
// back: its canary now the baseline's version and its baseline the canary's, as a rollback
// leaves a rollout's Deployment while its old pods go. That is no new canary.
func (p *Progress) Undone(baseline, canary string) bool {
	return p.Phase.Final() && p.Canary == baseline && p.Baseline == canary && p.Baseline != ""
}
