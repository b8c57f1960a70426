package daemon

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/coalmine/coalmine/policies"
)

// policyObject is the example policy as the API server serves it in a namespace.
func policyObject(t *testing.T, namespace, uid string, generation int64, edit func(spec map[string]any)) *unstructured.Unstructured {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(example(t)), &doc); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	o := &unstructured.Unstructured{}
	if err := o.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	o.SetNamespace(namespace)
	o.SetUID(types.UID(uid))
	o.SetGeneration(generation)
	if edit != nil {
		edit(o.Object["spec"].(map[string]any))
	}
	return o
}

func TestObjectStore(t *testing.T) {
	s := newObjectStore(admission(Options{}), zerolog.Nop())
	setInterval := func(d string) func(map[string]any) {
		return func(spec map[string]any) { spec["analysis"].(map[string]any)["interval"] = d }
	}

	if inForce, refused := s.set(policyObject(t, "default", "u1", 1, nil)); !inForce || refused {
		t.Fatalf("a new valid object: in force %v, refused %v", inForce, refused)
	}
	p, ok := s.Get("default/my-app")
	if !ok || Key(p) != "default/my-app" || strings.Join(s.For("default", "my-app-v2"), ",") != "default/my-app" {
		t.Fatalf("policy not in force: %v %v", p, s.For("default", "my-app-v2"))
	}
	// A status write leaves the generation as it was: nothing to do, the same policy in force.
	if inForce, refused := s.set(policyObject(t, "default", "u1", 1, nil)); inForce || refused {
		t.Error("the same generation again counts as a change")
	}
	if q, _ := s.Get("default/my-app"); q != p {
		t.Error("the same generation replaced the policy in force")
	}

	// An invalid generation is refused, with the file loader's words, and the last good one
	// stays in force.
	if inForce, refused := s.set(policyObject(t, "default", "u1", 2, setInterval("-30s"))); inForce || !refused {
		t.Fatalf("an invalid generation: in force %v, refused %v; want the last good one kept, refused", inForce, refused)
	}
	err, gen := s.refusedAt("default/my-app")
	if err == nil || gen != 2 || message(err) != `spec.analysis.interval must be a positive duration, got "-30s"` {
		t.Fatalf("refusal %v at generation %d", err, gen)
	}
	if q, _ := s.Get("default/my-app"); q != p {
		t.Error("the last good generation is no longer in force")
	}
	// A valid generation clears the refusal and is in force.
	s.set(policyObject(t, "default", "u1", 3, setInterval("10s")))
	if err, _ := s.refusedAt("default/my-app"); err != nil {
		t.Errorf("still refused: %v", err)
	}
	if q, _ := s.Get("default/my-app"); q == p || time.Duration(q.Spec.Analysis.Interval) != 10*time.Second || s.generation("default/my-app") != 3 {
		t.Error("the new generation is not in force")
	}

	// A policy in namespace a naming namespace default is refused and acts nowhere.
	s.set(policyObject(t, "a", "u2", 1, nil))
	if _, ok := s.Get("a/my-app"); ok {
		t.Error("a policy targeting another namespace is in force")
	}
	if err, _ := s.refusedAt("a/my-app"); err == nil || !strings.Contains(err.Error(), `must be the policy's own namespace "a"`) {
		t.Errorf("want the namespace refused, got %v", err)
	}
	if len(s.All()) != 1 {
		t.Errorf("want one policy in force, got %d", len(s.All()))
	}

	// Deleted and created again: the old object's policy does not stay in force.
	s.set(policyObject(t, "default", "u3", 1, setInterval("0s")))
	if _, ok := s.Get("default/my-app"); ok {
		t.Error("a new object with the old one's name kept the old one's policy")
	}
	s.remove("default/my-app")
	if err, _ := s.refusedAt("default/my-app"); err != nil || len(s.All()) != 0 {
		t.Error("a removed object is still known")
	}
}

func TestNextStatusOnTransitionsOnly(t *testing.T) {
	p := &policies.Policy{}
	p.Spec.Target.Baseline.Version, p.Spec.Target.Canary.Version = "v1", "v2"
	t0, t1 := metav1.NewTime(time.Unix(100, 0)), metav1.NewTime(time.Unix(200, 0))
	analyzing := sighting{phase: policies.PhaseAnalyzing, step: 1, steps: 3, verdict: "inconclusive", reason: "Hold", message: "p = 0.4"}

	st, changed := nextStatus(policies.Status{}, 1, p, analyzing, nil, t0)
	if !changed || st.Phase != policies.PhaseAnalyzing || st.Step != "1/3" || st.Verdict != "inconclusive" ||
		st.CanaryVersion != "v2" || st.BaselineVersion != "v1" || !st.LastTransitionTime.Equal(&t0) || st.ObservedGeneration != 1 {
		t.Fatalf("first status: %+v, changed %v", st, changed)
	}
	if len(st.Conditions) != 1 || st.Conditions[0].Status != metav1.ConditionTrue {
		t.Errorf("want Accepted True, got %+v", st.Conditions)
	}
	// A quiet tick: new numbers, same phase, step and verdict: nothing to write.
	quiet := analyzing
	quiet.message = "p = 0.3"
	if _, changed := nextStatus(st, 1, p, quiet, nil, t1); changed {
		t.Error("a quiet tick is a transition")
	}
	// A tick that saw no verdict (pods not Ready) keeps the last one.
	waiting := analyzing
	waiting.verdict, waiting.reason = "", "Wait"
	if _, changed := nextStatus(st, 1, p, waiting, nil, t1); changed {
		t.Error("a tick without a verdict is a transition")
	}
	// The next step is a transition, but not of the phase.
	next := analyzing
	next.step, next.verdict = 2, "pass"
	st2, changed := nextStatus(st, 1, p, next, nil, t1)
	if !changed || st2.Step != "2/3" || st2.Verdict != "pass" || !st2.LastTransitionTime.Equal(&t0) {
		t.Errorf("next step: %+v, changed %v", st2, changed)
	}
	// Refused: phase Invalid, its message, Accepted False; the running canary's step stays.
	refused := policies.Errors{{Field: "spec.target.namespace", Msg: "must be the policy's own namespace"}}
	st3, changed := nextStatus(st2, 2, p, next, refused, t1)
	if !changed || st3.Phase != policies.PhaseInvalid || !strings.HasPrefix(st3.Message, "spec.target.namespace must be") ||
		!strings.Contains(st3.Message, "last valid generation stays in force") || st3.Step != "2/3" || st3.Conditions[0].Status != metav1.ConditionFalse {
		t.Errorf("refused: %+v, changed %v", st3, changed)
	}
	// A refused object with nothing in force shows no step nor verdict.
	st4, _ := nextStatus(policies.Status{}, 1, nil, sighting{}, refused, t1)
	if st4.Phase != policies.PhaseInvalid || st4.Step != "" || st4.Verdict != "" || strings.Contains(st4.Message, "stays in force") {
		t.Errorf("refused with nothing in force: %+v", st4)
	}
	// Pending clears the verdict of an earlier canary.
	st5, changed := nextStatus(st2, 1, p, sighting{phase: policies.PhasePending}, nil, t1)
	if !changed || st5.Verdict != "" || st5.Step != "" {
		t.Errorf("pending: %+v", st5)
	}
}
