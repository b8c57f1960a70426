package deploy_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/coalmine/coalmine/policies"
	"github.com/coalmine/coalmine/sandbox"
)

// podCIDR is this package's range of kwok pod IPs, distinct from other packages' clusters.
const podCIDR = "127.0.3.0/24"

// TestBaseOnCluster applies the base to a real API server, as an admin would, and checks what
// coalmine's ServiceAccount may then do.
func TestBaseOnCluster(t *testing.T) {
	begin := time.Now()
	c := sandbox.StartClusterT(t, sandbox.ClusterOptions{PodCIDR: podCIDR})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cacheDir := t.TempDir()
	kubectl := func(args ...string) (stdout, stderr string, err error) {
		args = append([]string{"--kubeconfig=" + c.Kubeconfig(), "--cache-dir=" + cacheDir}, args...)
		cmd := exec.CommandContext(ctx, c.Kubectl(), args...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		return o.String(), e.String(), err
	}
	admin := c.Client()

	ok := t.Run("server dry run", func(t *testing.T) {
		// A dry-run Namespace is not created, and the API server refuses objects in a namespace
		// that does not exist, so the dry run needs the Namespace to exist, as it does whenever
		// the base is applied again. `kubectl apply -k` alone creates it first.
		if out, errOut, err := kubectl("apply", "-f", "namespace.yaml"); err != nil {
			t.Fatalf("apply namespace.yaml: %v\n%s%s", err, out, errOut)
		}
		out, errOut, err := kubectl("apply", "--dry-run=server", "-k", ".")
		if err != nil {
			t.Fatalf("kubectl apply --dry-run=server -k deploy/: %v\n%s%s", err, out, errOut)
		}
		if strings.Contains(errOut, "Warning") {
			t.Errorf("the API server warned:\n%s", errOut)
		}
		for _, obj := range []string{"customresourcedefinition.apiextensions.k8s.io/canarypolicies.coalmine.dev", "clusterrole.rbac.authorization.k8s.io/coalmine", "deployment.apps/coalmine"} {
			if !strings.Contains(out, obj+" created (server dry run)") {
				t.Errorf("dry run output lacks %q:\n%s", obj+" created (server dry run)", out)
			}
		}
		_, err = admin.RbacV1().ClusterRoles().Get(ctx, "coalmine", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("after a dry run, get ClusterRole coalmine: got %v, want NotFound", err)
		}
	})
	if !ok {
		return
	}

	ok = t.Run("apply", func(t *testing.T) {
		out, errOut, err := kubectl("apply", "-k", ".")
		if err != nil {
			t.Fatalf("kubectl apply -k deploy/: %v\n%s%s", err, out, errOut)
		}
		// The namespace enforces the restricted Pod Security Standard; the API server warns
		// on a Deployment whose pods it would refuse.
		if strings.Contains(errOut, "Warning") {
			t.Errorf("the API server warned:\n%s", errOut)
		}
		// Nothing changes on a second look: the manifests say what the cluster holds.
		out, errOut, err = kubectl("diff", "-k", ".")
		if err != nil {
			t.Errorf("kubectl diff -k deploy/ after apply: %v\n%s%s", err, out, errOut)
		}
	})
	if !ok {
		return
	}

	t.Run("policies as objects", func(t *testing.T) {
		out, errOut, err := kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/canarypolicies.coalmine.dev")
		if err != nil {
			t.Fatalf("CanaryPolicy CRD not established: %v\n%s%s", err, out, errOut)
		}
		// Every policy file that validates is accepted by the API server as it is.
		good, _ := filepath.Glob("../policies/examples/*.yaml")
		more, _ := filepath.Glob("../policies/testdata/*.good.yaml")
		for _, f := range append(good, more...) {
			if _, err := policies.LoadFile(f); err != nil {
				t.Fatalf("%s does not validate: %v", f, err)
			}
			out, errOut, err := kubectl("apply", "--dry-run=server", "-n", "default", "-f", f)
			if err != nil || !strings.Contains(out, "(server dry run)") || strings.Contains(errOut, "Warning") {
				t.Errorf("kubectl apply --dry-run=server -f %s: %v\n%s%s", f, err, out, errOut)
			}
		}
		// What the schema says the loader also refuses, the API server refuses too.
		for _, tc := range []struct{ file, want string }{
			{"../policies/testdata/unknown-field.bad.yaml", "unknown field"},
			{"../policies/testdata/wrong-type.bad.yaml", "Invalid value"},
			{"../policies/testdata/negative-interval.bad.yaml", "spec.analysis.interval"},
			{"../policies/testdata/bad-kind.bad.yaml", "spec.metrics[0].kind: Unsupported value"},
		} {
			out, errOut, err := kubectl("apply", "--dry-run=server", "-n", "default", "-f", tc.file)
			if err == nil || !strings.Contains(errOut, tc.want) {
				t.Errorf("kubectl apply %s: want refused with %q, got %v\n%s%s", tc.file, tc.want, err, out, errOut)
			}
		}
		out, errOut, err = kubectl("get", "canarypolicies", "-A")
		if err != nil || !strings.Contains(out, "No resources found") && !strings.Contains(errOut, "No resources found") {
			t.Errorf("kubectl get canarypolicies -A after dry runs only: %v\n%s%s", err, out, errOut)
		}
	})

	t.Run("pods admitted and available", func(t *testing.T) {
		ticker := time.NewTicker(100 * time.Millisecond)
		defer ticker.Stop()
		for {
			d, err := admin.AppsV1().Deployments("coalmine").Get(ctx, "coalmine", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == 2 {
				checkDeployment(t, d)
				return
			}
			select {
			case <-ctx.Done():
				ev, _ := admin.CoreV1().Events("coalmine").List(context.Background(), metav1.ListOptions{})
				var msgs []string
				for _, e := range ev.Items {
					msgs = append(msgs, e.InvolvedObject.Name+": "+e.Reason+": "+e.Message)
				}
				t.Fatalf("deployment coalmine: %d of 2 replicas available (%v); events:\n%s",
					d.Status.AvailableReplicas, ctx.Err(), strings.Join(msgs, "\n"))
			case <-ticker.C:
			}
		}
	})

	t.Run("service account permissions", func(t *testing.T) {
		token, err := c.TokenFor(ctx, "coalmine", "coalmine")
		if err != nil {
			t.Fatal(err)
		}
		path, err := c.KubeconfigFor(token)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatal(err)
		}
		// Many reviews in a row: client-go's default 5 requests/s would make this the slowest step.
		cfg.QPS, cfg.Burst = 100, 100
		sa, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkAccess(ctx, t, sa)
	})
	t.Logf("whole test %s", time.Since(begin).Round(time.Millisecond))
}

// checkAccess asks the API server, as the ServiceAccount, about every call coalmine makes and a
// range of calls it must not be able to make.
func checkAccess(ctx context.Context, t *testing.T, client kubernetes.Interface) {
	type access struct {
		verb, group, resource, subresource, namespace, name string
	}
	tests := []struct {
		name  string
		a     access
		allow bool
	}{
		// What coalmine run does, in the releases' namespaces (any) and cluster-wide for the
		// informers.
		{"get deployments", access{verb: "get", group: "apps", resource: "deployments", namespace: "default"}, true},
		{"list deployments everywhere", access{verb: "list", group: "apps", resource: "deployments"}, true},
		{"watch deployments everywhere", access{verb: "watch", group: "apps", resource: "deployments"}, true},
		// Every write is a patch of the fields coalmine owns (the record, replicas, a rollout's
		// pause and strategy): never an update of a whole Deployment.
		{"patch deployments", access{verb: "patch", group: "apps", resource: "deployments", namespace: "default"}, true},
		{"patch deployments in another namespace", access{verb: "patch", group: "apps", resource: "deployments", namespace: "staging"}, true},
		{"delete deployments", access{verb: "delete", group: "apps", resource: "deployments", namespace: "default"}, true},
		{"get replicasets", access{verb: "get", group: "apps", resource: "replicasets", namespace: "default"}, true},
		{"list replicasets", access{verb: "list", group: "apps", resource: "replicasets", namespace: "default"}, true},
		{"watch replicasets", access{verb: "watch", group: "apps", resource: "replicasets", namespace: "default"}, true},
		{"get pods", access{verb: "get", resource: "pods", namespace: "default"}, true},
		{"list pods", access{verb: "list", resource: "pods", namespace: "default"}, true},
		{"watch pods", access{verb: "watch", resource: "pods", namespace: "default"}, true},
		{"get services", access{verb: "get", resource: "services", namespace: "default"}, true},
		{"list services", access{verb: "list", resource: "services", namespace: "default"}, true},
		{"watch services", access{verb: "watch", resource: "services", namespace: "default"}, true},
		{"patch services", access{verb: "patch", resource: "services", namespace: "default"}, true},
		// Autoscalers pinned to a canary's step and restored.
		{"list horizontalpodautoscalers", access{verb: "list", group: "autoscaling", resource: "horizontalpodautoscalers", namespace: "default"}, true},
		{"get horizontalpodautoscalers", access{verb: "get", group: "autoscaling", resource: "horizontalpodautoscalers", namespace: "default"}, true},
		{"patch horizontalpodautoscalers", access{verb: "patch", group: "autoscaling", resource: "horizontalpodautoscalers", namespace: "staging"}, true},
		{"create events", access{verb: "create", resource: "events", namespace: "default"}, true},
		{"get its lease", access{verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: "coalmine", name: "coalmine"}, true},
		{"update its lease", access{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: "coalmine", name: "coalmine"}, true},
		{"create leases in its namespace", access{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: "coalmine"}, true},
		{"get canarypolicies", access{verb: "get", group: "coalmine.dev", resource: "canarypolicies", namespace: "default"}, true},
		{"list canarypolicies everywhere", access{verb: "list", group: "coalmine.dev", resource: "canarypolicies"}, true},
		{"watch canarypolicies everywhere", access{verb: "watch", group: "coalmine.dev", resource: "canarypolicies"}, true},
		{"update canarypolicies/status", access{verb: "update", group: "coalmine.dev", resource: "canarypolicies", subresource: "status", namespace: "default"}, true},

		// Everything else.
		{"get secrets", access{verb: "get", resource: "secrets", namespace: "default"}, false},
		{"list secrets", access{verb: "list", resource: "secrets", namespace: "default"}, false},
		{"list secrets everywhere", access{verb: "list", resource: "secrets"}, false},
		{"get secrets in its namespace", access{verb: "get", resource: "secrets", namespace: "coalmine"}, false},
		{"create deployments", access{verb: "create", group: "apps", resource: "deployments", namespace: "default"}, false},
		{"update deployments", access{verb: "update", group: "apps", resource: "deployments", namespace: "default"}, false},
		{"update services", access{verb: "update", resource: "services", namespace: "default"}, false},
		{"update deployments/scale", access{verb: "update", group: "apps", resource: "deployments", subresource: "scale", namespace: "default"}, false},
		{"update deployments/status", access{verb: "update", group: "apps", resource: "deployments", subresource: "status", namespace: "default"}, false},
		{"update replicasets", access{verb: "update", group: "apps", resource: "replicasets", namespace: "default"}, false},
		{"delete replicasets", access{verb: "delete", group: "apps", resource: "replicasets", namespace: "default"}, false},
		{"update statefulsets", access{verb: "update", group: "apps", resource: "statefulsets", namespace: "default"}, false},
		{"delete pods", access{verb: "delete", resource: "pods", namespace: "default"}, false},
		{"create pods", access{verb: "create", resource: "pods", namespace: "default"}, false},
		{"exec into pods", access{verb: "create", resource: "pods", subresource: "exec", namespace: "default"}, false},
		{"read pod logs", access{verb: "get", resource: "pods", subresource: "log", namespace: "default"}, false},
		{"create services", access{verb: "create", resource: "services", namespace: "default"}, false},
		{"delete horizontalpodautoscalers", access{verb: "delete", group: "autoscaling", resource: "horizontalpodautoscalers", namespace: "default"}, false},
		{"watch horizontalpodautoscalers", access{verb: "watch", group: "autoscaling", resource: "horizontalpodautoscalers", namespace: "default"}, false},
		{"delete services", access{verb: "delete", resource: "services", namespace: "default"}, false},
		{"patch events", access{verb: "patch", resource: "events", namespace: "default"}, false},
		{"update events", access{verb: "update", resource: "events", namespace: "default"}, false},
		{"create events.k8s.io events", access{verb: "create", group: "events.k8s.io", resource: "events", namespace: "default"}, false},
		{"create leases in default", access{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: "default"}, false},
		{"get a lease in default", access{verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: "default", name: "coalmine"}, false},
		{"update another lease", access{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: "coalmine", name: "kube-scheduler"}, false},
		{"list leases", access{verb: "list", group: "coordination.k8s.io", resource: "leases", namespace: "coalmine"}, false},
		{"delete its lease", access{verb: "delete", group: "coordination.k8s.io", resource: "leases", namespace: "coalmine", name: "coalmine"}, false},
		{"list configmaps", access{verb: "list", resource: "configmaps", namespace: "default"}, false},
		{"get configmaps in its namespace", access{verb: "get", resource: "configmaps", namespace: "coalmine"}, false},
		// A policy's spec is its authors': coalmine writes only the status.
		{"update canarypolicies", access{verb: "update", group: "coalmine.dev", resource: "canarypolicies", namespace: "default"}, false},
		{"patch canarypolicies", access{verb: "patch", group: "coalmine.dev", resource: "canarypolicies", namespace: "default"}, false},
		{"create canarypolicies", access{verb: "create", group: "coalmine.dev", resource: "canarypolicies", namespace: "default"}, false},
		{"delete canarypolicies", access{verb: "delete", group: "coalmine.dev", resource: "canarypolicies", namespace: "default"}, false},
		{"list namespaces", access{verb: "list", resource: "namespaces"}, false},
		{"list nodes", access{verb: "list", resource: "nodes"}, false},
		{"create serviceaccount tokens", access{verb: "create", resource: "serviceaccounts", subresource: "token", namespace: "coalmine", name: "coalmine"}, false},
		{"bind clusterroles", access{verb: "bind", group: "rbac.authorization.k8s.io", resource: "clusterroles", name: "cluster-admin"}, false},
		{"escalate roles", access{verb: "escalate", group: "rbac.authorization.k8s.io", resource: "roles", namespace: "coalmine"}, false},
		{"impersonate users", access{verb: "impersonate", resource: "users", name: "admin"}, false},
		{"anything anywhere", access{verb: "*", group: "*", resource: "*"}, false},
		{"anything in default", access{verb: "*", group: "*", resource: "*", namespace: "default"}, false},
		{"anything on deployments", access{verb: "*", group: "apps", resource: "deployments", namespace: "default"}, false},
		{"get everything", access{verb: "get", group: "*", resource: "*", namespace: "default"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: tt.a.verb, Group: tt.a.group, Resource: tt.a.resource, Subresource: tt.a.subresource,
					Namespace: tt.a.namespace, Name: tt.a.name,
				},
			}}
			got, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.EvaluationError != "" {
				t.Errorf("evaluation error: %s", got.Status.EvaluationError)
			}
			if got.Status.Allowed != tt.allow {
				t.Errorf("%+v: allowed %v, want %v (%s)", tt.a, got.Status.Allowed, tt.allow, got.Status.Reason)
			}
		})
	}
	// The ServiceAccount really is who the reviews were about.
	ssr, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u := ssr.Status.UserInfo.Username; u != "system:serviceaccount:coalmine:coalmine" {
		t.Errorf("reviews were made as %q, want system:serviceaccount:coalmine:coalmine", u)
	}
}
