package actuator

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

// readyPod is a Ready pod of one version, selected by deployment()'s selector.
func readyPod(name, version string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "my-app", "version": version}},
		Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

// reads returns the get and list requests among actions: what a cache is there to save.
func reads(actions []k8stesting.Action) []k8stesting.Action {
	var out []k8stesting.Action
	for _, a := range actions {
		if v := a.GetVerb(); v == "get" || v == "list" {
			out = append(out, a)
		}
	}
	return out
}

// TestReadsThroughCache drives a Release over informers on the fake clientset: a tick's reads
// (health, fingerprint) make no request to the API server, and a fresh fingerprint does, and
// sees what the cache has not.
func TestReadsThroughCache(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		objs   []runtime.Object
		// wantFP is the fingerprint of objs; change makes a change the cache does not see.
		wantFP string
		change func(t *testing.T, c *fake.Clientset)
	}{
		{
			name:   "scale",
			policy: "my-app.yaml",
			objs:   []runtime.Object{deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 1, 1), readyPod("my-app-v2-a", "v2.0.0")},
			wantFP: "my-app-v1=10 my-app-v2=1",
			change: func(t *testing.T, c *fake.Clientset) { scaleTo(t, c, "my-app-v2", 3) },
		},
		{
			name:   "bluegreen",
			policy: "my-app-bluegreen.yaml",
			objs: []runtime.Object{
				deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 1, 1), readyPod("my-app-v2-a", "v2.0.0"),
				&corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: "my-app", Namespace: ns},
					Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "my-app", "version": "v1.0.0"}},
				},
			},
			wantFP: "service my-app version=v1.0.0",
			change: func(t *testing.T, c *fake.Clientset) {
				s, err := c.CoreV1().Services(ns).Get(context.Background(), "my-app", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				s.Spec.Selector["version"] = "v2.0.0"
				if _, err := c.CoreV1().Services(ns).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:   "rollout",
			policy: "my-app-rollout.yaml",
			objs:   append(heldAtStep(rolloutAtRevision3()), readyPod("my-app-c", "v2.0.0"), readyPod("my-app-b", "v1.0.0")),
			change: func(t *testing.T, c *fake.Clientset) { scaleTo(t, c, "my-app", 3) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			stop := make(chan struct{})
			c := fake.NewClientset(tt.objs...)
			f := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(ns))
			deps, rss, pods, svcs := f.Apps().V1().Deployments(), f.Apps().V1().ReplicaSets(), f.Core().V1().Pods(), f.Core().V1().Services()
			l := Listers{DeploymentLister: deps.Lister(), ReplicaSetLister: rss.Lister(), PodLister: pods.Lister(), ServiceLister: svcs.Lister()}
			f.Start(stop)
			defer func() {
				if stop != nil {
					close(stop)
				}
				f.Shutdown()
			}()
			if !cache.WaitForCacheSync(stop, deps.Informer().HasSynced, rss.Informer().HasSynced, pods.Informer().HasSynced, svcs.Informer().HasSynced) {
				t.Fatal("caches never synced")
			}
			r, err := NewRelease(c, loadPolicy(t, tt.policy), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			r.WithCache(l)
			state := prepare(t, r)

			before := len(c.Actions())
			ready, problem, err := r.Health(ctx, 0, state)
			if err != nil {
				t.Fatal(err)
			}
			if !ready || problem != "" {
				t.Errorf("health from the cache: ready=%t problem=%q, want Ready (the canary's pod is)", ready, problem)
			}
			cached, err := r.Fingerprint(ctx, false)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantFP != "" && cached != tt.wantFP {
				t.Errorf("cached fingerprint %q, want %q", cached, tt.wantFP)
			}
			if got := reads(c.Actions()[before:]); len(got) != 0 {
				t.Errorf("health and a cached fingerprint went to the API server: %v", got)
			}

			// Freeze the cache, then change the release behind it: only a fresh read sees it.
			close(stop)
			stop = nil
			f.Shutdown()
			tt.change(t, c)
			if fp, err := r.Fingerprint(ctx, false); err != nil || fp != cached {
				t.Errorf("cached fingerprint after the cache stopped: %q, %v; want %q", fp, err, cached)
			}
			before = len(c.Actions())
			fresh, err := r.Fingerprint(ctx, true)
			if err != nil {
				t.Fatal(err)
			}
			if fresh == cached {
				t.Errorf("fresh fingerprint %q is the cached one: it did not read the API server", fresh)
			}
			if got := reads(c.Actions()[before:]); len(got) == 0 {
				t.Error("a fresh fingerprint made no request to the API server")
			}
		})
	}
}
