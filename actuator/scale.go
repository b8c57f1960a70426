package actuator

import (
	"context"
	"fmt"
	"strconv"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/coalmine/coalmine/policies"
)

// scale runs v2 as its own Deployment beside v1 behind one Service (seed 1). Steps are v2's
// replica counts. With shift set, v1 gives up a replica for each one v2 gets, keeping the total
// constant (seed 5, the old kubectl rolling-update).
//
// Autoscalers (see autoscaler.go): the canary's HPAs are pinned to each step and restored when
// the canary ends. The baseline's HPAs go on scaling the baseline under scale, whose steps and
// promotion are sized from the baseline as it is then; under shift, which moves the baseline's
// replicas itself, they are pinned too.
type scale struct {
	k     *kube
	p     *policies.Policy
	shift bool
	// autoscaled says whether an HPA scales the baseline, as last read; nil before. The
	// fingerprint of scale leaves the baseline's replicas to it.
	autoscaled *bool
}

// prepare remembers the baseline's replicas when this canary starts, and the autoscalers of both
// Deployments with their ranges. A shift's steps and rollback are sized from the replicas
// remembered, whoever restarts; it is read afresh for every canary.
func (s *scale) prepare(ctx context.Context) (map[string]string, error) {
	t := s.p.Spec.Target
	b, err := s.k.deployment(ctx, t.Baseline.Deployment, true)
	if err != nil {
		return nil, err
	}
	n := replicas(b)
	if n == 0 {
		return nil, fmt.Errorf("baseline %s/%s has 0 replicas: nothing to compare the canary with", s.k.ns, b.Name)
	}
	if s.p.AfterPromotion() == policies.AfterPromotionUpdate {
		// Found out now, not when the canary is about to be promoted.
		c, err := s.k.deployment(ctx, t.Canary.Deployment, true)
		if err != nil {
			return nil, err
		}
		if _, err := baselineTemplate(b, c); err != nil {
			return nil, err
		}
	}
	state := map[string]string{stateBaselineReplicas: strconv.Itoa(int(n))}
	hpas, err := s.autoscalers(ctx)
	if err != nil {
		return nil, err
	}
	if err := rememberRanges(state, stateCanaryAutoscalers, hpas[t.Canary.Deployment]); err != nil {
		return nil, err
	}
	if err := rememberRanges(state, stateBaselineAutoscalers, hpas[t.Baseline.Deployment]); err != nil {
		return nil, err
	}
	return state, nil
}

// autoscalers reads the HPAs of both Deployments, and notes whether the baseline has one.
func (s *scale) autoscalers(ctx context.Context) (map[string][]*autoscalingv2.HorizontalPodAutoscaler, error) {
	t := s.p.Spec.Target
	hpas, err := s.k.autoscalers(ctx, t.Canary.Deployment, t.Baseline.Deployment)
	if err != nil {
		return nil, err
	}
	autoscaled := len(hpas[t.Baseline.Deployment]) > 0
	s.autoscaled = &autoscaled
	return hpas, nil
}

// baselineAutoscaled reports whether an HPA scales the baseline: as last read, or read now.
func (s *scale) baselineAutoscaled(ctx context.Context) (bool, error) {
	if s.autoscaled == nil {
		if _, err := s.autoscalers(ctx); err != nil {
			return false, err
		}
	}
	return *s.autoscaled, nil
}

// base is the replica count steps given as percentages and the promotion are sized from. A shift
// moves the baseline's replicas itself: its base is the total remembered when it started. Under
// scale it is the baseline as it is now, which its autoscaler may have changed. A baseline at 0
// or gone has been promoted away (by an earlier call of promote): then the canary's replicas, or
// those remembered if more, stand in.
func (s *scale) base(ctx context.Context, state map[string]string) (int32, error) {
	remembered, err := stateInt32(state, stateBaselineReplicas)
	if err != nil || s.shift {
		return remembered, err
	}
	t := s.p.Spec.Target
	b, err := s.k.from(true).Deployment(ctx, s.k.ns, t.Baseline.Deployment)
	switch {
	case err != nil && !apierrors.IsNotFound(err):
		return 0, fmt.Errorf("get deployment %s/%s: %w", s.k.ns, t.Baseline.Deployment, err)
	case err == nil && replicas(b) > 0:
		return replicas(b), nil
	}
	c, err := s.k.deployment(ctx, t.Canary.Deployment, true)
	if err != nil {
		return 0, err
	}
	return max(remembered, replicas(c)), nil
}

// setStep pins the canary's autoscalers to the step before it scales the canary (the other
// order lets them scale it first), and, for a shift, the baseline's to what it keeps.
func (s *scale) setStep(ctx context.Context, i int, state map[string]string) (bool, error) {
	base, err := s.base(ctx, state)
	if err != nil {
		return false, err
	}
	n, err := stepReplicas(s.p, i, base)
	if err != nil {
		return false, err
	}
	n = min(n, base)
	t := s.p.Spec.Target
	hpas, err := s.autoscalers(ctx)
	if err != nil {
		return false, err
	}
	if err := s.k.pin(ctx, hpas[t.Canary.Deployment], n); err != nil {
		return false, err
	}
	if s.shift {
		if err := s.k.pin(ctx, hpas[t.Baseline.Deployment], base-n); err != nil {
			return false, err
		}
	}
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

// promote gives the canary the baseline's size and the baseline's place. The canary's
// autoscalers stay pinned, to that size, until it is done; then both Deployments' get their
// own ranges back.
func (s *scale) promote(ctx context.Context, state map[string]string) (bool, error) {
	base, err := s.base(ctx, state)
	if err != nil {
		return false, err
	}
	t := s.p.Spec.Target
	hpas, err := s.autoscalers(ctx)
	if err != nil {
		return false, err
	}
	if s.p.AfterPromotion() == policies.AfterPromotionUpdate {
		if s.shift {
			// The baseline comes back to its size with the canary's template.
			if err := s.k.repin(ctx, hpas[t.Baseline.Deployment], base); err != nil {
				return false, err
			}
		}
		// The baseline takes the canary's pod template and serves on; the canary Deployment
		// is free for the next release, at 0 replicas, where its autoscalers leave it.
		done, err := s.k.takeTemplate(ctx, t.Baseline.Deployment, t.Canary.Deployment, base)
		if err != nil || !done {
			return false, err
		}
		if err := s.k.scale(ctx, t.Canary.Deployment, 0); err != nil {
			return false, err
		}
		return s.restored(ctx, hpas, state)
	}
	if err := s.k.repin(ctx, hpas[t.Canary.Deployment], base); err != nil {
		return false, err
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
		return s.restored(ctx, hpas, state)
	}
	// At 0 replicas the baseline is left alone by its autoscalers, restored or not.
	if err := s.k.scale(ctx, t.Baseline.Deployment, 0); err != nil {
		return false, err
	}
	return s.restored(ctx, hpas, state)
}

// rollback takes the canary to 0 replicas and, for a shift, the baseline back to its size, then
// gives the autoscalers their ranges back: the canary's leaves it at 0.
func (s *scale) rollback(ctx context.Context, state map[string]string) (bool, error) {
	base, err := stateInt32(state, stateBaselineReplicas)
	if err != nil {
		return false, err
	}
	t := s.p.Spec.Target
	hpas, err := s.autoscalers(ctx)
	if err != nil {
		return false, err
	}
	if s.shift {
		// The baseline first: capacity comes back before the canary's goes.
		if err := s.k.repin(ctx, hpas[t.Baseline.Deployment], base); err != nil {
			return false, err
		}
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
	if c.Status.Replicas != 0 {
		return false, nil
	}
	return s.restored(ctx, hpas, state)
}

// restored gives the autoscalers coalmine pinned their ranges back, and reports done once it has.
func (s *scale) restored(ctx context.Context, hpas map[string][]*autoscalingv2.HorizontalPodAutoscaler, state map[string]string) (bool, error) {
	if err := s.restore(ctx, hpas, state); err != nil {
		return false, err
	}
	return true, nil
}

// restore gives the autoscalers coalmine pinned their ranges back.
func (s *scale) restore(ctx context.Context, hpas map[string][]*autoscalingv2.HorizontalPodAutoscaler, state map[string]string) error {
	t := s.p.Spec.Target
	for _, d := range []struct{ name, key string }{
		{t.Canary.Deployment, stateCanaryAutoscalers}, {t.Baseline.Deployment, stateBaselineAutoscalers},
	} {
		remembered, err := rememberedRanges(state, d.key)
		if err != nil {
			return err
		}
		if err := s.k.restore(ctx, hpas[d.name], remembered); err != nil {
			return err
		}
	}
	return nil
}

// health checks that every pod the canary's step asks for is Ready: its replicas as setStep
// left them (the fingerprint makes sure nobody else changed them), at least one.
func (s *scale) health(ctx context.Context, _ int, _ map[string]string) (bool, string, error) {
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
	want := max(replicas(c), 1)
	ready := c.Status.ReadyReplicas >= want && c.Status.UpdatedReplicas >= want && h.ready >= int(want)
	return ready, "", nil
}

// fingerprint is both Deployments' replicas; under scale, with an autoscaler on the baseline,
// the baseline's are its autoscaler's to change and are left out.
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
	if !s.shift {
		autoscaled, err := s.baselineAutoscaled(ctx)
		if err != nil {
			return "", err
		}
		if autoscaled {
			return fmt.Sprintf("%s=autoscaled %s=%d", b.Name, c.Name, replicas(c)), nil
		}
	}
	return fmt.Sprintf("%s=%d %s=%d", b.Name, replicas(b), c.Name, replicas(c)), nil
}

func (s *scale) controlled() []controlledField {
	t := s.p.Spec.Target
	fields := []controlledField{{kind: "Deployment", name: t.Canary.Deployment, path: []string{"spec", "replicas"}}}
	if s.shift || s.autoscaled == nil || !*s.autoscaled {
		fields = append(fields, controlledField{kind: "Deployment", name: t.Baseline.Deployment, path: []string{"spec", "replicas"}})
	}
	return fields
}
