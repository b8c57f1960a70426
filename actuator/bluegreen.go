package actuator

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/coalmine/coalmine/policies"
)

// blueGreen keeps both versions fully scaled and moves the Service's selector from the baseline's
// version to the canary's (seed 2); a rollback switches it back.
type blueGreen struct {
	k *kube
	p *policies.Policy
}

// selectVersion points the Service's version selector at version.
func (b *blueGreen) selectVersion(ctx context.Context, version string) error {
	svc := b.p.Spec.Strategy.Service
	label := b.p.Spec.Target.Labels.Version
	err := retry.RetryOnConflict(conflictBackoff, func() error {
		s, err := b.k.client.CoreV1().Services(b.k.ns).Get(ctx, svc, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := b.switchable(s); err != nil {
			return err
		}
		if s.Spec.Selector[label] == version {
			return nil
		}
		// Only the version key of the selector, held to the resourceVersion read.
		patch, err := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": s.ResourceVersion},
			"spec":     map[string]any{"selector": map[string]string{label: version}},
		})
		if err != nil {
			return err
		}
		_, err = b.k.client.CoreV1().Services(b.k.ns).Patch(ctx, svc, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("switch service %s/%s to %s=%s: %w", b.k.ns, svc, label, version, err)
	}
	b.k.logger.Info().Str("service", svc).Str("version", version).Msg("service switched")
	return nil
}

// switchable refuses a Service coalmine must not re-point: one with no selector (it would gain
// one, and send the app's traffic where its owner never meant), or one that does not select
// the policy's app (a policy naming another team's Service).
func (b *blueGreen) switchable(s *corev1.Service) error {
	t := b.p.Spec.Target
	switch {
	case len(s.Spec.Selector) == 0:
		return fmt.Errorf("service %s/%s has no selector: coalmine switches only a Service that selects %s=%s", s.Namespace, s.Name, t.Labels.App, t.App)
	case s.Spec.Selector[t.Labels.App] != t.App:
		return fmt.Errorf("service %s/%s selects %s=%q, not the policy's app %q: coalmine switches only the app's own Service", s.Namespace, s.Name, t.Labels.App, s.Spec.Selector[t.Labels.App], t.App)
	}
	return nil
}

func (b *blueGreen) service(ctx context.Context, fresh bool) (*corev1.Service, error) {
	s, err := b.k.from(fresh).Service(ctx, b.k.ns, b.p.Spec.Strategy.Service)
	if err != nil {
		return nil, fmt.Errorf("get service %s/%s: %w", b.k.ns, b.p.Spec.Strategy.Service, err)
	}
	return s, nil
}

// prepare remembers the version the Service selects now: what a rollback switches back to.
// It is read when this canary starts, never inherited from an earlier one.
func (b *blueGreen) prepare(ctx context.Context) (map[string]string, error) {
	t := b.p.Spec.Target
	s, err := b.service(ctx, true)
	if err != nil {
		return nil, err
	}
	if err := b.switchable(s); err != nil {
		return nil, err
	}
	was := s.Spec.Selector[t.Labels.Version]
	if was == "" || was == t.Canary.Version {
		was = t.Baseline.Version
	}
	return map[string]string{stateServiceVersion: was}, nil
}

// setStep is the switch. The Service moves to the canary only once every canary pod is Ready:
// switched earlier, it would send all the traffic to pods that cannot serve it.
func (b *blueGreen) setStep(ctx context.Context, i int, state map[string]string) (bool, error) {
	if b.p.FollowsReleases() {
		// Release after release the canary Deployment waits at 0 replicas (see promote): it
		// comes up at the baseline's size before the switch.
		t := b.p.Spec.Target
		c, err := b.k.deployment(ctx, t.Canary.Deployment, true)
		if err != nil {
			return false, err
		}
		if replicas(c) == 0 {
			base, err := b.k.deployment(ctx, t.Baseline.Deployment, true)
			if err != nil {
				return false, err
			}
			if err := b.k.scale(ctx, t.Canary.Deployment, max(replicas(base), 1)); err != nil {
				return false, err
			}
			return false, nil
		}
	}
	ready, problem, err := b.health(ctx, i, state)
	if err != nil || !ready || problem != "" {
		// A problem is the next tick's to judge: the canary is rolled back at readyTimeout
		// without ever having served.
		if err == nil {
			b.k.logger.Debug().Str("deployment", b.p.Spec.Target.Canary.Deployment).Str("problem", problem).Msg("waiting for the canary pods to be Ready before the switch")
		}
		return false, err
	}
	return true, b.selectVersion(ctx, b.p.Spec.Target.Canary.Version)
}

func (b *blueGreen) promote(ctx context.Context, _ map[string]string) (bool, error) {
	t := b.p.Spec.Target
	if err := b.selectVersion(ctx, t.Canary.Version); err != nil {
		return false, err
	}
	if b.p.AfterPromotion() == policies.AfterPromotionUpdate {
		base, err := b.k.deployment(ctx, t.Baseline.Deployment, true)
		if err != nil {
			return false, err
		}
		n := replicas(base)
		if n == 0 {
			c, err := b.k.deployment(ctx, t.Canary.Deployment, true)
			if err != nil {
				return false, err
			}
			n = replicas(c)
		}
		done, err := b.k.takeTemplate(ctx, t.Baseline.Deployment, t.Canary.Deployment, n)
		if err != nil || !done {
			return false, err
		}
		return true, b.k.scale(ctx, t.Canary.Deployment, 0)
	}
	if b.p.AfterPromotion() == policies.AfterPromotionDelete {
		err := b.k.client.AppsV1().Deployments(b.k.ns).Delete(ctx, t.Baseline.Deployment, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("delete deployment %s/%s: %w", b.k.ns, t.Baseline.Deployment, err)
		}
		return true, nil
	}
	return true, b.k.scale(ctx, t.Baseline.Deployment, 0)
}

func (b *blueGreen) rollback(ctx context.Context, state map[string]string) (bool, error) {
	was := state[stateServiceVersion]
	if was == "" {
		was = b.p.Spec.Target.Baseline.Version
	}
	return true, b.selectVersion(ctx, was)
}

func (b *blueGreen) health(ctx context.Context, _ int, _ map[string]string) (bool, string, error) {
	c, err := b.k.deployment(ctx, b.p.Spec.Target.Canary.Deployment, false)
	if err != nil {
		return false, "", err
	}
	if p := stalled(c); p != "" {
		return false, p, nil
	}
	// Only the canary version's pods count: the Service will select by version, and a
	// Deployment rolling to the canary still has Ready pods of the version before.
	t := b.p.Spec.Target
	h, err := b.k.pods(ctx, c, map[string]string{t.Labels.Version: t.Canary.Version}, false)
	if err != nil {
		return false, "", err
	}
	if p := restartProblem(c.Name, h, b.p.Spec.Health.MaxRestarts); p != "" {
		return false, p, nil
	}
	n := replicas(c)
	return n > 0 && c.Status.ReadyReplicas >= n && c.Status.UpdatedReplicas >= n && h.ready >= int(n), "", nil
}

func (b *blueGreen) fingerprint(ctx context.Context, fresh bool) (string, error) {
	s, err := b.service(ctx, fresh)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("service %s %s=%s", s.Name, b.p.Spec.Target.Labels.Version, s.Spec.Selector[b.p.Spec.Target.Labels.Version]), nil
}

func (b *blueGreen) controlled() []controlledField {
	return []controlledField{{kind: "Service", name: b.p.Spec.Strategy.Service, path: []string{"spec", "selector", b.p.Spec.Target.Labels.Version}}}
}
