package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/coalmine/coalmine/policies"
)

// TestCRDInBase checks that the base installs the CanaryPolicy CustomResourceDefinition that
// make generate writes, as generated: the daemon watches its objects.
func TestCRDInBase(t *testing.T) {
	var k struct {
		Resources []string `yaml:"resources"`
	}
	b, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	const crd = "crd/coalmine.dev_canarypolicies.yaml"
	if !slices.Contains(k.Resources, crd) {
		t.Fatalf("kustomization.yaml resources %q lack %s", k.Resources, crd)
	}
	var c struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Group string `json:"group"`
			Scope string `json:"scope"`
			Names struct {
				Kind       string   `json:"kind"`
				ShortNames []string `json:"shortNames"`
				Categories []string `json:"categories"`
			} `json:"names"`
			Versions []struct {
				Name         string `json:"name"`
				Served       bool   `json:"served"`
				Storage      bool   `json:"storage"`
				Subresources struct {
					Status *struct{} `json:"status"`
				} `json:"subresources"`
				Columns []struct {
					Name string `json:"name"`
				} `json:"additionalPrinterColumns"`
			} `json:"versions"`
		} `json:"spec"`
	}
	docs := documents(t, crd)
	if len(docs) != 1 {
		t.Fatalf("%s: want one document, got %d", crd, len(docs))
	}
	if err := json.Unmarshal(docs[0], &c); err != nil {
		t.Fatal(err)
	}
	var columns []string
	for _, v := range c.Spec.Versions {
		for _, col := range v.Columns {
			columns = append(columns, col.Name)
		}
	}
	got := fmt.Sprintf("%s %s %s %s %s %v %v", c.Kind, c.Metadata.Name, c.Spec.Group, c.Spec.Scope, c.Spec.Names.Kind, c.Spec.Names.ShortNames, c.Spec.Names.Categories)
	if want := "CustomResourceDefinition canarypolicies.coalmine.dev coalmine.dev Namespaced CanaryPolicy [cpol] [coalmine]"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if len(c.Spec.Versions) != 1 || c.Spec.Versions[0].Name != policies.Version || !c.Spec.Versions[0].Served || !c.Spec.Versions[0].Storage || c.Spec.Versions[0].Subresources.Status == nil {
		t.Errorf("want one version %s, served, stored, with a status subresource: %+v", policies.Version, c.Spec.Versions)
	}
	if want := []string{"Phase", "Step", "Verdict", "Baseline", "Canary", "Message", "Age"}; !slices.Equal(columns, want) {
		t.Errorf("printer columns %q, want %q", columns, want)
	}
}

func TestDeploymentManifest(t *testing.T) {
	var d appsv1.Deployment
	only(t, "deployment.yaml", "Deployment", &d)
	checkDeployment(t, &d)
}

// checkDeployment asserts what the daemon and the cluster's security rely on, for the manifest
// as written and as the API server stored it.
func checkDeployment(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		t.Fatalf("want one container and no init containers (no sidecars), got %d and %d", len(pod.Containers), len(pod.InitContainers))
	}
	c := pod.Containers[0]
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil || sc.Capabilities == nil {
		t.Fatalf("pod and container need a securityContext with capabilities; got %+v, %+v", psc, sc)
	}
	metricsPort := int32(0)
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			metricsPort = p.ContainerPort
		}
	}
	flags := map[string]string{}
	for _, a := range c.Args[min(1, len(c.Args)):] {
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		flags[k] = v
	}
	tests := []struct {
		name      string
		got, want string
	}{
		{"replicas", deref(d.Spec.Replicas), "2"},
		{"image", c.Image, imageRepository + ":" + releaseVersion(t)},
		{"command", strings.Join(c.Command, " "), ""}, // the image's entrypoint, /coalmine
		{"subcommand", strings.Join(c.Args[:min(1, len(c.Args))], ""), "run"},
		{"--policies (none: CanaryPolicy objects)", flags["policies"], ""},
		{"--metrics-addr", flags["metrics-addr"], ":8080"},
		{"--leader-elect", flags["leader-elect"], "true"},
		{"service account", pod.ServiceAccountName, "coalmine"},
		{"pod runAsNonRoot", deref(psc.RunAsNonRoot), "true"},
		{"pod runAsUser", deref(psc.RunAsUser), "65532"},
		{"pod seccomp", seccomp(psc.SeccompProfile), "RuntimeDefault"},
		{"runAsNonRoot", deref(sc.RunAsNonRoot), "true"},
		{"runAsUser", deref(sc.RunAsUser), "65532"},
		{"readOnlyRootFilesystem", deref(sc.ReadOnlyRootFilesystem), "true"},
		{"allowPrivilegeEscalation", deref(sc.AllowPrivilegeEscalation), "false"},
		{"privileged", deref(sc.Privileged), "<unset>"},
		{"capabilities drop", fmt.Sprint(sc.Capabilities.Drop), "[ALL]"},
		{"capabilities add", fmt.Sprint(sc.Capabilities.Add), "[]"},
		{"seccomp", seccomp(sc.SeccompProfile), "RuntimeDefault"},
		{"metrics port", fmt.Sprint(metricsPort), "8080"},
		{"liveness probe", probe(c.LivenessProbe, c.Ports), "GET /healthz :8080"},
		{"readiness probe", probe(c.ReadinessProbe, c.Ports), "GET /readyz :8080"},
		{"requests cpu", c.Resources.Requests.Cpu().String(), "100m"},
		{"requests memory", c.Resources.Requests.Memory().String(), "64Mi"},
		{"limits cpu", c.Resources.Limits.Cpu().String(), "1"},
		{"limits memory", c.Resources.Limits.Memory().String(), "256Mi"},
		{"env POD_NAMESPACE", fieldRef(c.Env, "POD_NAMESPACE"), "metadata.namespace"},
		{"env POD_NAME", fieldRef(c.Env, "POD_NAME"), "metadata.name"},
		{"volumes", fmt.Sprint(len(pod.Volumes), len(c.VolumeMounts)), "0 0"},
		{"prometheus.io/scrape", d.Spec.Template.Annotations["prometheus.io/scrape"], "true"},
		{"prometheus.io/port", d.Spec.Template.Annotations["prometheus.io/port"], "8080"},
		{"prometheus.io/path", d.Spec.Template.Annotations["prometheus.io/path"], "/metrics"},
		{"host network", fmt.Sprint(pod.HostNetwork, pod.HostPID, pod.HostIPC), "false false false"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

// TestSelectors checks that the Service and the PodDisruptionBudget select the daemon's pods.
func TestSelectors(t *testing.T) {
	var (
		d   appsv1.Deployment
		svc corev1.Service
		pdb policyv1.PodDisruptionBudget
	)
	only(t, "deployment.yaml", "Deployment", &d)
	only(t, "service.yaml", "Service", &svc)
	only(t, "poddisruptionbudget.yaml", "PodDisruptionBudget", &pdb)
	podLabels := labels.Set(d.Spec.Template.Labels)
	deploySel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	pdbSel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		sel  labels.Selector
	}{
		{"deployment", deploySel},
		{"service", labels.SelectorFromSet(svc.Spec.Selector)},
		{"pod disruption budget", pdbSel},
	}
	for _, tt := range tests {
		if tt.sel.Empty() || !tt.sel.Matches(podLabels) {
			t.Errorf("%s selector %q does not select the pods (%v)", tt.name, tt.sel, podLabels)
		}
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.String() != "1" {
		t.Errorf("pod disruption budget minAvailable: got %v, want 1", pdb.Spec.MinAvailable)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("service ports: got %+v, want one targeting the container port named metrics", svc.Spec.Ports)
	}
}

// TestRBAC pins rbac.yaml to exactly the API calls `coalmine run` makes: a rule added or
// widened must be added here too, on purpose.
func TestRBAC(t *testing.T) {
	want := map[string][]string{
		"ClusterRole /coalmine": {
			"coalmine.dev/canarypolicies get", "coalmine.dev/canarypolicies list", "coalmine.dev/canarypolicies watch",
			"coalmine.dev/canarypolicies/status update",
			"apps/deployments get", "apps/deployments list", "apps/deployments watch",
			"apps/deployments patch", "apps/deployments delete",
			"apps/replicasets get", "apps/replicasets list", "apps/replicasets watch",
			"pods get", "pods list", "pods watch",
			"services get", "services list", "services watch", "services patch",
			"autoscaling/horizontalpodautoscalers get", "autoscaling/horizontalpodautoscalers list", "autoscaling/horizontalpodautoscalers patch",
			"events create",
		},
		"Role coalmine/coalmine-leader-election": {
			"coordination.k8s.io/leases/coalmine get", "coordination.k8s.io/leases/coalmine update",
			"coordination.k8s.io/leases create",
		},
	}
	wantBindings := map[string]string{
		"ClusterRoleBinding /coalmine":                  "ClusterRole coalmine -> ServiceAccount coalmine/coalmine",
		"RoleBinding coalmine/coalmine-leader-election": "Role coalmine-leader-election -> ServiceAccount coalmine/coalmine",
	}
	got := map[string][]string{}
	gotBindings := map[string]string{}
	for i, doc := range documents(t, "rbac.yaml") {
		var tm metav1.TypeMeta
		if err := json.Unmarshal(doc, &tm); err != nil {
			t.Fatal(err)
		}
		switch tm.Kind {
		case "ClusterRole", "Role":
			var r rbacv1.Role // a ClusterRole without aggregationRule has the same fields
			decodeStrict(t, doc, &r)
			key := tm.Kind + " " + r.Namespace + "/" + r.Name
			for j, rule := range r.Rules {
				if w := wildcards(rule); len(w) > 0 {
					t.Errorf("%s rule %d uses a wildcard in %s", key, j, strings.Join(w, ", "))
				}
				if len(rule.NonResourceURLs) > 0 {
					t.Errorf("%s rule %d grants non-resource URLs %q", key, j, rule.NonResourceURLs)
				}
				got[key] = append(got[key], expand(rule)...)
			}
		case "ClusterRoleBinding", "RoleBinding":
			var b rbacv1.RoleBinding
			decodeStrict(t, doc, &b)
			var subjects []string
			for _, s := range b.Subjects {
				subjects = append(subjects, s.Kind+" "+s.Namespace+"/"+s.Name)
			}
			gotBindings[tm.Kind+" "+b.Namespace+"/"+b.Name] = b.RoleRef.Kind + " " + b.RoleRef.Name + " -> " + strings.Join(subjects, ", ")
		default:
			t.Errorf("rbac.yaml document %d: unexpected kind %q", i, tm.Kind)
		}
	}
	for key, rules := range want {
		slices.Sort(rules)
		g := got[key]
		slices.Sort(g)
		if !slices.Equal(g, rules) {
			t.Errorf("%s grants\n  %s\nwant exactly\n  %s", key, strings.Join(g, "\n  "), strings.Join(rules, "\n  "))
		}
		delete(got, key)
	}
	for key := range got {
		t.Errorf("unexpected %s", key)
	}
	for key, w := range wantBindings {
		if gotBindings[key] != w {
			t.Errorf("%s: got %q, want %q", key, gotBindings[key], w)
		}
		delete(gotBindings, key)
	}
	for key := range gotBindings {
		t.Errorf("unexpected %s", key)
	}
}

// wildcards names the fields of rule that hold "*".
func wildcards(rule rbacv1.PolicyRule) []string {
	var w []string
	for _, f := range []struct {
		name   string
		values []string
	}{
		{"apiGroups", rule.APIGroups}, {"resources", rule.Resources}, {"verbs", rule.Verbs},
		{"resourceNames", rule.ResourceNames}, {"nonResourceURLs", rule.NonResourceURLs},
	} {
		if slices.ContainsFunc(f.values, func(v string) bool { return strings.Contains(v, "*") }) {
			w = append(w, f.name)
		}
	}
	return w
}

// expand lists a rule's grants one per group, resource, name and verb, as "group/resource/name
// verb" without the empty parts.
func expand(rule rbacv1.PolicyRule) []string {
	names := rule.ResourceNames
	if len(names) == 0 {
		names = []string{""}
	}
	var out []string
	for _, g := range rule.APIGroups {
		for _, r := range rule.Resources {
			for _, n := range names {
				for _, v := range rule.Verbs {
					path := strings.Trim(strings.Join([]string{g, r, n}, "/"), "/")
					out = append(out, path+" "+v)
				}
			}
		}
	}
	return out
}

// documents returns every non-empty YAML document of path, as JSON.
func documents(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var docs [][]byte
	for {
		b, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		j, err := utilyaml.ToJSON(b)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if s := string(bytes.TrimSpace(j)); s != "null" && s != "" {
			docs = append(docs, j)
		}
	}
}

// only decodes the one document of path, which must be of kind.
func only(t *testing.T, path, kind string, into any) {
	t.Helper()
	docs := documents(t, path)
	if len(docs) != 1 {
		t.Fatalf("%s: want one document, got %d", path, len(docs))
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(docs[0], &tm); err != nil {
		t.Fatal(err)
	}
	if tm.Kind != kind {
		t.Fatalf("%s: want a %s, got %q", path, kind, tm.Kind)
	}
	decodeStrict(t, docs[0], into)
}

// decodeStrict decodes JSON, refusing unknown fields: a misspelt field (readOnlyRootFileSystem)
// would otherwise be dropped without a word, by this test and by kubectl alike.
func decodeStrict(t *testing.T, data []byte, into any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("decode %T: %v", into, err)
	}
}

func deref[T any](p *T) string {
	if p == nil {
		return "<unset>"
	}
	return fmt.Sprint(*p)
}

func seccomp(p *corev1.SeccompProfile) string {
	if p == nil {
		return "<unset>"
	}
	return string(p.Type)
}

// probe renders an HTTP probe as "GET /path :port", resolving a named port.
func probe(p *corev1.Probe, ports []corev1.ContainerPort) string {
	if p == nil || p.HTTPGet == nil {
		return "<no http probe>"
	}
	port := p.HTTPGet.Port.String()
	for _, cp := range ports {
		if cp.Name == port {
			port = fmt.Sprint(cp.ContainerPort)
		}
	}
	return "GET " + p.HTTPGet.Path + " :" + port
}

func fieldRef(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			return e.ValueFrom.FieldRef.FieldPath
		}
	}
	return "<unset>"
}
