package charts_test

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/coalmine/coalmine/sandbox"
)

// podCIDR is this package's range of kwok pod IPs, distinct from other packages' clusters.
const podCIDR = "127.0.4.0/24"

// TestChartOnCluster installs the chart on a real API server: the rendered manifests through a
// server-side dry run and a real apply, then `helm install` as a user would (cluster-wide, then
// confined to two namespaces), and asks the API server what the chart's ServiceAccount may do.
// The sandbox runs no containers: its kwok marks the pods Ready, which is as far as a pod gets.
func TestChartOnCluster(t *testing.T) {
	begin := time.Now()
	c := sandbox.StartClusterT(t, sandbox.ClusterOptions{PodCIDR: podCIDR})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	h := newHelm(t, c.Kubeconfig())
	admin := c.Client()
	cacheDir := t.TempDir()
	kubectl := func(stdin string, args ...string) (stdout, stderr string, err error) {
		args = append([]string{"--kubeconfig=" + c.Kubeconfig(), "--cache-dir=" + cacheDir}, args...)
		cmd := exec.CommandContext(ctx, c.Kubectl(), args...)
		cmd.Stdin = strings.NewReader(stdin)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		return o.String(), e.String(), err
	}
	// The namespaces: coalmine's own enforcing the restricted Pod Security Standard (the API
	// server refuses pods that break it, and warns on a Deployment whose pods it would refuse),
	// and the releases' namespaces for the confined install.
	for _, ns := range []string{"coalmine", "plain", "team-a", "team-b", "elsewhere"} {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if ns == "coalmine" || ns == "plain" {
			n.Labels = map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}
		}
		if _, err := admin.CoreV1().Namespaces().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The prometheus-operator's CRDs are not in the sandbox: minimal stand-ins (testdata), so the
	// ServiceMonitor and PrometheusRule are applied for real too.
	if out, errOut, err := kubectl("", "apply", "-f", "testdata/monitoring-crds.yaml"); err != nil {
		t.Fatalf("apply testdata/monitoring-crds.yaml: %v\n%s%s", err, out, errOut)
	}
	if out, errOut, err := kubectl("", "wait", "--for=condition=Established", "--timeout=60s",
		"crd/servicemonitors.monitoring.coreos.com", "crd/podmonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com"); err != nil {
		t.Fatalf("wait for the monitoring CRDs: %v\n%s%s", err, out, errOut)
	}

	// The rendered manifests, as `helm template | kubectl apply` would apply them, in the
	// namespace plain (release plain: objects plain-coalmine, apart from the helm release's).
	manifest := h.template(t, "plain", "--namespace", "plain", "-f", "testdata/monitoring.yaml")
	ok := t.Run("server dry run", func(t *testing.T) {
		out, errOut, err := kubectl(manifest, "apply", "--dry-run=server", "-f", "-")
		if err != nil {
			t.Fatalf("kubectl apply --dry-run=server: %v\n%s%s", err, out, errOut)
		}
		if strings.Contains(errOut, "Warning") {
			t.Errorf("the API server warned:\n%s", errOut)
		}
		for _, obj := range []string{"clusterrole.rbac.authorization.k8s.io/plain-coalmine", "deployment.apps/plain-coalmine",
			"servicemonitor.monitoring.coreos.com/plain-coalmine", "prometheusrule.monitoring.coreos.com/plain-coalmine",
			"configmap/plain-coalmine-dashboard"} {
			if !strings.Contains(out, obj+" created (server dry run)") {
				t.Errorf("dry run output lacks %q:\n%s", obj+" created (server dry run)", out)
			}
		}
		if _, err := admin.RbacV1().ClusterRoles().Get(ctx, "plain-coalmine", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("after a dry run, get ClusterRole plain-coalmine: got %v, want NotFound", err)
		}
	})
	if !ok {
		return
	}
	ok = t.Run("apply", func(t *testing.T) {
		out, errOut, err := kubectl(manifest, "apply", "-f", "-")
		if err != nil {
			t.Fatalf("kubectl apply: %v\n%s%s", err, out, errOut)
		}
		if strings.Contains(errOut, "Warning") {
			t.Errorf("the API server warned:\n%s", errOut)
		}
		// Nothing changes on a second look: the manifests say what the cluster holds.
		if out, errOut, err := kubectl(manifest, "diff", "-f", "-"); err != nil {
			t.Errorf("kubectl diff after apply: %v\n%s%s", err, out, errOut)
		}
		if out, errOut, err := kubectl(manifest, "delete", "--wait=false", "-f", "-"); err != nil {
			t.Errorf("kubectl delete: %v\n%s%s", err, out, errOut)
		}
	})
	if !ok {
		return
	}

	ok = t.Run("helm install", func(t *testing.T) {
		out, errOut, err := h.run(ctx, nil, "install", "coalmine", chart, "--namespace", "coalmine", "-f", "testdata/monitoring.yaml",
			"--set", "policies.source=files", "--set-file", `policies.files.my-app\.yaml=../policies/examples/my-app.yaml`, "--wait", "--timeout", "2m")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if strings.Contains(errOut, "Warning") || strings.Contains(errOut, "WARNING") {
			t.Errorf("helm install warned:\n%s", errOut)
		}
		if !strings.Contains(out, "STATUS: deployed") || !strings.Contains(out, "coalmine v") {
			t.Errorf("helm install output lacks the status or the NOTES:\n%s", out)
		}
		d, err := admin.AppsV1().Deployments("coalmine").Get(ctx, "coalmine", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// --wait waited for this; kwok made the pods Ready.
		if d.Status.AvailableReplicas != 2 {
			t.Errorf("deployment coalmine: %d of 2 replicas available", d.Status.AvailableReplicas)
		}
		checkStoredDeployment(t, d, "")
		// What helm installed is what the chart renders.
		m, _, err := h.run(ctx, nil, "get", "manifest", "coalmine", "--namespace", "coalmine")
		if err != nil {
			t.Fatal(err)
		}
		if out, errOut, err := kubectl(m, "diff", "-f", "-"); err != nil {
			t.Errorf("kubectl diff of helm's manifest: %v\n%s%s", err, out, errOut)
		}
		// helm installed the chart's CRDs (crds/) first; the CanaryPolicy CRD takes the example.
		for name := range yamlFiles(t, chartCRDs) {
			out, errOut, err := kubectl("", "wait", "--for=condition=Established", "--timeout=30s", "-f", chartCRDs+"/"+name)
			if err != nil {
				t.Errorf("CRD of crds/%s after helm install: %v\n%s%s", name, err, out, errOut)
			}
		}
		if len(yamlFiles(t, chartCRDs)) > 0 {
			out, errOut, err := kubectl("", "apply", "--dry-run=server", "--namespace=default", "-f", "../policies/examples/my-app.yaml")
			if err != nil || !strings.Contains(out, "canarypolicy.coalmine.dev/my-app created (server dry run)") {
				t.Errorf("the example policy as a CanaryPolicy object: %v\n%s%s", err, out, errOut)
			}
		}
		// An upgrade with the same values changes nothing and succeeds.
		if out, _, err := h.run(ctx, nil, "upgrade", "coalmine", chart, "--namespace", "coalmine", "--reuse-values", "--wait", "--timeout", "2m"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	if !ok {
		return
	}
	t.Run("cluster-wide permissions", func(t *testing.T) {
		checkAccess(ctx, t, admin, "coalmine", "coalmine", []access{
			{"patch", "apps", "deployments", "", "default", "", true},
			{"patch", "apps", "deployments", "", "team-a", "", true},
			{"patch", "apps", "deployments", "", "elsewhere", "", true},
			{"update", "apps", "deployments", "", "elsewhere", "", false},
			{"list", "apps", "deployments", "", "", "", true},
			{"watch", "", "pods", "", "", "", true},
			{"patch", "", "services", "", "elsewhere", "", true},
			{"update", "", "services", "", "elsewhere", "", false},
			{"create", "", "events", "", "elsewhere", "", true},
			{"patch", "autoscaling", "horizontalpodautoscalers", "", "elsewhere", "", true},
			{"list", "coalmine.dev", "canarypolicies", "", "", "", true},
			{"watch", "coalmine.dev", "canarypolicies", "", "team-b", "", true},
			// The daemon writes status with an update of the subresource, never a patch.
			{"update", "coalmine.dev", "canarypolicies", "status", "team-b", "", true},
			{"patch", "coalmine.dev", "canarypolicies", "status", "team-b", "", false},
			{"update", "coalmine.dev", "canarypolicies", "", "team-b", "", false},
			{"delete", "coalmine.dev", "canarypolicies", "", "team-b", "", false},
			{"get", "coordination.k8s.io", "leases", "", "coalmine", "coalmine", true},
			{"update", "coordination.k8s.io", "leases", "", "coalmine", "coalmine", true},
			{"update", "coordination.k8s.io", "leases", "", "coalmine", "kube-scheduler", false},
			{"create", "apps", "deployments", "", "default", "", false},
			{"get", "", "secrets", "", "coalmine", "", false},
			{"list", "", "configmaps", "", "coalmine", "", false},
			{"*", "*", "*", "", "", "", false},
		})
	})

	ok = t.Run("helm install confined to namespaces", func(t *testing.T) {
		// Policies from CanaryPolicy objects, the CRD already there from the first install.
		out, _, err := h.run(ctx, nil, "install", "scoped", chart, "--namespace", "coalmine-scoped", "--create-namespace",
			"-f", "testdata/namespaced.yaml", "--set", "policies.source=crd", "--wait", "--timeout", "2m")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "the namespaces team-a,team-b only") {
			t.Errorf("NOTES do not say where coalmine acts:\n%s", out)
		}
		d, err := admin.AppsV1().Deployments("coalmine-scoped").Get(ctx, "scoped-coalmine", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkStoredDeployment(t, d, "--namespaces=team-a,team-b")
		if args := d.Spec.Template.Spec.Containers[0].Args; slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--policies") }) {
			t.Errorf("policies from CanaryPolicy objects, yet args %q", args)
		}
		if _, err := admin.RbacV1().ClusterRoles().Get(ctx, "scoped-coalmine", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("a confined install made ClusterRole scoped-coalmine: %v", err)
		}
	})
	if !ok {
		return
	}
	t.Run("confined permissions", func(t *testing.T) {
		checkAccess(ctx, t, admin, "coalmine-scoped", "scoped-coalmine", []access{
			{"patch", "apps", "deployments", "", "team-a", "", true},
			{"patch", "apps", "deployments", "", "team-b", "", true},
			{"list", "apps", "deployments", "", "team-a", "", true},
			{"watch", "", "pods", "", "team-b", "", true},
			{"create", "", "events", "", "team-a", "", true},
			{"list", "autoscaling", "horizontalpodautoscalers", "", "team-b", "", true},
			{"list", "coalmine.dev", "canarypolicies", "", "team-a", "", true},
			{"update", "coalmine.dev", "canarypolicies", "status", "team-b", "", true},
			{"get", "coordination.k8s.io", "leases", "", "coalmine-scoped", "scoped-coalmine", true},
			// Not in another namespace, nor cluster-wide.
			{"patch", "apps", "deployments", "", "elsewhere", "", false},
			{"patch", "apps", "deployments", "", "default", "", false},
			{"patch", "apps", "deployments", "", "coalmine-scoped", "", false},
			{"list", "apps", "deployments", "", "", "", false},
			{"patch", "", "services", "", "elsewhere", "", false},
			{"create", "", "events", "", "elsewhere", "", false},
			{"list", "coalmine.dev", "canarypolicies", "", "", "", false},
			{"get", "coordination.k8s.io", "leases", "", "team-a", "scoped-coalmine", false},
		})
	})

	t.Run("helm uninstall", func(t *testing.T) {
		if out, _, err := h.run(ctx, nil, "uninstall", "scoped", "--namespace", "coalmine-scoped", "--wait"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, ns := range []string{"team-a", "team-b"} {
			if _, err := admin.RbacV1().Roles(ns).Get(ctx, "scoped-coalmine", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("after helm uninstall, Role %s/scoped-coalmine: got %v, want NotFound", ns, err)
			}
		}
		if _, err := admin.AppsV1().Deployments("coalmine-scoped").Get(ctx, "scoped-coalmine", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("after helm uninstall, Deployment scoped-coalmine: got %v, want NotFound", err)
		}
	})
	t.Logf("whole test %s", time.Since(begin).Round(time.Millisecond))
}

// checkStoredDeployment checks the Deployment as the API server stored it: hardened, and
// confined by --namespaces when wantArg names it.
func checkStoredDeployment(t *testing.T, d *appsv1.Deployment, wantArg string) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container securityContext %+v: want a read-only root and no privilege escalation", sc)
	}
	if strings.HasSuffix(c.Image, ":latest") {
		t.Errorf("image %s", c.Image)
	}
	hasNamespaces := false
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--namespaces") {
			hasNamespaces = true
			if a != wantArg {
				t.Errorf("arg %s, want %s", a, wantArg)
			}
		}
	}
	if hasNamespaces != (wantArg != "") {
		t.Errorf("args %q, want --namespaces only when confined (%q)", c.Args, wantArg)
	}
}

// access is one API call: verb group resource/subresource in namespace (empty: cluster-wide or
// every namespace), on name (empty: any), and whether it must be allowed.
type access struct {
	verb, group, resource, subresource, namespace, name string
	allow                                               bool
}

// checkAccess asks the API server, through SubjectAccessReviews, what the ServiceAccount
// namespace/name may do, as its token would be authorized.
func checkAccess(ctx context.Context, t *testing.T, admin kubernetes.Interface, namespace, name string, tests []access) {
	t.Helper()
	user := "system:serviceaccount:" + namespace + ":" + name
	for _, a := range tests {
		where := cmpOr(a.namespace, "cluster")
		res := a.resource
		if a.subresource != "" {
			res += "/" + a.subresource
		}
		t.Run(a.verb+" "+res+" in "+where, func(t *testing.T) {
			review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   user,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource, Namespace: a.namespace, Name: a.name,
				},
			}}
			got, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.EvaluationError != "" {
				t.Errorf("evaluation error: %s", got.Status.EvaluationError)
			}
			if got.Status.Allowed != a.allow {
				t.Errorf("%s: %+v allowed %v, want %v (%s)", user, a, got.Status.Allowed, a.allow, got.Status.Reason)
			}
		})
	}
}
