package simulator

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// created is the creation time of the test pods; a pod's age option moves it.
var created = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// testPod returns a Ready pod of my-app in the default namespace, annotated for scraping on
// ip:port, with the labels a Deployment of the version gives it.
func testPod(name, version, ip string, port int, opts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:              name,
			Namespace:         "default",
			UID:               types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(created),
			Labels:            map[string]string{labelApp: "my-app", labelVersion: version, labelTemplate: "hash-" + version},
			Annotations:       map[string]string{annotationScrape: "true", annotationPort: strconv.Itoa(port)},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, opt := range opts {
		opt(p)
	}
	return p
}

func notReady(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }

func bornAt(seconds int) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.CreationTimestamp = metav1.NewTime(created.Add(time.Duration(seconds) * time.Second))
	}
}

// testPods returns n Ready pods of a version, named like a Deployment's, on IPs from 127.0.1.first.
func testPods(version string, n, first int) []*corev1.Pod {
	var pods []*corev1.Pod
	for i := range n {
		pods = append(pods, testPod(fmt.Sprintf("my-app-%s-%d", version, i), version, fmt.Sprintf("127.0.1.%d", first+i), 8080))
	}
	return pods
}

// testService returns a Service of the default namespace with the selector given as key, value pairs.
func testService(name string, selector ...string) *corev1.Service {
	sel := map[string]string{}
	for i := 0; i+1 < len(selector); i += 2 {
		sel[selector[i]] = selector[i+1]
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: sel},
	}
}

func TestPlanClusterSplit(t *testing.T) {
	v1, v2 := "v1.0.0", "v2.0.0"
	tests := []struct {
		name     string
		scenario Scenario
		pods     []*corev1.Pod
		services []*corev1.Service
		want     map[string]float64 // total rps by version
	}{
		{
			name:     "no service: all ready pods share",
			scenario: testScenario(1, canaryVersion(1, 0)),
			pods:     append(testPods(v1, 10, 1), testPods(v2, 1, 20)...),
			want:     map[string]float64{v1: 200 * 10.0 / 11, v2: 200 * 1.0 / 11},
		},
		{
			name:     "scaled over: canary takes everything",
			scenario: testScenario(1, canaryVersion(1, 0)),
			pods:     testPods(v2, 10, 20),
			want:     map[string]float64{v2: 200},
		},
		{
			name:     "service selecting the app alone",
			scenario: testScenario(1, canaryVersion(1, 0)),
			pods:     append(testPods(v1, 3, 1), testPods(v2, 1, 20)...),
			services: []*corev1.Service{testService("my-app", "app", "my-app")},
			want:     map[string]float64{v1: 150, v2: 50},
		},
		{
			name:     "blue/green service on v1",
			scenario: testScenario(1, canaryVersion(1, 0)),
			pods:     append(testPods(v1, 2, 1), testPods(v2, 2, 20)...),
			services: []*corev1.Service{testService("my-app", "app", "my-app", "version", v1)},
			want:     map[string]float64{v1: 200, v2: 0},
		},
		{
			name:     "blue/green service switched to v2",
			scenario: testScenario(1, canaryVersion(1, 0)),
			pods:     append(testPods(v1, 2, 1), testPods(v2, 2, 20)...),
			services: []*corev1.Service{testService("my-app", "app", "my-app", "version", v2)},
			want:     map[string]float64{v1: 0, v2: 200},
		},
		{
			name:     "stable and canary services share the app's traffic",
			scenario: testScenario(1, canaryVersion(1, 0)),
			pods:     append(testPods(v1, 3, 1), testPods(v2, 1, 20)...),
			services: []*corev1.Service{
				testService("my-app", "app", "my-app", "version", v1),
				testService("my-app-canary", "app", "my-app", "version", v2),
			},
			want: map[string]float64{v1: 150, v2: 50},
		},
		{
			name:     "services of other apps and without an app label do not count",
			scenario: testScenario(1, canaryVersion(1, 0)),
			pods:     append(testPods(v1, 1, 1), testPods(v2, 1, 20)...),
			services: []*corev1.Service{
				testService("other", "app", "other-app", "version", v1),
				testService("by-version", "version", v1),
				testService("headless-external"),
			},
			want: map[string]float64{v1: 100, v2: 100},
		},
		{
			name:     "service selecting no ready pod",
			scenario: testScenario(1, canaryVersion(1, 0)),
			pods:     append(testPods(v1, 1, 1), testPods(v2, 1, 20)...),
			services: []*corev1.Service{testService("my-app", "app", "my-app", "version", "v3.0.0")},
			want:     map[string]float64{v1: 0, v2: 0},
		},
		{
			name: "canary with its own rps",
			scenario: func() Scenario {
				v := canaryVersion(1, 0)
				v.RPS = ptr(10.0)
				return testScenario(1, v)
			}(),
			pods: append(testPods(v1, 4, 1), testPods(v2, 2, 20)...),
			want: map[string]float64{v1: 200, v2: 10},
		},
		{
			name: "own rps still goes through the service",
			scenario: func() Scenario {
				v := canaryVersion(1, 0)
				v.RPS = ptr(10.0)
				return testScenario(1, v)
			}(),
			pods:     append(testPods(v1, 4, 1), testPods(v2, 2, 20)...),
			services: []*corev1.Service{testService("my-app", "app", "my-app", "version", v1)},
			want:     map[string]float64{v1: 200, v2: 0},
		},
		{
			name:     "terminating pods are played without traffic",
			scenario: testScenario(1, canaryVersion(1, 0)),
			pods: append(testPods(v1, 1, 1), testPod("my-app-v2-gone", v2, "127.0.1.20", 8080, func(p *corev1.Pod) {
				p.DeletionTimestamp = ptr(metav1.NewTime(created))
			})),
			want: map[string]float64{v1: 200, v2: 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]float64{}
			for _, cp := range planCluster(tt.scenario.Apps, tt.pods, tt.services) {
				got[cp.spec.key.version] += cp.spec.rps
			}
			if !approxEqual(got, tt.want) {
				t.Errorf("rps by version = %v, want %v", got, tt.want)
			}
		})
	}
}

func approxEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || math.Abs(v-w) > 1e-9 {
			return false
		}
	}
	return true
}

// TestPlanClusterPods checks which pods are played, where they listen and their index.
func TestPlanClusterPods(t *testing.T) {
	withLabel := func(k, v string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Labels[k] = v } }
	withAnnotation := func(k, v string) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Annotations[k] = v }
	}
	type want struct {
		version string
		index   int
		address string
		path    string
	}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want *want // nil: not played
	}{
		{name: "ready", pod: testPod("a", "v1.0.0", "127.0.1.1", 8080), want: &want{"v1.0.0", 0, "127.0.1.1:8080", "/metrics"}},
		{name: "not ready", pod: testPod("a", "v1.0.0", "127.0.1.1", 8080, notReady)},
		{name: "no ready condition", pod: testPod("a", "v1.0.0", "127.0.1.1", 8080, func(p *corev1.Pod) { p.Status.Conditions = nil })},
		{name: "no pod ip", pod: testPod("a", "v1.0.0", "", 8080)},
		{name: "scrape false", pod: testPod("a", "v1.0.0", "127.0.1.1", 8080, withAnnotation(annotationScrape, "false"))},
		{name: "no port", pod: testPod("a", "v1.0.0", "127.0.1.1", 8080, func(p *corev1.Pod) { delete(p.Annotations, annotationPort) })},
		{name: "named port", pod: testPod("a", "v1.0.0", "127.0.1.1", 8080, withAnnotation(annotationPort, "http"))},
		{name: "port out of range", pod: testPod("a", "v1.0.0", "127.0.1.1", 65536)},
		{name: "other app", pod: testPod("a", "v1.0.0", "127.0.1.1", 8080, withLabel(labelApp, "other"))},
		{name: "unknown version", pod: testPod("a", "v9.0.0", "127.0.1.1", 8080)},
		{name: "no version label", pod: testPod("a", "v1.0.0", "127.0.1.1", 8080, func(p *corev1.Pod) { delete(p.Labels, labelVersion) })},
		{
			name: "metrics path",
			pod:  testPod("a", "v2.0.0", "127.0.1.1", 9000, withAnnotation(annotationPath, "/internal/metrics")),
			want: &want{"v2.0.0", 0, "127.0.1.1:9000", "/internal/metrics"},
		},
		{
			name: "metrics path without slash",
			pod:  testPod("a", "v2.0.0", "127.0.1.1", 9000, withAnnotation(annotationPath, "stats")),
			want: &want{"v2.0.0", 0, "127.0.1.1:9000", "/stats"},
		},
		{name: "ipv6", pod: testPod("a", "v1.0.0", "::1", 8080), want: &want{"v1.0.0", 0, "[::1]:8080", "/metrics"}},
	}
	s := testScenario(1, canaryVersion(1, 0))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := planCluster(s.Apps, []*corev1.Pod{tt.pod}, nil)
			if tt.want == nil {
				if len(got) != 0 {
					t.Errorf("pod played as %+v, want it skipped", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%d pods played, want 1", len(got))
			}
			cp := got[0]
			g := want{cp.spec.key.version, cp.spec.key.index, cp.address, cp.path}
			if g != *tt.want {
				t.Errorf("played as %+v, want %+v", g, *tt.want)
			}
			if cp.id != "uid-a" || cp.name != "a" || cp.templateHash != "hash-"+tt.want.version || cp.spec.rps != 200 {
				t.Errorf("pod id %q, name %q, template hash %q, rps %v", cp.id, cp.name, cp.templateHash, cp.spec.rps)
			}
		})
	}
}

// TestPlanClusterOverrides checks that podOverrides follow the pods' creation order.
func TestPlanClusterOverrides(t *testing.T) {
	s := testScenario(3, canaryVersion(1, 0))
	s.Apps[0].Versions[0].PodOverrides = map[int]PodOverride{
		0: {ErrorRate: ptr(0.5)},
		2: {Latency: &Latency{Median: 1, P99: 2}},
	}
	pods := []*corev1.Pod{
		testPod("my-app-v1-c", "v1.0.0", "127.0.1.3", 8080, bornAt(1)),
		testPod("my-app-v1-a", "v1.0.0", "127.0.1.1", 8080, bornAt(2)),
		testPod("my-app-v1-b", "v1.0.0", "127.0.1.2", 8080, bornAt(2)),
		testPod("my-app-v1-z", "v1.0.0", "127.0.1.4", 8080, bornAt(0), notReady),
	}
	type want struct {
		index     int
		errorRate float64
		latency   logNormal
	}
	base := fitLogNormal(Latency{Median: 0.1, P99: 0.4})
	wantByName := map[string]want{
		"my-app-v1-c": {0, 0.5, base},
		"my-app-v1-a": {1, 0.01, base},
		"my-app-v1-b": {2, 0.01, fitLogNormal(Latency{Median: 1, P99: 2})},
	}
	got := map[string]want{}
	for _, cp := range planCluster(s.Apps, pods, nil) {
		got[cp.name] = want{cp.spec.key.index, cp.spec.errorRate, cp.spec.latency}
	}
	// The not-Ready oldest pod takes no index: indexes count played pods only.
	if !reflect.DeepEqual(got, wantByName) {
		t.Errorf("pods = %+v, want %+v", got, wantByName)
	}
}
