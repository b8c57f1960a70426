package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/sandbox"
)

// TestCLIIsKubectlShaped shows the command line a kubectl user expects: flags anywhere, -f -
// and -f DIR, -q, -o as the output format, and the version.
func TestCLIIsKubectlShaped(t *testing.T) {
	example := "../../policies/examples/my-app.yaml"
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a flag after the file", func(t *testing.T) {
		code, stdout, stderr := runArgs("validate", example, "-q")
		if code != exitPass || stdout != "" {
			t.Errorf("validate FILE -q: exit %d, stdout %q, stderr %q; want 0 and nothing", code, stdout, stderr)
		}
	})
	t.Run("policy on stdin", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := runStreams([]string{"validate", "-f", "-"}, streams{in: bytes.NewReader(data), out: &stdout, err: &stderr}, "coalmine")
		if code != exitPass || !strings.Contains(stdout.String(), "<stdin>: my-app is valid") {
			t.Errorf("cat FILE | validate -f -: exit %d\n%s%s", code, stdout.String(), stderr.String())
		}
		stdout.Reset()
		stderr.Reset()
		bad := strings.Replace(string(data), "interval: 30s", "interval: -30s", 1)
		code = runStreams([]string{"validate", "-f", "-"}, streams{in: strings.NewReader(bad), out: &stdout, err: &stderr}, "coalmine")
		if code != exitUsage || !strings.Contains(stderr.String(), "<stdin>:") || !strings.Contains(stderr.String(), "spec.analysis.interval") {
			t.Errorf("a bad policy on stdin: exit %d, stderr:\n%s", code, stderr.String())
		}
	})
	t.Run("a directory", func(t *testing.T) {
		code, stdout, stderr := runArgs("validate", "-f", "../../policies/examples")
		if n := strings.Count(stdout, " is valid;"); code != exitPass || n < 5 {
			t.Errorf("validate -f DIR: exit %d, %d valid policies\n%s%s", code, n, stdout, stderr)
		}
		empty := t.TempDir()
		if code, _, stderr := runArgs("validate", "-f", empty); code != exitUsage || !strings.Contains(stderr, "no policy files") {
			t.Errorf("validate -f EMPTYDIR: exit %d, %s", code, stderr)
		}
		if code, _, stderr := runArgs("report", "-f", "../../policies/examples"); code != exitUsage || !strings.Contains(stderr, "this command takes one") {
			t.Errorf("report -f DIR of several: exit %d, %s", code, stderr)
		}
	})
	t.Run("version as json", func(t *testing.T) {
		code, stdout, _ := runArgs("version", "-o", "json")
		var v struct{ Version, Commit, GoVersion string }
		if code != exitPass || json.Unmarshal([]byte(stdout), &v) != nil || v.Version == "" || v.GoVersion == "" {
			t.Errorf("version -o json: exit %d, %q", code, stdout)
		}
	})
}

// TestCompletion checks the shell completion scripts, and that -f completes policy files.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_coalmine", "zsh": "#compdef coalmine", "fish": "complete -c coalmine", "powershell": "Register-ArgumentCompleter"} {
		code, stdout, stderr := runArgs("completion", shell)
		if code != exitPass || !strings.Contains(stdout, want) {
			t.Errorf("completion %s: exit %d, %d bytes, want %q; stderr %s", shell, code, len(stdout), want, stderr)
		}
	}
	code, stdout, _ := runArgs("__complete", "report", "--output", "")
	for _, want := range []string{"text", "json", "markdown", "html"} {
		if code != exitPass || !strings.Contains(stdout, want) {
			t.Errorf("completing report -o: exit %d, %q lacks %q", code, stdout, want)
		}
	}
	code, stdout, _ = runArgs("__complete", "validate", "-f", "")
	if code != exitPass || !strings.Contains(stdout, "yaml") {
		t.Errorf("completing validate -f: exit %d, %q: want the yaml extension filter", code, stdout)
	}
}

// TestKubectlPlugin runs the binary as kubectl does a plugin: kubectl-coalmine on the PATH,
// called through the real kubectl.
func TestKubectlPlugin(t *testing.T) {
	kubectl := sandboxKubectl(t)
	dir := t.TempDir()
	plugin := filepath.Join(dir, "kubectl-coalmine")
	if out, err := exec.Command("go", "build", "-o", plugin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(kubectl, "coalmine", "version")
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "coalmine ") {
		t.Fatalf("kubectl coalmine version: %v\n%s", err, out)
	}
	t.Logf("kubectl coalmine version: %s", strings.TrimSpace(string(out)))
	cmd = exec.Command(kubectl, "coalmine", "--help")
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "kubectl coalmine [command]") {
		t.Errorf("kubectl coalmine --help: %v; want usage naming 'kubectl coalmine':\n%s", err, out)
	}
}

// sandboxKubectl is the kubectl `make deps` installed.
func sandboxKubectl(t *testing.T) string {
	t.Helper()
	k, err := sandbox.KubectlPath()
	if err != nil {
		t.Fatalf("kubectl: %v (make deps installs it)", err)
	}
	return k
}

// TestGateFilesForCI checks the files CI reads: the summary is appended to (every step of a
// GitHub job writes to $GITHUB_STEP_SUMMARY), and every file is readable by the uploader (0644).
func TestGateFilesForCI(t *testing.T) {
	dir := t.TempDir()
	junit, summary, html := filepath.Join(dir, "canary.xml"), filepath.Join(dir, "summary.md"), filepath.Join(dir, "canary.html")
	if err := os.WriteFile(summary, []byte("# build\n\nthe previous step's summary\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := analyzer.Report{Outcome: analyzer.OutcomePromoted, Reason: "every step passed"}
	for range 2 {
		if err := writeGateFiles(junit, summary, html, "my-app", rep); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "# build\n\nthe previous step's summary\n") || strings.Count(string(b), "my-app") < 2 {
		t.Errorf("summary replaced, or not appended to on each run:\n%s", b)
	}
	for _, f := range []string{junit, summary, html} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", filepath.Base(f), fi.Mode().Perm())
		}
	}
}

// TestMissingCredentialsFileIsAConfigError checks that a typo in a credentials file's name is a
// usage error (2) naming the file and line, never "Prometheus unreachable" (4), which would hold
// a gate until its deadline.
func TestMissingCredentialsFileIsAConfigError(t *testing.T) {
	b, err := os.ReadFile("../../policies/examples/my-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(b), "    timeout: 10s\n", "    timeout: 10s\n    http:\n      basic_auth:\n        username: coalmine\n        password_file: /nonexistent/pasword\n", 1)
	if doc == string(b) {
		t.Fatal("the example's prometheus block moved; update the test")
	}
	policy := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(policy, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runArgs("validate", policy, "-q"); code != exitPass {
		t.Errorf("validate without --check-files: exit %d (the file may live in the daemon's pod)\n%s", code, stderr)
	}
	for _, args := range [][]string{{"validate", policy, "--check-files"}, {"report", "-f", policy, "--prometheus-url", "http://127.0.0.1:1"}, {"gate", "-f", policy, "--prometheus-url", "http://127.0.0.1:1"}} {
		code, _, stderr := runArgs(args...)
		if code != exitUsage || !strings.Contains(stderr, "p.yaml:") || !strings.Contains(stderr, "spec.prometheus.http.basic_auth.password_file cannot read") {
			t.Errorf("%s: exit %d, want 2 naming the file, line and field:\n%s", args[0], code, stderr)
		}
	}
}

// TestControlCommandsRefuseWhatTheyCannotDo: a command names its canary, a policy without one
// and a cluster that cannot be reached say so before anything is written.
func TestControlCommandsRefuseWhatTheyCannotDo(t *testing.T) {
	for _, verb := range analyzer.Verbs {
		t.Run(string(verb), func(t *testing.T) {
			code, _, stderr := runArgs(string(verb))
			if code != exitUsage || !strings.Contains(stderr, "name the CanaryPolicy") {
				t.Errorf("%s with no policy: exit %d, %s", verb, code, stderr)
			}
			code, stdout, _ := runArgs(string(verb), "--help")
			if code != exitPass || !strings.Contains(stdout, "coalmine.dev/commands") || !strings.Contains(stdout, "--reason") {
				t.Errorf("%s --help: exit %d\n%s", verb, code, stdout)
			}
		})
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	unreachable := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: shop}}]
current-context: c
`
	if err := os.WriteFile(kubeconfig, []byte(unreachable), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runArgs("abort", "my-app", "--kubeconfig", kubeconfig, "--request-timeout", "2s"); code != exitUnavailable {
		t.Errorf("abort against an unreachable cluster: exit %d, want %d\n%s", code, exitUnavailable, stderr)
	}
	if code, _, stderr := runArgs("status", "-o", "xml"); code != exitUsage || !strings.Contains(stderr, "--output") {
		t.Errorf("status -o xml: exit %d, %s", code, stderr)
	}
}
