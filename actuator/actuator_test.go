package actuator

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
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
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: "uid-" + "name", Annotations: map[string]string{}},
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
	steps := []struct {
		step       int
		wantCanary int32
	}{{0, 1}, {1, 5}, {2, 10}}
	for _, s := range steps {
		if err := r.SetStep(ctx, s.step); err != nil {
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
	if err := r.SetStep(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if writes(c) != before {
		t.Error("applying the same step twice wrote to the cluster again")
	}
	if got := get(t, c, "my-app-v2").Annotations[AnnotationBaselineReplicas]; got != "10" {
		t.Errorf("baseline replicas recorded as %q", got)
	}
	// The canary's pods are Ready (status says 0): promotion waits before touching the baseline.
	done, err := r.Promote(ctx)
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
	if done, err := r.Promote(ctx); err != nil || !done {
		t.Fatalf("promote: done=%t err=%v", done, err)
	}
	if got := replicas(get(t, c, "my-app-v1")); got != 0 {
		t.Errorf("baseline has %d replicas after promotion, want 0", got)
	}
	fp, err := r.Fingerprint(ctx)
	if err != nil || fp != "my-app-v1=0 my-app-v2=10" {
		t.Errorf("fingerprint %q, %v", fp, err)
	}
}

func TestScaleRollbackAndShift(t *testing.T) {
	ctx := context.Background()
	t.Run("scale rollback sets the canary to 0", func(t *testing.T) {
		p := loadPolicy(t, "my-app.yaml")
		c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 1, 1))
		r, _ := NewRelease(c, p, zerolog.Nop())
		if err := r.SetStep(ctx, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if got := replicas(get(t, c, "my-app-v2")); got != 0 {
			t.Errorf("canary has %d replicas, want 0", got)
		}
	})
	t.Run("shift keeps the total and reverses", func(t *testing.T) {
		p := loadPolicy(t, "my-app-shift.yaml") // steps 1, 2, 5, 10
		c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 0, 0))
		r, _ := NewRelease(c, p, zerolog.Nop())
		for i, want := range []int32{1, 2, 5, 10} {
			if err := r.SetStep(ctx, i); err != nil {
				t.Fatal(err)
			}
			v1, v2 := replicas(get(t, c, "my-app-v1")), replicas(get(t, c, "my-app-v2"))
			if v2 != want || v1+v2 != 10 {
				t.Errorf("step %d: v1=%d v2=%d, want v2=%d and 10 in all", i, v1, v2, want)
			}
		}
		if _, err := r.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if v1, v2 := replicas(get(t, c, "my-app-v1")), replicas(get(t, c, "my-app-v2")); v1 != 10 || v2 != 0 {
			t.Errorf("after rollback v1=%d v2=%d, want 10 and 0", v1, v2)
		}
	})
}

func TestBlueGreen(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app-bluegreen.yaml")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "my-app", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "my-app", "version": "v1.0.0"}},
	}
	c := fake.NewClientset(deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 10, 10), svc)
	r, _ := NewRelease(c, p, zerolog.Nop())
	selector := func() string {
		s, err := c.CoreV1().Services(ns).Get(ctx, "my-app", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s.Spec.Selector["version"]
	}
	if err := r.SetStep(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := selector(); got != "v2.0.0" {
		t.Fatalf("selector after the switch: %q", got)
	}
	if _, err := r.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := selector(); got != "v1.0.0" {
		t.Errorf("selector after rollback: %q, want v1.0.0", got)
	}
	if replicas(get(t, c, "my-app-v2")) != 10 {
		t.Error("blue/green rollback must leave both versions scaled")
	}
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

func TestRolloutRollbackUndoesToLastGoodRevision(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app-rollout.yaml")
	// Three revisions: 1 ran v1.0.0, 2 ran a v1.0.0 hotfix that passed analysis, 3 is the
	// canary. The Deployment is paused mid-canary with coalmine's surge strategy.
	d := deployment("my-app", "v2.0.0", 10, 10)
	d.UID = "uid-my-app"
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "my-app"}}
	d.Spec.Paused = true
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "my-app:v2.0.0"}}
	surge, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &zero}}
	d.Annotations = map[string]string{
		revisionAnnotation:         "3",
		AnnotationLastGoodRevision: "2",
		AnnotationOriginalStrategy: `{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}}`,
	}
	rs1 := replicaSet(d, "1", "v1.0.0", 0)
	rs2 := replicaSet(d, "2", "v1.0.0", 9)
	rs2.Spec.Template.Spec.Containers[0].Image = "my-app:v1.0.0-hotfix"
	rs3 := replicaSet(d, "3", "v2.0.0", 1)
	c := fake.NewClientset(d, rs1, rs2, rs3)
	var updates []*appsv1.Deployment
	c.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		updates = append(updates, a.(k8stesting.UpdateAction).GetObject().(*appsv1.Deployment).DeepCopy())
		return false, nil, nil
	})
	r, _ := NewRelease(c, p, zerolog.Nop())
	if _, err := r.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if len(updates) == 0 {
		t.Fatal("rollback wrote nothing")
	}
	// The first update resumes and undoes together; a later one only tidies annotations.
	got := updates[0]
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
}

func TestHealthGates(t *testing.T) {
	ctx := context.Background()
	p := loadPolicy(t, "my-app.yaml")
	stalledCanary := deployment("my-app-v2", "v2.0.0", 1, 0)
	stalledCanary.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: "ReplicaSet has timed out progressing."}}
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
		{"not ready yet", []runtime.Object{deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 1, 0)}, false, ""},
		{"stalled", []runtime.Object{deployment("my-app-v1", "v1.0.0", 10, 10), stalledCanary}, false, "ProgressDeadlineExceeded"},
		{"restarts climbing", []runtime.Object{deployment("my-app-v1", "v1.0.0", 10, 10), deployment("my-app-v2", "v2.0.0", 1, 1), restarting}, false, "restarted 4 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := NewRelease(fake.NewClientset(tt.objs...), p, zerolog.Nop())
			ready, problem, err := r.Health(ctx, 0)
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
	_ = d.SetStep(ctx, 1)
	_, _ = d.Promote(ctx)
	_, _ = d.Rollback(ctx)
	_ = d.SaveProgress(ctx, `{"phase":"progressing"}`)
	_ = d.Event(ctx, "k", true, "CanaryRolledBack", "x")
	if _, _, err := d.Health(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Progress(ctx); got != `{"phase":"progressing"}` {
		t.Errorf("dry-run progress %q", got)
	}
	if n := writes(c); n != 0 {
		t.Errorf("the dry run wrote %d times: %v", n, c.Actions())
	}
}
