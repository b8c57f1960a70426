package actuator

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/policies"
)

// DryRun is the actuator's twin that writes nothing: it reads the cluster through a real
// Release and logs every write it would make. Progress it would record is kept in memory so a
// dry-run canary can go on.
type DryRun struct {
	r        *Release
	logger   zerolog.Logger
	progress *string
}

// NewDryRun wraps a release so that nothing is written.
func NewDryRun(r *Release, logger zerolog.Logger) *DryRun {
	return &DryRun{r: r, logger: logger.With().Bool("dry_run", true).Logger()}
}

// Steps is the number of canary steps.
func (d *DryRun) Steps() int { return d.r.Steps() }

// Prepare reads what the strategy would remember.
func (d *DryRun) Prepare(ctx context.Context) (map[string]string, error) { return d.r.Prepare(ctx) }

// SetStep logs the step it would apply.
func (d *DryRun) SetStep(_ context.Context, i int, _ map[string]string) (bool, error) {
	d.logger.Info().Int("step", i+1).Str("size", d.r.policy.Spec.Strategy.Steps[i]).Msg("would set the canary step")
	return true, nil
}

// Promote logs the promotion it would make.
func (d *DryRun) Promote(context.Context, map[string]string) (bool, error) {
	d.logger.Info().Str("strategy", string(d.r.policy.Spec.Strategy.Type)).Msg("would promote")
	return true, nil
}

// Rollback logs the rollback it would make.
func (d *DryRun) Rollback(context.Context, map[string]string) (bool, error) {
	d.logger.Info().Str("strategy", string(d.r.policy.Spec.Strategy.Type)).Msg("would roll back")
	return true, nil
}

// Health reads the canary's health.
func (d *DryRun) Health(ctx context.Context, i int, state map[string]string) (bool, string, error) {
	return d.r.Health(ctx, i, state)
}

// Fingerprint reads the release's state.
func (d *DryRun) Fingerprint(ctx context.Context, fresh bool) (string, error) {
	return d.r.Fingerprint(ctx, fresh)
}

// ChangedBy names who last changed what coalmine controls.
func (d *DryRun) ChangedBy(ctx context.Context) (string, error) { return d.r.ChangedBy(ctx) }

// Progress returns what the dry run recorded, or else what is on the cluster.
func (d *DryRun) Progress(ctx context.Context) (string, error) {
	if d.progress != nil {
		return *d.progress, nil
	}
	return d.r.Progress(ctx)
}

// SaveProgress keeps the progress in memory.
func (d *DryRun) SaveProgress(_ context.Context, p string) error {
	d.progress = &p
	return nil
}

// Event logs the Event it would record.
func (d *DryRun) Event(_ context.Context, _ string, warning bool, reason, message string) error {
	d.logger.Info().Bool("warning", warning).Str("reason", reason).Str("message", message).Msg("would record event")
	return nil
}

// Target reads the release's versions.
func (d *DryRun) Target(ctx context.Context) (string, string, string, error) {
	return d.r.Target(ctx)
}

// Use acts on the policy with its versions read.
func (d *DryRun) Use(p *policies.Policy) error { return d.r.Use(p) }

// Commands reads the commands people left.
func (d *DryRun) Commands(ctx context.Context) (string, error) { return d.r.Commands(ctx) }
