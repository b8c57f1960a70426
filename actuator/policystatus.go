package actuator

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/coalmine/coalmine/policies"
)

// PolicyStatus writes what the daemon reports on CanaryPolicy objects: their status, through
// the status subresource, and Events on them.
type PolicyStatus struct {
	dyn    dynamic.Interface
	client kubernetes.Interface
	now    func() time.Time
}

// NewPolicyStatus returns a writer of CanaryPolicy status and Events.
func NewPolicyStatus(dyn dynamic.Interface, client kubernetes.Interface) *PolicyStatus {
	return &PolicyStatus{dyn: dyn, client: client, now: time.Now}
}

var policyResource = schema.GroupVersionResource{Group: policies.Group, Version: policies.Version, Resource: policies.Resource}

// Update reads the object afresh, lets change edit its status (change reports false when there
// is nothing to write) and writes the status with an update of the status subresource, retried
// on conflict. It returns the object as written, nil when nothing was.
func (w *PolicyStatus) Update(ctx context.Context, namespace, name string, change func(o *unstructured.Unstructured, st *policies.Status) bool) (*unstructured.Unstructured, error) {
	res := w.dyn.Resource(policyResource).Namespace(namespace)
	var written *unstructured.Unstructured
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		o, err := res.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var st policies.Status
		if raw, ok := o.Object["status"].(map[string]any); ok {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &st); err != nil {
				st = policies.Status{} // someone else's status: ours replaces it
			}
		}
		if !change(o, &st) {
			return nil
		}
		raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&st)
		if err != nil {
			return err
		}
		o.Object["status"] = raw
		written, err = res.UpdateStatus(ctx, o, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil, nil // deleted meanwhile: nothing to report on
	}
	if err != nil {
		return nil, fmt.Errorf("update status of canarypolicy %s/%s: %w", namespace, name, err)
	}
	return written, nil
}

// Event records an Event on a CanaryPolicy object once per key: its name is derived from the
// object and key, so recording it again is a no-op.
func (w *PolicyStatus) Event(ctx context.Context, o *unstructured.Unstructured, key string, warning bool, reason, message string) error {
	typ := corev1.EventTypeNormal
	if warning {
		typ = corev1.EventTypeWarning
	}
	if len(message) > 1024 {
		message = message[:1021] + "..."
	}
	h := fnv.New64a()
	h.Write([]byte(string(o.GetUID()) + "/" + key))
	name := o.GetName()
	if len(name) > 200 {
		name = name[:200]
	}
	now := metav1.NewTime(w.now())
	host, _ := os.Hostname()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.coalmine.%016x", name, h.Sum64()), Namespace: o.GetNamespace()},
		InvolvedObject: corev1.ObjectReference{
			Kind: policies.Kind, APIVersion: policies.APIVersion, Namespace: o.GetNamespace(), Name: o.GetName(),
			UID: o.GetUID(), ResourceVersion: o.GetResourceVersion(),
		},
		Reason: reason, Message: message, Type: typ,
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		Source:              corev1.EventSource{Component: "coalmine"},
		ReportingController: "coalmine.dev/coalmine",
		ReportingInstance:   host,
		EventTime:           metav1.NewMicroTime(now.Time),
		Action:              reason,
	}
	_, err := w.client.CoreV1().Events(o.GetNamespace()).Create(ctx, ev, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("record event %s on canarypolicy %s/%s: %w", reason, o.GetNamespace(), o.GetName(), err)
	}
	return nil
}
