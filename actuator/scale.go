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

// base returns the baseline's replica count when the canary started, recording it when record
// is set and nothing is recorded yet: later steps, the promotion and a rollback all size from
// it, whoever restarts. Reads (health) never record.
func (s *scale) base(ctx context.Context, record bool) (int32, error) {
	t := s.p.Spec.Target
	c, err := s.k.deployment(ctx, t.Canary.Deployment)
	if err != nil {
		return 0, err
	}
	if n, ok := recordedInt32(c.Annotations, AnnotationBaselineReplicas); ok {
		return n, nil
	}
	b, err := s.k.deployment(ctx, t.Baseline.Deployment)
	if err != nil {
		return 0, err
	}
	n := replicas(b)
	if n == 0 {
		return 0, fmt.Errorf("baseline %s/%s has 0 replicas: nothing to compare the canary with", s.k.ns, b.Name)
	}
	if !record {
		return n, nil
	}
	err = s.k.annotate(ctx, t.Canary.Deployment, map[string]string{AnnotationBaselineReplicas: strconv.Itoa(int(n))})
	return n, err
}

func (s *scale) setStep(ctx context.Context, i int) error {
	base, err := s.base(ctx, true)
	if err != nil {
		return err
	}
	n, err := stepReplicas(s.p, i, base)
	if err != nil {
		return err
	}
	if n > base {
		n = base
	}
	t := s.p.Spec.Target
	if err := s.k.scale(ctx, t.Canary.Deployment, n); err != nil {
		return err
	}
	if s.shift {
		return s.k.scale(ctx, t.Baseline.Deployment, base-n)
	}
	return nil
}

func (s *scale) promote(ctx context.Context) (bool, error) {
	base, err := s.base(ctx, true)
	if err != nil {
		return false, err
	}
	t := s.p.Spec.Target
	if err := s.k.scale(ctx, t.Canary.Deployment, base); err != nil {
		return false, err
	}
	c, err := s.k.deployment(ctx, t.Canary.Deployment)
	if err != nil {
		return false, err
	}
	if c.Status.ReadyReplicas < base || c.Status.UpdatedReplicas < base {
		return false, nil // the baseline keeps serving until the canary can take all of it
	}
	if s.p.Spec.Strategy.BaselineAfterPromotion == "delete" {
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

func (s *scale) rollback(ctx context.Context) (bool, error) {
	base, err := s.base(ctx, true)
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
	c, err := s.k.deployment(ctx, t.Canary.Deployment)
	if err != nil {
		return false, err
	}
	return c.Status.Replicas == 0, nil
}

func (s *scale) health(ctx context.Context, i int) (bool, string, error) {
	base, err := s.base(ctx, false)
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
	c, err := s.k.deployment(ctx, s.p.Spec.Target.Canary.Deployment)
	if err != nil {
		return false, "", err
	}
	if p := stalled(c); p != "" {
		return false, p, nil
	}
	h, err := s.k.pods(ctx, c, nil)
	if err != nil {
		return false, "", err
	}
	if p := restartProblem(c.Name, h, s.p.Spec.Health.MaxRestarts); p != "" {
		return false, p, nil
	}
	ready := c.Status.ReadyReplicas >= want && c.Status.UpdatedReplicas >= want && h.ready >= int(want)
	return ready, "", nil
}

func (s *scale) fingerprint(ctx context.Context) (string, error) {
	t := s.p.Spec.Target
	c, err := s.k.deployment(ctx, t.Canary.Deployment)
	if err != nil {
		return "", err
	}
	b, err := s.k.client.AppsV1().Deployments(s.k.ns).Get(ctx, t.Baseline.Deployment, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("%s=deleted %s=%d", t.Baseline.Deployment, c.Name, replicas(c)), nil
	case err != nil:
		return "", fmt.Errorf("get deployment %s/%s: %w", s.k.ns, t.Baseline.Deployment, err)
	}
	return fmt.Sprintf("%s=%d %s=%d", b.Name, replicas(b), c.Name, replicas(c)), nil
}
