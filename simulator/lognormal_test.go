package simulator

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestFitLogNormal(t *testing.T) {
	tests := []struct {
		name    string
		latency Latency
	}{
		{name: "seed app default", latency: Latency{Median: 0.1, P99: 0.4}},
		{name: "slow tail", latency: Latency{Median: 0.1, P99: 1.2}},
		{name: "seconds", latency: Latency{Median: 2, P99: 9}},
		{name: "constant", latency: Latency{Median: 0.05, P99: 0.05}},
	}
	const draws = 100_000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := fitLogNormal(tt.latency)
			r := rand.New(rand.NewPCG(1, 2))
			xs := make([]float64, draws)
			for i := range xs {
				xs[i] = d.draw(r)
			}
			slices.Sort(xs)
			// With 100k draws the empirical quantiles sit within about 1.5% of the true ones.
			if got := xs[draws/2]; math.Abs(got/tt.latency.Median-1) > 0.02 {
				t.Errorf("median = %v, want %v within 2%%", got, tt.latency.Median)
			}
			if got := xs[draws*99/100]; math.Abs(got/tt.latency.P99-1) > 0.03 {
				t.Errorf("p99 = %v, want %v within 3%%", got, tt.latency.P99)
			}
		})
	}
}
