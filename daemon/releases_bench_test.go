package daemon

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/coalmine/coalmine/actuator"
)

// waitSettled waits until the API server counts no write to the release's resources for 10 s
// (the controllers and kwok have caught up with the releases just created), and says how long
// that took, or that they had not settled after timeout.
func waitSettled(b *testing.B, client kubernetes.Interface, timeout time.Duration) string {
	start := time.Now()
	prev := scrapeAPIServer(b, client)
	for {
		time.Sleep(10 * time.Second)
		cur := scrapeAPIServer(b, client)
		if n := cur.minus(prev).sum(writeVerbs); n == 0 {
			return "after " + time.Since(start).Round(time.Second).String()
		} else if time.Since(start) > timeout {
			return fmt.Sprintf("NOT after %s (%.0f writes in the last 10 s)", timeout, n)
		}
		prev = cur
	}
}

// recordSize reports the size of the canaries' records and whether the deployment controller
// copied them onto the canary's ReplicaSet (it copies a Deployment's annotations to its newest
// ReplicaSet, so each record written costs a ReplicaSet update as well).
func recordSize(ctx context.Context, b *testing.B, rep *report, client kubernetes.Interface, n int) {
	d, err := client.AppsV1().Deployments("team-0").Get(ctx, "my-app-v2", metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	rss, err := client.AppsV1().ReplicaSets("team-0").List(ctx, metav1.ListOptions{LabelSelector: "app=my-app,version=v2.0.0"})
	if err != nil {
		b.Fatal(err)
	}
	copied := 0
	for _, rs := range rss.Items {
		if rs.Annotations[actuator.AnnotationProgress] != "" {
			copied++
		}
	}
	rep.logf("canaries=%d: team-0's record is %d bytes; %d of its %d canary ReplicaSets carry a copy", n, len(d.Annotations[actuator.AnnotationProgress]), copied, len(rss.Items))
}

// addKwokNodes adds kwok nodes beside the sandbox's own until there is room for pods.
func addKwokNodes(ctx context.Context, b *testing.B, client kubernetes.Interface, pods int) {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("1000"),
		corev1.ResourceMemory: resource.MustParse("1Ti"),
		corev1.ResourcePods:   resource.MustParse(strconv.Itoa(kwokNodePods)),
	}
	for i := 1; i*kwokNodePods < pods+pods/10; i++ {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
			},
			Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
		}
		if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			b.Fatalf("create node %s: %v", name, err)
		}
	}
}

// createReleases makes n namespaces team-0..team-(n-1), each with the seed's release: a headless
// Service my-app (no cluster IP: the sandbox's service range has 254) and Deployments my-app-v1
// (v1Replicas) and my-app-v2 (1).
func createReleases(ctx context.Context, b *testing.B, client kubernetes.Interface, n int, v1Replicas int32) {
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs = make(chan error, 16)
	)
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := createRelease(ctx, client, fmt.Sprintf("team-%d", i), v1Replicas); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func createRelease(ctx context.Context, client kubernetes.Interface, ns string, v1Replicas int32) error {
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "my-app", Labels: map[string]string{"app": "my-app"}},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "my-app"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("service %s/my-app: %w", ns, err)
	}
	for _, d := range []struct {
		name, version string
		replicas      int32
	}{{"my-app-v1", "v1.0.0", v1Replicas}, {"my-app-v2", "v2.0.0", 1}} {
		labels := map[string]string{"app": "my-app", "version": d.version}
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: d.name, Labels: map[string]string{"app": "my-app"}},
			Spec: appsv1.DeploymentSpec{
				Replicas: &d.replicas,
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{
						Name: "my-app", Image: "containersol/k8s-deployment-strategies",
						Env: []corev1.EnvVar{{Name: "VERSION", Value: d.version}},
					}}},
				},
			},
		}
		if _, err := client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("deployment %s/%s: %w", ns, d.name, err)
		}
	}
	return nil
}

// waitReleasesReady waits until every Deployment of the n releases has all its replicas Ready.
func waitReleasesReady(ctx context.Context, b *testing.B, client kubernetes.Interface, n int, v1Replicas int32, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	want := n * (int(v1Replicas) + 1)
	for {
		list, err := client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: "app=my-app"})
		if err != nil {
			b.Fatal(err)
		}
		ready, done := 0, 0
		for _, d := range list.Items {
			ready += int(d.Status.ReadyReplicas)
			if d.Spec.Replicas != nil && d.Status.ReadyReplicas == *d.Spec.Replicas && d.Status.UpdatedReplicas == *d.Spec.Replicas {
				done++
			}
		}
		if done == 2*n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("after %s, %d of %d pods Ready, %d of %d Deployments complete", timeout, ready, want, done, 2*n)
		}
		time.Sleep(3 * time.Second)
	}
}
