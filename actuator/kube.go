package actuator

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"time"

	"github.com/rs/zerolog"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// fieldManager names coalmine in managedFields.
const fieldManager = "coalmine"

// conflictBackoff paces retries on conflict. A Deployment mid-rollout is rewritten by its
// controller many times a second; client-go's DefaultRetry (5 tries in about 50 ms) runs out.
var conflictBackoff = wait.Backoff{Steps: 12, Duration: 10 * time.Millisecond, Factor: 2, Jitter: 0.2, Cap: 2 * time.Second}

// kube is the plain Kubernetes operations the strategies are built from, in one namespace.
// Reads go through reads (the API server) or, when set, cached (informers); writes always go
// to the API server.
type kube struct {
	client kubernetes.Interface
	ns     string
	logger zerolog.Logger
	now    func() time.Time
	reads  Cache
	cached Cache
}

// from is where a read goes: the cache when there is one, unless fresh is asked for.
func (k *kube) from(fresh bool) Cache {
	if k.cached != nil && !fresh {
		return k.cached
	}
	return k.reads
}

// deployment reads a Deployment. The object may be shared with a cache: never modify it.
func (k *kube) deployment(ctx context.Context, name string, fresh bool) (*appsv1.Deployment, error) {
	d, err := k.from(fresh).Deployment(ctx, k.ns, name)
	if err != nil {
		return nil, fmt.Errorf("get deployment %s/%s: %w", k.ns, name, err)
	}
	return d, nil
}

// patchAnnotation sets one annotation with a merge patch: one request, no read, no conflict.
func (k *kube) patchAnnotation(ctx context.Context, name, key, value string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	if err != nil {
		return fmt.Errorf("annotate deployment %s/%s: %w", k.ns, name, err)
	}
	_, err = k.client.AppsV1().Deployments(k.ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
	if err != nil {
		return fmt.Errorf("annotate deployment %s/%s: %w", k.ns, name, err)
	}
	return nil
}

// patchAnnotationIf sets one annotation to change(its value), with a merge patch that holds only
// if the Deployment is as read: on a conflict it is read and changed again.
func (k *kube) patchAnnotationIf(ctx context.Context, name, key string, change func(old string) (string, error)) error {
	var changeErr error
	err := retry.RetryOnConflict(conflictBackoff, func() error {
		d, err := k.client.AppsV1().Deployments(k.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		value, err := change(d.Annotations[key])
		if err != nil {
			changeErr = err
			return nil
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": d.ResourceVersion, "annotations": map[string]string{key: value}}})
		if err != nil {
			changeErr = err
			return nil
		}
		_, err = k.client.AppsV1().Deployments(k.ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
		return err
	})
	if changeErr != nil {
		return fmt.Errorf("annotate deployment %s/%s: %w", k.ns, name, changeErr)
	}
	if err != nil {
		return fmt.Errorf("annotate deployment %s/%s: %w", k.ns, name, err)
	}
	return nil
}

// patchOp is one operation of a JSON patch (RFC 6902).
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// set is the JSON patch operation that sets the member at path, whether it is there or not.
func set(path string, value any) patchOp { return patchOp{Op: "add", Path: path, Value: value} }

// patchDeployment re-reads a Deployment, lets change say which of its fields to set, and writes
// only those, as a JSON patch under coalmine's field manager. The patch also sets the
// resourceVersion read, which the API server takes as a precondition: if the Deployment changed
// since (its controller, a person), the patch conflicts and is made again from a fresh read.
// change returns no operations when nothing is to change; then nothing is written.
func (k *kube) patchDeployment(ctx context.Context, name string, change func(d *appsv1.Deployment) ([]patchOp, error)) error {
	var changeErr error
	err := retry.RetryOnConflict(conflictBackoff, func() error {
		d, err := k.client.AppsV1().Deployments(k.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ops, err := change(d.DeepCopy())
		if err != nil {
			changeErr = err
			return nil
		}
		if len(ops) == 0 {
			return nil
		}
		patch, err := json.Marshal(append([]patchOp{set("/metadata/resourceVersion", d.ResourceVersion)}, ops...))
		if err != nil {
			changeErr = err
			return nil
		}
		_, err = k.client.AppsV1().Deployments(k.ns).Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
		return err
	})
	if changeErr != nil {
		return fmt.Errorf("deployment %s/%s: %w", k.ns, name, changeErr)
	}
	if err != nil {
		return fmt.Errorf("patch deployment %s/%s: %w", k.ns, name, err)
	}
	return nil
}

// scale sets a Deployment's replicas, and nothing else.
func (k *kube) scale(ctx context.Context, name string, replicas int32) error {
	return k.patchDeployment(ctx, name, func(d *appsv1.Deployment) ([]patchOp, error) {
		if d.Spec.Replicas != nil && *d.Spec.Replicas == replicas {
			return nil, nil
		}
		k.logger.Info().Str("deployment", name).Int32("replicas", replicas).Msg("scaling deployment")
		return []patchOp{set("/spec/replicas", replicas)}, nil
	})
}

// event records a Kubernetes Event on a Deployment, synchronously: a one-shot gate exits right
// after its last action, and an asynchronous recorder would drop it. The Event's name is derived
// from key, so recording the same occurrence again (after a crash) is a no-op: exactly once.
func (k *kube) event(ctx context.Context, name, key string, warning bool, reason, message string) error {
	d, err := k.deployment(ctx, name, false)
	if err != nil {
		return err
	}
	typ := corev1.EventTypeNormal
	if warning {
		typ = corev1.EventTypeWarning
	}
	now := metav1.NewTime(k.now())
	host, _ := os.Hostname()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: eventName(d.Name, key), Namespace: k.ns},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Deployment", APIVersion: "apps/v1", Namespace: k.ns, Name: d.Name,
			UID: d.UID, ResourceVersion: d.ResourceVersion,
		},
		Reason: reason, Message: message, Type: typ,
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		Source:              corev1.EventSource{Component: "coalmine"},
		ReportingController: "coalmine.dev/coalmine",
		ReportingInstance:   host,
		EventTime:           metav1.NewMicroTime(now.Time),
		Action:              reason,
	}
	_, err = k.client.CoreV1().Events(k.ns).Create(ctx, ev, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("record event %s on %s/%s: %w", reason, k.ns, name, err)
	}
	return nil
}

// eventName is a valid object name, the same for the same Deployment and key.
func eventName(deployment, key string) string {
	h := fnv.New64a()
	h.Write([]byte(key))
	if len(deployment) > 200 {
		deployment = deployment[:200]
	}
	return fmt.Sprintf("%s.coalmine.%016x", deployment, h.Sum64())
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}
