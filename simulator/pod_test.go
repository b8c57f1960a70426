package simulator

import (
	"maps"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// TestPodExposition checks that a pod's /metrics has the seed app's names, labels and buckets, so
// that queries written for the seed app work on the simulator.
func TestPodExposition(t *testing.T) {
	tests := []struct {
		name    string
		version string
	}{
		{name: "stable", version: "v1.0.0"},
		{name: "canary", version: "v2.0.0"},
	}
	s := testScenario(1, canaryVersion(1, 0.5))
	s.Apps[0].Versions[0].ErrorRate = 0.5
	sim, err := newSimulator(s, Options{})
	if err != nil {
		t.Fatalf("newSimulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Stop() })
	// 100 requests/s per pod for 10 s: every code and method pair shows up.
	for range 100 {
		sim.step(100 * time.Millisecond)
	}
	targets := sim.Targets()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := slices.IndexFunc(targets, func(tg Target) bool { return tg.Version == tt.version })
			mfs := scrape(t, targets[i].Address)

			names := slices.Sorted(maps.Keys(mfs))
			if want := []string{"http_requests_total", "request_duration_seconds"}; !reflect.DeepEqual(names, want) {
				t.Fatalf("metric names = %v, want %v", names, want)
			}
			if got := mfs["http_requests_total"].GetType(); got != dto.MetricType_COUNTER {
				t.Errorf("http_requests_total type = %v, want counter", got)
			}
			if got := mfs["request_duration_seconds"].GetType(); got != dto.MetricType_HISTOGRAM {
				t.Errorf("request_duration_seconds type = %v, want histogram", got)
			}

			for _, name := range names {
				pairs := map[[2]string]bool{}
				for _, m := range mfs[name].GetMetric() {
					labels := map[string]string{}
					for _, l := range m.GetLabel() {
						labels[l.GetName()] = l.GetValue()
					}
					if len(labels) != 3 || labels["version"] != tt.version {
						t.Errorf("%s labels = %v, want code, method and version=%q", name, labels, tt.version)
					}
					pairs[[2]string{labels["code"], labels["method"]}] = true
					if h := m.GetHistogram(); h != nil {
						var bounds []float64
						for _, b := range h.GetBucket() {
							bounds = append(bounds, b.GetUpperBound())
						}
						if want := []float64{.25, .5, 1, 2.5, 5, 10, math.Inf(1)}; !reflect.DeepEqual(bounds, want) {
							t.Errorf("%s bucket bounds = %v, want %v", name, bounds, want)
						}
					}
				}
				want := map[[2]string]bool{{"200", "get"}: true, {"200", "post"}: true, {"500", "get"}: true, {"500", "post"}: true}
				if !reflect.DeepEqual(pairs, want) {
					t.Errorf("%s code and method pairs = %v, want %v", name, pairs, want)
				}
			}

			st := statsOf(mfs)
			if float64(st.observed) != st.requests {
				t.Errorf("histogram count %v != request count %v: every request must be observed", st.observed, st.requests)
			}
		})
	}
}
