package main

import (
	"context"
	"encoding/json"

	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/coalmine/coalmine/simulator"
)

// daemonProc is one `coalmine run` replica.
type daemonProc struct {
	name, addr string
	cmd        *exec.Cmd
	stderr     *syncBuffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (e *env) startDaemon(t *testing.T, name, policies, kubeconfig string) *daemonProc {
	t.Helper()
	return e.runDaemon(t, name, kubeconfig, "--policies", policies, "--reload-interval", "1s", "--lease-namespace", "coalmine", "--identity", name)
}

// runDaemon starts `coalmine run` against the sandbox with short leader-election times and JSON
// logs, and stops it when the test ends.
func (e *env) runDaemon(t *testing.T, name, kubeconfig string, args ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{name: name, addr: freeAddr(t), stderr: &syncBuffer{}}
	d.cmd = exec.Command(coalmineBinary(t), append([]string{"run", "--kubeconfig", kubeconfig,
		"--prometheus-url", e.promURL, "--metrics-addr", d.addr,
		"--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "500ms", "--log-format", "json"}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = io.Discard, d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.cmd.Process.Kill(); _ = d.cmd.Wait() })
	return d
}

// kubectl runs the sandbox's kubectl as its admin; a failure fails the test.
func (e *env) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(e.cluster.Kubectl(), append([]string{"--kubeconfig", e.cluster.Kubeconfig()}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (d *daemonProc) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + d.addr + path)
	if err != nil {
		t.Fatalf("%s %s: %v", d.name, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// leader returns the identity holding the Lease.
func (e *env) leader(t *testing.T) string {
	t.Helper()
	var holder string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := e.client.CoordinationV1().Leases("coalmine").Get(ctx, "coalmine", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return false, nil
		}
		holder = *l.Spec.HolderIdentity
		return true, nil
	})
	if err != nil {
		t.Fatalf("no leader: %v", err)
	}
	return holder
}

func writePolicy(t *testing.T, dir, ns, extra string) string {
	t.Helper()
	src := policyFile(t, ns, "scale", "", extra)
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, ns+".yaml")
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func phaseIs(phase string) func(p map[string]any) bool {
	return func(p map[string]any) bool { return p["phase"] == phase }
}

func TestDaemon(t *testing.T) {
	e := startEnv(t, simulator.Scenario{Seed: 11, Tick: model.Duration(100 * time.Millisecond), Apps: []simulator.App{
		app("d-good", 0.01, slow), app("d-bad", 0.05, slow), app("d-failover", 0.01, slow), app("d-restart", 0.01, slow),
	}})
	// The daemon runs as the ServiceAccount of deploy/, bound to exactly the RBAC shipped there.
	out, err := exec.Command(e.cluster.Kubectl(), "--kubeconfig", e.cluster.Kubeconfig(), "apply",
		"-f", "../../deploy/namespace.yaml", "-f", "../../deploy/serviceaccount.yaml", "-f", "../../deploy/rbac.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply deploy/ RBAC: %v\n%s", err, out)
	}
	token, err := e.cluster.TokenFor(context.Background(), "coalmine", "coalmine")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := e.cluster.KubeconfigFor(token)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"d-good", "d-bad", "d-failover", "d-restart"} {
		applySeed(t, e.client, ns, nil)
	}
	for _, ns := range []string{"d-good", "d-bad", "d-failover", "d-restart"} {
		waitReady(t, e.client, ns, "my-app-v2", 1)
	}
	waitScraped(t, e, "d-restart", "v1.0.0", "v2.0.0") // all four started together
	dir := t.TempDir()
	a := e.startDaemon(t, "replica-a", dir, kubeconfig)
	b := e.startDaemon(t, "replica-b", dir, kubeconfig)
	procs := map[string]*daemonProc{"replica-a": a, "replica-b": b}
	leader := procs[e.leader(t)]
	standby := a
	if leader == a {
		standby = b
	}
	shortSteps := `steps: ["1", "50%", "100%"]
    stepDuration: 4s`
	longSteps := `steps: ["1", "50%", "100%"]
    stepDuration: 10s`

	t.Run("two canaries at once: one promoted, one rolled back", func(t *testing.T) {
		writePolicy(t, dir, "d-good", shortSteps)
		writePolicy(t, dir, "d-bad", shortSteps)
		waitProgress(t, e.client, "d-bad", "my-app-v2", b.stderr, phaseIs("rolledBack"))
		waitProgress(t, e.client, "d-good", "my-app-v2", a.stderr, phaseIs("promoted"))
		if v1, v2 := replicasOf(t, e.client, "d-good", "my-app-v1"), replicasOf(t, e.client, "d-good", "my-app-v2"); v1 != 0 || v2 != 10 {
			t.Errorf("d-good: v1=%d v2=%d, want 0 and 10", v1, v2)
		}
		if v2 := replicasOf(t, e.client, "d-bad", "my-app-v2"); v2 != 0 {
			t.Errorf("d-bad: v2=%d, want 0", v2)
		}
		// The outcome is counted once the tick that wrote the record returns: a moment after
		// the record shows it.
		wants := []string{
			`coalmine_canary_outcomes_total{outcome="promoted",policy="d-good/my-app"} 1`,
			`coalmine_canary_outcomes_total{outcome="rolledBack",policy="d-bad/my-app"} 1`,
			`coalmine_leader 1`,
			`coalmine_metric_value{arm="canary",metric="error-rate",policy="d-bad/my-app"}`,
			`coalmine_tick_duration_seconds_count`,
			`coalmine_prometheus_query_duration_seconds_count{result="success"}`,
		}
		var missing []string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			m := leader.get(t, "/metrics")
			missing = missing[:0]
			for _, want := range wants {
				if !strings.Contains(m, want) {
					missing = append(missing, want)
				}
			}
			if len(missing) == 0 || time.Now().After(deadline) {
				break
			}
		}
		for _, want := range missing {
			t.Errorf("leader's /metrics lacks %s", want)
		}
		if s := standby.get(t, "/metrics"); !strings.Contains(s, "coalmine_leader 0") || strings.Contains(s, "coalmine_canary_outcomes_total{") {
			t.Error("the standby acted, or does not say it is a standby")
		}
		if r := standby.get(t, "/readyz"); !strings.Contains(r, "standby") {
			t.Errorf("standby /readyz: %q", r)
		}
		if h := leader.get(t, "/healthz"); h != "ok\n" {
			t.Errorf("/healthz: %q", h)
		}
	})

	t.Run("the leader dies mid-canary: the standby finishes it, every action once", func(t *testing.T) {
		writePolicy(t, dir, "d-failover", longSteps)
		waitProgress(t, e.client, "d-failover", "my-app-v2", leader.stderr, func(p map[string]any) bool { return p["step"].(float64) >= 1 })
		if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = leader.cmd.Wait()
		if got := e.leader(t); got == leader.name {
			// The Lease still names the dead leader until it expires.
			waitLeader(t, e, standby.name)
		}
		waitProgress(t, e.client, "d-failover", "my-app-v2", standby.stderr, phaseIs("promoted"))
		evs := events(t, e.client, "d-failover")
		if count(evs, "CanaryStarted") != 1 || count(evs, "CanaryStepAdvanced") != 2 || count(evs, "CanaryPromoted") != 1 {
			t.Errorf("events %v: want 1 CanaryStarted, 2 CanaryStepAdvanced, 1 CanaryPromoted", evs)
		}
	})

	t.Run("an invalid policy edit keeps the old one running; SIGTERM and restart resume", func(t *testing.T) {
		file := writePolicy(t, dir, "d-restart", longSteps)
		good, _ := os.ReadFile(file)
		waitProgress(t, e.client, "d-restart", "my-app-v2", standby.stderr, func(p map[string]any) bool { return p["step"].(float64) >= 1 })
		if err := os.WriteFile(file, []byte(strings.Replace(string(good), "interval: 2s", "interval: -2s", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		// The canary goes on under the last good policy while the file is invalid.
		waitProgress(t, e.client, "d-restart", "my-app-v2", standby.stderr, func(p map[string]any) bool { return p["step"].(float64) >= 2 })
		if m := standby.get(t, "/metrics"); !strings.Contains(m, `coalmine_policy_reloads_total{result="failure"}`) {
			t.Error("the invalid file was not counted as a failed reload")
		}
		if !strings.Contains(standby.stderr.String(), "spec.analysis.interval must be a positive duration") {
			t.Error("the invalid file was not reported in the log")
		}
		start := time.Now()
		if err := standby.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := processExitCode(standby.cmd.Wait()); code != 0 {
			t.Fatalf("SIGTERM: exit code %d\n%s", code, lastLines(standby.stderr.String(), 10))
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("clean stop took %v", took)
		}
		// The Lease is handed over only once the leader's canaries have stopped: released
		// earlier, a standby could start driving while a tick of the old leader still acts.
		log := standby.stderr.String()
		// One log stream: client-go's own lines (leader election) are JSON like the rest.
		fromClientGo := 0
		for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
			var entry map[string]any
			if err := json.Unmarshal([]byte(line), &entry); err != nil {
				t.Errorf("a log line that is not JSON under --log-format json: %q", line)
				continue
			}
			if entry["component"] == "client-go" {
				fromClientGo++
			}
		}
		if fromClientGo == 0 {
			t.Error("no client-go line in the log (leader election logs through klog): is klog routed into the logger?")
		}
		stopped, released := strings.Index(log, `"canaries stopped"`), strings.Index(log, `"lease released"`)
		if stopped < 0 || released < 0 || released < stopped {
			t.Errorf("canaries stopped at byte %d of the log, lease released at %d: want both, the release after\n%s", stopped, released, lastLines(log, 10))
		}
		if err := os.WriteFile(file, good, 0o644); err != nil {
			t.Fatal(err)
		}
		c := e.startDaemon(t, "replica-c", dir, kubeconfig)
		waitProgress(t, e.client, "d-restart", "my-app-v2", c.stderr, phaseIs("promoted"))
		evs := events(t, e.client, "d-restart")
		if count(evs, "CanaryStarted") != 1 || count(evs, "CanaryStepAdvanced") != 2 || count(evs, "CanaryPromoted") != 1 {
			t.Errorf("events %v: want 1 CanaryStarted, 2 CanaryStepAdvanced, 1 CanaryPromoted", evs)
		}
	})
}

func waitLeader(t *testing.T, e *env, want string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := e.client.CoordinationV1().Leases("coalmine").Get(ctx, "coalmine", metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == want, nil
	})
	if err != nil {
		t.Fatalf("%s never took the Lease: %v", want, err)
	}

}
