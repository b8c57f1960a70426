package charts_test

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The objects every release has, as "Kind namespace/name" for the release coalmine in coalmine.
var baseObjects = []string{
	"ConfigMap coalmine/coalmine-policies",
	"Deployment coalmine/coalmine",
	"PodDisruptionBudget coalmine/coalmine",
	"Role coalmine/coalmine-leader-election",
	"RoleBinding coalmine/coalmine-leader-election",
	"Service coalmine/coalmine-metrics",
	"ServiceAccount coalmine/coalmine",
}

func TestTemplate(t *testing.T) {
	h := newHelm(t, "")
	appVersion := readChart(t).AppVersion
	clusterWide := []string{"ClusterRole /coalmine", "ClusterRoleBinding /coalmine"}
	tests := []struct {
		name    string
		release string
		args    []string
		// objects, besides baseObjects (or instead of them when replace is set).
		objects []string
		replace bool
		image   string
		// The args `coalmine run` gets, besides run [--policies] --metrics-addr --leader-elect
		// --log-format.
		args2 []string
		// Policies from CanaryPolicy objects (no --policies), without leader election.
		crd, noLeaderElect bool
		// Whether the pods carry the prometheus.io annotations.
		scrapeAnnotations bool
	}{
		{
			name: "default values", release: "coalmine",
			objects: clusterWide, image: "ghcr.io/coalmine/coalmine:" + appVersion,
			args2:             []string{"--lease-name=coalmine", "--reload-interval=5s"},
			scrapeAnnotations: true,
		},
		{
			name: "namespaced rbac", release: "coalmine", args: []string{"-f", "testdata/namespaced.yaml"},
			objects: []string{"Role team-a/coalmine", "RoleBinding team-a/coalmine", "Role team-b/coalmine", "RoleBinding team-b/coalmine"},
			image:   "ghcr.io/coalmine/coalmine:" + appVersion,
			args2:   []string{"--lease-name=coalmine", "--reload-interval=5s", "--namespaces=team-a,team-b"},
			// Still scraped as by default.
			scrapeAnnotations: true,
		},
		{
			name: "monitoring", release: "coalmine", args: []string{"-f", "testdata/monitoring.yaml"},
			objects: append([]string{"ServiceMonitor coalmine/coalmine", "PrometheusRule coalmine/coalmine", "ConfigMap coalmine/coalmine-dashboard"}, clusterWide...),
			image:   "ghcr.io/coalmine/coalmine:" + appVersion,
			args2:   []string{"--lease-name=coalmine", "--reload-interval=5s"},
		},
		{
			name: "pod monitor", release: "coalmine", args: []string{"-f", "testdata/podmonitor.yaml"},
			objects: append([]string{"PodMonitor coalmine/coalmine", "PrometheusRule coalmine/coalmine"}, clusterWide...),
			image:   "ghcr.io/coalmine/coalmine:" + appVersion,
			args2:   []string{"--lease-name=coalmine", "--reload-interval=5s"},
		},
		{
			name: "another release name, pinned image, daemon settings", release: "canary",
			args: []string{"--set", "image.tag=v9.9.9,daemon.prometheusURL=http://prometheus.monitoring:9090,daemon.workers=8," +
				"daemon.credentialsDir=/etc/coalmine/credentials,daemon.extraArgs={--kube-api-qps=100},monitoring.grafanaDashboard.enabled=true," +
				"monitoring.grafanaDashboard.namespace=grafana,podDisruptionBudget.enabled=false,service.enabled=false"},
			replace: true,
			objects: []string{
				"ClusterRole /canary-coalmine", "ClusterRoleBinding /canary-coalmine",
				"ConfigMap coalmine/canary-coalmine-policies", "ConfigMap grafana/canary-coalmine-dashboard",
				"Deployment coalmine/canary-coalmine",
				"Role coalmine/canary-coalmine-leader-election", "RoleBinding coalmine/canary-coalmine-leader-election",
				"ServiceAccount coalmine/canary-coalmine",
			},
			image: "ghcr.io/coalmine/coalmine:v9.9.9",
			args2: []string{"--lease-name=canary-coalmine", "--reload-interval=5s", "--prometheus-url=http://prometheus.monitoring:9090",
				"--credentials-dir=/etc/coalmine/credentials", "--workers=8", "--kube-api-qps=100"},
			scrapeAnnotations: true,
		},
		{
			name: "digest, one replica without leader election, existing policies", release: "coalmine",
			args: []string{"--set", "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef," +
				"replicaCount=1,daemon.leaderElect=false,policies.existingConfigMap=team-policies,rbac.namespaces={default}"},
			replace: true,
			objects: []string{
				"Deployment coalmine/coalmine", "PodDisruptionBudget coalmine/coalmine", "Role default/coalmine",
				"RoleBinding default/coalmine", "Service coalmine/coalmine-metrics", "ServiceAccount coalmine/coalmine",
			},
			image:             "ghcr.io/coalmine/coalmine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			args2:             []string{"--reload-interval=5s", "--namespaces=default"},
			noLeaderElect:     true,
			scrapeAnnotations: true,
		},
		{
			name: "policies from CanaryPolicy objects", release: "coalmine",
			args:    []string{"--set", "policies.source=crd,policies.files.ignored\\.yaml=x", "-f", "testdata/namespaced.yaml"},
			replace: true,
			objects: []string{
				"Deployment coalmine/coalmine", "PodDisruptionBudget coalmine/coalmine",
				"Role coalmine/coalmine-leader-election", "RoleBinding coalmine/coalmine-leader-election",
				"Role team-a/coalmine", "RoleBinding team-a/coalmine", "Role team-b/coalmine", "RoleBinding team-b/coalmine",
				"Service coalmine/coalmine-metrics", "ServiceAccount coalmine/coalmine",
			},
			image:             "ghcr.io/coalmine/coalmine:" + appVersion,
			args2:             []string{"--lease-name=coalmine", "--namespaces=team-a,team-b"},
			crd:               true,
			scrapeAnnotations: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !tt.crd {
				// Policy files whatever the default.
				args = append([]string{"--set", "policies.source=files"}, args...)
			}
			objs := parseManifest(t, h.template(t, tt.release, args...))
			want := tt.objects
			if !tt.replace {
				want = append(slices.Clone(baseObjects), tt.objects...)
			}
			slices.Sort(want)
			if got := objs.ids(); !slices.Equal(got, want) {
				t.Errorf("objects:\n  got  %q\n  want %q", got, want)
			}
			fullname := tt.release
			if !strings.Contains(fullname, "coalmine") {
				fullname += "-coalmine"
			}
			var d appsv1.Deployment
			objs.decode(t, "Deployment", fullname, &d)
			c := d.Spec.Template.Spec.Containers[0]
			if c.Image != tt.image {
				t.Errorf("image %q, want %q", c.Image, tt.image)
			}
			if strings.HasSuffix(c.Image, ":latest") || !strings.ContainsAny(c.Image, ":@") {
				t.Errorf("image %q runs latest", c.Image)
			}
			wantArgs := []string{"run"}
			if !tt.crd {
				wantArgs = append(wantArgs, "--policies=/etc/coalmine/policies")
			}
			wantArgs = append(wantArgs, "--metrics-addr=:8080", "--leader-elect="+strconv.FormatBool(!tt.noLeaderElect), "--log-format=json")
			wantArgs = append(wantArgs, tt.args2...)
			if !slices.Equal(c.Args, wantArgs) {
				t.Errorf("args:\n  got  %q\n  want %q", c.Args, wantArgs)
			}
			_, scraped := d.Spec.Template.Annotations["prometheus.io/scrape"]
			if scraped != tt.scrapeAnnotations {
				t.Errorf("prometheus.io/scrape annotation on the pods: %v, want %v", scraped, tt.scrapeAnnotations)
			}
			if mounted := len(d.Spec.Template.Spec.Volumes) > 0; mounted == tt.crd {
				t.Errorf("volumes %+v: want the policies ConfigMap only when policies are files", d.Spec.Template.Spec.Volumes)
			}
			checkReferences(t, objs, &d, fullname)
		})
	}
}

// checkReferences checks that what the Deployment names exists in the release (or is the
// user's), and the bindings' subjects are the pods' ServiceAccount.
func checkReferences(t *testing.T, objs objects, d *appsv1.Deployment, fullname string) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if objs.get("ServiceAccount", pod.ServiceAccountName) == nil {
		t.Errorf("the pods run as ServiceAccount %q, which the chart does not create", pod.ServiceAccountName)
	}
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil && objs.get("ConfigMap", v.ConfigMap.Name) == nil && v.ConfigMap.Name != "team-policies" {
			t.Errorf("volume %s mounts ConfigMap %q, which the chart does not create", v.Name, v.ConfigMap.Name)
		}
	}
	for _, u := range objs {
		if u.GetKind() != "RoleBinding" && u.GetKind() != "ClusterRoleBinding" {
			continue
		}
		var b rbacv1.RoleBinding // a ClusterRoleBinding has the same fields
		decodeObject(t, u, &b)
		if len(b.Subjects) != 1 || b.Subjects[0].Kind != "ServiceAccount" || b.Subjects[0].Name != pod.ServiceAccountName || b.Subjects[0].Namespace != d.Namespace {
			t.Errorf("%s %s/%s binds %+v, want the ServiceAccount %s/%s", u.GetKind(), u.GetNamespace(), u.GetName(), b.Subjects, d.Namespace, pod.ServiceAccountName)
		}
		roleKind := strings.TrimSuffix(u.GetKind(), "Binding")
		found := slices.ContainsFunc(objs, func(r *unstructured.Unstructured) bool {
			return r.GetKind() == roleKind && r.GetName() == b.RoleRef.Name && r.GetNamespace() == u.GetNamespace()
		})
		if !found || b.RoleRef.Kind != roleKind {
			t.Errorf("%s %s/%s refers to %s %q, which is not in the release", u.GetKind(), u.GetNamespace(), u.GetName(), b.RoleRef.Kind, b.RoleRef.Name)
		}
	}
	for _, u := range objs {
		if u.GetKind() != "Role" || !strings.HasSuffix(u.GetName(), "-leader-election") {
			continue
		}
		var r rbacv1.Role
		decodeObject(t, u, &r)
		if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--lease-name="+r.Rules[0].ResourceNames[0]) {
			t.Errorf("the leader-election Role names Lease %q; the daemon is not told --lease-name=%[1]s", r.Rules[0].ResourceNames[0])
		}
	}
	if svc := objs.get("Service", fullname+"-metrics"); svc != nil {
		var s corev1.Service
		objs.decode(t, "Service", fullname+"-metrics", &s)
		for k, v := range s.Spec.Selector {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("Service selects %s=%s; the pods are labelled %v", k, v, d.Spec.Template.Labels)
			}
		}
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("Deployment selects %s=%s; its pods are labelled %v", k, v, d.Spec.Template.Labels)
		}
	}
}

// TestPolicyFiles checks that policy files given as values reach the mounted ConfigMap byte for
// byte, under their file names.
func TestPolicyFiles(t *testing.T) {
	h := newHelm(t, "")
	const example = "../policies/examples/my-app.yaml"
	want, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	objs := parseManifest(t, h.template(t, "coalmine", "--set", "policies.source=files", "--set-file", `policies.files.my-app\.yaml=`+example,
		"--set", `policies.files.other\.yml=kind: CanaryPolicy`))
	var cm corev1.ConfigMap
	objs.decode(t, "ConfigMap", "coalmine-policies", &cm)
	if got := cm.Data["my-app.yaml"]; got != string(want) {
		t.Errorf("ConfigMap key my-app.yaml differs from %s:\n%s", example, got)
	}
	if got := cm.Data["other.yml"]; got != "kind: CanaryPolicy" {
		t.Errorf("ConfigMap key other.yml = %q", got)
	}
	if len(cm.Data) != 2 {
		t.Errorf("ConfigMap keys %v, want my-app.yaml and other.yml", cm.Data)
	}
}
