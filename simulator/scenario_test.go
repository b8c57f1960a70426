package simulator

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// testScenario is my-app with a stable v1.0.0 and a canary v2.0.0, 200 requests/s in all.
func testScenario(v1Pods int, canary Version) Scenario {
	return Scenario{
		Seed: 1,
		Tick: model.Duration(100 * time.Millisecond),
		Apps: []App{{
			Namespace: "default",
			Name:      "my-app",
			RPS:       200,
			Versions: []Version{
				{Version: "v1.0.0", Pods: v1Pods, ErrorRate: 0.01, Latency: Latency{Median: 0.1, P99: 0.4}},
				canary,
			},
		}},
	}
}

func canaryVersion(pods int, errorRate float64) Version {
	return Version{Version: "v2.0.0", Pods: pods, ErrorRate: errorRate, Latency: Latency{Median: 0.1, P99: 0.4}}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Scenario)
		wantErr string
	}{
		{name: "valid", edit: func(*Scenario) {}},
		{name: "no apps", edit: func(s *Scenario) { s.Apps = nil }},
		{name: "zero pods", edit: func(s *Scenario) { s.Apps[0].Versions[1].Pods = 0 }},
		{name: "negative tick", edit: func(s *Scenario) { s.Tick = -1 }, wantErr: "tick must be > 0"},
		{name: "empty app", edit: func(s *Scenario) { s.Apps[0].Name = "" }, wantErr: "apps[0].app must not be empty"},
		{
			name:    "duplicate app",
			edit:    func(s *Scenario) { s.Apps = append(s.Apps, s.Apps[0]) },
			wantErr: `apps[1].app "my-app" in namespace "default" duplicates apps[0]`,
		},
		{
			name: "same app in another namespace",
			edit: func(s *Scenario) { s.Apps = append(s.Apps, s.Apps[0]); s.Apps[1].Namespace = "other" },
		},
		{name: "nan rps", edit: func(s *Scenario) { s.Apps[0].RPS = math.NaN() }, wantErr: "apps[0].rps must be >= 0"},
		{name: "infinite rps", edit: func(s *Scenario) { s.Apps[0].RPS = math.Inf(1) }, wantErr: "apps[0].rps must be >= 0"},
		{name: "empty version", edit: func(s *Scenario) { s.Apps[0].Versions[0].Version = "" }, wantErr: "apps[0].versions[0].version must not be empty"},
		{name: "too many pods", edit: func(s *Scenario) { s.Apps[0].Versions[0].Pods = maxPods + 1 }, wantErr: "apps[0].versions[0].pods must be between 0 and 1000"},
		{name: "negative error rate", edit: func(s *Scenario) { s.Apps[0].Versions[1].ErrorRate = -0.1 }, wantErr: "apps[0].versions[1].errorRate must be between 0 and 1"},
		{name: "zero median", edit: func(s *Scenario) { s.Apps[0].Versions[1].Latency.Median = 0 }, wantErr: "apps[0].versions[1].latency.median must be > 0"},
		{
			name: "override error rate",
			edit: func(s *Scenario) {
				s.Apps[0].Versions[0].PodOverrides = map[int]PodOverride{0: {ErrorRate: ptr(2.0)}}
			},
			wantErr: "apps[0].versions[0].podOverrides[0].errorRate must be between 0 and 1",
		},
		{
			name: "override latency",
			edit: func(s *Scenario) {
				s.Apps[0].Versions[0].PodOverrides = map[int]PodOverride{1: {Latency: &Latency{Median: 1, P99: 0.5}}}
			},
			wantErr: "apps[0].versions[0].podOverrides[1].latency.p99 must be >= median",
		},
		{
			name: "negative override index",
			edit: func(s *Scenario) {
				s.Apps[0].Versions[0].PodOverrides = map[int]PodOverride{-1: {}}
			},
			wantErr: "apps[0].versions[0].podOverrides[-1] pod index out of range [0, 10)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testScenario(10, canaryVersion(1, 0.05))
			tt.edit(&s)
			err := s.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestCloneIsDeep(t *testing.T) {
	s := testScenario(2, canaryVersion(1, 0.05))
	s.Apps[0].Versions[1].RPS = ptr(5.0)
	s.Apps[0].Versions[0].PodOverrides = map[int]PodOverride{0: {ErrorRate: ptr(0.5), Latency: &Latency{Median: 1, P99: 2}}}
	c := s.clone()
	if !reflect.DeepEqual(c, s) {
		t.Fatalf("clone = %+v, want %+v", c, s)
	}
	s.Apps[0].Name = "changed"
	s.Apps[0].Versions[0].Pods = 9
	*s.Apps[0].Versions[1].RPS = 6
	*s.Apps[0].Versions[0].PodOverrides[0].ErrorRate = 0.6
	s.Apps[0].Versions[0].PodOverrides[0].Latency.Median = 1.5
	s.Apps[0].Versions[0].PodOverrides[1] = PodOverride{}
	want := testScenario(2, canaryVersion(1, 0.05))
	want.Apps[0].Versions[1].RPS = ptr(5.0)
	want.Apps[0].Versions[0].PodOverrides = map[int]PodOverride{0: {ErrorRate: ptr(0.5), Latency: &Latency{Median: 1, P99: 2}}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("changing the original changed the clone: %+v", c)
	}
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name string
		s    Scenario
		// wantRPS maps version to the RPS of each of its pods, by index.
		wantRPS map[string][]float64
		// wantErrorRate maps version to the error rate of each of its pods, by index.
		wantErrorRate map[string][]float64
	}{
		{
			name:          "app rps split over all pods",
			s:             testScenario(3, canaryVersion(1, 0.05)),
			wantRPS:       map[string][]float64{"v1.0.0": {50, 50, 50}, "v2.0.0": {50}},
			wantErrorRate: map[string][]float64{"v1.0.0": {0.01, 0.01, 0.01}, "v2.0.0": {0.05}},
		},
		{
			name: "version rps taken out of the split",
			s: func() Scenario {
				v := canaryVersion(2, 0.05)
				v.RPS = ptr(30.0)
				return testScenario(4, v)
			}(),
			wantRPS:       map[string][]float64{"v1.0.0": {50, 50, 50, 50}, "v2.0.0": {15, 15}},
			wantErrorRate: map[string][]float64{"v1.0.0": {0.01, 0.01, 0.01, 0.01}, "v2.0.0": {0.05, 0.05}},
		},
		{
			name: "explicit zero rps",
			s: func() Scenario {
				v := canaryVersion(1, 0.05)
				v.RPS = ptr(0.0)
				return testScenario(2, v)
			}(),
			wantRPS:       map[string][]float64{"v1.0.0": {100, 100}, "v2.0.0": {0}},
			wantErrorRate: map[string][]float64{"v1.0.0": {0.01, 0.01}, "v2.0.0": {0.05}},
		},
		{
			name: "pod override",
			s: func() Scenario {
				s := testScenario(2, canaryVersion(0, 0.05))
				s.Apps[0].Versions[0].PodOverrides = map[int]PodOverride{1: {ErrorRate: ptr(0.5)}}
				return s
			}(),
			wantRPS:       map[string][]float64{"v1.0.0": {100, 100}},
			wantErrorRate: map[string][]float64{"v1.0.0": {0.01, 0.5}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotRPS := map[string][]float64{}
			gotErrorRate := map[string][]float64{}
			for _, spec := range plan(tt.s) {
				if spec.key.index != len(gotRPS[spec.key.version]) {
					t.Fatalf("pod %+v out of order", spec.key)
				}
				gotRPS[spec.key.version] = append(gotRPS[spec.key.version], spec.rps)
				gotErrorRate[spec.key.version] = append(gotErrorRate[spec.key.version], spec.errorRate)
			}
			if !reflect.DeepEqual(gotRPS, tt.wantRPS) {
				t.Errorf("rps = %v, want %v", gotRPS, tt.wantRPS)
			}
			if !reflect.DeepEqual(gotErrorRate, tt.wantErrorRate) {
				t.Errorf("error rates = %v, want %v", gotErrorRate, tt.wantErrorRate)
			}
		})
	}
}
