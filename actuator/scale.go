package actuator

import (
	"context"
	"fmt"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/coalmine/coalmine/policies"
)

// scale runs v2 as its own Deployment beside v1 behind one Service (seed 1). Steps are v2's
// replica counts. With shift set, v1 gives up a replica for each one v2 gets, keeping the total
// constant (seed 5, the old kubectl rolling-update).
type scale struct {
	k     *kube
	p     *policies.Policy
	shift bool
}

// prepare remembers the baseline's replicas when this canary starts: later steps, the promotion
// and a rollback are all sized from it, whoever restarts. It is read afresh for every canary.
func (s *scale) prepare(ctx context.Context) (map[string]string, error) {
	b, err := s.k.deployment(ctx, s.p.Spec.Target.Baseline.Deployment, true)
	if err != nil {
		return nil, err
	}
	n := replicas(b)
	if n == 0 {
		return nil, fmt.Errorf("baseline %s/%s has 0 replicas: nothing to compare the canary with", s.k.ns, b.Name)
	}
	if s.p.AfterPromotion() == policies.AfterPromotionUpdate {
		// Found out now, not when the canary is about to be promoted.
		c, err := s.k.deployment(ctx, s.p.Spec.Target.Canary.Deployment, true)
		if err != nil {
			return nil, err
		}
		if _, err := baselineTemplate(b, c); err != nil {
			return nil, err
		}
	}
	return map[string]string{stateBaselineReplicas: strconv.Itoa(int(n))}, nil
}

func (s *scale) setStep(ctx context.Context, i int, state map[string]string) (bool, error) {
	base, err := stateInt32(state, stateBaselineReplicas)
	if err != nil {
		return false, err
	}
	n, err := stepReplicas(s.p, i, base)
	if err != nil {
		return false, err
	}
	if n > base {
		n = base
	}
	t := s.p.Spec.Target
	if err := s.k.scale(ctx, t.Canary.Deployment, n); err != nil {
		return false, err
	}
	if s.shift {
		if err := s.k.scale(ctx, t.Baseline.Deployment, base-n); err != nil {
			return false, err
		}
	}
	// The step is the replica counts; its pods becoming Ready is the health check's to see.
	return true, nil
}

func (s *scale) promote(ctx context.Context, state map[string]string) (bool, error) {
	base, err := stateInt32(state, stateBaselineReplicas)
	if err != nil {
		return false, err
	}
	t := s.p.Spec.Target
	if s.p.AfterPromotion() == policies.AfterPromotionUpdate {
		// The baseline takes the canary's pod template and serves on; the canary Deployment
		// is free for the next release.
		done, err := s.k.takeTemplate(ctx, t.Baseline.Deployment, t.Canary.Deployment, base)
		if err != nil || !done {
			return false, err
		}
		return true, s.k.scale(ctx, t.Canary.Deployment, 0)
	}
	if err := s.k.scale(ctx, t.Canary.Deployment, base); err != nil {
		return false, err
	}
	c, err := s.k.deployment(ctx, t.Canary.Deployment, true)
	if err != nil {
		return false, err
	}
	if c.Status.ReadyReplicas < base || c.Status.UpdatedReplicas < base {
		return false, nil // the baseline keeps serving until the canary can take all of it
	}
	if s.p.AfterPromotion() == policies.AfterPromotionDelete {
		err := s.k.client.AppsV1().Deployments(s.k.ns).Delete(ctx, t.Baseline.Deployment, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("delete deployment %s/%s: %w", s.k.ns, t.Baseline.Deployment, err)
		}
		return true, nil
	}
	if err := s.k.scale(ctx, t.Baseline.Deployment, 0); err != nil {
		return false, err
	}
	return true, nil
}

func (s *scale) rollback(ctx context.Context, state map[string]string) (bool, error) {
	base, err := stateInt32(state, stateBaselineReplicas)
	if err != nil {
		return false, err
	}
	t := s.p.Spec.Target
	if s.shift {
		// The baseline first: capacity comes back before the canary's goes.
		if err := s.k.scale(ctx, t.Baseline.Deployment, base); err != nil {
			return false, err
		}
	}
	if err := s.k.scale(ctx, t.Canary.Deployment, 0); err != nil {
		return false, err
	}
	c, err := s.k.deployment(ctx, t.Canary.Deployment, true)
	if err != nil {
		return false, err
	}
	return c.Status.Replicas == 0, nil
}

func (s *scale) health(ctx context.Context, i int, state map[string]string) (bool, string, error) {
	base, err := stateInt32(state, stateBaselineReplicas)
	if err != nil {
		return false, "", err
	}
	want, err := stepReplicas(s.p, i, base)
	if err != nil {
		return false, "", err
	}
	if want > base {
		want = base
	}
	c, err := s.k.deployment(ctx, s.p.Spec.Target.Canary.Deployment, false)
	if err != nil {
		return false, "", err
	}
	if p := stalled(c); p != "" {
		return false, p, nil
	}
	h, err := s.k.pods(ctx, c, nil, false)
	if err != nil {
		return false, "", err
	}
	if p := restartProblem(c.Name, h, s.p.Spec.Health.MaxRestarts); p != "" {
		return false, p, nil
	}
	ready := c.Status.ReadyReplicas >= want && c.Status.UpdatedReplicas >= want && h.ready >= int(want)
	return ready, "", nil
}

func (s *scale) fingerprint(ctx context.Context, fresh bool) (string, error) {
	t := s.p.Spec.Target
	c, err := s.k.deployment(ctx, t.Canary.Deployment, fresh)
	if err != nil {
		return "", err
	}
	b, err := s.k.from(fresh).Deployment(ctx, s.k.ns, t.Baseline.Deployment)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("%s=deleted %s=%d", t.Baseline.Deployment, c.Name, replicas(c)), nil
	case err != nil:
		return "", fmt.Errorf("get deployment %s/%s: %w", s.k.ns, t.Baseline.Deployment, err)
	}
	return fmt.Sprintf("%s=%d %s=%d", b.Name, replicas(b), c.Name, replicas(c)), nil
}

func (s *scale) controlled() []controlledField {
	t := s.p.Spec.Target
	return []controlledField{
		{kind: "Deployment", name: t.Canary.Deployment, path: []string{"spec", "replicas"}},
		{kind: "Deployment", name: t.Baseline.Deployment, path: []string{"spec", "replicas"}},
	}
}
