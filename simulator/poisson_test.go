package simulator

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestPoisson(t *testing.T) {
	tests := []struct {
		name   string
		lambda float64
	}{
		{name: "zero", lambda: 0},
		{name: "small", lambda: 0.3},
		{name: "one tick of a busy pod", lambda: 2},
		{name: "just below the switch", lambda: 9.9},
		{name: "just above the switch", lambda: 10},
		{name: "large", lambda: 250},
		{name: "huge", lambda: 1e6},
	}
	const draws = 20_000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 11))
			var sum, sumSq float64
			for range draws {
				k := float64(poisson(r, tt.lambda))
				if k < 0 {
					t.Fatalf("poisson(%v) = %v, want >= 0", tt.lambda, k)
				}
				sum += k
				sumSq += k * k
			}
			mean := sum / draws
			variance := sumSq/draws - mean*mean
			// The sample mean has standard error sqrt(lambda/draws); allow five of them.
			if tol := 5 * math.Sqrt(tt.lambda/draws); math.Abs(mean-tt.lambda) > tol {
				t.Errorf("mean = %v, want %v ± %v", mean, tt.lambda, tol)
			}
			// A Poisson variance equals its mean.
			if math.Abs(variance-tt.lambda) > 0.05*tt.lambda+1e-9 {
				t.Errorf("variance = %v, want %v within 5%%", variance, tt.lambda)
			}
		})
	}
}
