package charts_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/coalmine/coalmine/sandbox"
)

// helmVersion is the helm scripts/install-helm.sh builds; TestInstallScriptVersion keeps the two
// in step.
const helmVersion = sandbox.HelmVersion

// chart is the chart's directory, relative to this package.
const chart = "coalmine"

// helmBinary returns $COALMINE_HELM, else the helm install-helm.sh caches. A missing helm fails
// the test: CI must run these tests, and `make test` builds it.
func helmBinary(t testing.TB) string {
	t.Helper()
	p, err := sandbox.HelmPath()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// helm runs the real helm with its own empty config, cache and data directories, so that no
// repository or plugin of the machine's user is involved.
type helm struct {
	bin        string
	env        []string
	kubeconfig string
}

func newHelm(t testing.TB, kubeconfig string) *helm {
	t.Helper()
	home := t.TempDir()
	env := os.Environ()
	env = append(env, "HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"), "KUBECONFIG="+kubeconfig)
	return &helm{bin: helmBinary(t), env: env, kubeconfig: kubeconfig}
}

// run runs helm with args and stdin, and returns its stdout and stderr.
func (h *helm) run(ctx context.Context, stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = h.env
	cmd.Stdin = stdin
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, e.String())
	}
	return o.String(), e.String(), err
}

// template renders the chart as release name in namespace coalmine with args (-f, --set, ...).
func (h *helm) template(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, _, err := h.run(t.Context(), nil, append([]string{"template", name, chart, "--namespace", "coalmine"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// objects are a rendered manifest's objects, in order.
type objects []*unstructured.Unstructured

// parseManifest splits a multi-document manifest into objects, failing on anything that is not
// one (a template that rendered bad YAML, a document without kind).
func parseManifest(t *testing.T, manifest string) objects {
	t.Helper()
	var objs objects
	d := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		var m map[string]any
		if err := d.Decode(&m); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("rendered manifest: %v\n%s", err, manifest)
		}
		if m == nil {
			continue // an empty document, e.g. a template whose condition was false
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			t.Fatalf("rendered document without apiVersion, kind or name: %v", m)
		}
		objs = append(objs, u)
	}
}

// ids are the objects as "Kind namespace/name", sorted.
func (o objects) ids() []string {
	var ids []string
	for _, u := range o {
		ids = append(ids, u.GetKind()+" "+u.GetNamespace()+"/"+u.GetName())
	}
	slices.Sort(ids)
	return ids
}

func (o objects) get(kind, name string) *unstructured.Unstructured {
	for _, u := range o {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	return nil
}

// decode converts the object kind/name into a typed object, refusing fields the type lacks (a
// misspelt or misplaced field in a template).
func (o objects) decode(t *testing.T, kind, name string, into any) {
	t.Helper()
	u := o.get(kind, name)
	if u == nil {
		t.Fatalf("no %s %s in %v", kind, name, o.ids())
	}
	decodeObject(t, u, into)
}

// decodeObject converts u into a typed object, refusing fields the type lacks.
func decodeObject(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true); err != nil {
		t.Fatalf("%s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
}

// chartMeta is what the tests read of Chart.yaml.
type chartMeta struct {
	APIVersion string `yaml:"apiVersion"`
	Name       string `yaml:"name"`
	Version    string `yaml:"version"`
	AppVersion string `yaml:"appVersion"`
}

func readChart(t *testing.T) chartMeta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c chartMeta
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("Chart.yaml: %v", err)
	}
	return c
}

// TestInstallScriptVersion keeps the helm the tests look for the one install-helm.sh builds.
func TestInstallScriptVersion(t *testing.T) {
	b, err := os.ReadFile("../scripts/install-helm.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^HELM_VERSION=(\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("scripts/install-helm.sh sets no HELM_VERSION")
	}
	if string(m[1]) != helmVersion {
		t.Errorf("scripts/install-helm.sh builds helm %s; the tests look for %s", m[1], helmVersion)
	}
}

func TestHelmVersion(t *testing.T) {
	h := newHelm(t, "")
	out, _, err := h.run(t.Context(), nil, "version", "--template", "{{.Version}}")
	if err != nil {
		t.Fatal(err)
	}
	if out != "v"+helmVersion {
		t.Errorf("helm version %q, want v%s", out, helmVersion)
	}
}

func TestLint(t *testing.T) {
	h := newHelm(t, "")
	for _, values := range []string{"", "testdata/namespaced.yaml", "testdata/monitoring.yaml", "testdata/podmonitor.yaml"} {
		for _, strict := range []bool{false, true} {
			name := cmpOr(values, "default values")
			args := []string{"lint", chart}
			if values != "" {
				args = append(args, "-f", values)
			}
			if strict {
				name += " strict"
				args = append(args, "--strict")
			}
			t.Run(name, func(t *testing.T) {
				out, stderr, err := h.run(t.Context(), nil, args...)
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				// helm lint reports [INFO], [WARNING] and [ERROR] lines; a chart fit to ship has
				// none (its one INFO would be a missing icon, which a chart may well lack).
				for _, line := range strings.Split(out+stderr, "\n") {
					if strings.Contains(line, "[WARNING]") || strings.Contains(line, "[ERROR]") ||
						(strings.Contains(line, "[INFO]") && !strings.Contains(line, "icon is recommended")) {
						t.Errorf("helm lint: %s", line)
					}
				}
				if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
					t.Errorf("helm lint output:\n%s", out)
				}
			})
		}
	}
}

func cmpOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// TestTemplateRefusesValues checks the values the chart refuses, each with a message that says
// what to change.
func TestTemplateRefusesValues(t *testing.T) {
	h := newHelm(t, "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"latest tag", []string{"--set", "image.tag=latest"}, "image.tag: latest is not allowed"},
		{"two scrapes", []string{"--set", "monitoring.serviceMonitor.enabled=true,monitoring.podMonitor.enabled=true"}, "enable at most one of serviceMonitor and podMonitor"},
		{"service monitor without service", []string{"--set", "monitoring.serviceMonitor.enabled=true,service.enabled=false"}, "monitoring.serviceMonitor needs service.enabled"},
		{"bad namespace", []string{"--set", "rbac.namespaces={team-a,Team_B}"}, `rbac.namespaces: "Team_B" is not a namespace name`},
		{"namespace twice", []string{"--set", "rbac.namespaces={team-a,team-a}"}, `rbac.namespaces: "team-a" is listed twice`},
		{"replicas without leader election", []string{"--set", "daemon.leaderElect=false"}, "more than one replica needs leader election"},
		{"policy file not yaml", []string{"--set", "policies.source=files,policies.files.my-app\\.json=x"}, `policies.files: "my-app.json": the daemon reads only *.yaml and *.yml files`},
		{"no service account name", []string{"--set", "serviceAccount.create=false"}, "serviceAccount.name is required"},
		{"unknown policy source", []string{"--set", "policies.source=configmap"}, `policies.source: "configmap": want crd or files`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := h.run(t.Context(), nil, append([]string{"template", "coalmine", chart}, tt.args...)...)
			if err == nil {
				t.Fatalf("helm template %v rendered:\n%s", tt.args, out)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("helm template %v: %v\nwant an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}
