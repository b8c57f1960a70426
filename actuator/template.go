package actuator

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// takeTemplate gives the baseline Deployment the canary's pod template and n replicas (a
// promotion with baselineAfterPromotion: update), a bit more each call: it reports done once
// the baseline has rolled out, every pod of the new template Ready. The Deployment controller
// rolls the baseline over by its own update strategy, so it serves throughout.
func (k *kube) takeTemplate(ctx context.Context, baseline, canary string, n int32) (bool, error) {
	c, err := k.deployment(ctx, canary, true)
	if err != nil {
		return false, err
	}
	b, err := k.deployment(ctx, baseline, true)
	if err != nil {
		return false, err
	}
	tmpl, err := baselineTemplate(b, c)
	if err != nil {
		return false, err
	}
	if !apiequality.Semantic.DeepEqual(b.Spec.Template, *tmpl) || replicas(b) != n {
		k.logger.Info().Str("deployment", baseline).Str("from", canary).Int32("replicas", n).Msg("baseline takes the canary's pod template")
		// The template and replicas as read, or a fresh read and a conflict-free retry.
		err := k.patchDeployment(ctx, baseline, func(b *appsv1.Deployment) ([]patchOp, error) {
			tmpl, err := baselineTemplate(b, c)
			if err != nil {
				return nil, err
			}
			return []patchOp{set("/spec/template", tmpl), set("/spec/replicas", n)}, nil
		})
		if err != nil {
			return false, fmt.Errorf("give deployment %s/%s the pod template of %s: %w", k.ns, baseline, canary, err)
		}
		return false, nil
	}
	s := b.Status
	done := s.ObservedGeneration >= b.Generation && s.UpdatedReplicas == n && s.ReadyReplicas == n && s.AvailableReplicas == n && s.Replicas == n
	return done, nil
}

// baselineTemplate is the canary c's pod template as the baseline Deployment b runs it: with the
// labels b's selector, which cannot change, asks for (a track label, say), so that b selects its
// new pods and c does not. An error says why b cannot run it.
func baselineTemplate(b, c *appsv1.Deployment) (*corev1.PodTemplateSpec, error) {
	bs, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %s/%s selector: %w", b.Namespace, b.Name, err)
	}
	cs, err := metav1.LabelSelectorAsSelector(c.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %s/%s selector: %w", c.Namespace, c.Name, err)
	}
	t := c.Spec.Template.DeepCopy()
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	if b.Spec.Selector != nil {
		for k, v := range b.Spec.Selector.MatchLabels {
			t.Labels[k] = v
		}
	}
	switch {
	case !bs.Matches(labels.Set(t.Labels)):
		return nil, fmt.Errorf("baselineAfterPromotion update: the selector of %s (%s) does not select %s's pod template even with its labels: the baseline cannot run the canary's pods (select by labels that tell the Deployments apart, such as a track label, not by version; or use baselineAfterPromotion scaleToZero)", b.Name, bs, c.Name)
	case cs.Matches(labels.Set(t.Labels)):
		return nil, fmt.Errorf("baselineAfterPromotion update: the selector of %s (%s) would also select %s's pods: give the two Deployments selectors that tell them apart (a track label, say)", c.Name, cs, b.Name)
	}
	return t, nil
}
