package actuator

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/coalmine/coalmine/policies"
)

// rollout updates one Deployment in place (seeds 3 and 4). The canary is the first new pods of
// the rollout: maxSurge set to the step's size and maxUnavailable to 0, resumed until the new
// ReplicaSet has that many pods, then paused. Promotion resumes with the original strategy;
// rollback resumes and undoes to the last revision that passed analysis, in one update, so it
// never meets "you cannot rollback a paused deployment".
type rollout struct {
	k    *kube
	p    *policies.Policy
	name string
}

// revisions lists the Deployment's ReplicaSets by revision.
func (r *rollout) revisions(ctx context.Context, d *appsv1.Deployment, fresh bool) (map[int64]*appsv1.ReplicaSet, error) {
	return revisionsOf(ctx, r.k.from(fresh), d)
}

// versionOf is the version label of a pod template.
func (r *rollout) versionOf(t *corev1.PodTemplateSpec) string {
	return t.Labels[r.p.Spec.Target.Labels.Version]
}

// prepare remembers, when this canary starts, the update strategy to restore and the last
// revision that ran the baseline's version: the revision a rollback returns to.
func (r *rollout) prepare(ctx context.Context) (map[string]string, error) {
	d, err := r.k.deployment(ctx, r.name, true)
	if err != nil {
		return nil, err
	}
	strategy, err := json.Marshal(d.Spec.Strategy)
	if err != nil {
		return nil, fmt.Errorf("record strategy: %w", err)
	}
	revs, err := r.revisions(ctx, d, true)
	if err != nil {
		return nil, err
	}
	var best int64
	for n, rs := range revs {
		if r.versionOf(&rs.Spec.Template) == r.p.Spec.Target.Baseline.Version && n > best {
			best = n
		}
	}
	if best == 0 {
		return nil, fmt.Errorf("deployment %s/%s has no revision running the baseline version %q to roll back to", r.k.ns, r.name, r.p.Spec.Target.Baseline.Version)
	}
	minReady, deadline := d.Spec.MinReadySeconds, int32(defaultProgressDeadline)
	if d.Spec.ProgressDeadlineSeconds != nil {
		deadline = *d.Spec.ProgressDeadlineSeconds
	}
	if held(d) {
		// An earlier canary's hold, not the Deployment's own.
		minReady, deadline = 0, defaultProgressDeadline
	}
	state := map[string]string{
		stateOriginalStrategy: string(strategy), stateLastGoodRevision: strconv.FormatInt(best, 10),
		stateOriginalMinReady: strconv.Itoa(int(minReady)), stateOriginalDeadline: strconv.Itoa(int(deadline)),
	}
	hpas, err := r.k.autoscalers(ctx, r.name)
	if err != nil {
		return nil, err
	}
	if len(hpas[r.name]) > 0 {
		// Pinned, from the first step, to the replicas it has now.
		state[stateAutoscaledReplicas] = strconv.Itoa(int(replicas(d)))
		if err := rememberRanges(state, stateCanaryAutoscalers, hpas[r.name]); err != nil {
			return nil, err
		}
	}
	return state, nil
}

// pinAutoscalers pins the Deployment's autoscalers, read now, to the replicas it had when the
// canary started (its replicas now, if none were remembered): a rollout's steps are shares of
// them, and an autoscaler moving them mid-step would move the step.
func (r *rollout) pinAutoscalers(ctx context.Context, d *appsv1.Deployment, state map[string]string) error {
	hpas, err := r.k.autoscalers(ctx, r.name)
	if err != nil || len(hpas[r.name]) == 0 {
		return err
	}
	n := replicas(d)
	if _, ok := state[stateAutoscaledReplicas]; ok {
		if n, err = stateInt32(state, stateAutoscaledReplicas); err != nil {
			return err
		}
	}
	return r.k.pin(ctx, hpas[r.name], n)
}

// restored restores the autoscalers and reports done once it has.
func (r *rollout) restored(ctx context.Context, state map[string]string) (bool, error) {
	if err := r.restoreAutoscalers(ctx, state); err != nil {
		return false, err
	}
	return true, nil
}

// restoreAutoscalers gives the Deployment's autoscalers their ranges back.
func (r *rollout) restoreAutoscalers(ctx context.Context, state map[string]string) error {
	remembered, err := rememberedRanges(state, stateCanaryAutoscalers)
	if err != nil {
		return err
	}
	hpas, err := r.k.autoscalers(ctx, r.name)
	if err != nil {
		return err
	}
	return r.k.restore(ctx, hpas[r.name], remembered)
}

// canaryPods counts the pods running the canary's version.
func (r *rollout) canaryPods(ctx context.Context, d *appsv1.Deployment) (podHealth, error) {
	return r.k.pods(ctx, d, map[string]string{r.p.Spec.Target.Labels.Version: r.p.Spec.Target.Canary.Version}, false)
}

// newReplicas is how many pods the ReplicaSet of the canary's version asks for.
func (r *rollout) newReplicas(ctx context.Context, d *appsv1.Deployment, fresh bool) (int32, error) {
	revs, err := r.revisions(ctx, d, fresh)
	if err != nil {
		return 0, err
	}
	var n int32
	for _, rs := range revs {
		if r.versionOf(&rs.Spec.Template) == r.p.Spec.Target.Canary.Version && rs.Spec.Replicas != nil {
			n += *rs.Spec.Replicas
		}
	}
	return n, nil
}

// holdSeconds is the minReadySeconds a rollout step sets: the new pods never count as available
// while coalmine holds the step, so the controller, which moves on only when new pods are
// available, cannot take the rollout past the step however fast they start, paused or not. The
// Deployment's own value is restored with its strategy.
const holdSeconds = 24 * 60 * 60

// The API server wants progressDeadlineSeconds above minReadySeconds: during the hold it is
// set to the most it can be (the controller checks no progress on a paused Deployment anyway),
// and restored with minReadySeconds.
const (
	holdDeadline            = math.MaxInt32
	defaultProgressDeadline = 600
)

// holdOps set the step's hold on a Deployment.
func holdOps() []patchOp {
	return []patchOp{set("/spec/minReadySeconds", holdSeconds), set("/spec/progressDeadlineSeconds", holdDeadline)}
}

// held reports whether a Deployment carries the step's hold.
func held(d *appsv1.Deployment) bool {
	return d.Spec.MinReadySeconds == holdSeconds && d.Spec.ProgressDeadlineSeconds != nil && *d.Spec.ProgressDeadlineSeconds == holdDeadline
}

// setStep lets the rollout create step i's new pods, held, and pauses it once they are there.
// It never waits in a tick: the hold keeps the controller at the step, paused or not, until a
// later call finds the pods created and pauses.
func (r *rollout) setStep(ctx context.Context, i int, state map[string]string) (bool, error) {
	d, err := r.k.deployment(ctx, r.name, true)
	if err != nil {
		return false, err
	}
	if v := r.versionOf(&d.Spec.Template); v != r.p.Spec.Target.Canary.Version {
		return false, fmt.Errorf("deployment %s/%s runs version %q, not the canary %q: update its pod template first", r.k.ns, r.name, v, r.p.Spec.Target.Canary.Version)
	}
	if err := r.pinAutoscalers(ctx, d, state); err != nil {
		return false, err
	}
	want, err := r.stepSize(d, i)
	if err != nil {
		return false, err
	}
	have, err := r.newReplicas(ctx, d, true)
	if err != nil {
		return false, err
	}
	if have >= want {
		return true, r.pause(ctx)
	}
	surge := intstr.FromInt32(want)
	zero := intstr.FromInt32(0)
	resumed := false
	err = r.k.patchDeployment(ctx, r.name, func(d *appsv1.Deployment) ([]patchOp, error) {
		ru := d.Spec.Strategy.RollingUpdate
		if !d.Spec.Paused && held(d) && ru != nil && ru.MaxSurge != nil && *ru.MaxSurge == surge && ru.MaxUnavailable != nil && *ru.MaxUnavailable == zero {
			return nil, nil // resumed by an earlier call; the controller is creating the pods
		}
		resumed = true
		return append(holdOps(), set("/spec/strategy", appsv1.DeploymentStrategy{
			Type:          appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &zero},
		}), set("/spec/paused", false)), nil
	})
	if err != nil {
		return false, err
	}
	if resumed {
		r.k.logger.Info().Str("deployment", r.name).Int32("new_pods", want).Msg("rollout resumed for the canary step")
	}
	return false, nil
}

// stepSize is how many new pods step i asks for: never more than the Deployment's replicas.
func (r *rollout) stepSize(d *appsv1.Deployment, i int) (int32, error) {
	want, err := stepReplicas(r.p, i, replicas(d))
	return min(want, replicas(d)), err
}

// pause pauses the Deployment, keeping the step's hold.
func (r *rollout) pause(ctx context.Context) error {
	return r.k.patchDeployment(ctx, r.name, func(d *appsv1.Deployment) ([]patchOp, error) {
		if d.Spec.Paused && held(d) {
			return nil, nil
		}
		return append(holdOps(), set("/spec/paused", true)), nil
	})
}

// originalStrategy is the update strategy remembered when the canary started.
func originalStrategy(state map[string]string) (appsv1.DeploymentStrategy, bool, error) {
	raw, ok := state[stateOriginalStrategy]
	if !ok {
		return appsv1.DeploymentStrategy{}, false, nil
	}
	var s appsv1.DeploymentStrategy
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return s, false, fmt.Errorf("the canary's record: %s: %w", stateOriginalStrategy, err)
	}
	return s, true, nil
}

// resume unpauses the Deployment with its original strategy and, when template is not nil, that
// pod template: one update, so a paused Deployment is never undone while still paused.
func (r *rollout) resume(ctx context.Context, state map[string]string, template *corev1.PodTemplateSpec) error {
	s, restore, err := originalStrategy(state)
	if err != nil {
		return err
	}
	// Without a remembered value the hold is lifted to 0, the API's default.
	minReady, err := stateInt32(state, stateOriginalMinReady)
	if _, ok := state[stateOriginalMinReady]; ok && err != nil {
		return err
	}
	deadline, err := stateInt32(state, stateOriginalDeadline)
	if _, ok := state[stateOriginalDeadline]; ok && err != nil {
		return err
	} else if !ok {
		deadline = defaultProgressDeadline
	}
	return r.k.patchDeployment(ctx, r.name, func(d *appsv1.Deployment) ([]patchOp, error) {
		var ops []patchOp
		if restore && !apiequality.Semantic.DeepEqual(s, d.Spec.Strategy) {
			ops = append(ops, set("/spec/strategy", s))
		}
		if d.Spec.MinReadySeconds == holdSeconds || (d.Spec.ProgressDeadlineSeconds != nil && *d.Spec.ProgressDeadlineSeconds == holdDeadline) {
			ops = append(ops, set("/spec/minReadySeconds", minReady), set("/spec/progressDeadlineSeconds", deadline))
		}
		if template != nil && !apiequality.Semantic.DeepEqual(*template, d.Spec.Template) {
			ops = append(ops, set("/spec/template", template))
		}
		if d.Spec.Paused {
			ops = append(ops, set("/spec/paused", false))
		}
		return ops, nil
	})
}

// complete reports whether the Deployment's rollout has finished: every pod updated and Ready,
// none of an older template left.
func complete(d *appsv1.Deployment) bool {
	return !d.Spec.Paused && rolledOut(d)
}

// rolledOut reports whether every pod of the Deployment runs its template and is Ready.
func rolledOut(d *appsv1.Deployment) bool {
	n := replicas(d)
	s := d.Status
	return s.ObservedGeneration >= d.Generation &&
		s.UpdatedReplicas == n && s.ReadyReplicas == n && s.AvailableReplicas == n && s.Replicas == n
}

// parked reports whether the Deployment waits, paused, for the next release: rolled out, and
// paused by park, not held at a step.
func parked(d *appsv1.Deployment) bool {
	return d.Spec.Paused && !held(d) && rolledOut(d)
}

// finish ends a promotion or a rollback once the rollout is complete. A policy that follows
// release after release parks the Deployment, paused, so that the next change to its pod
// template (from kubectl or from Git) starts no pod until coalmine takes the first step.
func (r *rollout) finish(ctx context.Context, state map[string]string) (bool, error) {
	d, err := r.k.deployment(ctx, r.name, true)
	if err != nil {
		return false, err
	}
	if !complete(d) {
		return false, nil
	}
	if err := r.restoreAutoscalers(ctx, state); err != nil {
		return false, err
	}
	if !r.p.FollowsReleases() {
		return true, nil
	}
	return true, r.park(ctx)
}

// park pauses the Deployment between releases.
func (r *rollout) park(ctx context.Context) error {
	return r.k.patchDeployment(ctx, r.name, func(d *appsv1.Deployment) ([]patchOp, error) {
		if d.Spec.Paused {
			return nil, nil
		}
		r.k.logger.Info().Str("deployment", d.Name).Msg("pausing the deployment until the next release")
		return []patchOp{set("/spec/paused", true)}, nil
	})
}

// isCanary reports whether the Deployment's pod template is the canary's version.
func (r *rollout) isCanary(d *appsv1.Deployment) bool {
	return r.versionOf(&d.Spec.Template) == r.p.Spec.Target.Canary.Version
}

func (r *rollout) promote(ctx context.Context, state map[string]string) (bool, error) {
	if r.p.FollowsReleases() {
		d, err := r.k.deployment(ctx, r.name, true)
		if err != nil {
			return false, err
		}
		if parked(d) && r.isCanary(d) {
			// Promoted and parked by an earlier call, which may not have got as far as
			// restoring every autoscaler.
			return r.restored(ctx, state)
		}
	}
	if err := r.resume(ctx, state, nil); err != nil {
		return false, err
	}
	return r.finish(ctx, state)
}

func (r *rollout) rollback(ctx context.Context, state map[string]string) (bool, error) {
	d, err := r.k.deployment(ctx, r.name, true)
	if err != nil {
		return false, err
	}
	if r.p.FollowsReleases() && parked(d) && r.versionOf(&d.Spec.Template) == r.p.Spec.Target.Baseline.Version {
		return r.restored(ctx, state) // undone and parked by an earlier call
	}
	if r.versionOf(&d.Spec.Template) == r.p.Spec.Target.Baseline.Version {
		// Undone already (the controller renumbers the restored revision): make sure it runs.
		if err := r.resume(ctx, state, nil); err != nil {
			return false, err
		}
	} else if err := r.undo(ctx, d, state); err != nil {
		return false, err
	}
	return r.finish(ctx, state)
}

// undo resumes the Deployment with the pod template of the last good revision.
func (r *rollout) undo(ctx context.Context, d *appsv1.Deployment, state map[string]string) error {
	good, err := strconv.ParseInt(state[stateLastGoodRevision], 10, 64)
	if err != nil {
		return fmt.Errorf("deployment %s/%s: the canary's record has no revision to undo to", r.k.ns, r.name)
	}
	revs, err := r.revisions(ctx, d, true)
	if err != nil {
		return err
	}
	rs, ok := revs[good]
	if !ok {
		have := make([]int64, 0, len(revs))
		for n := range revs {
			have = append(have, n)
		}
		slices.Sort(have)
		return fmt.Errorf("deployment %s/%s: revision %d is gone (revisionHistoryLimit?); it has revisions %v", r.k.ns, r.name, good, have)
	}
	template := rs.Spec.Template.DeepCopy()
	delete(template.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	return r.resume(ctx, state, template)
}

func (r *rollout) health(ctx context.Context, i int, _ map[string]string) (bool, string, error) {
	d, err := r.k.deployment(ctx, r.name, false)
	if err != nil {
		return false, "", err
	}
	if p := stalled(d); p != "" {
		return false, p, nil
	}
	want, err := r.stepSize(d, i)
	if err != nil {
		return false, "", err
	}
	if err := r.holdStep(ctx, d, i, want); err != nil {
		return false, "", err
	}
	h, err := r.canaryPods(ctx, d)
	if err != nil {
		return false, "", err
	}
	if p := restartProblem(d.Name, h, r.p.Spec.Health.MaxRestarts); p != "" {
		return false, p, nil
	}
	return h.ready >= int(want), "", nil
}

// holdStep checks that the rollout is where step i left it: paused, held, and its new
// ReplicaSet no larger than the step. A rollout past its step (resumed by hand, or moved on by
// the controller before the pause took) is an incident: it is paused and held where it is,
// a warning Event says so, and the analysis goes on judging what really serves.
func (r *rollout) holdStep(ctx context.Context, d *appsv1.Deployment, i int, want int32) error {
	n, err := r.newReplicas(ctx, d, false)
	if err != nil {
		return err
	}
	if d.Spec.Paused && held(d) && n <= want {
		return nil
	}
	msg := fmt.Sprintf("the rollout of %s is past step %d (%s): %d new pods for %d, paused=%t; coalmine paused it where it is and judges the %d pods of %s that serve",
		d.Name, i+1, r.p.Spec.Strategy.Steps[i], n, want, d.Spec.Paused, n, r.p.Spec.Target.Canary.Version)
	r.k.logger.Warn().Str("deployment", d.Name).Int32("new_pods", n).Int32("step_pods", want).Bool("paused", d.Spec.Paused).Msg("rollout past its step; pausing it")
	if err := r.pause(ctx); err != nil {
		return err
	}
	key := fmt.Sprintf("overshoot/%s/%s/%d/%d", r.p.Metadata.Name, r.p.Spec.Target.Canary.Version, i, n)
	if err := r.k.event(ctx, d.Name, key, true, "CanaryStepOvershot", msg); err != nil {
		r.k.logger.Warn().Err(err).Msg("event not recorded")
	}
	return nil
}

func (r *rollout) fingerprint(ctx context.Context, fresh bool) (string, error) {
	d, err := r.k.deployment(ctx, r.name, fresh)
	if err != nil {
		return "", err
	}
	t, err := json.Marshal(d.Spec.Template)
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	h := fnv.New64a()
	h.Write(t)
	// Whether it is paused and how far it rolled are the step's position, checked (and held)
	// every tick by health; the fingerprint is what only someone else changes.
	return fmt.Sprintf("%s replicas=%d template=%x", d.Name, replicas(d), h.Sum64()), nil
}

func (r *rollout) controlled() []controlledField {
	return []controlledField{
		{kind: "Deployment", name: r.name, path: []string{"spec", "replicas"}},
		{kind: "Deployment", name: r.name, path: []string{"spec", "template"}},
	}
}
