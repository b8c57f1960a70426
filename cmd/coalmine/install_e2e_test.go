package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"k8s.io/client-go/dynamic"

	"github.com/coalmine/coalmine/sandbox"
	"github.com/coalmine/coalmine/simulator"
)

// TestInstalledDaemon installs coalmine as an operator would, with `kubectl apply -k deploy/` and
// with `helm install` of the chart, and runs the daemon as a process with the ServiceAccount
// token each install created (the sandbox runs no containers): with no more rights than the
// install grants, it drives a CanaryPolicy applied with kubectl to Promoted, every phase seen in
// `kubectl get canarypolicies`.
func TestInstalledDaemon(t *testing.T) {
	e := startEnv(t, simulator.Scenario{Seed: 17, Tick: model.Duration(100 * time.Millisecond), Apps: []simulator.App{
		app("inst-kustomize", 0.01, slow), app("inst-helm", 0.01, slow),
	}})
	kubectl := func(args ...string) string { t.Helper(); return e.kubectl(t, args...) }
	dyn, err := dynamic.NewForConfig(e.cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"inst-kustomize", "inst-helm"} {
		applySeed(t, e.client, ns, nil)
		waitReady(t, e.client, ns, "my-app-v2", 1)
		waitScraped(t, e, ns, "v1.0.0", "v2.0.0")
	}

	// drive runs the daemon with the token of install's ServiceAccount and the Lease the
	// install's Role names, applies a policy in ns, and follows it to Promoted.
	drive := func(t *testing.T, ns, saNamespace, sa, leaseName string) {
		token, err := e.cluster.TokenFor(context.Background(), saNamespace, sa)
		if err != nil {
			t.Fatal(err)
		}
		kubeconfig, err := e.cluster.KubeconfigFor(token)
		if err != nil {
			t.Fatal(err)
		}
		d := e.runDaemon(t, sa, kubeconfig, "--lease-namespace", saNamespace, "--lease-name", leaseName, "--identity", "process")

		policy := seedPolicy{ns: ns, strategy: "scale", strategyBlock: `steps: ["1", "50%"]
    stepDuration: 4s`, interval: 2 * time.Second, maxDuration: "3m", readyTimeout: "12s"}.write(t)
		log := watchStatus(t, dyn, ns, "my-app")
		if out := kubectl("apply", "-n", ns, "-f", policy); !strings.Contains(out, "canarypolicy.coalmine.dev/my-app created") {
			t.Fatalf("kubectl apply: %s", out)
		}
		// kubectl get, as an operator watches it, every second until the end.
		var listings []string
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			out := kubectl("get", "canarypolicies", "-n", ns, "--no-headers")
			if len(listings) == 0 || listings[len(listings)-1] != out {
				listings = append(listings, out)
			}
			if regexpLine(out, `^my-app\s+Promoted\s+`) {
				break
			}
			time.Sleep(time.Second)
		}
		t.Logf("kubectl get canarypolicies -n %s, as it changed:\n%s", ns, strings.Join(listings, ""))
		final := waitPhase(t, dyn, ns, "my-app", "Promoted", multi{d.stderr, log})
		phases, _ := log.phases()
		t.Logf("phases: %v; final status %v", phases, final)
		if !slices.Contains(phases, "Analyzing") || phases[len(phases)-1] != "Promoted" {
			t.Errorf("phases %v: want Analyzing on the way to Promoted", phases)
		}
		seen := strings.Join(listings, "")
		for _, p := range []string{"Analyzing", "Promoted"} {
			if !regexpLine(seen, `^my-app\s+`+p+`\s+`) {
				t.Errorf("kubectl get never showed %s:\n%s", p, seen)
			}
		}
		if v1, v2 := replicasOf(t, e.client, ns, "my-app-v1"), replicasOf(t, e.client, ns, "my-app-v2"); v1 != 0 || v2 != 10 {
			t.Errorf("%s: v1=%d v2=%d after promotion, want 0 and 10", ns, v1, v2)
		}
	}

	t.Run("kubectl apply -k deploy/", func(t *testing.T) {
		out := kubectl("apply", "-k", "../../deploy/")
		t.Logf("kubectl apply -k deploy/:\n%s", out)
		kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/canarypolicies.coalmine.dev")
		drive(t, "inst-kustomize", "coalmine", "coalmine", "coalmine")
	})

	t.Run("helm install", func(t *testing.T) {
		helm, err := sandbox.HelmPath()
		if err != nil {
			t.Fatal(err)
		}
		home := t.TempDir()
		cmd := exec.Command(helm, "install", "canaries", "../../charts/coalmine", "--namespace", "coalmine-helm", "--create-namespace", "--wait", "--timeout", "2m")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+e.cluster.Kubeconfig(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
			"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helm install: %v\n%s", err, out)
		}
		t.Logf("helm install: %s", firstLines(string(out), 6))
		// The release "canaries" names its objects canaries-coalmine: ServiceAccount and Lease.
		drive(t, "inst-helm", "coalmine-helm", "canaries-coalmine", "canaries-coalmine")
	})
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
