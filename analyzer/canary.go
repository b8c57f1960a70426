package analyzer

import (
	"context"
	"errors"
	"time"

	"github.com/coalmine/coalmine/policies"
)

// Release is the cluster side of a canary, as the analyzer needs it. The actuator implements
// it; a dry run logs instead of writing. Every method is idempotent.
type Release interface {
	// Steps is the number of canary steps before promotion.
	Steps() int
	// Prepare reads, once when a canary starts, what its strategy must remember to size its
	// steps and to undo them (the baseline's replicas, the version a Service selected, the
	// revision to return to). It is kept in the canary's record and handed back to every
	// action, so nothing one canary remembered is reused by the next.
	Prepare(ctx context.Context) (map[string]string, error)
	// SetStep makes the canary the size of step i (0-based).
	// It reports done once the step is in place; until then it is called again.
	SetStep(ctx context.Context, i int, state map[string]string) (done bool, err error)
	// Promote and Rollback move the release a bit further each call, until done.
	Promote(ctx context.Context, state map[string]string) (done bool, err error)
	Rollback(ctx context.Context, state map[string]string) (done bool, err error)
	// Health says whether step i's canary pods are all Ready, and names a problem that fails
	// the canary whatever its metrics say.
	Health(ctx context.Context, i int, state map[string]string) (ready bool, problem string, err error)
	// Fingerprint summarises the state coalmine controls: from a cache when there is one, from
	// the API server when fresh is set.
	Fingerprint(ctx context.Context, fresh bool) (string, error)
	// ChangedBy names who last changed the fields coalmine controls, other than coalmine:
	// field, object, manager, operation and time; "" when unknown.
	ChangedBy(ctx context.Context) (string, error)
	// Progress and SaveProgress read and write the canary's record on the cluster.
	Progress(ctx context.Context) (string, error)
	SaveProgress(ctx context.Context, progress string) error
	// Event tells people what happened, on the Deployment, once per key: recording the same
	// key again (after a crash) records nothing.
	Event(ctx context.Context, key string, warning bool, reason, message string) error
	// Target reads the release's versions from its Deployments (those the policy pins as
	// written) and identifies the canary's pod template.
	Target(ctx context.Context) (baseline, canary, template string, err error)
	// Use makes the release act on p, the policy with the versions read, from now on.
	Use(p *policies.Policy) error
	// Commands returns the commands people left for the canary (see DecodeCommands).
	Commands(ctx context.Context) (string, error)
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
	// OutcomeBusy: another driver holds the canary (its record names it, until a time not yet
	// come); nothing was done.
	OutcomeBusy Outcome = "busy"
	// OutcomeWaiting: the caller's time ran out while the canary waited for a person (paused,
	// or for approval); it stays as it is, resumable.
	OutcomeWaiting Outcome = "waiting"
)

// ErrNoCanary is a release with no canary to drive: both versions are the same, or a
// Deployment has no version label.
var ErrNoCanary = errors.New("no canary")

// Tick is what one look at a running canary saw and decided.
type Tick struct {
	Time    time.Time     `json:"time"`
	Step    int           `json:"step"`
	Steps   int           `json:"steps"`
	Elapsed time.Duration `json:"elapsed"`
	// StepElapsed is the time since the step was decided.
	StepElapsed time.Duration `json:"stepElapsed"`
	Ready       bool          `json:"ready"`
	// Result is nil when the tick did not judge (pods not Ready, metrics unavailable).
	Result *Result `json:"result,omitempty"`
	Err    error   `json:"-"`
	// Action is what the tick decided: wait, hold, advance, promote, rollback, stop.
	Action string `json:"action"`
	// Decision is the whole decision.
	Decision Decision `json:"decision"`
	// Duration is how long the tick took: reading the cluster and the metrics, judging, acting.
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
