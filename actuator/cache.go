package actuator

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// Cache is what the strategies read: Deployments, their ReplicaSets and pods, Services. The
// objects returned may be shared with an informer's cache: never modify them (DeepCopy first).
type Cache interface {
	Deployment(ctx context.Context, ns, name string) (*appsv1.Deployment, error)
	ReplicaSets(ctx context.Context, ns string, sel labels.Selector) ([]*appsv1.ReplicaSet, error)
	Pods(ctx context.Context, ns string, sel labels.Selector) ([]*corev1.Pod, error)
	Service(ctx context.Context, ns, name string) (*corev1.Service, error)
}

// live reads from the API server.
type live struct{ client kubernetes.Interface }

func (l live) Deployment(ctx context.Context, ns, name string) (*appsv1.Deployment, error) {
	return l.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
}

func (l live) ReplicaSets(ctx context.Context, ns string, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	list, err := l.client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	out := make([]*appsv1.ReplicaSet, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

func (l live) Pods(ctx context.Context, ns string, sel labels.Selector) ([]*corev1.Pod, error) {
	list, err := l.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	out := make([]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

func (l live) Service(ctx context.Context, ns, name string) (*corev1.Service, error) {
	return l.client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
}

// Listers reads from informers' caches: the daemon's, shared by every canary it drives.
type Listers struct {
	DeploymentLister appslisters.DeploymentLister
	ReplicaSetLister appslisters.ReplicaSetLister
	PodLister        corelisters.PodLister
	ServiceLister    corelisters.ServiceLister
}

// Deployment implements Cache.
func (l Listers) Deployment(_ context.Context, ns, name string) (*appsv1.Deployment, error) {
	return l.DeploymentLister.Deployments(ns).Get(name)
}

// ReplicaSets implements Cache.
func (l Listers) ReplicaSets(_ context.Context, ns string, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	return l.ReplicaSetLister.ReplicaSets(ns).List(sel)
}

// Pods implements Cache.
func (l Listers) Pods(_ context.Context, ns string, sel labels.Selector) ([]*corev1.Pod, error) {
	return l.PodLister.Pods(ns).List(sel)
}

// Service implements Cache.
func (l Listers) Service(_ context.Context, ns, name string) (*corev1.Service, error) {
	return l.ServiceLister.Services(ns).Get(name)
}
