package actuator

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// controlledField is a field coalmine controls on one object: what the strategy's fingerprint
// covers, so that a change to it by someone else can be put down to its writer.
type controlledField struct {
	// kind is Deployment or Service.
	kind, name string
	// path is the field, as in the object's JSON: spec, replicas. Whoever owns any field under
	// it (a container's image under spec.template) changed it.
	path []string
}

func (f controlledField) String() string { return strings.Join(f.path, ".") }

// writer is one manager's last write of a controlled field, from managedFields.
type writer struct {
	field       controlledField
	manager     string
	operation   metav1.ManagedFieldsOperationType
	subresource string
	time        time.Time
}

func (w writer) String() string {
	op := string(w.operation)
	if w.subresource != "" {
		op += " of " + w.subresource
	}
	s := fmt.Sprintf("%s of %s %s last written by %s (%s)", w.field, w.field.kind, w.field.name, w.manager, op)
	if !w.time.IsZero() {
		s += " at " + w.time.UTC().Format(time.RFC3339)
	}
	return s
}

// ChangedBy names who last changed the fields coalmine controls, other than coalmine: the
// field, the object, the field manager, its operation and the time, read from the objects'
// managedFields on the API server. Only a write no older than coalmine's own last write to
// those objects counts: the creator of a field coalmine never wrote changed nothing since. It is
// "" when there is none (the object was deleted, or its writer is not recorded).
func (r *Release) ChangedBy(ctx context.Context) (string, error) {
	var (
		latest, untimed *writer
		since           time.Time // coalmine's last write
	)
	managed := map[string][]metav1.ManagedFieldsEntry{}
	for _, f := range r.strategy.controlled() {
		key := f.kind + "/" + f.name
		entries, ok := managed[key]
		if !ok {
			var err error
			if entries, err = r.k.managedFields(ctx, f.kind, f.name); err != nil {
				return "", err
			}
			managed[key] = entries
		}
		for _, e := range entries {
			var at time.Time
			if e.Time != nil {
				at = e.Time.Time
			}
			if e.Manager == fieldManager {
				if at.After(since) {
					since = at
				}
				continue
			}
			if !owns(e, f.path) {
				continue
			}
			w := &writer{field: f, manager: e.Manager, operation: e.Operation, subresource: e.Subresource, time: at}
			switch {
			case e.Time == nil && untimed == nil:
				untimed = w
			case e.Time != nil && (latest == nil || at.After(latest.time)):
				latest = w
			}
		}
	}
	// managedFields keep whole seconds: a write in coalmine's second may be after it.
	if latest != nil && !latest.time.Before(since) {
		return latest.String(), nil
	}
	if untimed != nil {
		return untimed.String(), nil // when, unknown; who, the only one that can be
	}
	return "", nil
}

// managedFields reads an object's managedFields from the API server; none when it is gone.
func (k *kube) managedFields(ctx context.Context, kind, name string) ([]metav1.ManagedFieldsEntry, error) {
	var (
		meta metav1.Object
		err  error
	)
	switch kind {
	case "Deployment":
		meta, err = k.reads.Deployment(ctx, k.ns, name)
	case "Service":
		meta, err = k.reads.Service(ctx, k.ns, name)
	default:
		return nil, fmt.Errorf("managed fields of a %s", kind)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get %s %s/%s: %w", strings.ToLower(kind), k.ns, name, err)
	}
	return meta.GetManagedFields(), nil
}

// owns reports whether a managedFields entry owns the field at path, any field under it, or an
// atomic field above it (a Service's selector is one value: whoever set one key owns them all).
// FieldsV1 is a tree of "f:<name>" keys (and "k:"/"v:" keys for list items) whose leaves, {},
// are the fields owned; path is a list of names.
func owns(e metav1.ManagedFieldsEntry, path []string) bool {
	if e.FieldsV1 == nil {
		return false
	}
	var tree map[string]any
	if err := json.Unmarshal(e.FieldsV1.Raw, &tree); err != nil {
		return false
	}
	for _, name := range path {
		sub, ok := tree["f:"+name].(map[string]any)
		switch {
		case !ok:
			return false
		case len(sub) == 0:
			return true // owned whole
		}
		tree = sub
	}
	return true
}
