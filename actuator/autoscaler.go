package actuator

import (
	"context"
	"encoding/json"
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// An autoscaler changing a Deployment's replicas is not a person stepping in, but it would move
// a canary off its step, or scale the baseline coalmine shifts replicas from. While a canary
// runs coalmine pins the HorizontalPodAutoscalers (autoscaling/v2) of the Deployments whose
// replicas it sets: minReplicas = maxReplicas = the replicas it wants, so that the HPA
// controller, which keeps a target within [minReplicas, maxReplicas] before it looks at any
// metric, holds them there. It restores each HPA's own range when the canary ends.
//
// What it relies on between canaries: the HPA controller leaves a target whose spec.replicas is
// 0 alone when minReplicas is not 0 ("scaling is disabled since the replica count of the
// target is zero", pkg/controller/podautoscaler/horizontal.go; the documented implicit
// maintenance mode). A canary Deployment waiting at 0 replicas for the next release keeps its
// restored HPA and is not scaled up by it. An HPA with minReplicas 0 (HPAScaleToZero) would
// scale it up: coalmine does not pin that case away.

// hpaRange is an HPA's replica range as its owner set it, before coalmine pinned it.
type hpaRange struct {
	Name        string `json:"name,omitempty"`
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	MaxReplicas int32  `json:"maxReplicas"`
}

// targets reports whether an HPA scales the named Deployment. The HPA controller resolves the
// scaleTargetRef by the group of its apiVersion and its kind: a reference with no apiVersion, or
// one outside the apps group, is not a Deployment it can scale (it reports FailedGetScale), so
// it is not one coalmine pins either. Any version of apps is the same Deployment.
func targets(h *autoscalingv2.HorizontalPodAutoscaler, deployment string) bool {
	ref := h.Spec.ScaleTargetRef
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && gv.Group == "apps" && ref.Kind == "Deployment" && ref.Name == deployment
}

// autoscalers reads, from the API server, the HPAs in the namespace that scale each of the
// named Deployments: one list for all of them. Without the right to list HPAs coalmine cannot
// see them: it says so and goes on as if there were none.
func (k *kube) autoscalers(ctx context.Context, deployments ...string) (map[string][]*autoscalingv2.HorizontalPodAutoscaler, error) {
	list, err := k.client.AutoscalingV2().HorizontalPodAutoscalers(k.ns).List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		k.logger.Warn().Err(err).Str("namespace", k.ns).Msg("cannot list horizontalpodautoscalers: autoscalers are not pinned")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list horizontalpodautoscalers in %s: %w", k.ns, err)
	}
	out := map[string][]*autoscalingv2.HorizontalPodAutoscaler{}
	for i := range list.Items {
		h := &list.Items[i]
		for _, d := range deployments {
			if targets(h, d) {
				out[d] = append(out[d], h)
			}
		}
	}
	return out, nil
}

// rangeOf is the range an HPA's owner set: the one coalmine recorded on it when it pinned it
// (a pin left by a canary that never ended), else its spec.
func rangeOf(h *autoscalingv2.HorizontalPodAutoscaler) hpaRange {
	var r hpaRange
	if raw, ok := h.Annotations[AnnotationPinned]; ok && json.Unmarshal([]byte(raw), &r) == nil && r.MaxReplicas > 0 {
		r.Name = h.Name
		return r
	}
	return hpaRange{Name: h.Name, MinReplicas: h.Spec.MinReplicas, MaxReplicas: h.Spec.MaxReplicas}
}

// rememberRanges records in state, under key, the ranges of hpas; nothing when there are none.
func rememberRanges(state map[string]string, key string, hpas []*autoscalingv2.HorizontalPodAutoscaler) error {
	if len(hpas) == 0 {
		return nil
	}
	ranges := make([]hpaRange, len(hpas))
	for i, h := range hpas {
		ranges[i] = rangeOf(h)
	}
	b, err := json.Marshal(ranges)
	if err != nil {
		return fmt.Errorf("record autoscalers: %w", err)
	}
	state[key] = string(b)
	return nil
}

// rememberedRanges reads the ranges state recorded under key, by HPA name.
func rememberedRanges(state map[string]string, key string) (map[string]hpaRange, error) {
	raw, ok := state[key]
	if !ok {
		return nil, nil
	}
	var ranges []hpaRange
	if err := json.Unmarshal([]byte(raw), &ranges); err != nil {
		return nil, fmt.Errorf("the canary's record: %s: %w", key, err)
	}
	out := make(map[string]hpaRange, len(ranges))
	for _, r := range ranges {
		out[r.Name] = r
	}
	return out, nil
}

// pin sets every HPA in hpas to exactly n replicas (at least 1: an HPA cannot have fewer; a
// target at 0 replicas is left alone by its HPA anyway). The first pin records the HPA's own
// range on it (AnnotationPinned), so that it is restored even by a canary that did not start it.
// Pinning an HPA already pinned to n writes nothing.
func (k *kube) pin(ctx context.Context, hpas []*autoscalingv2.HorizontalPodAutoscaler, n int32) error {
	n = max(n, 1)
	for _, h := range hpas {
		err := k.patchAutoscaler(ctx, h, func(h *autoscalingv2.HorizontalPodAutoscaler) (map[string]any, error) {
			_, pinned := h.Annotations[AnnotationPinned]
			if pinned && h.Spec.MinReplicas != nil && *h.Spec.MinReplicas == n && h.Spec.MaxReplicas == n {
				return nil, nil
			}
			patch := map[string]any{"spec": map[string]any{"minReplicas": n, "maxReplicas": n}}
			if !pinned {
				r := rangeOf(h)
				r.Name = ""
				b, err := json.Marshal(r)
				if err != nil {
					return nil, err
				}
				patch["metadata"] = map[string]any{"annotations": map[string]string{AnnotationPinned: string(b)}}
			}
			k.logger.Info().Str("autoscaler", h.Name).Str("deployment", h.Spec.ScaleTargetRef.Name).Int32("replicas", n).Msg("pinning autoscaler")
			return patch, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// repin moves the pin of every HPA in hpas that coalmine pinned to n; one it did not pin (or
// restored already, by a promotion done before) is left as it is.
func (k *kube) repin(ctx context.Context, hpas []*autoscalingv2.HorizontalPodAutoscaler, n int32) error {
	var pinned []*autoscalingv2.HorizontalPodAutoscaler
	for _, h := range hpas {
		if _, ok := h.Annotations[AnnotationPinned]; ok {
			pinned = append(pinned, h)
		}
	}
	return k.pin(ctx, pinned, n)
}

// restore gives every HPA in hpas that coalmine pinned its own range back: the one remembered
// when the canary started, else the one recorded on it at the first pin. An HPA coalmine did
// not pin is left as it is. Restoring twice writes nothing the second time.
func (k *kube) restore(ctx context.Context, hpas []*autoscalingv2.HorizontalPodAutoscaler, remembered map[string]hpaRange) error {
	for _, h := range hpas {
		err := k.patchAutoscaler(ctx, h, func(h *autoscalingv2.HorizontalPodAutoscaler) (map[string]any, error) {
			if _, pinned := h.Annotations[AnnotationPinned]; !pinned {
				return nil, nil
			}
			r, ok := remembered[h.Name]
			if !ok {
				r = rangeOf(h)
			}
			var minReplicas any // null: the API's default, 1
			if r.MinReplicas != nil {
				minReplicas = *r.MinReplicas
			}
			k.logger.Info().Str("autoscaler", h.Name).Str("deployment", h.Spec.ScaleTargetRef.Name).Int32("max_replicas", r.MaxReplicas).Msg("restoring autoscaler")
			return map[string]any{
				"metadata": map[string]any{"annotations": map[string]any{AnnotationPinned: nil}},
				"spec":     map[string]any{"minReplicas": minReplicas, "maxReplicas": r.MaxReplicas},
			}, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// patchAutoscaler writes the merge patch change makes of h, held to h's resourceVersion: on a
// conflict h is read again and changed again. change returns nil when nothing is to change. An
// HPA deleted meanwhile is no error: there is nothing left to pin or restore.
func (k *kube) patchAutoscaler(ctx context.Context, h *autoscalingv2.HorizontalPodAutoscaler, change func(h *autoscalingv2.HorizontalPodAutoscaler) (map[string]any, error)) error {
	var changeErr error
	first := true
	err := retry.RetryOnConflict(conflictBackoff, func() error {
		if !first {
			fresh, err := k.client.AutoscalingV2().HorizontalPodAutoscalers(k.ns).Get(ctx, h.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			*h = *fresh
		}
		first = false
		patch, err := change(h)
		if err != nil || patch == nil {
			changeErr = err
			return nil
		}
		meta, _ := patch["metadata"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
			patch["metadata"] = meta
		}
		meta["resourceVersion"] = h.ResourceVersion
		b, err := json.Marshal(patch)
		if err != nil {
			changeErr = err
			return nil
		}
		patched, err := k.client.AutoscalingV2().HorizontalPodAutoscalers(k.ns).Patch(ctx, h.Name, types.MergePatchType, b, metav1.PatchOptions{FieldManager: fieldManager})
		if err == nil {
			*h = *patched // as written, for whatever this call does with it next
		}
		return err
	})
	switch {
	case changeErr != nil:
		return fmt.Errorf("horizontalpodautoscaler %s/%s: %w", k.ns, h.Name, changeErr)
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("patch horizontalpodautoscaler %s/%s: %w", k.ns, h.Name, err)
	}
	return nil
}
