package simulator

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// TestClusterPodsListen checks that Ready, annotated pods of the scenario's apps get a listener on
// their pod IP and port that serves their version, and that others do not.
func TestClusterPodsListen(t *testing.T) {
	ips, port := podAddresses(t, 5)
	custom := func(p *corev1.Pod) { p.Annotations[annotationPath] = "/custom" }
	unannotated := func(p *corev1.Pod) { delete(p.Annotations, annotationScrape) }
	a := testPod("my-app-v1-a", "v1.0.0", ips[0], port)
	b := testPod("my-app-v1-b", "v1.0.0", ips[1], port)
	c := testPod("my-app-v2-c", "v2.0.0", ips[2], port, custom)
	d := testPod("my-app-v1-d", "v1.0.0", ips[3], port, notReady)
	e := testPod("my-app-v1-e", "v1.0.0", ips[4], port, unannotated)
	cluster := newFakeCluster(a, c, d, e)
	sim := startClusterSim(t, cluster, testScenario(3, canaryVersion(1, 0.5)), zerolog.Nop())

	// Ready at the start.
	if got, want := rpsByPod(sim.Targets()), map[string]float64{a.Name: 100, c.Name: 100}; !approxEqual(got, want) {
		t.Fatalf("targets at start = %v, want %v", got, want)
	}
	// Created Ready, and becoming Ready.
	createPod(t, cluster, b)
	setReady(t, cluster, d, true)
	targets := waitTargets(t, sim, "new and newly Ready pods listen",
		hasRates(map[string]float64{a.Name: 50, b.Name: 50, c.Name: 50, d.Name: 50}))

	wantTargets := []Target{
		{Namespace: "default", App: "my-app", Version: "v1.0.0", Index: 0, Pod: a.Name, PodTemplateHash: "hash-v1.0.0", Address: net.JoinHostPort(ips[0], strconv.Itoa(port)), RPS: 50},
		{Namespace: "default", App: "my-app", Version: "v1.0.0", Index: 1, Pod: b.Name, PodTemplateHash: "hash-v1.0.0", Address: net.JoinHostPort(ips[1], strconv.Itoa(port)), RPS: 50},
		{Namespace: "default", App: "my-app", Version: "v1.0.0", Index: 2, Pod: d.Name, PodTemplateHash: "hash-v1.0.0", Address: net.JoinHostPort(ips[3], strconv.Itoa(port)), RPS: 50},
		{Namespace: "default", App: "my-app", Version: "v2.0.0", Index: 0, Pod: c.Name, PodTemplateHash: "hash-v2.0.0", Address: net.JoinHostPort(ips[2], strconv.Itoa(port)), RPS: 50},
	}
	for i := range targets {
		if targets[i] != wantTargets[i] {
			t.Errorf("target %d = %+v, want %+v", i, targets[i], wantTargets[i])
		}
	}

	steps(sim, 10)
	for _, tg := range targets {
		path := "/metrics"
		if tg.Pod == c.Name {
			path = "/custom"
		}
		mfs := scrapeURL(t, "http://"+tg.Address+path)
		for _, m := range mfs["http_requests_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "version" && l.GetValue() != tg.Version {
					t.Errorf("pod %s serves version %q, want %q", tg.Pod, l.GetValue(), tg.Version)
				}
			}
		}
		checkCount(t, tg.Pod, statsOf(mfs).requests, 500)
	}
	resp, err := http.Get("http://" + wantTargets[3].Address + "/metrics")
	if err != nil {
		t.Fatalf("get /metrics of a /custom pod: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics of a pod annotated with path /custom = %s, want 404", resp.Status)
	}
	if addr := net.JoinHostPort(ips[4], strconv.Itoa(port)); !unreachable(addr) {
		t.Errorf("pod without the scrape annotation listens on %s", addr)
	}
}

// TestClusterServiceSelector checks a blue/green switch: the Service's selector decides which
// version gets the traffic.
func TestClusterServiceSelector(t *testing.T) {
	ips, port := podAddresses(t, 4)
	v1a := testPod("my-app-v1-a", "v1.0.0", ips[0], port)
	v1b := testPod("my-app-v1-b", "v1.0.0", ips[1], port)
	v2a := testPod("my-app-v2-a", "v2.0.0", ips[2], port)
	v2b := testPod("my-app-v2-b", "v2.0.0", ips[3], port)
	svc := testService("my-app", "app", "my-app", "version", "v1.0.0")
	cluster := newFakeCluster(v1a, v1b, v2a, v2b, svc)
	sim := startClusterSim(t, cluster, testScenario(1, canaryVersion(1, 0)), zerolog.Nop())

	if got, want := rpsByPod(sim.Targets()), map[string]float64{v1a.Name: 100, v1b.Name: 100, v2a.Name: 0, v2b.Name: 0}; !approxEqual(got, want) {
		t.Fatalf("rates with the Service on v1 = %v, want %v", got, want)
	}
	steps(sim, 10)
	before := scrapeAll(t, sim)
	for _, p := range []*corev1.Pod{v1a, v1b} {
		checkCount(t, p.Name, before[p.Name].requests, 1000)
	}
	for _, p := range []*corev1.Pod{v2a, v2b} {
		if before[p.Name].requests != 0 {
			t.Errorf("pod %s outside the Service served %v requests", p.Name, before[p.Name].requests)
		}
	}

	svc = svc.DeepCopy()
	svc.Spec.Selector["version"] = "v2.0.0"
	if _, err := cluster.CoreV1().Services("default").Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("switch the Service: %v", err)
	}
	waitTargets(t, sim, "traffic moves to v2",
		hasRates(map[string]float64{v1a.Name: 0, v1b.Name: 0, v2a.Name: 100, v2b.Name: 100}))
	steps(sim, 10)
	after := scrapeAll(t, sim)
	for _, p := range []*corev1.Pod{v1a, v1b} {
		if after[p.Name] != before[p.Name] {
			t.Errorf("pod %s left by the Service went from %+v to %+v", p.Name, before[p.Name], after[p.Name])
		}
	}
	for _, p := range []*corev1.Pod{v2a, v2b} {
		checkCount(t, p.Name, after[p.Name].requests, 1000)
	}

	// Without a Service of the app, all its Ready pods share the traffic.
	if err := cluster.CoreV1().Services("default").Delete(context.Background(), svc.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete the Service: %v", err)
	}
	waitTargets(t, sim, "traffic spreads over all pods",
		hasRates(map[string]float64{v1a.Name: 50, v1b.Name: 50, v2a.Name: 50, v2b.Name: 50}))
}

// TestClusterReadiness checks that a pod losing readiness or deleted stops listening and its
// traffic moves to the others, and that it starts from zero when Ready again.
func TestClusterReadiness(t *testing.T) {
	ips, port := podAddresses(t, 3)
	a := testPod("my-app-v1-a", "v1.0.0", ips[0], port)
	b := testPod("my-app-v1-b", "v1.0.0", ips[1], port)
	c := testPod("my-app-v2-c", "v2.0.0", ips[2], port)
	cluster := newFakeCluster(a, b, c)
	sim := startClusterSim(t, cluster, testScenario(1, canaryVersion(1, 0)), zerolog.Nop())
	addrA := net.JoinHostPort(ips[0], strconv.Itoa(port))
	addrC := net.JoinHostPort(ips[2], strconv.Itoa(port))

	steps(sim, 3)
	before := scrapeAll(t, sim)
	if before[a.Name].requests == 0 {
		t.Fatalf("pod %s served no requests", a.Name)
	}

	a = setReady(t, cluster, a, false)
	waitTargets(t, sim, "un-Ready pod leaves", hasRates(map[string]float64{b.Name: 100, c.Name: 100}))
	if !unreachable(addrA) {
		t.Errorf("un-Ready pod %s still listens on %s", a.Name, addrA)
	}

	setReady(t, cluster, a, true)
	waitTargets(t, sim, "Ready pod is back", hasRates(map[string]float64{a.Name: 200.0 / 3, b.Name: 200.0 / 3, c.Name: 200.0 / 3}))
	after := scrapeAll(t, sim)
	if after[a.Name] != (podStats{}) {
		t.Errorf("pod %s Ready again starts with %+v, want zero counters", a.Name, after[a.Name])
	}
	if after[b.Name] != before[b.Name] {
		t.Errorf("pod %s counters went from %+v to %+v, want them kept", b.Name, before[b.Name], after[b.Name])
	}

	if err := cluster.CoreV1().Pods("default").Delete(context.Background(), c.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete pod: %v", err)
	}
	waitTargets(t, sim, "deleted pod leaves", hasRates(map[string]float64{a.Name: 100, b.Name: 100}))
	if !unreachable(addrC) {
		t.Errorf("deleted pod %s still listens on %s", c.Name, addrC)
	}
}

// TestClusterApply checks podOverrides by index and that Apply changes the behaviour of running
// pods without resetting them, and follows apps into other namespaces.
func TestClusterApply(t *testing.T) {
	ips, port := podAddresses(t, 4)
	first := testPod("my-app-v1-z", "v1.0.0", ips[0], port, bornAt(0))
	second := testPod("my-app-v1-a", "v1.0.0", ips[1], port, bornAt(1))
	third := testPod("my-app-v1-m", "v1.0.0", ips[2], port, bornAt(2))
	other := testPod("shop-v1-a", "v1.0.0", ips[3], port, func(p *corev1.Pod) {
		p.Namespace = "other"
		p.Labels[labelApp] = "shop"
	})
	cluster := newFakeCluster(first, second, third, other)
	s := testScenario(3, canaryVersion(1, 0))
	s.Apps[0].Versions[0].ErrorRate = 0
	s.Apps[0].Versions[0].PodOverrides = map[int]PodOverride{1: {ErrorRate: ptr(1.0)}}
	sim := startClusterSim(t, cluster, s, zerolog.Nop())

	steps(sim, 3)
	before := scrapeAll(t, sim)
	for _, p := range []*corev1.Pod{first, second, third} {
		st := before[p.Name]
		wantErrors := 0.0
		if p == second { // index 1 by creation time
			wantErrors = st.requests
		}
		if st.requests == 0 || st.errors != wantErrors {
			t.Errorf("pod %s: %v errors of %v requests, want %v", p.Name, st.errors, st.requests, wantErrors)
		}
	}

	next := s.clone()
	next.Apps[0].RPS = 600
	next.Apps[0].Versions[0].ErrorRate = 1
	next.Apps[0].Versions[0].PodOverrides = map[int]PodOverride{1: {ErrorRate: ptr(0.0)}}
	next.Apps = append(next.Apps, App{Namespace: "other", Name: "shop", RPS: 10, Versions: []Version{
		{Version: "v1.0.0", Latency: Latency{Median: 0.1, P99: 0.4}},
	}})
	if err := sim.Apply(next); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	// The informers of the new namespace may or may not have listed it yet.
	got := rpsByPod(sim.Targets())
	delete(got, other.Name)
	if want := (map[string]float64{first.Name: 200, second.Name: 200, third.Name: 200}); !approxEqual(got, want) {
		t.Errorf("rates right after Apply = %v, want %v", got, want)
	}
	for name, st := range scrapeAll(t, sim) {
		if name != other.Name && st != before[name] {
			t.Errorf("pod %s counters went from %+v to %+v across Apply, want them kept", name, before[name], st)
		}
	}
	waitTargets(t, sim, "pod of the new namespace listens",
		hasRates(map[string]float64{first.Name: 200, second.Name: 200, third.Name: 200, other.Name: 10}))

	steps(sim, 1)
	after := scrapeAll(t, sim)
	for _, p := range []*corev1.Pod{first, second, third} {
		okBefore, okAfter := before[p.Name].requests-before[p.Name].errors, after[p.Name].requests-after[p.Name].errors
		errBefore, errAfter := before[p.Name].errors, after[p.Name].errors
		if p == second {
			if errAfter != errBefore || okAfter <= okBefore {
				t.Errorf("pod %s (index 1): 200s %v->%v, 500s %v->%v, want only 200s to grow", p.Name, okBefore, okAfter, errBefore, errAfter)
			}
		} else if okAfter != okBefore || errAfter <= errBefore {
			t.Errorf("pod %s: 200s %v->%v, 500s %v->%v, want only 500s to grow", p.Name, okBefore, okAfter, errBefore, errAfter)
		}
	}

	// Dropping the app again stops its pods and unwatches its namespace.
	if err := sim.Apply(s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got, want := rpsByPod(sim.Targets()), map[string]float64{first.Name: 200.0 / 3, second.Name: 200.0 / 3, third.Name: 200.0 / 3}; !approxEqual(got, want) {
		t.Errorf("rates after dropping the app = %v, want %v", got, want)
	}
}

// TestClusterAddressClash checks that two pods on one IP and port are logged, not fatal, and
// that the second takes the address once the first is gone. The second still counts as an
// endpoint of the app, so its share of the traffic is lost, as a broken pod's would be.
func TestClusterAddressClash(t *testing.T) {
	ips, port := podAddresses(t, 2)
	older := testPod("my-app-v1-a", "v1.0.0", ips[0], port, bornAt(0))
	newer := testPod("my-app-v1-b", "v1.0.0", ips[0], port, bornAt(1))
	cluster := newFakeCluster(older, newer)
	var logs syncBuffer
	sim := startClusterSim(t, cluster, testScenario(3, canaryVersion(0, 0)), zerolog.New(&logs))

	if got, want := rpsByPod(sim.Targets()), map[string]float64{older.Name: 100}; !approxEqual(got, want) {
		t.Fatalf("targets = %v, want %v", got, want)
	}
	// Another sync must not log the same clash again.
	third := testPod("my-app-v1-c", "v1.0.0", ips[1], port, bornAt(2))
	createPod(t, cluster, third)
	waitTargets(t, sim, "a third pod joins", hasRates(map[string]float64{older.Name: 200.0 / 3, third.Name: 200.0 / 3}))
	if n := strings.Count(logs.String(), "pod not simulated"); n != 1 {
		t.Errorf("clash logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), newer.Name) || !strings.Contains(logs.String(), "address already in use") {
		t.Errorf("log does not name the pod and the cause:\n%s", logs.String())
	}

	if err := cluster.CoreV1().Pods("default").Delete(context.Background(), older.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete pod: %v", err)
	}
	waitTargets(t, sim, "the newer pod takes the address", hasRates(map[string]float64{newer.Name: 100, third.Name: 100}))
}

// TestClusterStart checks the public entry point: Start returns with the Ready pods listening,
// and Stop closes them.
func TestClusterStart(t *testing.T) {
	ips, port := podAddresses(t, 2)
	a := testPod("my-app-v1-a", "v1.0.0", ips[0], port)
	b := testPod("my-app-v2-b", "v2.0.0", ips[1], port)
	cluster := newFakeCluster(a, b)
	sim, err := Start(context.Background(), testScenario(1, canaryVersion(1, 0)), Options{Kube: cluster.Clientset})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	targets := sim.Targets()
	if got, want := rpsByPod(targets), map[string]float64{a.Name: 100, b.Name: 100}; !approxEqual(got, want) {
		t.Errorf("targets when Start returns = %v, want %v", got, want)
	}
	for _, tg := range targets {
		scrape(t, tg.Address)
	}
	if err := sim.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, tg := range targets {
		if !unreachable(tg.Address) {
			t.Errorf("pod %s still listens after Stop", tg.Pod)
		}
	}
	if err := sim.Apply(testScenario(1, canaryVersion(1, 0))); !errors.Is(err, ErrStopped) {
		t.Errorf("Apply after Stop = %v, want ErrStopped", err)
	}
}

// TestClusterStartFails checks that Start gives up when it cannot list the pods, as without RBAC.
func TestClusterStartFails(t *testing.T) {
	cluster := newFakeCluster()
	cluster.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("pods is forbidden")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	sim, err := Start(ctx, testScenario(1, canaryVersion(1, 0)), Options{Kube: cluster.Clientset, Logger: zerolog.Nop()})
	if err == nil {
		_ = sim.Stop()
		t.Fatal("Start succeeded without a pod list")
	}
	if want := `list pods and services in namespace "default"`; !strings.Contains(err.Error(), want) {
		t.Errorf("Start error = %q, want it to contain %q", err, want)
	}
}
