package metrics

import (
	"math"
	"testing"
)

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	seed := []Bucket{{0.25, 50}, {0.5, 80}, {1, 90}, {2.5, 98}, {5, 99}, {10, 100}, {inf, 100}}
	tests := []struct {
		name    string
		q       float64
		buckets []Bucket
		want    float64
	}{
		{"median inside the first bucket", 0.5, seed, 0.25},
		{"p80 at a bucket edge", 0.8, seed, 0.5},
		{"p85 interpolated", 0.85, seed, 0.75},
		{"p99", 0.99, seed, 5},
		{"p995 interpolated in the last finite bucket", 0.995, seed, 7.5},
		{"rank in +Inf gives the highest finite bound", 0.99, []Bucket{{1, 10}, {inf, 100}}, 1},
		{"unsorted input", 0.85, []Bucket{{inf, 100}, {1, 90}, {0.25, 50}, {10, 100}, {0.5, 80}, {5, 99}, {2.5, 98}}, 0.75},
		{"no observations", 0.5, []Bucket{{1, 0}, {inf, 0}}, math.NaN()},
		{"no +Inf bucket", 0.5, []Bucket{{1, 3}, {2, 4}}, math.NaN()},
		{"one bucket", 0.5, []Bucket{{inf, 4}}, math.NaN()},
		{"falling counts are made monotonic", 0.5, []Bucket{{1, 10}, {2, 8}, {inf, 10}}, 0.5},
		{"NaN count", 0.5, []Bucket{{1, 10}, {inf, math.NaN()}}, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Quantile(tt.q, tt.buckets)
			if !(math.Abs(got-tt.want) < 1e-9 || (math.IsNaN(got) && math.IsNaN(tt.want))) {
				t.Errorf("Quantile(%g) = %g, want %g", tt.q, got, tt.want)
			}
		})
	}
}
