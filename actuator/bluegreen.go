package actuator

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
		if s.Spec.Selector[label] == version {
			return nil
		}
		s = s.DeepCopy()
		if s.Spec.Selector == nil {
			s.Spec.Selector = map[string]string{}
		}
		s.Spec.Selector[label] = version
		_, err = b.k.client.CoreV1().Services(b.k.ns).Update(ctx, s, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("switch service %s/%s to %s=%s: %w", b.k.ns, svc, label, version, err)
	}
	b.k.logger.Info().Str("service", svc).Str("version", version).Msg("service switched")
	return nil
}

func (b *blueGreen) service(ctx context.Context) (*corev1.Service, error) {
	s, err := b.k.client.CoreV1().Services(b.k.ns).Get(ctx, b.p.Spec.Strategy.Service, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get service %s/%s: %w", b.k.ns, b.p.Spec.Strategy.Service, err)
	}
	return s, nil
}

func (b *blueGreen) setStep(ctx context.Context, _ int) error {
	t := b.p.Spec.Target
	c, err := b.k.deployment(ctx, t.Canary.Deployment)
	if err != nil {
		return err
	}
	if _, ok := c.Annotations[AnnotationServiceVersion]; !ok {
		s, err := b.service(ctx)
		if err != nil {
			return err
		}
		was := s.Spec.Selector[t.Labels.Version]
		if was == "" || was == t.Canary.Version {
			was = t.Baseline.Version
		}
		if err := b.k.annotate(ctx, t.Canary.Deployment, map[string]string{AnnotationServiceVersion: was}); err != nil {
			return err
		}
	}
	return b.selectVersion(ctx, t.Canary.Version)
}

func (b *blueGreen) promote(ctx context.Context) (bool, error) {
	t := b.p.Spec.Target
	if err := b.selectVersion(ctx, t.Canary.Version); err != nil {
		return false, err
	}
	if b.p.Spec.Strategy.BaselineAfterPromotion == "delete" {
		err := b.k.client.AppsV1().Deployments(b.k.ns).Delete(ctx, t.Baseline.Deployment, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("delete deployment %s/%s: %w", b.k.ns, t.Baseline.Deployment, err)
		}
		return true, nil
	}
	return true, b.k.scale(ctx, t.Baseline.Deployment, 0)
}

func (b *blueGreen) rollback(ctx context.Context) (bool, error) {
	t := b.p.Spec.Target
	c, err := b.k.deployment(ctx, t.Canary.Deployment)
	if err != nil {
		return false, err
	}
	was := c.Annotations[AnnotationServiceVersion]
	if was == "" {
		was = t.Baseline.Version
	}
	return true, b.selectVersion(ctx, was)
}

func (b *blueGreen) health(ctx context.Context, _ int) (bool, string, error) {
	c, err := b.k.deployment(ctx, b.p.Spec.Target.Canary.Deployment)
	if err != nil {
		return false, "", err
	}
	if p := stalled(c); p != "" {
		return false, p, nil
	}
	h, err := b.k.pods(ctx, c, nil)
	if err != nil {
		return false, "", err
	}
	if p := restartProblem(c.Name, h, b.p.Spec.Health.MaxRestarts); p != "" {
		return false, p, nil
	}
	n := replicas(c)
	return n > 0 && c.Status.ReadyReplicas >= n && h.ready >= int(n), "", nil
}

func (b *blueGreen) fingerprint(ctx context.Context) (string, error) {
	s, err := b.service(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("service %s %s=%s", s.Name, b.p.Spec.Target.Labels.Version, s.Spec.Selector[b.p.Spec.Target.Labels.Version]), nil
}
