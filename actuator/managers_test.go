package actuator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestChangedBy shows who coalmine names when the release is not where it left it: the latest
// field manager other than coalmine that owns a field the strategy controls.
func TestChangedBy(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		policy string
		// change is made after coalmine's step, by someone else.
		change func(t *testing.T, c *fake.Clientset)
		want   string // "" for nobody
	}{
		{name: "nobody else", policy: "my-app.yaml", change: func(*testing.T, *fake.Clientset) {}},
		{name: "a GitOps tool re-applies the canary's manifest", policy: "my-app.yaml",
			change: func(t *testing.T, c *fake.Clientset) {
				apply := appsv1ac.Deployment("my-app-v2", ns).WithSpec(appsv1ac.DeploymentSpec().WithReplicas(3))
				if _, err := c.AppsV1().Deployments(ns).Apply(ctx, apply, metav1.ApplyOptions{FieldManager: "argocd-controller", Force: true}); err != nil {
					t.Fatal(err)
				}
			},
			want: "spec.replicas of Deployment my-app-v2 last written by argocd-controller (Apply) at "},
		{name: "a person scales the baseline", policy: "my-app.yaml",
			change: func(t *testing.T, c *fake.Clientset) {
				d := get(t, c, "my-app-v1")
				n := int32(7)
				d.Spec.Replicas = &n
				if _, err := c.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
					t.Fatal(err)
				}
			},
			want: "spec.replicas of Deployment my-app-v1 last written by kubectl-edit (Update) at "},
		{name: "someone changes the rollout's image", policy: "my-app-rollout.yaml",
			change: func(t *testing.T, c *fake.Clientset) {
				patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"my-app:v2.0.1"}]}}}}`)
				if _, err := c.AppsV1().Deployments(ns).Patch(ctx, "my-app", types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-set"}); err != nil {
					t.Fatal(err)
				}
			},
			want: "spec.template of Deployment my-app last written by kubectl-set (Update) at "},
		{name: "someone points the Service back", policy: "my-app-bluegreen.yaml",
			change: func(t *testing.T, c *fake.Clientset) {
				patch := []byte(`{"spec":{"selector":{"version":"v1.0.0"}}}`)
				if _, err := c.CoreV1().Services(ns).Patch(ctx, "my-app", types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kustomize-controller"}); err != nil {
					t.Fatal(err)
				}
			},
			want: "spec.selector.version of Service my-app last written by kustomize-controller (Update) at "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			canary := deployment("my-app-v2", "v2.0.0", 10, 10)
			svc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "my-app", Namespace: ns},
				Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "my-app", "version": "v1.0.0"}},
			}
			// Made as a person or a pipeline would, so that managedFields record their creator.
			c := fake.NewClientset()
			objs := append(rolloutAtRevision3(), deployment("my-app-v1", "v1.0.0", 10, 10), canary, svc)
			for i := range 10 {
				objs = append(objs, &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("my-app-v2-%d", i), Namespace: ns, Labels: canary.Spec.Template.Labels},
					Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
				})
			}
			for _, o := range objs {
				var err error
				create := metav1.CreateOptions{FieldManager: "kubectl-create"}
				switch o := o.(type) {
				case *appsv1.Deployment:
					_, err = c.AppsV1().Deployments(ns).Create(ctx, o, create)
				case *appsv1.ReplicaSet:
					_, err = c.AppsV1().ReplicaSets(ns).Create(ctx, o, create)
				case *corev1.Service:
					_, err = c.CoreV1().Services(ns).Create(ctx, o, create)
				case *corev1.Pod:
					_, err = c.CoreV1().Pods(ns).Create(ctx, o, create)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			r, err := NewRelease(c, loadPolicy(t, tt.policy), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			state := prepare(t, r)
			if tt.policy == "my-app-rollout.yaml" {
				pauseMidCanary(t, c)
			} else if _, err := r.SetStep(ctx, 0, state); err != nil {
				t.Fatal(err)
			}
			tt.change(t, c)
			got, err := r.ChangedBy(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" && got != "" || !strings.HasPrefix(got, tt.want) {
				t.Errorf("ChangedBy: %q, want %q...", got, tt.want)
			}
		})
	}
}

// TestChangedByPicks shows which writer ChangedBy names from managedFields as the API server
// keeps them: whole seconds, no time on some subresource writes.
func TestChangedByPicks(t *testing.T) {
	at := func(s string) *metav1.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return &metav1.Time{Time: tm}
	}
	replicas := &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:replicas":{}}}`)}
	record := &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{"f:coalmine.dev/progress":{}}}}`)}
	created := &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{}}}}}`)}
	tests := []struct {
		name    string
		entries []metav1.ManagedFieldsEntry
		want    string
	}{
		{"the creator, before coalmine's last write, changed nothing since", []metav1.ManagedFieldsEntry{
			{Manager: "kubectl-create", Operation: metav1.ManagedFieldsOperationUpdate, Time: at("2026-12-03T07:00:00Z"), FieldsV1: created},
			{Manager: "coalmine", Operation: metav1.ManagedFieldsOperationUpdate, Time: at("2026-12-03T07:10:00Z"), FieldsV1: record},
		}, ""},
		{"a write in coalmine's second may be after it", []metav1.ManagedFieldsEntry{
			{Manager: "coalmine", Operation: metav1.ManagedFieldsOperationUpdate, Time: at("2026-12-03T07:10:00Z"), FieldsV1: record},
			{Manager: "kustomize-controller", Operation: metav1.ManagedFieldsOperationApply, Time: at("2026-12-03T07:10:00Z"), FieldsV1: replicas},
		}, "spec.replicas of Deployment my-app-v2 last written by kustomize-controller (Apply) at 2026-12-03T07:10:00Z"},
		{"the latest of several", []metav1.ManagedFieldsEntry{
			{Manager: "coalmine", Operation: metav1.ManagedFieldsOperationUpdate, Time: at("2026-12-03T07:10:00Z"), FieldsV1: record},
			{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate, Time: at("2026-12-03T07:11:00Z"), FieldsV1: created},
			{Manager: "argocd-controller", Operation: metav1.ManagedFieldsOperationApply, Time: at("2026-12-03T07:12:03Z"), FieldsV1: replicas},
		}, "spec.replicas of Deployment my-app-v2 last written by argocd-controller (Apply) at 2026-12-03T07:12:03Z"},
		// The API server records no time on the HPA controller's writes of the scale.
		{"a scale write with no time", []metav1.ManagedFieldsEntry{
			{Manager: "kubectl-create", Operation: metav1.ManagedFieldsOperationUpdate, Time: at("2026-12-03T07:00:00Z"), FieldsV1: created},
			{Manager: "coalmine", Operation: metav1.ManagedFieldsOperationUpdate, Time: at("2026-12-03T07:10:00Z"), FieldsV1: record},
			{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "scale", FieldsV1: replicas},
		}, "spec.replicas of Deployment my-app-v2 last written by kube-controller-manager (Update of scale)"},
		{"status writes own no spec", []metav1.ManagedFieldsEntry{
			{Manager: "coalmine", Operation: metav1.ManagedFieldsOperationUpdate, Time: at("2026-12-03T07:10:00Z"), FieldsV1: record},
			{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "status", Time: at("2026-12-03T07:11:00Z"),
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{"f:replicas":{}}}`)}},
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			canary := deployment("my-app-v2", "v2.0.0", 1, 1)
			canary.ManagedFields = tt.entries
			c := fake.NewClientset()
			if err := c.Tracker().Add(canary); err != nil {
				t.Fatal(err)
			}
			if err := c.Tracker().Add(deployment("my-app-v1", "v1.0.0", 10, 10)); err != nil {
				t.Fatal(err)
			}
			r, err := NewRelease(c, loadPolicy(t, "my-app.yaml"), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.ChangedBy(context.Background())
			if err != nil || got != tt.want {
				t.Errorf("ChangedBy: %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
