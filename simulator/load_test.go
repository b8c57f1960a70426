package simulator

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func TestLoadGood(t *testing.T) {
	tests := []struct {
		name string
		file string
		want Scenario
	}{
		{
			name: "defaults fill seed and tick",
			file: "testdata/minimal.good.yaml",
			want: Scenario{
				Tick: model.Duration(100 * time.Millisecond),
				Apps: []App{{
					Namespace: "shop", Name: "cart", RPS: 50,
					Versions: []Version{{
						Version: "v3.1.4", Pods: 2,
						Latency: Latency{Median: 0.02, P99: 0.02},
					}},
				}},
			},
		},
		{
			name: "explicit zero rps and pod overrides",
			file: "testdata/overrides.good.yaml",
			want: Scenario{
				Seed: 42,
				Tick: model.Duration(250 * time.Millisecond),
				Apps: []App{{
					Namespace: "default", Name: "my-app", RPS: 100,
					Versions: []Version{
						{
							Version: "v1.0.0", Pods: 3, ErrorRate: 0.01,
							Latency: Latency{Median: 0.1, P99: 0.4},
							PodOverrides: map[int]PodOverride{
								2: {ErrorRate: ptr(0.5), Latency: &Latency{Median: 1, P99: 4}},
							},
						},
						{
							Version: "v2.0.0", Pods: 1, ErrorRate: 0.05,
							Latency: Latency{Median: 0.1, P99: 0.4},
							RPS:     ptr(0.0),
						},
					},
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.file)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLoadBad(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		wantErr string
	}{
		{
			name:    "unknown field",
			file:    "unknown-field.bad.yaml",
			wantErr: "line 10: field errorrate not found in type simulator.Version",
		},
		{
			name:    "error rate above one",
			file:    "error-rate.bad.yaml",
			wantErr: "error-rate.bad.yaml:10: apps[0].versions[0].errorRate must be between 0 and 1",
		},
		{
			name:    "p99 below median",
			file:    "p99-below-median.bad.yaml",
			wantErr: "p99-below-median.bad.yaml:13: apps[0].versions[0].latency.p99 must be >= median",
		},
		{
			name:    "override index out of range",
			file:    "override-index.bad.yaml",
			wantErr: "override-index.bad.yaml:13: apps[0].versions[0].podOverrides[2] pod index out of range [0, 2)",
		},
		{
			name:    "negative version rps",
			file:    "version-rps.bad.yaml",
			wantErr: "version-rps.bad.yaml:12: apps[0].versions[0].rps must be >= 0",
		},
		{
			name:    "duplicate version",
			file:    "duplicate-version.bad.yaml",
			wantErr: `duplicate-version.bad.yaml:12: apps[0].versions[1].version "v1.0.0" duplicates versions[0]`,
		},
		{
			name:    "zero tick",
			file:    "zero-tick.bad.yaml",
			wantErr: "zero-tick.bad.yaml:2: tick must be > 0",
		},
		{
			name:    "tick syntax",
			file:    "tick-syntax.bad.yaml",
			wantErr: `not a valid duration string: "fast"`,
		},
		{
			name:    "missing namespace points at the app",
			file:    "missing-namespace.bad.yaml",
			wantErr: "missing-namespace.bad.yaml:4: apps[0].namespace must not be empty",
		},
		{
			name:    "empty file",
			file:    "empty.bad.yaml",
			wantErr: "empty.bad.yaml: empty scenario",
		},
		{
			name:    "missing file",
			file:    "does-not-exist.yaml",
			wantErr: "read scenario",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tt.file))
			if err == nil {
				t.Fatalf("Load succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Load error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestLoadScenarios keeps the shared scenarios in testdata/scenarios loadable and as described.
func TestLoadScenarios(t *testing.T) {
	tests := []struct {
		name          string
		file          string
		wantErrorRate float64
		wantP99       float64
		wantRPS       *float64
	}{
		{name: "healthy", file: "healthy.yaml", wantErrorRate: 0.01, wantP99: 0.4},
		{name: "errors 5x", file: "errors-5x.yaml", wantErrorRate: 0.05, wantP99: 0.4},
		{name: "slow 3x", file: "slow-3x.yaml", wantErrorRate: 0.01, wantP99: 1.2},
		{name: "no traffic", file: "no-traffic.yaml", wantErrorRate: 0.01, wantP99: 0.4, wantRPS: ptr(0.0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(filepath.Join("..", "testdata", "scenarios", tt.file))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(s.Apps) != 1 || s.Apps[0].Namespace != "default" || s.Apps[0].Name != "my-app" || len(s.Apps[0].Versions) != 2 {
				t.Fatalf("want app default/my-app with two versions, got %+v", s.Apps)
			}
			v1, v2 := s.Apps[0].Versions[0], s.Apps[0].Versions[1]
			if v1.Version != "v1.0.0" || v1.Pods != 10 || v1.ErrorRate != 0.01 || v1.Latency != (Latency{Median: 0.1, P99: 0.4}) || v1.RPS != nil {
				t.Errorf("stable version = %+v, want v1.0.0 x10, 1%% errors, median 0.1, p99 0.4", v1)
			}
			if v2.Version != "v2.0.0" || v2.Pods != 1 || v2.ErrorRate != tt.wantErrorRate || v2.Latency != (Latency{Median: 0.1, P99: tt.wantP99}) {
				t.Errorf("canary version = %+v, want v2.0.0 x1, errorRate %v, p99 %v", v2, tt.wantErrorRate, tt.wantP99)
			}
			if !reflect.DeepEqual(v2.RPS, tt.wantRPS) {
				t.Errorf("canary rps = %v, want %v", v2.RPS, tt.wantRPS)
			}
		})
	}
}
