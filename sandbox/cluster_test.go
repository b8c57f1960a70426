package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// clusterWait bounds each wait on the cluster; kwok acts within a second.
const clusterWait = 30 * time.Second

// TestCluster runs one real cluster, with Prometheus, for all its subtests:
// starting one takes a few seconds, and each subtest works in its own
// namespace.
func TestCluster(t *testing.T) {
	c := StartClusterT(t, ClusterOptions{WithPrometheus: true})
	if c.StartupTime() > 30*time.Second {
		t.Errorf("cluster took %s to start, want seconds", c.StartupTime())
	}

	t.Run("kubeconfig", func(t *testing.T) {
		t.Parallel()
		cfg, err := clientcmd.LoadFromFile(c.Kubeconfig())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.CurrentContext != ContextName {
			t.Errorf("current context %q, want %q", cfg.CurrentContext, ContextName)
		}
		rc, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
		if err != nil {
			t.Fatal(err)
		}
		client := kubernetes.NewForConfigOrDie(rc)
		node, err := client.CoreV1().Nodes().Get(t.Context(), NodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get node through the kubeconfig: %v", err)
		}
		if len(node.Spec.Taints) != 0 || node.Labels["type"] != "kwok" {
			t.Errorf("node taints %v, labels %v; want no taint and type=kwok", node.Spec.Taints, node.Labels)
		}
	})

	t.Run("deployment becomes ready and scales", func(t *testing.T) {
		t.Parallel()
		ctx, client, ns := t.Context(), c.Client(), createNamespace(t, c, "scale")
		d := deployment("web", 3, map[string]string{"version": "v1"}, map[string]string{"example.com/note": "x"})
		if _, err := client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitReadyReplicas(t, client, ns, "web", 3, 3)
		pods := listPods(t, client, ns, "app=web")
		for _, p := range pods {
			if ip := net.ParseIP(p.Status.PodIP); ip == nil || !ip.IsLoopback() || p.Spec.NodeName != NodeName {
				t.Errorf("pod %s has IP %q on node %q, want a 127.0.1.x IP on %s", p.Name, p.Status.PodIP, p.Spec.NodeName, NodeName)
			}
			if p.Annotations["example.com/note"] != "x" || p.Labels["version"] != "v1" {
				t.Errorf("pod %s lost the template's labels or annotations: %v %v", p.Name, p.Labels, p.Annotations)
			}
		}
		scale := []byte(`{"spec":{"replicas":5}}`)
		if _, err := client.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, scale, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		waitReadyReplicas(t, client, ns, "web", 5, 5)
	})

	t.Run("unready label keeps pods unready", func(t *testing.T) {
		t.Parallel()
		ctx, client, ns := t.Context(), c.Client(), createNamespace(t, c, "unready")
		d := deployment("stuck", 2, map[string]string{"version": "v2", UnreadyLabel: "true"}, nil)
		if _, err := client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Running with an IP is what kwok does for them; wait for that, then
		// give pod-ready time to (wrongly) act.
		var pods []corev1.Pod
		waitFor(t, "2 running pods of stuck", func() (bool, string) {
			pods = listPods(t, client, ns, "app=stuck")
			running := 0
			for _, p := range pods {
				if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
					running++
				}
			}
			return running == 2, fmt.Sprintf("%d of %d pods running", running, len(pods))
		})
		time.Sleep(2 * time.Second)
		pods = listPods(t, client, ns, "app=stuck")
		for _, p := range pods {
			if podReady(p) {
				t.Errorf("pod %s with %s=true is Ready", p.Name, UnreadyLabel)
			}
		}
		got, err := client.AppsV1().Deployments(ns).Get(ctx, "stuck", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.ReadyReplicas != 0 || got.Status.Replicas != 2 {
			t.Errorf("deployment stuck has %d/%d ready, want 0/2", got.Status.ReadyReplicas, got.Status.Replicas)
		}
		// Removing the label is how a test lets one pod pass its probe.
		unlabel := []byte(`{"metadata":{"labels":{"` + UnreadyLabel + `":null}}}`)
		if _, err := client.CoreV1().Pods(ns).Patch(ctx, pods[0].Name, types.MergePatchType, unlabel, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		waitReadyReplicas(t, client, ns, "stuck", 1, 2)
	})

	t.Run("service account token has only its RBAC", func(t *testing.T) {
		t.Parallel()
		ctx, client, ns := t.Context(), c.Client(), createNamespace(t, c, "rbac")
		token, err := c.TokenFor(ctx, ns, "coalmine")
		if err != nil {
			t.Fatal(err)
		}
		path, err := c.KubeconfigFor(token)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatal(err)
		}
		sa := kubernetes.NewForConfigOrDie(rc)
		if _, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("list secrets without a RoleBinding: got %v, want Forbidden", err)
		}
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "read-secrets"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"list"}}},
		}
		if _, err := client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "coalmine-read-secrets"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-secrets"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "coalmine", Namespace: ns}},
		}
		if _, err := client.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the RoleBinding to take effect", func() (bool, string) {
			_, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			return err == nil, fmt.Sprint(err)
		})
		if _, err := sa.CoreV1().Secrets(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("list secrets in another namespace: got %v, want Forbidden", err)
		}
	})

	t.Run("prometheus discovers and scrapes pods", func(t *testing.T) {
		t.Parallel()
		ctx, client, ns := t.Context(), c.Client(), createNamespace(t, c, "metrics")
		port := freePort(t)
		d := deployment("checkout", 2, map[string]string{"version": "v7"}, map[string]string{
			"prometheus.io/scrape": "true",
			"prometheus.io/port":   strconv.Itoa(port),
			"prometheus.io/path":   "/custom-metrics",
		})
		if _, err := client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitReadyReplicas(t, client, ns, "checkout", 2, 2)
		pods := listPods(t, client, ns, "app=checkout")
		var names []string
		for _, p := range pods {
			// Linux routes all of 127/8 to lo, so the pod's IP can be bound.
			serveMetrics(t, net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)), p.Name)
			names = append(names, p.Name)
		}
		query := fmt.Sprintf(`sandbox_test_requests_total{job=%q, namespace=%q, app="checkout", version="v7"}`, KubernetesJobName, ns)
		qctx, cancel := context.WithTimeout(ctx, clusterWait)
		defer cancel()
		vec, err := c.Prometheus().WaitForSamples(qctx, query, 2)
		if err != nil {
			t.Fatal(err)
		}
		var scraped []string
		for _, s := range vec {
			pod := string(s.Metric["pod"])
			scraped = append(scraped, pod)
			if string(s.Metric["served_by"]) != pod {
				t.Errorf("series %s: pod label is not the pod that served it", s.Metric)
			}
			if s.Metric[model.LabelName("pod_template_hash")] == "" {
				t.Errorf("series %s lacks the pod_template_hash pod label", s.Metric)
			}
		}
		slices.Sort(names)
		slices.Sort(scraped)
		if !slices.Equal(names, scraped) {
			t.Errorf("scraped pods %v, want %v", scraped, names)
		}
	})
}

func TestClusterStopIsIdempotent(t *testing.T) {
	c, err := StartCluster(t.Context(), ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := c.Dir()
	for i := range 2 {
		if err := c.Stop(); err != nil {
			t.Errorf("stop #%d: %v", i+1, err)
		}
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(c.RESTConfig().Host, "https://")); err == nil {
		t.Errorf("kube-apiserver still answers after Stop")
	}
	if _, err := clientcmd.LoadFromFile(dir + "/" + adminKubeconfigFile); err == nil {
		t.Errorf("Stop left its temporary directory %s", dir)
	}
}

func TestStartClusterTFailsWithoutBinaries(t *testing.T) {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		StartClusterT(r, ClusterOptions{BinDir: t.TempDir()})
	}()
	<-done
	want := "kubernetes binaries not found; run scripts/install-kube.sh or make test"
	if !strings.HasPrefix(r.msg, want) {
		t.Fatalf("fatal message %q, want it to start with %q", r.msg, want)
	}
}

// deployment returns a Deployment of image "fake" whose pods are labelled
// app=name plus labels and annotated with annotations.
func deployment(name string, replicas int32, labels, annotations map[string]string) *appsv1.Deployment {
	podLabels := map[string]string{"app": name}
	for k, v := range labels {
		podLabels[k] = v
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: annotations},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: "fake"}}},
			},
		},
	}
}

// createNamespace creates a namespace named after prefix and returns its name.
func createNamespace(t *testing.T, c *Cluster, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	got, err := c.Client().CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got.Name
}

func listPods(t *testing.T, client kubernetes.Interface, ns, selector string) []corev1.Pod {
	t.Helper()
	pods, err := client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitReadyReplicas waits until the Deployment has exactly ready Ready
// replicas out of total.
func waitReadyReplicas(t *testing.T, client kubernetes.Interface, ns, name string, ready, total int32) {
	t.Helper()
	waitFor(t, fmt.Sprintf("deployment %s/%s %d/%d ready", ns, name, ready, total), func() (bool, string) {
		d, err := client.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		s := d.Status
		return s.ReadyReplicas == ready && s.Replicas == total, fmt.Sprintf("%d/%d ready", s.ReadyReplicas, s.Replicas)
	})
}

// waitFor polls check until it reports true or clusterWait passes.
func waitFor(t *testing.T, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		ok, status := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("wait for %s: still %s after %s", what, status, clusterWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	addr, err := freeAddr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return n
}

// serveMetrics serves sandbox_test_requests_total{served_by=pod} at
// /custom-metrics on addr until the test ends.
func serveMetrics(t *testing.T, addr, pod string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sandbox_test_requests_total", Help: "Test requests."}, []string{"served_by"})
	reg.MustRegister(requests)
	requests.WithLabelValues(pod).Add(3)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/custom-metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}
