package charts_test

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

var update = flag.Bool("update", false, "copy deploy/crd/*.yaml into charts/coalmine/crds/")

// The CRDs: generated into deploy/crd, copied into the chart's crds/, which helm installs
// before the templates.
const (
	generatedCRDs = "../deploy/crd"
	chartCRDs     = chart + "/crds"
)

// TestCRDsMatchGenerated fails when the chart's crds/ differ from the generated deploy/crd/:
// the same files, byte for byte. Until deploy/crd exists in this tree (it is generated on
// another branch), the chart's copy is only checked to hold CRDs. `go test ./charts -run
// TestCRDs -update` copies them.
func TestCRDsMatchGenerated(t *testing.T) {
	want, got := yamlFiles(t, generatedCRDs), yamlFiles(t, chartCRDs)
	if *update && want != nil {
		if err := os.RemoveAll(chartCRDs); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(chartCRDs, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range want {
			if err := os.WriteFile(filepath.Join(chartCRDs, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got = yamlFiles(t, chartCRDs)
	}
	for name, b := range got {
		if !bytes.Contains(b, []byte("kind: CustomResourceDefinition")) {
			t.Errorf("charts/coalmine/crds/%s holds no CustomResourceDefinition", name)
		}
	}
	if want == nil {
		t.Logf("no deploy/crd/ in this tree; charts/coalmine/crds/ (%d files) is not compared", len(got))
		return
	}
	for name, b := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("deploy/crd/%s is not in charts/coalmine/crds/; run go test ./charts -run TestCRDs -update", name)
		} else if !bytes.Equal(g, b) {
			t.Errorf("charts/coalmine/crds/%s differs from deploy/crd/%[1]s; run go test ./charts -run TestCRDs -update", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("charts/coalmine/crds/%s is not generated in deploy/crd/; run go test ./charts -run TestCRDs -update", name)
		}
	}
}

// yamlFiles reads the *.yaml files of dir by name; nil if dir does not exist.
func yamlFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	files := map[string][]byte{}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

// TestAppVersion checks the chart runs a named coalmine release: appVersion a version, never
// latest, and once there is a VERSION file at the repository's root, exactly it (make image tags
// the image with it, and the chart's image tag defaults to appVersion).
func TestAppVersion(t *testing.T) {
	c := readChart(t)
	if c.APIVersion != "v2" || c.Name != "coalmine" {
		t.Errorf("Chart.yaml: apiVersion %q name %q, want v2 coalmine", c.APIVersion, c.Name)
	}
	semver := regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)
	if !semver.MatchString(c.AppVersion) {
		t.Errorf("Chart.yaml appVersion %q is not a version (latest is not one)", c.AppVersion)
	}
	if !semver.MatchString(c.Version) || strings.HasPrefix(c.Version, "v") {
		t.Errorf("Chart.yaml version %q is not a SemVer", c.Version)
	}
	b, err := os.ReadFile("../VERSION")
	if errors.Is(err, fs.ErrNotExist) {
		t.Logf("no VERSION file at the repository's root yet; appVersion %s is not checked against it", c.AppVersion)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimSpace(string(b))
	if c.AppVersion != v {
		t.Errorf("Chart.yaml appVersion %q, VERSION %q: the chart must pull the image tag the repository builds", c.AppVersion, v)
	}
}

// readDeployObject decodes the one object of kind in the base's file path.
func readDeployObject(t *testing.T, path, kind, name string, into any) {
	t.Helper()
	f, err := os.Open(filepath.Join("../deploy", path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		var m map[string]any
		if err := d.Decode(&m); errors.Is(err, io.EOF) {
			t.Fatalf("deploy/%s: no %s %s", path, kind, name)
		} else if err != nil {
			t.Fatalf("deploy/%s: %v", path, err)
		}
		if m["kind"] != kind || m["metadata"].(map[string]any)["name"] != name {
			continue
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(m, into, true); err != nil {
			t.Fatalf("deploy/%s %s: %v", path, kind, err)
		}
		return
	}
}

// TestDeploymentMatchesBase holds the chart's Deployment, with default values, to the kustomize
// base's: policies read from the same place (CanaryPolicy objects, or files with --policies),
// the same security context, probes, resources, ports, env, mounts and args (the chart adds only
// --lease-name, and --reload-interval for files, at their defaults).
func TestDeploymentMatchesBase(t *testing.T) {
	var base, got appsv1.Deployment
	readDeployObject(t, "deployment.yaml", "Deployment", "coalmine", &base)
	bp := base.Spec.Template.Spec
	bc := bp.Containers[0]
	files := slices.ContainsFunc(bc.Args, func(a string) bool { return strings.HasPrefix(a, "--policies") })
	source := map[bool]string{true: "files", false: "crd"}[files]
	var values struct {
		Policies struct {
			Source string `yaml:"source"`
		} `yaml:"policies"`
	}
	b, err := os.ReadFile(chart + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	if values.Policies.Source != source {
		t.Errorf("deploy/deployment.yaml reads policies from %s; values.yaml's policies.source is %q: set it to %q so the chart's default follows the base",
			map[bool]string{true: "files (--policies)", false: "CanaryPolicy objects"}[files], values.Policies.Source, source)
	}
	objs := parseManifest(t, newHelm(t, "").template(t, "coalmine", "--set", "policies.source="+source))
	objs.decode(t, "Deployment", "coalmine", &got)

	gp := got.Spec.Template.Spec
	gc := gp.Containers[0]
	for _, f := range []struct {
		name      string
		base, got any
	}{
		{"replicas", base.Spec.Replicas, got.Spec.Replicas},
		{"pod securityContext", bp.SecurityContext, gp.SecurityContext},
		{"enableServiceLinks", bp.EnableServiceLinks, gp.EnableServiceLinks},
		{"serviceAccountName", bp.ServiceAccountName, gp.ServiceAccountName},
		{"pod annotations", base.Spec.Template.Annotations, got.Spec.Template.Annotations},
		{"containers", len(bp.Containers), len(gp.Containers)},
		{"container securityContext", bc.SecurityContext, gc.SecurityContext},
		{"livenessProbe", bc.LivenessProbe, gc.LivenessProbe},
		{"readinessProbe", bc.ReadinessProbe, gc.ReadinessProbe},
		{"resources", bc.Resources, gc.Resources},
		{"ports", bc.Ports, gc.Ports},
		{"env", bc.Env, gc.Env},
		{"volumeMounts", bc.VolumeMounts, gc.VolumeMounts},
		{"volumes", volumeSources(bp.Volumes), volumeSources(gp.Volumes)},
		{"topologySpreadConstraints", len(bp.TopologySpreadConstraints), len(gp.TopologySpreadConstraints)},
	} {
		if !equality.Semantic.DeepEqual(f.base, f.got) {
			t.Errorf("%s: chart %+v, deploy/deployment.yaml %+v", f.name, f.got, f.base)
		}
	}
	wantArgs := append(slices.Clone(bc.Args), "--lease-name=coalmine")
	if files {
		wantArgs = append(wantArgs, "--reload-interval=5s")
	}
	if !slices.Equal(gc.Args, wantArgs) {
		t.Errorf("args: chart %q, want deploy/deployment.yaml's and the chart's lease and reload settings %q", gc.Args, wantArgs)
	}
	// The base's image is a placeholder or VERSION; the chart's is appVersion.
	repo, _, _ := strings.Cut(bc.Image, ":")
	if !strings.HasPrefix(gc.Image, repo+":") {
		t.Errorf("image %q is not of the base's repository %q", gc.Image, repo)
	}
}

// volumeSources are the volumes by name, without the chart's names for ConfigMaps.
func volumeSources(vs []corev1.Volume) map[string]string {
	m := map[string]string{}
	for _, v := range vs {
		kind := "other"
		if v.ConfigMap != nil {
			kind = "configMap"
		}
		m[v.Name] = kind
	}
	return m
}

// TestRBACMatchesBase holds the chart's rules to the kustomize base's: the base's ClusterRole
// and the CanaryPolicy rules (which the base has too once it installs the CRD), and the same
// leader-election Role. Rules are compared as the API calls they allow.
func TestRBACMatchesBase(t *testing.T) {
	h := newHelm(t, "")
	var baseCluster rbacv1.ClusterRole
	var baseLeader rbacv1.Role
	readDeployObject(t, "rbac.yaml", "ClusterRole", "coalmine", &baseCluster)
	readDeployObject(t, "rbac.yaml", "Role", "coalmine-leader-election", &baseLeader)
	crdRules := []rbacv1.PolicyRule{
		{APIGroups: []string{"coalmine.dev"}, Resources: []string{"canarypolicies"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"coalmine.dev"}, Resources: []string{"canarypolicies/status"}, Verbs: []string{"update"}},
	}
	want := calls(append(slices.Clone(baseCluster.Rules), crdRules...))

	objs := parseManifest(t, h.template(t, "coalmine"))
	var cluster rbacv1.ClusterRole
	var leader rbacv1.Role
	objs.decode(t, "ClusterRole", "coalmine", &cluster)
	objs.decode(t, "Role", "coalmine-leader-election", &leader)
	if got := calls(cluster.Rules); !slices.Equal(got, want) {
		t.Errorf("ClusterRole allows:\n  %q\nwant deploy/rbac.yaml's and the CanaryPolicy rules:\n  %q", got, want)
	}
	if got, want := calls(leader.Rules), calls(baseLeader.Rules); !slices.Equal(got, want) {
		t.Errorf("leader-election Role allows:\n  %q\nwant deploy/rbac.yaml's:\n  %q", got, want)
	}

	// Confined to namespaces: each namespace's Role allows exactly what the ClusterRole does.
	objs = parseManifest(t, h.template(t, "coalmine", "-f", "testdata/namespaced.yaml"))
	for _, u := range objs {
		if u.GetKind() != "Role" || u.GetName() != "coalmine" {
			continue
		}
		var r rbacv1.Role
		decodeObject(t, u, &r)
		if got := calls(r.Rules); !slices.Equal(got, want) {
			t.Errorf("Role %s/coalmine allows:\n  %q\nwant:\n  %q", u.GetNamespace(), got, want)
		}
	}
}

// calls expands rules into the sorted, distinct "verb group/resource name" calls they allow.
func calls(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{"*"}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					for _, n := range names {
						out = append(out, v+" "+g+"/"+res+" "+n)
					}
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
