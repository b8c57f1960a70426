package actuator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/coalmine/coalmine/policies"
)

// Versions is what the Deployments say a release is made of, for a policy that does not pin its
// versions: the baseline's version, the canary's, and the canary's pod template, whose every new
// version is a new canary.
type Versions struct {
	Baseline string
	Canary   string
	// Template identifies the canary's pod template: the same for the same template, another
	// for any change to it (an image, an environment variable, a label).
	Template string
}

// Releasing reports whether there is a canary to drive: a canary version beside another one.
func (v Versions) Releasing() bool {
	return v.Canary != "" && v.Baseline != "" && v.Canary != v.Baseline
}

// ReadVersions reads a release's versions from its Deployments through c (a cache or the API
// server). Versions the policy pins are taken as written.
//
// With two Deployments (scale, shift, bluegreen) each version is the version label of its
// Deployment's pod template. With one (rollout) the canary is the pod template's version, and the
// baseline the version of the newest revision still running pods that is not the template's: a
// paused Deployment whose template changed has not started the new version yet, and its serving
// revision is the baseline. A Deployment whose every pod runs its template has no canary.
func ReadVersions(ctx context.Context, c Cache, p *policies.Policy) (Versions, error) {
	t := p.Spec.Target
	label := t.Labels.Version
	var v Versions
	if p.Spec.Strategy.Type == policies.StrategyRollout {
		name := t.Canary.Deployment
		if name == "" {
			name = t.Baseline.Deployment
		}
		d, err := c.Deployment(ctx, t.Namespace, name)
		if err != nil {
			return v, fmt.Errorf("get deployment %s/%s: %w", t.Namespace, name, err)
		}
		v.Canary, v.Template = d.Spec.Template.Labels[label], templateID(&d.Spec.Template)
		if rolledOut(d) && d.Status.UpdatedReplicas > 0 {
			// Every pod runs the template: nothing beside it to compare it with.
			v.Baseline = v.Canary
		} else if v.Baseline, err = servingVersion(ctx, c, d, label, v.Canary); err != nil {
			return v, err
		}
	} else {
		c1, err := c.Deployment(ctx, t.Namespace, t.Canary.Deployment)
		if err != nil {
			return v, fmt.Errorf("get deployment %s/%s: %w", t.Namespace, t.Canary.Deployment, err)
		}
		v.Canary, v.Template = c1.Spec.Template.Labels[label], templateID(&c1.Spec.Template)
		if t.Baseline.Version == "" {
			b, err := c.Deployment(ctx, t.Namespace, t.Baseline.Deployment)
			if err != nil {
				return v, fmt.Errorf("get deployment %s/%s: %w", t.Namespace, t.Baseline.Deployment, err)
			}
			v.Baseline = b.Spec.Template.Labels[label]
		}
	}
	if t.Baseline.Version != "" {
		v.Baseline = t.Baseline.Version
	}
	if t.Canary.Version != "" {
		v.Canary = t.Canary.Version
	}
	return v, nil
}

// Versions reads the release's versions (see ReadVersions); fresh reads the API server.
func (r *Release) Versions(ctx context.Context, fresh bool) (Versions, error) {
	return ReadVersions(ctx, r.k.from(fresh), r.policy)
}

// servingVersion is the version of d's newest revision that still runs pods, other than
// template's version; failing that, the newest other version it ran; "" when it never ran another.
func servingVersion(ctx context.Context, c Cache, d *appsv1.Deployment, label, template string) (string, error) {
	revs, err := revisionsOf(ctx, c, d)
	if err != nil {
		return "", err
	}
	order := slices.Sorted(maps.Keys(revs))
	slices.Reverse(order)
	other := ""
	for _, n := range order {
		rs := revs[n]
		ver := rs.Spec.Template.Labels[label]
		if ver == template || ver == "" {
			continue
		}
		if rs.Status.Replicas > 0 || rs.Spec.Replicas != nil && *rs.Spec.Replicas > 0 {
			return ver, nil
		}
		if other == "" {
			other = ver
		}
	}
	return other, nil
}

// templateID identifies a pod template: a hash of its JSON, which is stable for equal templates.
func templateID(t *corev1.PodTemplateSpec) string {
	b, err := json.Marshal(t)
	if err != nil {
		return ""
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// revisionsOf lists a Deployment's ReplicaSets by revision, read through c.
func revisionsOf(ctx context.Context, c Cache, d *appsv1.Deployment) (map[int64]*appsv1.ReplicaSet, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %s/%s selector: %w", d.Namespace, d.Name, err)
	}
	list, err := c.ReplicaSets(ctx, d.Namespace, sel)
	if err != nil {
		return nil, fmt.Errorf("list replicasets of %s/%s: %w", d.Namespace, d.Name, err)
	}
	out := map[int64]*appsv1.ReplicaSet{}
	for _, rs := range list {
		if !metav1.IsControlledBy(rs, d) {
			continue
		}
		if n, err := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64); err == nil {
			out[n] = rs
		}
	}
	return out, nil
}
