package actuator

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"k8s.io/client-go/kubernetes"

	"github.com/coalmine/coalmine/policies"
)

// strategy is one way of moving a release, over the plain operations in kube. state is what
// prepare remembered when the canary started; it lives in the canary's record.
type strategy interface {
	// prepare reads what the strategy must remember for one canary: called once, when it starts.
	prepare(ctx context.Context) (map[string]string, error)
	// setStep makes the canary the size of step i, a bit more each call, and reports done once
	// the step is in place. Idempotent.
	setStep(ctx context.Context, i int, state map[string]string) (done bool, err error)
	// promote moves the release all the way to the canary, a bit more each call; it reports
	// done once nothing is left to do.
	promote(ctx context.Context, state map[string]string) (done bool, err error)
	// rollback takes the canary back, a bit more each call, until done.
	rollback(ctx context.Context, state map[string]string) (done bool, err error)
	// health says whether the canary of step i is all Ready, and names a problem that fails it
	// whatever the metrics say: a stalled rollout, restarts climbing.
	health(ctx context.Context, i int, state map[string]string) (ready bool, problem string, err error)
	// fingerprint summarises what coalmine controls, so that a change made by someone else shows.
	fingerprint(ctx context.Context, fresh bool) (string, error)
	// controlled lists the fields the fingerprint covers, to name who changed them.
	controlled() []controlledField
}

// Release drives one policy's release on a cluster. It satisfies the analyzer's Release.
type Release struct {
	k        *kube
	policy   *policies.Policy
	strategy strategy
	// recordOn is the Deployment that carries coalmine's annotations and Events.
	recordOn string
}

// NewRelease returns the actuator for a policy's release, with the strategy the policy names.
// Reads go to the API server; WithCache makes them come from informers.
func NewRelease(client kubernetes.Interface, p *policies.Policy, logger zerolog.Logger) (*Release, error) {
	k := &kube{client: client, ns: p.Spec.Target.Namespace, logger: logger, now: time.Now, reads: live{client}}
	r := &Release{k: k}
	if err := r.Use(p); err != nil {
		return nil, err
	}
	return r, nil
}

// Use makes the release act on p from now on: the same policy with the versions it did not pin
// read from the Deployments (see ReadVersions). The namespace stays the one it was made for.
func (r *Release) Use(p *policies.Policy) error {
	t := p.Spec.Target
	if t.Namespace != r.k.ns {
		return fmt.Errorf("policy %s acts in namespace %s, its release in %s", p.Metadata.Name, t.Namespace, r.k.ns)
	}
	k, recordOn := r.k, t.Canary.Deployment
	var s strategy
	switch p.Spec.Strategy.Type {
	case policies.StrategyScale:
		s = &scale{k: k, p: p, shift: false}
	case policies.StrategyShift:
		s = &scale{k: k, p: p, shift: true}
	case policies.StrategyRollout:
		if recordOn == "" {
			recordOn = t.Baseline.Deployment
		}
		s = &rollout{k: k, p: p, name: recordOn}
	case policies.StrategyBlueGreen:
		s = &blueGreen{k: k, p: p}
	default:
		return fmt.Errorf("unknown strategy %q", p.Spec.Strategy.Type)
	}
	r.policy, r.strategy, r.recordOn = p, s, recordOn
	return nil
}

// WithCache makes the release read from cache (the daemon's informers) instead of the API
// server; writes still go to the API server, and a fresh fingerprint is always read live.
func (r *Release) WithCache(c Cache) *Release {
	r.k.cached = c
	return r
}

// Steps is the number of canary steps before promotion.
func (r *Release) Steps() int { return len(r.policy.Spec.Strategy.Steps) }

// Prepare reads what the strategy remembers for a new canary.
func (r *Release) Prepare(ctx context.Context) (map[string]string, error) {
	return r.strategy.prepare(ctx)
}

// SetStep makes the canary the size of step i (0-based); call it until it reports done.
func (r *Release) SetStep(ctx context.Context, i int, state map[string]string) (bool, error) {
	return r.strategy.setStep(ctx, i, state)
}

// Promote moves the release to the canary; call it until it reports done.
func (r *Release) Promote(ctx context.Context, state map[string]string) (bool, error) {
	return r.strategy.promote(ctx, state)
}

// Rollback takes the canary back; call it until it reports done.
func (r *Release) Rollback(ctx context.Context, state map[string]string) (bool, error) {
	return r.strategy.rollback(ctx, state)
}

// Health reports whether step i's canary is Ready and any problem that fails it outright.
func (r *Release) Health(ctx context.Context, i int, state map[string]string) (bool, string, error) {
	return r.strategy.health(ctx, i, state)
}

// Fingerprint summarises the state coalmine controls; fresh reads it from the API server.
func (r *Release) Fingerprint(ctx context.Context, fresh bool) (string, error) {
	return r.strategy.fingerprint(ctx, fresh)
}

// Progress returns the analyzer's progress record, "" when there is none.
// It is read from the API server, never a cache: a runner started right after another wrote
// the record must not take it for a new canary.
func (r *Release) Progress(ctx context.Context) (string, error) {
	d, err := r.k.deployment(ctx, r.recordOn, true)
	if err != nil {
		return "", err
	}
	return d.Annotations[AnnotationProgress], nil
}

// SaveProgress records the canary's record on the Deployment: one merge patch of the one
// annotation, no read first.
func (r *Release) SaveProgress(ctx context.Context, progress string) error {
	return r.k.patchAnnotation(ctx, r.recordOn, AnnotationProgress, progress)
}

// Event records a Kubernetes Event on the Deployment coalmine drives, once per key.
func (r *Release) Event(ctx context.Context, key string, warning bool, reason, message string) error {
	return r.k.event(ctx, r.recordOn, key, warning, reason, message)
}

// stepReplicas turns step i into a replica count: a count as written, or a share of base
// (rounded up, at least 1).
func stepReplicas(p *policies.Policy, i int, base int32) (int32, error) {
	steps := p.Spec.Strategy.Steps
	if i < 0 || i >= len(steps) {
		return 0, fmt.Errorf("step %d out of range (the policy has %d)", i, len(steps))
	}
	st, err := policies.ParseStep(steps[i])
	if err != nil {
		return 0, err
	}
	if !st.Percent {
		return int32(st.Value), nil
	}
	n := (int64(base)*int64(st.Value) + 99) / 100
	if n < 1 {
		n = 1
	}
	return int32(n), nil
}

// stateInt32 reads an int32 the strategy remembered.
func stateInt32(state map[string]string, key string) (int32, error) {
	v, ok := state[key]
	if !ok {
		return 0, fmt.Errorf("the canary's record has no %s", key)
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("the canary's record has %s %q", key, v)
	}
	return int32(n), nil
}

// Target reads, from the API server, the release's versions and its canary's pod template.
func (r *Release) Target(ctx context.Context) (baseline, canary, template string, err error) {
	v, err := r.Versions(ctx, true)
	return v.Baseline, v.Canary, v.Template, err
}

// Commands returns the commands people left for the canary, "" when none.
func (r *Release) Commands(ctx context.Context) (string, error) {
	d, err := r.k.deployment(ctx, r.recordOn, false)
	if err != nil {
		return "", err
	}
	return d.Annotations[AnnotationCommands], nil
}

// RecordOn names the Deployment that carries the canary's record, commands and Events.
func (r *Release) RecordOn() string { return r.recordOn }

// AddCommand rewrites the commands kept for the canary with change, from what the API server
// has: a write that lost a race with another is made again from the newer list.
func (r *Release) AddCommand(ctx context.Context, change func(old string) (string, error)) error {
	return r.k.patchAnnotationIf(ctx, r.recordOn, AnnotationCommands, change)
}

// SetNotified rewrites how far the notification receivers got with change, from what the API
// server has, retried on conflict.
func (r *Release) SetNotified(ctx context.Context, change func(old string) (string, error)) error {
	return r.k.patchAnnotationIf(ctx, r.recordOn, AnnotationNotified, change)
}

// Notified returns how far the notification receivers got, as SetNotified left it.
func (r *Release) Notified(ctx context.Context) (string, error) {
	d, err := r.k.deployment(ctx, r.recordOn, true)
	if err != nil {
		return "", err
	}
	return d.Annotations[AnnotationNotified], nil
}

// Park pauses a rollout's Deployment between releases, when the policy follows release after
// release and the Deployment is rolled out and not paused: the next change to its pod template
// then starts no pod until coalmine takes the first step. It reports whether it paused it; any
// other strategy, or a Deployment mid-rollout, is left alone.
func (r *Release) Park(ctx context.Context) (bool, error) {
	ro, ok := r.strategy.(*rollout)
	if !ok || !r.policy.FollowsReleases() {
		return false, nil
	}
	// The cache first: most Deployment events of a parked Deployment need no request; what
	// would pause it is confirmed with the API server.
	for _, fresh := range []bool{false, true} {
		d, err := r.k.deployment(ctx, ro.name, fresh)
		if err != nil {
			return false, err
		}
		if d.Spec.Paused || !rolledOut(d) {
			return false, nil
		}
	}
	return true, ro.park(ctx)
}
