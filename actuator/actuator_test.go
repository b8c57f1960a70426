package actuator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/coalmine/coalmine/policies"
)

const ns = "default"

func loadPolicy(t *testing.T, file string) *policies.Policy {
	t.Helper()
	ps, err := policies.LoadFile("../policies/examples/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

func deployment(name, version string, replicas int32, ready int32) *appsv1.Deployment {
	labels := map[string]string{"app": "my-app", "version": version}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Annotations: map[string]string{}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}},
		},
		Status: appsv1.DeploymentStatus{Replicas: ready, ReadyReplicas: ready, UpdatedReplicas: ready, AvailableReplicas: ready},
	}
}

func get(t *testing.T, c *fake.Clientset, name string) *appsv1.Deployment {
	t.Helper()
	d, err := c.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// scaleTo sets a Deployment's replicas the way a person would, behind coalmine's back.
func scaleTo(t *testing.T, c *fake.Clientset, name string, n int32) {
	t.Helper()
	d := get(t, c, name)
	d.Spec.Replicas = &n
	if _, err := c.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// prepare starts a canary: what the analyzer does once, when it has no record for it.
func prepare(t *testing.T, r *Release) map[string]string {
	t.Helper()
	state, err := r.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// patchPaths lists the paths a JSON patch sets, sorted.
func patchPaths(t *testing.T, pa k8stesting.PatchAction) []string {
	t.Helper()
	if pa.GetPatchType() != types.JSONPatchType {
		t.Fatalf("patch of type %s, want a JSON patch", pa.GetPatchType())
	}
	var ops []patchOp
	if err := json.Unmarshal(pa.GetPatch(), &ops); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, op := range ops {
		paths = append(paths, op.Path)
	}
	slices.Sort(paths)
	return paths
}

// writes counts the requests that change objects.
func writes(c *fake.Clientset) int {
	n := 0
	for _, a := range c.Actions() {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			n++
		}
	}
	return n
}

func TestScaleStrategy(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app.yaml") // steps "1", "50%", "100%"
	c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 0, 0))
	r, err := NewRelease(c, p, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	state := prepare(t, r)
	if got := state[stateBaselineReplicas]; got != "10" {
		t.Errorf("baseline replicas remembered as %q, want 10", got)
	}
	steps := []struct {
		step       int
		wantCanary int32
	}{{0, 1}, {1, 5}, {2, 10}}
	for _, s := range steps {
		if _, err := r.SetStep(ctx, s.step, state); err != nil {
			t.Fatal(err)
		}
		if got := replicas(get(t, c, "my-app-v2")); got != s.wantCanary {
			t.Errorf("step %d: canary has %d replicas, want %d", s.step, got, s.wantCanary)
		}
		if got := replicas(get(t, c, "my-app-v1")); got != 10 {
			t.Errorf("step %d: baseline changed to %d", s.step, got)
		}
	}
	before := writes(c)
	if _, err := r.SetStep(ctx, 2, state); err != nil {
		t.Fatal(err)
	}
	if writes(c) != before {
		t.Error("applying the same step twice wrote to the cluster again")
	}
	// The canary's pods are not Ready (status says 0): promotion waits before touching the baseline.
	done, err := r.Promote(ctx, state)
	if err != nil || done {
		t.Fatalf("promote with an unready canary: done=%t err=%v", done, err)
	}
	if replicas(get(t, c, "my-app-v1")) != 10 {
		t.Fatal("the baseline was scaled down before the canary was Ready")
	}
	d := get(t, c, "my-app-v2")
	d.Status = appsv1.DeploymentStatus{Replicas: 10, ReadyReplicas: 10, UpdatedReplicas: 10, AvailableReplicas: 10}
	if _, err := c.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if done, err := r.Promote(ctx, state); err != nil || !done {
		t.Fatalf("promote: done=%t err=%v", done, err)
	}
	if got := replicas(get(t, c, "my-app-v1")); got != 0 {
		t.Errorf("baseline has %d replicas after promotion, want 0", got)
	}
	fp, err := r.Fingerprint(ctx, false)
	if err != nil || fp != "my-app-v1=0 my-app-v2=10" {
		t.Errorf("fingerprint %q, %v", fp, err)
	}
}

// A canary the analyzer never prepared has nothing to size its steps from: refused, never 0.
func TestScaleWithoutState(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app-shift.yaml")
	tests := []struct {
		name  string
		state map[string]string
		act   func(r *Release, state map[string]string) error
	}{
		{"step, no record", nil, func(r *Release, s map[string]string) error { _, err := r.SetStep(ctx, 0, s); return err }},
		{"rollback, no record", nil, func(r *Release, s map[string]string) error { _, err := r.Rollback(ctx, s); return err }},
		{"promote, garbage", map[string]string{stateBaselineReplicas: "ten"}, func(r *Release, s map[string]string) error { _, err := r.Promote(ctx, s); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 1, 1))
			r, _ := NewRelease(c, p, zerolog.Nop())
			err := tt.act(r, tt.state)
			if err == nil || !strings.Contains(err.Error(), stateBaselineReplicas) {
				t.Errorf("err %v, want one naming %s", err, stateBaselineReplicas)
			}
			if n := writes(c); n != 0 {
				t.Errorf("wrote %d times without a baseline size: %v", n, c.Actions())
			}
		})
	}
}

func TestScaleRollbackAndShift(t *testing.T) {
	ctx := context.Background()
	t.Run("scale rollback sets the canary to 0", func(t *testing.T) {
		p := loadPolicy(t, "my-app.yaml")
		c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 1, 1))
		r, _ := NewRelease(c, p, zerolog.Nop())
		state := prepare(t, r)
		if _, err := r.SetStep(ctx, 0, state); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Rollback(ctx, state); err != nil {
			t.Fatal(err)
		}
		if got := replicas(get(t, c, "my-app-v2")); got != 0 {
			t.Errorf("canary has %d replicas, want 0", got)
		}
		if got := replicas(get(t, c, "my-app-v1")); got != 10 {
			t.Errorf("scale rollback changed the baseline to %d", got)
		}
	})
	t.Run("shift keeps the total and reverses", func(t *testing.T) {
		p := loadPolicy(t, "my-app-shift.yaml") // steps 1, 2, 5, 10
		c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 0, 0))
		r, _ := NewRelease(c, p, zerolog.Nop())
		state := prepare(t, r)
		for i, want := range []int32{1, 2, 5, 10} {
			if _, err := r.SetStep(ctx, i, state); err != nil {
				t.Fatal(err)
			}
			v1, v2 := replicas(get(t, c, "my-app-v1")), replicas(get(t, c, "my-app-v2"))
			if v2 != want || v1+v2 != 10 {
				t.Errorf("step %d: v1=%d v2=%d, want v2=%d and 10 in all", i, v1, v2, want)
			}
		}
		if _, err := r.Rollback(ctx, state); err != nil {
			t.Fatal(err)
		}
		if v1, v2 := replicas(get(t, c, "my-app-v1")), replicas(get(t, c, "my-app-v2")); v1 != 10 || v2 != 0 {
			t.Errorf("after rollback v1=%d v2=%d, want 10 and 0", v1, v2)
		}
	})
	t.Run("shift retried after the baseline grew", func(t *testing.T) {
		p := loadPolicy(t, "my-app-shift.yaml")
		p.Spec.Strategy.Steps = []string{"1", "50%", "100%"}
		c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 4, 4), deployment("my-app-v2", "v2.0.0", 0, 0))
		r, _ := NewRelease(c, p, zerolog.Nop())

		// The first try: baseline 4, one step, rolled back.
		first := prepare(t, r)
		if _, err := r.SetStep(ctx, 0, first); err != nil {
			t.Fatal(err)
		}
		if v1 := replicas(get(t, c, "my-app-v1")); v1 != 3 {
			t.Fatalf("first try, step 1: baseline %d, want 3", v1)
		}
		if done, err := r.Rollback(ctx, first); err != nil || !done {
			t.Fatalf("rollback: done=%t err=%v", done, err)
		}
		if v1, v2 := replicas(get(t, c, "my-app-v1")), replicas(get(t, c, "my-app-v2")); v1 != 4 || v2 != 0 {
			t.Fatalf("after the first rollback v1=%d v2=%d, want 4 and 0", v1, v2)
		}

		// Between the tries the baseline is scaled up for traffic; the retry is a new canary.
		scaleTo(t, c, "my-app-v1", 10)
		second := prepare(t, r)
		if _, err := r.SetStep(ctx, 0, second); err != nil {
			t.Fatal(err)
		}
		if v1, v2 := replicas(get(t, c, "my-app-v1")), replicas(get(t, c, "my-app-v2")); v1 != 9 || v2 != 1 {
			t.Errorf("retry, step 1: v1=%d v2=%d, want 9 and 1 (the baseline cut to 3 means the first try's size was reused)", v1, v2)
		}
		if _, err := r.SetStep(ctx, 1, second); err != nil {
			t.Fatal(err)
		}
		if v1, v2 := replicas(get(t, c, "my-app-v1")), replicas(get(t, c, "my-app-v2")); v1 != 5 || v2 != 5 {
			t.Errorf("retry, step 2 (50%%): v1=%d v2=%d, want 5 and 5", v1, v2)
		}
		if _, err := r.Rollback(ctx, second); err != nil {
			t.Fatal(err)
		}
		if v1, v2 := replicas(get(t, c, "my-app-v1")), replicas(get(t, c, "my-app-v2")); v1 != 10 || v2 != 0 {
			t.Errorf("after the retry's rollback v1=%d v2=%d, want 10 and 0", v1, v2)
		}
	})
}

// colour is a blue/green Deployment: its selector names the Deployment, not the version, since
// the version it runs changes from release to release and a selector cannot.
func colour(name, version string, n int32) *appsv1.Deployment {
	d := deployment(name, version, n, n)
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "my-app", "colour": name}}
	d.Spec.Template.Labels = map[string]string{"app": "my-app", "colour": name, "version": version}
	return d
}

func TestBlueGreen(t *testing.T) {
	ctx := context.Background()
	service := func(version string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "my-app", Namespace: ns},
			Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "my-app", "version": version}},
		}
	}
	selector := func(t *testing.T, c *fake.Clientset) string {
		t.Helper()
		s, err := c.CoreV1().Services(ns).Get(ctx, "my-app", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s.Spec.Selector["version"]
	}
	// runPods gives a Deployment its replicas as Ready pods of its template, as kubelets would.
	runPods := func(t *testing.T, c *fake.Clientset, name string, ready int) {
		t.Helper()
		d := get(t, c, name)
		for i := range ready {
			p := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%s-%d", name, d.Spec.Template.Labels["version"], i), Namespace: ns, Labels: d.Spec.Template.Labels},
				Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
			}
			if _, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
	}
	// policy is the example with the roles given to Deployments and versions.
	policy := func(t *testing.T, baseline, baselineVersion, canary, canaryVersion string) *policies.Policy {
		t.Helper()
		p := loadPolicy(t, "my-app-bluegreen.yaml")
		p.Spec.Target.Baseline = policies.Arm{Deployment: baseline, Version: baselineVersion}
		p.Spec.Target.Canary = policies.Arm{Deployment: canary, Version: canaryVersion}
		return p
	}

	t.Run("rollback switches back and leaves both scaled", func(t *testing.T) {
		c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 10, 10), service("v1.0.0"))
		runPods(t, c, "my-app-v2", 10)
		r, _ := NewRelease(c, loadPolicy(t, "my-app-bluegreen.yaml"), zerolog.Nop())
		state := prepare(t, r)
		if got := state[stateServiceVersion]; got != "v1.0.0" {
			t.Errorf("remembered the Service selecting %q, want v1.0.0", got)
		}
		if done, err := r.SetStep(ctx, 0, state); err != nil || !done {
			t.Fatalf("switch with every canary pod Ready: done=%t err=%v", done, err)
		}
		if got := selector(t, c); got != "v2.0.0" {
			t.Fatalf("selector after the switch: %q", got)
		}
		if _, err := r.Rollback(ctx, state); err != nil {
			t.Fatal(err)
		}
		if got := selector(t, c); got != "v1.0.0" {
			t.Errorf("selector after rollback: %q, want v1.0.0", got)
		}
		if replicas(get(t, c, "my-app-v2")) != 10 || replicas(get(t, c, "my-app-v1")) != 10 {
			t.Error("blue/green rollback must leave both versions scaled")
		}
	})

	t.Run("the switch waits for every canary pod of the canary's version to be Ready", func(t *testing.T) {
		// green rolls from v1.9.0 to the canary v2.0.0: its old pods are Ready, its new ones not yet.
		c := fake.NewClientset(colour("blue", "v1.0.0", 10), colour("green", "v1.9.0", 10), service("v1.0.0"))
		runPods(t, c, "green", 10)
		green := get(t, c, "green")
		green.Spec.Template.Labels["version"] = "v2.0.0"
		if _, err := c.AppsV1().Deployments(ns).Update(ctx, green, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		r, _ := NewRelease(c, policy(t, "blue", "v1.0.0", "green", "v2.0.0"), zerolog.Nop())
		state := prepare(t, r)
		runPods(t, c, "green", 9)
		if done, err := r.SetStep(ctx, 0, state); err != nil || done {
			t.Fatalf("9 of 10 canary pods Ready (and 10 of the version before): done=%t err=%v, want not done", done, err)
		}
		if got := selector(t, c); got != "v1.0.0" {
			t.Fatalf("the Service was switched to %q before the canary's pods were Ready", got)
		}
		runPods(t, c, "green", 10)
		if done, err := r.SetStep(ctx, 0, state); err != nil || !done {
			t.Fatalf("every canary pod Ready: done=%t err=%v", done, err)
		}
		if got := selector(t, c); got != "v2.0.0" {
			t.Errorf("after the switch the Service selects %q, want v2.0.0", got)
		}
	})

	t.Run("blue/green, two Deployments alternating roles over three releases, the third rolled back", func(t *testing.T) {
		c := fake.NewClientset(colour("blue", "v1.0.0", 10), colour("green", "v2.0.0", 10), service("v1.0.0"))
		// release runs one canary to its end and returns the selector it left.
		release := func(p *policies.Policy, promote bool) string {
			t.Helper()
			r, err := NewRelease(c, p, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			state := prepare(t, r)
			runPods(t, c, p.Spec.Target.Canary.Deployment, 10)
			if done, err := r.SetStep(ctx, 0, state); err != nil || !done {
				t.Fatalf("canary %s: switch done=%t err=%v", p.Spec.Target.Canary.Version, done, err)
			}
			if got, want := selector(t, c), p.Spec.Target.Canary.Version; got != want {
				t.Fatalf("canary %s: Service selects %q, want %q", want, got, want)
			}
			act := r.Rollback
			if promote {
				act = r.Promote
			}
			if done, err := act(ctx, state); err != nil || !done {
				t.Fatalf("canary %s: done=%t err=%v", p.Spec.Target.Canary.Version, done, err)
			}
			return selector(t, c)
		}
		// rerun puts a new version on a Deployment and scales it up: the next release's canary.
		rerun := func(name, version string) {
			t.Helper()
			d := get(t, c, name)
			d.Spec.Template.Labels["version"] = version
			n := int32(10)
			d.Spec.Replicas = &n
			if _, err := c.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}

		if got := release(policy(t, "blue", "v1.0.0", "green", "v2.0.0"), true); got != "v2.0.0" {
			t.Fatalf("release 1 promoted: Service selects %q, want v2.0.0", got)
		}
		if n := replicas(get(t, c, "blue")); n != 0 {
			t.Errorf("release 1: blue (the old baseline) has %d replicas, want 0", n)
		}
		rerun("blue", "v3.0.0")
		if got := release(policy(t, "green", "v2.0.0", "blue", "v3.0.0"), true); got != "v3.0.0" {
			t.Fatalf("release 2 promoted: Service selects %q, want v3.0.0", got)
		}
		rerun("green", "v4.0.0")
		if got := release(policy(t, "blue", "v3.0.0", "green", "v4.0.0"), false); got != "v3.0.0" {
			t.Errorf("release 3 rolled back: Service selects %q, want v3.0.0 (the pods of the release before)", got)
		}
		if n := replicas(get(t, c, "blue")); n != 10 {
			t.Errorf("release 3 rolled back to blue, which has %d replicas, want 10", n)
		}
	})
}

func replicaSet(d *appsv1.Deployment, revision, version string, n int32) *appsv1.ReplicaSet {
	labels := map[string]string{"app": "my-app", "version": version, appsv1.DefaultDeploymentUniqueLabelKey: "h" + revision}
	selector := map[string]string{"app": "my-app", appsv1.DefaultDeploymentUniqueLabelKey: "h" + revision}
	ctrl := true
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name + "-" + revision, Namespace: ns, Labels: labels,
			Annotations:     map[string]string{revisionAnnotation: revision},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &ctrl}},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "my-app:" + version}}}},
		},
	}
}

// rolloutAtRevision3 is a Deployment updated to the canary v2.0.0, revision 3, before coalmine
// starts: revision 1 ran v1.0.0 and revision 2 a v1.0.0 hotfix that passed analysis.
func rolloutAtRevision3() []runtime.Object {
	d := deployment("my-app", "v2.0.0", 10, 10)
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "my-app"}}
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "my-app:v2.0.0"}}
	quarter := intstr.FromString("25%")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &quarter, MaxUnavailable: &quarter}}
	d.Annotations = map[string]string{revisionAnnotation: "3"}
	rs1 := replicaSet(d, "1", "v1.0.0", 0)
	rs2 := replicaSet(d, "2", "v1.0.0", 9)
	rs2.Spec.Template.Spec.Containers[0].Image = "my-app:v1.0.0-hotfix"
	rs3 := replicaSet(d, "3", "v2.0.0", 1)
	return []runtime.Object{d, rs1, rs2, rs3}
}

// heldAtStep leaves the rollout's Deployment (the first object) as a step leaves it: paused and
// held.
func heldAtStep(objs []runtime.Object) []runtime.Object {
	d := objs[0].(*appsv1.Deployment)
	d.Spec.Paused = true
	hold(d)
	return objs
}

// hold sets a rollout step's hold on d, as setStep leaves it.
func hold(d *appsv1.Deployment) {
	deadline := int32(holdDeadline)
	d.Spec.MinReadySeconds, d.Spec.ProgressDeadlineSeconds = holdSeconds, &deadline
}

// pauseMidCanary leaves the Deployment as a canary step does: paused, with coalmine's surge.
func pauseMidCanary(t *testing.T, c *fake.Clientset) {
	t.Helper()
	d := get(t, c, "my-app")
	surge, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &zero}}
	d.Spec.Paused = true
	hold(d)
	if _, err := c.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestRolloutRollbackUndoesToLastGoodRevision(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app-rollout.yaml")
	c := fake.NewClientset(rolloutAtRevision3()...)
	r, _ := NewRelease(c, p, zerolog.Nop())
	state := prepare(t, r)
	if got := state[stateLastGoodRevision]; got != "2" {
		t.Errorf("last good revision remembered as %q, want 2 (the newest that ran v1.0.0)", got)
	}
	if s, ok, err := originalStrategy(state); err != nil || !ok || s.RollingUpdate == nil || s.RollingUpdate.MaxSurge.String() != "25%" {
		t.Errorf("original strategy remembered as %q (%v)", state[stateOriginalStrategy], err)
	}
	pauseMidCanary(t, c)

	c.ClearActions()
	if _, err := r.Rollback(ctx, state); err != nil {
		t.Fatal(err)
	}
	// One patch resumes, undoes and restores the strategy together, and sets only those.
	var patches []k8stesting.PatchAction
	for _, a := range c.Actions() {
		if pa, ok := a.(k8stesting.PatchAction); ok {
			patches = append(patches, pa)
		} else if a.GetVerb() == "update" {
			t.Errorf("rollback updated the whole %s: coalmine patches the fields it owns", a.GetResource().Resource)
		}
	}
	if len(patches) != 1 {
		t.Fatalf("rollback made %d patches, want 1", len(patches))
	}
	if paths := patchPaths(t, patches[0]); !slices.Equal(paths, []string{"/metadata/resourceVersion", "/spec/minReadySeconds", "/spec/paused", "/spec/progressDeadlineSeconds", "/spec/strategy", "/spec/template"}) {
		t.Errorf("rollback patched %v", paths)
	}
	got := get(t, c, "my-app")
	if got.Spec.Paused {
		t.Error("still paused: an undo of a paused Deployment goes nowhere")
	}
	if img := got.Spec.Template.Spec.Containers[0].Image; img != "my-app:v1.0.0-hotfix" {
		t.Errorf("undone to image %q, want revision 2's my-app:v1.0.0-hotfix (not blindly the previous one)", img)
	}
	if _, ok := got.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; ok {
		t.Error("the pod-template-hash label was copied into the Deployment")
	}
	if ms := got.Spec.Strategy.RollingUpdate.MaxSurge.String(); ms != "25%" {
		t.Errorf("strategy not restored: maxSurge %s", ms)
	}
	for k := range got.Annotations {
		if strings.HasPrefix(k, "coalmine.dev/") {
			t.Errorf("rollback wrote annotation %s: coalmine's state lives in the record", k)
		}
	}
}

func TestRolloutPromoteRestoresStrategy(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app-rollout.yaml")
	c := fake.NewClientset(rolloutAtRevision3()...)
	r, _ := NewRelease(c, p, zerolog.Nop())
	state := prepare(t, r)
	pauseMidCanary(t, c)
	// Mid-rollout: one pod of ten updated.
	d := get(t, c, "my-app")
	d.Status = appsv1.DeploymentStatus{Replicas: 11, UpdatedReplicas: 1, ReadyReplicas: 11, AvailableReplicas: 11}
	if _, err := c.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	done, err := r.Promote(ctx, state)
	if err != nil || done {
		t.Fatalf("promote with one pod of ten updated: done=%t err=%v, want not done", done, err)
	}
	d = get(t, c, "my-app")
	if d.Spec.Paused {
		t.Error("promotion left the rollout paused")
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxSurge.String() != "25%" || ru.MaxUnavailable.String() != "25%" {
		t.Errorf("strategy not restored: %+v", d.Spec.Strategy)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "my-app:v2.0.0" {
		t.Errorf("promotion changed the template to %s", img)
	}
	d.Status = appsv1.DeploymentStatus{Replicas: 10, UpdatedReplicas: 10, ReadyReplicas: 10, AvailableReplicas: 10}
	if _, err := c.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if done, err := r.Promote(ctx, state); err != nil || !done {
		t.Fatalf("promote with the rollout complete: done=%t err=%v", done, err)
	}
	for k := range get(t, c, "my-app").Annotations {
		if strings.HasPrefix(k, "coalmine.dev/") {
			t.Errorf("promotion wrote annotation %s: coalmine's state lives in the record", k)
		}
	}
}

func TestHealthGates(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app.yaml")
	stalledCanary := deployment("my-app-v2", "v2.0.0", 1, 0)
	stalledCanary.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: "ReplicaSet has timed out progressing."}}
	readyPod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "my-app-v2-y", Namespace: ns, Labels: map[string]string{"app": "my-app", "version": "v2.0.0"}},
		Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	restarting := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "my-app-v2-x", Namespace: ns, Labels: map[string]string{"app": "my-app", "version": "v2.0.0"}},
		Status: corev1.PodStatus{
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", RestartCount: 4}},
		},
	}
	tests := []struct {
		name        string
		objs        []runtime.Object
		wantReady   bool
		wantProblem string
	}{
		{"ready", []runtime.Object{deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 1, 1), readyPod}, true, ""},
		{"pods not ready though the status says so", []runtime.Object{deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 1, 1)}, false, ""},
		{"not ready yet", []runtime.Object{deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 1, 0)}, false, ""},
		{"stalled", []runtime.Object{deployment("my-app-v1", "v1.0.0", 10, 10), stalledCanary}, false, "ProgressDeadlineExceeded"},
		{"restarts climbing", []runtime.Object{deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 1, 1), restarting}, false, "restarted 4 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := NewRelease(fake.NewClientset(tt.objs...), p, zerolog.Nop())
			ready, problem, err := r.Health(ctx, 0, prepare(t, r))
			if err != nil {
				t.Fatal(err)
			}
			if ready != tt.wantReady || (tt.wantProblem == "") != (problem == "") || !strings.Contains(problem, tt.wantProblem) {
				t.Errorf("ready=%t problem=%q; want %t %q", ready, problem, tt.wantReady, tt.wantProblem)
			}
		})
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app.yaml")
	c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 1, 1))
	r, _ := NewRelease(c, p, zerolog.Nop())
	d := NewDryRun(r, zerolog.Nop())
	state, err := d.Prepare(ctx)
	if err != nil || state[stateBaselineReplicas] != "10" {
		t.Fatalf("dry-run prepare: %v, %v", state, err)
	}
	_, _ = d.SetStep(ctx, 1, state)
	_, _ = d.Promote(ctx, state)
	_, _ = d.Rollback(ctx, state)
	_ = d.SaveProgress(ctx, `{"phase":"progressing"}`)
	_ = d.Event(ctx, "k", true, "CanaryRolledBack", "x")
	if _, _, err := d.Health(ctx, 0, state); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Progress(ctx); got != `{"phase":"progressing"}` {
		t.Errorf("dry-run progress %q", got)
	}
	if n := writes(c); n != 0 {
		t.Errorf("the dry run wrote %d times: %v", n, c.Actions())
	}
}

// TestRolloutStepHeld shows a rollout step's hold: a step sets minReadySeconds so that the new
// pods never count as available while coalmine holds the step, and a rollout found past its
// step (resumed by hand, or moved on before the pause took) is paused where it is, with a
// warning Event, every tick.
func TestRolloutStepHeld(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app-rollout.yaml")
	tests := []struct {
		name      string
		edit      func(objs []runtime.Object)
		wantEvent bool
	}{
		{name: "where the step left it", edit: func([]runtime.Object) {}},
		{name: "resumed by hand", edit: func(objs []runtime.Object) { objs[0].(*appsv1.Deployment).Spec.Paused = false }, wantEvent: true},
		{name: "the new ReplicaSet past the step", edit: func(objs []runtime.Object) {
			n := int32(10)
			objs[3].(*appsv1.ReplicaSet).Spec.Replicas = &n
		}, wantEvent: true},
		{name: "the hold lifted by hand", edit: func(objs []runtime.Object) { objs[0].(*appsv1.Deployment).Spec.MinReadySeconds = 0 }, wantEvent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := heldAtStep(rolloutAtRevision3())
			tt.edit(objs)
			c := fake.NewClientset(objs...)
			r, err := NewRelease(c, p, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := r.Health(ctx, 0, map[string]string{}); err != nil {
				t.Fatal(err)
			}
			d := get(t, c, "my-app")
			if !d.Spec.Paused || !held(d) {
				t.Errorf("after a tick: paused=%t minReadySeconds=%d, want paused and held", d.Spec.Paused, d.Spec.MinReadySeconds)
			}
			evs, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := len(evs.Items) == 1 && evs.Items[0].Reason == "CanaryStepOvershot" && evs.Items[0].Type == corev1.EventTypeWarning
			if got != tt.wantEvent {
				t.Errorf("events %+v, want a CanaryStepOvershot warning: %t", evs.Items, tt.wantEvent)
			}
		})
	}
}

// TestRolloutStepSetsTheHold shows that a step resumes the rollout with the hold set, and that
// promotion lifts it to the Deployment's own value.
func TestRolloutStepSetsTheHold(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app-rollout.yaml")
	objs := rolloutAtRevision3()
	objs[0].(*appsv1.Deployment).Spec.MinReadySeconds = 7
	c := fake.NewClientset(objs...)
	r, err := NewRelease(c, p, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	state := prepare(t, r)
	if state[stateOriginalMinReady] != "7" {
		t.Fatalf("prepare remembered minReadySeconds %q, want 7", state[stateOriginalMinReady])
	}
	// The fake has no controller: step 0 asks for 1 new pod, which revision 3 already has.
	if _, err := r.SetStep(ctx, 0, state); err != nil {
		t.Fatal(err)
	}
	if d := get(t, c, "my-app"); !d.Spec.Paused || !held(d) {
		t.Fatalf("after the step: paused=%t minReadySeconds=%d, want paused and held", d.Spec.Paused, d.Spec.MinReadySeconds)
	}
	if _, err := r.Promote(ctx, state); err != nil {
		t.Fatal(err)
	}
	if d := get(t, c, "my-app"); d.Spec.Paused || d.Spec.MinReadySeconds != 7 || d.Spec.ProgressDeadlineSeconds == nil || *d.Spec.ProgressDeadlineSeconds != defaultProgressDeadline {
		t.Errorf("after promotion: paused=%t minReadySeconds=%d progressDeadlineSeconds=%v, want resumed with 7 and 600", d.Spec.Paused, d.Spec.MinReadySeconds, d.Spec.ProgressDeadlineSeconds)
	}
}

// TestRolloutStepNeverWaitsInATick shows a step bigger than the new ReplicaSet: the first call
// resumes the rollout, held, and returns at once; calls while the controller creates the pods
// write nothing; the call that finds them pauses and reports the step in place.
func TestRolloutStepNeverWaitsInATick(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app-rollout.yaml")
	p.Spec.Strategy.Steps = []string{"1", "50%"}
	objs := heldAtStep(rolloutAtRevision3())
	c := fake.NewClientset(objs...)
	r, err := NewRelease(c, p, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	state := prepare(t, r)
	if done, err := r.SetStep(ctx, 1, state); err != nil || done {
		t.Fatalf("step 2 (5 new pods, 1 there): done=%t err=%v, want not done", done, err)
	}
	d := get(t, c, "my-app")
	if d.Spec.Paused || !held(d) || d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxSurge.IntValue() != 5 || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Fatalf("resumed for the step: paused=%t held=%t strategy=%+v, want resumed, held, maxSurge 5, maxUnavailable 0", d.Spec.Paused, held(d), d.Spec.Strategy.RollingUpdate)
	}
	before := writes(c)
	if done, err := r.SetStep(ctx, 1, state); err != nil || done {
		t.Fatalf("again before the pods are there: done=%t err=%v", done, err)
	}
	if n := writes(c) - before; n != 0 {
		t.Errorf("a call while the controller works wrote %d times, want 0", n)
	}
	rs, err := c.AppsV1().ReplicaSets(ns).Get(ctx, "my-app-3", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	five := int32(5)
	rs.Spec.Replicas = &five
	if _, err := c.AppsV1().ReplicaSets(ns).Update(ctx, rs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if done, err := r.SetStep(ctx, 1, state); err != nil || !done {
		t.Fatalf("the step's pods created: done=%t err=%v, want done", done, err)
	}
	if d := get(t, c, "my-app"); !d.Spec.Paused || !held(d) {
		t.Errorf("after the step: paused=%t held=%t, want paused and held", d.Spec.Paused, held(d))
	}
}

// TestBlueGreenSwitchesOnlyTheAppsService shows the Services a blue/green policy may not
// re-point: one with no selector (it would gain one) and one that selects another app.
func TestBlueGreenSwitchesOnlyTheAppsService(t *testing.T) {
	ctx := context.Background()
	for name, selector := range map[string]map[string]string{
		"no selector":   nil,
		"another app":   {"app": "billing", "version": "v1.0.0"},
		"no app at all": {"version": "v1.0.0"},
	} {
		t.Run(name, func(t *testing.T) {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "my-app", Namespace: ns}, Spec: corev1.ServiceSpec{Selector: selector}}
			c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 10, 10), svc)
			r, _ := NewRelease(c, loadPolicy(t, "my-app-bluegreen.yaml"), zerolog.Nop())
			if _, err := r.Prepare(ctx); err == nil || !strings.Contains(err.Error(), "coalmine switches only") {
				t.Errorf("prepare: err %v, want the Service refused", err)
			}
			if _, err := r.Rollback(ctx, map[string]string{stateServiceVersion: "v1.0.0"}); err == nil {
				t.Error("rollback switched a Service it must not touch")
			}
			got, _ := c.CoreV1().Services(ns).Get(ctx, "my-app", metav1.GetOptions{})
			if fmt.Sprint(got.Spec.Selector) != fmt.Sprint(selector) {
				t.Errorf("the Service's selector is now %v, want %v untouched", got.Spec.Selector, selector)
			}
		})
	}
}
