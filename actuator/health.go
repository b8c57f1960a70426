package actuator

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// podHealth is what the pods of one version say.
type podHealth struct {
	total, ready int
	restarts     int32
}

// pods counts the pods a Deployment selects, narrowed by extra label requirements.
func (k *kube) pods(ctx context.Context, d *appsv1.Deployment, extra map[string]string, fresh bool) (podHealth, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return podHealth{}, fmt.Errorf("deployment %s/%s selector: %w", k.ns, d.Name, err)
	}
	for key, v := range extra {
		r, err := labels.NewRequirement(key, "=", []string{v})
		if err != nil {
			return podHealth{}, fmt.Errorf("label %s=%s: %w", key, v, err)
		}
		sel = sel.Add(*r)
	}
	list, err := k.from(fresh).Pods(ctx, k.ns, sel)
	if err != nil {
		return podHealth{}, fmt.Errorf("list pods of %s/%s: %w", k.ns, d.Name, err)
	}
	var h podHealth
	for _, p := range list {
		if p.DeletionTimestamp != nil {
			continue
		}
		h.total++
		if podReady(p) {
			h.ready++
		}
		for _, cs := range p.Status.ContainerStatuses {
			h.restarts += cs.RestartCount
		}
	}
	return h, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// stalled names a Deployment's rollout that stopped progressing, "" when it did not.
func stalled(d *appsv1.Deployment) string {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return fmt.Sprintf("Deployment %s: ProgressDeadlineExceeded: %s", d.Name, c.Message)
		}
	}
	return ""
}

// restartProblem names restarts above the policy's bound, "" when within it.
func restartProblem(name string, h podHealth, maxRestarts int) string {
	if int(h.restarts) > maxRestarts {
		return fmt.Sprintf("canary pods of %s restarted %d times, more than maxRestarts %d", name, h.restarts, maxRestarts)
	}
	return ""
}
