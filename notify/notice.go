package notify

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is what a notice tells. The kinds are policies.NotificationEvents, the names a
// notification's events filter on.
type Kind string

// The kinds of notice.
const (
	// KindStarted: a canary version started (its first step is in place).
	KindStarted Kind = "started"
	// KindStep: the canary advanced to its next step.
	KindStep Kind = "step"
	// KindApprovalNeeded: the canary waits for someone to approve its next step.
	KindApprovalNeeded Kind = "approvalNeeded"
	// KindPromoted: the canary was promoted.
	KindPromoted Kind = "promoted"
	// KindRolledBack: the canary was rolled back.
	KindRolledBack Kind = "rolledBack"
	// KindInconclusive: the analysis ended without a decisive verdict.
	KindInconclusive Kind = "inconclusive"
	// KindStopped: coalmine stopped acting on the canary (someone else changed the release, an
	// action did not complete in time).
	KindStopped Kind = "stopped"
	// KindCommand: someone gave coalmine a command about the canary; Reason says which, By who.
	KindCommand Kind = "command"
)

// Kinds lists every kind of notice, in the order of policies.NotificationEvents.
func Kinds() []Kind {
	return []Kind{KindStarted, KindStep, KindApprovalNeeded, KindPromoted, KindRolledBack, KindInconclusive, KindStopped, KindCommand}
}

// Notice is one thing to tell people about a canary: a plain value, built by whoever decided
// it and sent as it is to each of the policy's notifications.
type Notice struct {
	// ID identifies the notice across retries and restarts: it is sent as the delivery ID
	// (X-Coalmine-Delivery) so a receiver can drop a notice it has seen. It must be set, and be
	// the same every time the same notice is offered.
	ID   string
	Kind Kind
	// Namespace, Policy and App name the release.
	Namespace, Policy, App string
	// Baseline and Canary are the versions compared.
	Baseline, Canary string
	// Step is the canary's step now, 1-based, of Steps; 0 when it has none.
	Step, Steps int
	// Phase is the policy's phase (policies.Phase) when the notice was made.
	Phase string
	// Reason says why, for people; for a command, the command as given.
	Reason string
	// By is who asked, for commands and manual actions; "" otherwise.
	By string
	// At is when it happened.
	At time.Time
}

// Bounds on what a notice carries. Reasons and versions come from the cluster and may be
// written by anyone who can edit a Deployment: a body is kept to a few kilobytes whatever
// they hold.
const (
	maxReason = 2000 // bytes
	maxField  = 256  // bytes, every other string
)

// bounded returns the notice with its strings made valid UTF-8 and cut to their bounds.
func (n Notice) bounded() Notice {
	n.ID = clip(n.ID, maxField)
	n.Kind = Kind(clip(string(n.Kind), maxField))
	n.Namespace = clip(n.Namespace, maxField)
	n.Policy = clip(n.Policy, maxField)
	n.App = clip(n.App, maxField)
	n.Baseline = clip(n.Baseline, maxField)
	n.Canary = clip(n.Canary, maxField)
	n.Phase = clip(n.Phase, maxField)
	n.Reason = clip(n.Reason, maxReason)
	n.By = clip(n.By, maxField)
	return n
}

// clip makes s valid UTF-8 and, when longer than max bytes, cuts it on a rune boundary and
// ends it with "…", max bytes in all.
func clip(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	cut := max - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
