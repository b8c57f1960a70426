package main

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"

	"github.com/coalmine/coalmine/simulator"
)

// argoManager is the field manager Argo CD applies with when it syncs with server-side apply.
const argoManager = "argocd-controller"

// gitManifest is one document of the seed's manifests (testdata/manifests/my-app.yaml): the Git
// repository a GitOps tool syncs from.
func gitManifest(t *testing.T, kind, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("../../testdata/manifests/my-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		js, err := utilyaml.ToJSON([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			Kind     string            `json:"kind"`
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := json.Unmarshal(js, &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Kind == kind && meta.Metadata.Name == name {
			return js
		}
	}
	t.Fatalf("no %s %s in the manifests", kind, name)
	return nil
}

// syncFromGit applies a manifest as Argo CD does with ServerSideApply=true: server-side apply,
// its field manager, conflicts forced.
func syncFromGit(t *testing.T, client kubernetes.Interface, ns, kind, name string) {
	t.Helper()
	ctx := context.Background()
	opts := metav1.PatchOptions{FieldManager: argoManager, Force: new(true)}
	var err error
	switch kind {
	case "Deployment":
		_, err = client.AppsV1().Deployments(ns).Patch(ctx, name, types.ApplyPatchType, gitManifest(t, kind, name), opts)
	case "Service":
		_, err = client.CoreV1().Services(ns).Patch(ctx, name, types.ApplyPatchType, gitManifest(t, kind, name), opts)
	}
	if err != nil {
		t.Fatalf("apply %s %s as %s: %v", kind, name, argoManager, err)
	}
}

// fieldPaths flattens a FieldsV1 tree into its leaves, "spec.replicas" and the like.
func fieldPaths(prefix string, tree map[string]any) []string {
	var out []string
	for k, v := range tree {
		name := strings.TrimPrefix(k, "f:")
		if k == "." {
			continue
		}
		sub, _ := v.(map[string]any)
		if len(sub) == 0 || len(sub) == 1 && sub["."] != nil {
			out = append(out, prefix+name)
			continue
		}
		out = append(out, fieldPaths(prefix+name+".", sub)...)
	}
	slices.Sort(out)
	return out
}

// managedFields logs who owns which fields of a Deployment, and returns them by manager (status
// writes left out).
func managedFields(t *testing.T, client kubernetes.Interface, ns, name, when string) map[string][]string {
	t.Helper()
	d, err := client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, m := range d.ManagedFields {
		var tree map[string]any
		if err := json.Unmarshal(m.FieldsV1.Raw, &tree); err != nil {
			t.Fatal(err)
		}
		paths := fieldPaths("", tree)
		shown := paths
		if len(shown) > 6 {
			shown = append(shown[:6:6], "...")
		}
		t.Logf("%s %s managedFields: %s (%s %s) at %s: %s", when, name, m.Manager, m.Operation, m.Subresource, m.Time, strings.Join(shown, " "))
		if m.Subresource == "" {
			out[m.Manager] = append(out[m.Manager], paths...)
		}
	}
	return out
}

// TestGateGitOpsOverwrite: a GitOps tool re-applies the canary Deployment's Git manifest
// mid-canary, with its own field manager, forcing its replicas (Git says 1) over the step's (2).
// coalmine does what the README says: it stops acting on the canary, leaves it as it stands,
// and its CanaryStopped Event names the field manager. Its own writes are listed in
// managedFields under "coalmine", for the fields it owns only.
func TestGateGitOpsOverwrite(t *testing.T) {
	const ns = "gitops"
	e := startEnv(t, simulator.Scenario{Seed: 23, Tick: model.Duration(100 * time.Millisecond), Apps: []simulator.App{
		app(ns, 0.01, slow),
	}})
	ctx := context.Background()
	// Argo CD made the app from Git.
	syncFromGit(t, e.client, ns, "Service", "my-app")
	syncFromGit(t, e.client, ns, "Deployment", "my-app-v1")
	syncFromGit(t, e.client, ns, "Deployment", "my-app-v2")
	waitReady(t, e.client, ns, "my-app-v2", 1)
	waitScraped(t, e, ns, "v1.0.0", "v2.0.0")

	// Steps too long to end during the test: the canary holds at its first.
	policy := seedPolicy{ns: ns, strategy: "scale", strategyBlock: `steps: ["2", "50%", "100%"]
    stepDuration: 10m`, interval: 2 * time.Second, maxDuration: "30m", readyTimeout: "12s"}.write(t)
	cmd, stdout, stderr := e.startGate(t, policy)
	output := multi{stdout, stderr}
	// Step 1 in place: the canary at 2, where Git says 1.
	waitProgress(t, e.client, ns, "my-app-v2", output, func(p map[string]any) bool {
		return p["fingerprint"] != "" && p["inFlight"] == nil && p["verdicts"] != nil
	})
	if v2 := replicasOf(t, e.client, ns, "my-app-v2"); v2 != 2 {
		t.Fatalf("step 1: my-app-v2=%d, want 2", v2)
	}
	if owned := managedFields(t, e.client, ns, "my-app-v2", "at step 1"); !slices.Contains(owned["coalmine"], "spec.replicas") {
		t.Errorf("at step 1 coalmine owns %v, want spec.replicas among them", owned["coalmine"])
	}
	// Argo CD syncs again (self-heal, or a commit elsewhere in the app): Git's replicas: 1.
	syncFromGit(t, e.client, ns, "Deployment", "my-app-v2")
	applied := time.Now()

	code := processExitCode(cmd.Wait())
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		t.Logf("gate: %s", line)
	}
	if code != exitStopped {
		t.Fatalf("gate exit code %d, want %d (stopped)\n%s", code, exitStopped, lastLines(output.String(), 20))
	}
	if !strings.Contains(stdout.String(), "last written by "+argoManager+" (Apply)") {
		t.Errorf("the gate's output does not name %s", argoManager)
	}
	t.Logf("stopped %s after the sync", time.Since(applied).Round(time.Millisecond))

	// The CanaryStopped Event names the field manager.
	list, err := e.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var stopped []corev1.Event
	for _, ev := range list.Items {
		if ev.Source.Component == "coalmine" && ev.Reason == "CanaryStopped" {
			stopped = append(stopped, ev)
		}
	}
	if len(stopped) != 1 {
		t.Fatalf("%d CanaryStopped Events, want 1", len(stopped))
	}
	ev := stopped[0]
	t.Logf("Event %s %s on %s/%s: %s", ev.Type, ev.Reason, ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Message)
	if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Message, "spec.replicas of Deployment my-app-v2 last written by "+argoManager+" (Apply) at ") {
		t.Errorf("CanaryStopped does not name %s's write of spec.replicas: %q", argoManager, ev.Message)
	}

	// coalmine does not fight: Git's replicas stay.
	time.Sleep(3 * time.Second)
	if v2 := replicasOf(t, e.client, ns, "my-app-v2"); v2 != 1 {
		t.Errorf("my-app-v2=%d after the stop, want Git's 1 left as it stands", v2)
	}

	// managedFields: Argo CD owns what Git declares, coalmine only what it wrote.
	for _, name := range []string{"my-app-v2", "my-app-v1"} {
		owned := managedFields(t, e.client, ns, name, "after the sync")
		for _, p := range owned["coalmine"] {
			if !strings.HasPrefix(p, "metadata.annotations.coalmine.dev/") && p != "spec.replicas" {
				t.Errorf("%s: coalmine owns %s, which it has no business writing", name, p)
			}
		}
		if name == "my-app-v2" && (slices.Contains(owned["coalmine"], "spec.replicas") || !slices.Contains(owned["coalmine"], "metadata.annotations.coalmine.dev/progress")) {
			t.Errorf("%s: coalmine owns %v; want its record, and spec.replicas taken back by %s", name, owned["coalmine"], argoManager)
		}
	}
}
