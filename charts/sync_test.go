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

	appsv1 "k8s.io/api/apps/v1"
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
// the same files, byte for byte. Without deploy/crd the chart must ship no CRD. `go test
// ./charts -run TestCRDs -update` copies them.
func TestCRDsMatchGenerated(t *testing.T) {
	if *update {
		if err := os.RemoveAll(chartCRDs); err != nil {
			t.Fatal(err)
		}
		src := yamlFiles(t, generatedCRDs)
		if len(src) > 0 {
			if err := os.MkdirAll(chartCRDs, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for name, b := range src {
			if err := os.WriteFile(filepath.Join(chartCRDs, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want, got := yamlFiles(t, generatedCRDs), yamlFiles(t, chartCRDs)
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
	for name, b := range got {
		if !bytes.Contains(b, []byte("kind: CustomResourceDefinition")) {
			t.Errorf("charts/coalmine/crds/%s holds no CustomResourceDefinition", name)
		}
	}
}

// yamlFiles reads the *.yaml files of dir by name; a missing dir has none.
func yamlFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return files
	}
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
// latest, and the repository's VERSION once there is one.
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
	if strings.TrimPrefix(c.AppVersion, "v") != strings.TrimPrefix(v, "v") {
		t.Errorf("Chart.yaml appVersion %q, VERSION %q: the chart must run the version the repository builds", c.AppVersion, v)
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
// base's: the same security context, probes, resources, ports, env, mounts and args (the chart
// adds only --lease-name and --reload-interval, at their defaults).
func TestDeploymentMatchesBase(t *testing.T) {
	var base, got appsv1.Deployment
	readDeployObject(t, "deployment.yaml", "Deployment", "coalmine", &base)
	objs := parseManifest(t, newHelm(t, "").template(t, "coalmine"))
	objs.decode(t, "Deployment", "coalmine", &got)

	bp, gp := base.Spec.Template.Spec, got.Spec.Template.Spec
	bc, gc := bp.Containers[0], gp.Containers[0]
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
		{"volumes", bp.Volumes[0].VolumeSource, gp.Volumes[0].VolumeSource},
		{"topologySpreadConstraints", len(bp.TopologySpreadConstraints), len(gp.TopologySpreadConstraints)},
	} {
		if !equality.Semantic.DeepEqual(f.base, f.got) {
			t.Errorf("%s: chart %+v, deploy/deployment.yaml %+v", f.name, f.got, f.base)
		}
	}
	wantArgs := append(slices.Clone(bc.Args), "--lease-name=coalmine", "--reload-interval=5s")
	if !slices.Equal(gc.Args, wantArgs) {
		t.Errorf("args: chart %q, want deploy/deployment.yaml's and the lease and reload settings %q", gc.Args, wantArgs)
	}
	// The base's image is a placeholder; the chart's is a version.
	if !strings.HasPrefix(gc.Image, strings.TrimSuffix(bc.Image, ":latest")+":") {
		t.Errorf("image %q is not of the base's repository %q", gc.Image, bc.Image)
	}
}

// TestRBACMatchesBase holds the chart's rules to the kustomize base's: the base's ClusterRole
// and leader-election Role, and on top only the CanaryPolicy rules of the CRD.
func TestRBACMatchesBase(t *testing.T) {
	h := newHelm(t, "")
	var baseCluster rbacv1.ClusterRole
	var baseLeader rbacv1.Role
	readDeployObject(t, "rbac.yaml", "ClusterRole", "coalmine", &baseCluster)
	readDeployObject(t, "rbac.yaml", "Role", "coalmine-leader-election", &baseLeader)
	crdRules := []rbacv1.PolicyRule{
		{APIGroups: []string{"coalmine.dev"}, Resources: []string{"canarypolicies"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"coalmine.dev"}, Resources: []string{"canarypolicies/status"}, Verbs: []string{"update", "patch"}},
	}
	want := append(slices.Clone(baseCluster.Rules), crdRules...)

	objs := parseManifest(t, h.template(t, "coalmine"))
	var cluster rbacv1.ClusterRole
	var leader rbacv1.Role
	objs.decode(t, "ClusterRole", "coalmine", &cluster)
	objs.decode(t, "Role", "coalmine-leader-election", &leader)
	if !equality.Semantic.DeepEqual(cluster.Rules, want) {
		t.Errorf("ClusterRole rules:\n  got  %+v\n  want %+v", cluster.Rules, want)
	}
	if !equality.Semantic.DeepEqual(leader.Rules, baseLeader.Rules) {
		t.Errorf("leader-election Role rules:\n  got  %+v\n  want %+v", leader.Rules, baseLeader.Rules)
	}

	// Confined to namespaces: each namespace's Role has exactly the ClusterRole's rules.
	objs = parseManifest(t, h.template(t, "coalmine", "-f", "testdata/namespaced.yaml"))
	for _, u := range objs {
		if u.GetKind() != "Role" || u.GetName() != "coalmine" {
			continue
		}
		var r rbacv1.Role
		decodeObject(t, u, &r)
		if !equality.Semantic.DeepEqual(r.Rules, want) {
			t.Errorf("Role %s/coalmine rules:\n  got  %+v\n  want %+v", u.GetNamespace(), r.Rules, want)
		}
	}
}
