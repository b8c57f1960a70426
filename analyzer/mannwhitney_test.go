package analyzer

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// mwRange is 20 distinct, unevenly spaced values, so that ranks and quartiles are not trivial.
func mwRange(offset float64) []float64 {
	out := make([]float64, 20)
	for i := range out {
		out[i] = offset + float64(i) + float64(i%3)*0.25
	}
	return out
}

func mwClose(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestMannWhitney(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name                       string
		baseline, canary           []float64
		confidence, iqrFactor      float64
		wantBaselineN, wantCanaryN int
		wantHigh                   bool // with allowedIncrease 1.1
		check                      func(t *testing.T, r MannWhitneyResult)
	}{
		{
			name:     "identical samples",
			baseline: mwRange(100), canary: mwRange(100),
			confidence: 0.98, iqrFactor: 3,
			wantBaselineN: 20, wantCanaryN: 20,
			check: func(t *testing.T, r MannWhitneyResult) {
				if r.P < 0.99 {
					t.Errorf("P = %v, want about 1", r.P)
				}
				if !(r.Lo <= 0 && 0 <= r.Hi) {
					t.Errorf("interval [%v, %v] does not contain 0", r.Lo, r.Hi)
				}
				if r.Estimate != 0 {
					t.Errorf("Estimate = %v, want 0", r.Estimate)
				}
			},
		},
		{
			name:     "canary clearly higher",
			baseline: mwRange(100), canary: mwRange(130),
			confidence: 0.98, iqrFactor: 3,
			wantBaselineN: 20, wantCanaryN: 20, wantHigh: true,
			check: func(t *testing.T, r MannWhitneyResult) {
				if r.P > 1e-4 {
					t.Errorf("P = %v, want < 1e-4", r.P)
				}
				if !(r.Lo > 0) {
					t.Errorf("Lo = %v, want > 0", r.Lo)
				}
				if r.Estimate != 30 {
					t.Errorf("Estimate = %v, want 30", r.Estimate)
				}
			},
		},
		{
			name:     "canary clearly lower is not high",
			baseline: mwRange(130), canary: mwRange(100),
			confidence: 0.98, iqrFactor: 3,
			wantBaselineN: 20, wantCanaryN: 20,
			check: func(t *testing.T, r MannWhitneyResult) {
				if r.P > 1e-4 || !(r.Hi < 0) {
					t.Errorf("P = %v, Hi = %v, want P < 1e-4 and Hi < 0", r.P, r.Hi)
				}
			},
		},
		{
			name:     "higher but below the allowed increase",
			baseline: mwRange(100), canary: mwRange(105),
			confidence: 0.98, iqrFactor: 3,
			wantBaselineN: 20, wantCanaryN: 20,
			check: func(t *testing.T, r MannWhitneyResult) {
				if !(r.Lo > 0) {
					t.Errorf("Lo = %v, want > 0 (only the mean ratio should keep this from being high)", r.Lo)
				}
			},
		},
		{
			name:     "one huge value removed from a sample of 20",
			baseline: append(mwRange(100)[:19], 1e6), canary: mwRange(100),
			confidence: 0.98, iqrFactor: 3,
			wantBaselineN: 19, wantCanaryN: 20,
			check: func(t *testing.T, r MannWhitneyResult) {
				if want := sampleMean(mwRange(100)[:19]); r.BaselineMean != want {
					t.Errorf("BaselineMean = %v, want %v (the mean without the outlier)", r.BaselineMean, want)
				}
			},
		},
		{
			name:     "outlier kept when removal is disabled",
			baseline: append(mwRange(100)[:19], 1e6), canary: mwRange(100),
			confidence: 0.98, iqrFactor: 0,
			wantBaselineN: 20, wantCanaryN: 20,
		},
		{
			name:     "NaNs dropped",
			baseline: []float64{nan, 1, 2, nan, 3, 4}, canary: []float64{2, nan, 3, 4, 5, 6, nan, nan},
			confidence: 0.9, iqrFactor: 3,
			wantBaselineN: 4, wantCanaryN: 5,
			check: func(t *testing.T, r MannWhitneyResult) {
				if r.BaselineMean != 2.5 || r.CanaryMean != 4 {
					t.Errorf("means = %v, %v, want 2.5, 4", r.BaselineMean, r.CanaryMean)
				}
				if math.IsNaN(r.P) || math.IsNaN(r.Estimate) {
					t.Errorf("P = %v, Estimate = %v: a NaN leaked into the statistics", r.P, r.Estimate)
				}
			},
		},
		{
			name:     "empty baseline",
			baseline: nil, canary: mwRange(100),
			confidence: 0.98, iqrFactor: 3,
			wantBaselineN: 0, wantCanaryN: 20,
			check: mwWantNothing,
		},
		{
			name:     "canary all NaN",
			baseline: mwRange(100), canary: []float64{nan, nan},
			confidence: 0.98, iqrFactor: 3,
			wantBaselineN: 20, wantCanaryN: 0,
			check: mwWantNothing,
		},
		{
			name:       "both empty",
			confidence: 0.98, iqrFactor: 3,
			check: mwWantNothing,
		},
		{
			name:     "all values tied",
			baseline: []float64{7, 7, 7, 7}, canary: []float64{7, 7, 7},
			confidence: 0.9, iqrFactor: 3,
			wantBaselineN: 4, wantCanaryN: 3,
			check: func(t *testing.T, r MannWhitneyResult) {
				if r.P != 1 || r.Estimate != 0 {
					t.Errorf("P = %v, Estimate = %v, want 1, 0", r.P, r.Estimate)
				}
			},
		},
		{
			// Kayenta computes the mean ratio as NaN here and passes the canary.
			name:     "baseline all zeros, canary positive",
			baseline: make([]float64, 20), canary: mwRange(0.5),
			confidence: 0.98, iqrFactor: 3,
			wantBaselineN: 20, wantCanaryN: 20, wantHigh: true,
			check: func(t *testing.T, r MannWhitneyResult) {
				if !(r.Lo > 0) || r.P > 1e-4 {
					t.Errorf("Lo = %v, P = %v, want Lo > 0 and P < 1e-4", r.Lo, r.P)
				}
			},
		},
		{
			// By hand. Merged: 1b 2b 2b 2c 3b 4c 5c; the three 2s share rank (2+3+4)/3 = 3, so the
			// canary's rank sum is 3+6+7 = 16 and U = 16 - 3*4/2 = 10 (pair count: 2 beats 1 and ties
			// two 2s for 1+1, 4 and 5 beat all four, 1+1+4+4 = 10). m=4, n=3, N=7: mean mn/2 = 6; one
			// tie group of 3 gives sum(t^3-t) = 24, so var = mn/12 * ((N+1) - 24/(N(N-1))) = 1 * (8 -
			// 24/42) = 7.428571. z = (|10-6| - 0.5)/sqrt(7.428571) = 3.5/2.725541 = 1.284149, two-sided
			// P = erfc(z/sqrt2) = 0.199090.
			// The 12 differences c-b sorted: -1 0 0 1 1 2 2 2 3 3 3 4; the median is (d6+d7)/2 = 2. At
			// 90%, k = floor(6 - 1.644854*sqrt(12*8/12)) = floor(1.35) = 1, so the interval is [d1, d12].
			name:     "hand computation with ties",
			baseline: []float64{1, 2, 2, 3}, canary: []float64{2, 4, 5},
			confidence: 0.9, iqrFactor: 0,
			wantBaselineN: 4, wantCanaryN: 3,
			check: func(t *testing.T, r MannWhitneyResult) {
				if !mwClose(r.P, 0.199090, 1e-6) {
					t.Errorf("P = %.7f, want 0.199090", r.P)
				}
				if r.Estimate != 2 || r.Lo != -1 || r.Hi != 4 {
					t.Errorf("Estimate, Lo, Hi = %v, %v, %v, want 2, -1, 4", r.Estimate, r.Lo, r.Hi)
				}
			},
		},
		{
			// Same data at 95%: k = floor(6 - 1.959964*2.828427) = floor(0.46) = 0, too few pairs.
			name:     "hand computation, interval cannot be formed",
			baseline: []float64{1, 2, 2, 3}, canary: []float64{2, 4, 5},
			confidence: 0.95, iqrFactor: 0,
			wantBaselineN: 4, wantCanaryN: 3,
			check: func(t *testing.T, r MannWhitneyResult) {
				if !math.IsInf(r.Lo, -1) || !math.IsInf(r.Hi, 1) {
					t.Errorf("interval [%v, %v], want (-Inf, +Inf)", r.Lo, r.Hi)
				}
				if r.Estimate != 2 {
					t.Errorf("Estimate = %v, want 2", r.Estimate)
				}
			},
		},
		{
			// By hand, no ties: the canary beats all 9 pairs, U = 9, mean 4.5, var = 9*7/12 = 5.25,
			// z = (4.5 - 0.5)/sqrt(5.25) = 1.745743, P = erfc(z/sqrt2) = 0.080856. Differences
			// 1 2 2 3 3 3 4 4 5, median 3.
			name:     "hand computation without ties",
			baseline: []float64{1, 2, 3}, canary: []float64{4, 5, 6},
			confidence: 0.9, iqrFactor: 0,
			wantBaselineN: 3, wantCanaryN: 3,
			check: func(t *testing.T, r MannWhitneyResult) {
				if !mwClose(r.P, 0.080856, 1e-6) || r.Estimate != 3 {
					t.Errorf("P, Estimate = %.7f, %v, want 0.080856, 3", r.P, r.Estimate)
				}
			},
		},
		{
			name:     "confidence out of range gives no interval",
			baseline: mwRange(100), canary: mwRange(130),
			confidence: 1, iqrFactor: 3,
			wantBaselineN: 20, wantCanaryN: 20,
			check: func(t *testing.T, r MannWhitneyResult) {
				if !math.IsInf(r.Lo, -1) || !math.IsInf(r.Hi, 1) {
					t.Errorf("interval [%v, %v], want (-Inf, +Inf)", r.Lo, r.Hi)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := MannWhitney(tt.baseline, tt.canary, tt.confidence, tt.iqrFactor)
			if r.BaselineN != tt.wantBaselineN || r.CanaryN != tt.wantCanaryN {
				t.Errorf("N = %d, %d, want %d, %d", r.BaselineN, r.CanaryN, tt.wantBaselineN, tt.wantCanaryN)
			}
			if got := MannWhitneyHigh(r, 1.1); got != tt.wantHigh {
				t.Errorf("MannWhitneyHigh = %v, want %v (result %+v)", got, tt.wantHigh, r)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

// mwWantNothing checks the result for a comparison with an empty side.
func mwWantNothing(t *testing.T, r MannWhitneyResult) {
	t.Helper()
	if r.P != 1 {
		t.Errorf("P = %v, want 1", r.P)
	}
	if !math.IsInf(r.Lo, -1) || !math.IsInf(r.Hi, 1) {
		t.Errorf("interval [%v, %v], want (-Inf, +Inf)", r.Lo, r.Hi)
	}
	if !math.IsNaN(r.Estimate) {
		t.Errorf("Estimate = %v, want NaN", r.Estimate)
	}
	if (r.BaselineN == 0) != math.IsNaN(r.BaselineMean) || (r.CanaryN == 0) != math.IsNaN(r.CanaryMean) {
		t.Errorf("means %v, %v: want NaN exactly for the empty side", r.BaselineMean, r.CanaryMean)
	}
}

func TestMannWhitneyHigh(t *testing.T) {
	tests := []struct {
		name                  string
		lo, baseMean, canMean float64
		want                  bool
	}{
		{name: "interval above 0 and ratio above allowed", lo: 0.1, baseMean: 1, canMean: 1.2, want: true},
		{name: "ratio exactly the allowed increase", lo: 0.1, baseMean: 1, canMean: 1.1, want: true},
		{name: "ratio below allowed", lo: 0.1, baseMean: 1, canMean: 1.05},
		{name: "interval touches 0", lo: 0, baseMean: 1, canMean: 2},
		{name: "interval contains 0", lo: -0.1, baseMean: 1, canMean: 2},
		{name: "no interval", lo: math.Inf(-1), baseMean: 1, canMean: 2},
		{name: "baseline mean 0, canary mean above 0", lo: 0.1, baseMean: 0, canMean: 0.3, want: true},
		{name: "no means", lo: 0.1, baseMean: math.NaN(), canMean: math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := MannWhitneyResult{Lo: tt.lo, Hi: math.Inf(1), BaselineMean: tt.baseMean, CanaryMean: tt.canMean}
			if got := MannWhitneyHigh(r, 1.1); got != tt.want {
				t.Errorf("MannWhitneyHigh(%+v, 1.1) = %v, want %v", r, got, tt.want)
			}
		})
	}
}

// TestMannWhitneyOutlierFence pins the fences to type-7 quartiles: for 1..9 plus x (x the largest),
// Q1 = 3.25 and Q3 = 7.75 whatever x is, so with factor 3 the upper fence is 7.75 + 3*4.5 = 21.25.
func TestMannWhitneyOutlierFence(t *testing.T) {
	tests := []struct {
		name  string
		x     float64
		wantN int
	}{
		{name: "inside the fence", x: 21, wantN: 10},
		{name: "on the fence", x: 21.25, wantN: 10},
		{name: "outside the fence", x: 21.5, wantN: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, tt.x}
			r := MannWhitney(s, s, 0.9, 3)
			if r.BaselineN != tt.wantN {
				t.Errorf("BaselineN = %d, want %d", r.BaselineN, tt.wantN)
			}
		})
	}
}

// TestMannWhitneyDifferencesMatchSort checks the bisection against the definition: sort all m*n
// differences and index them. Small integer values make many ties; infinities are the edge of the key order.
func TestMannWhitneyDifferencesMatchSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	draw := func(n int) []float64 {
		s := make([]float64, n)
		for i := range s {
			switch rng.IntN(10) {
			case 0:
				s[i] = math.Inf(1)
			case 1:
				s[i] = math.Inf(-1)
			case 2:
				s[i] = rng.NormFloat64() * 1e-300 // tiny differences must still order correctly
			default:
				s[i] = float64(rng.IntN(5))
			}
		}
		slices.Sort(s)
		return s
	}
	for trial := range 200 {
		b, c := draw(1+rng.IntN(12)), draw(1+rng.IntN(12))
		var all []float64
		for _, cj := range c {
			for _, bi := range b {
				all = append(all, difference(cj, bi))
			}
		}
		slices.Sort(all)
		for k := 1; k <= len(all); k++ {
			if got := kthDifference(b, c, k); got != all[k-1] {
				t.Fatalf("trial %d: b=%v c=%v: kthDifference(k=%d) = %v, want %v", trial, b, c, k, got, all[k-1])
			}
		}
	}
}

// TestMannWhitneyCoverage checks that the interval is a real confidence interval: a 90% interval for a
// true shift of 0.5 should contain 0.5 in about 90% of trials (sampling error over 400 trials is about 1.5%).
func TestMannWhitneyCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const trials, size, shift = 400, 30, 0.5
	covered := 0
	for range trials {
		b, c := make([]float64, size), make([]float64, size)
		for i := range size {
			b[i] = rng.NormFloat64()
			c[i] = rng.NormFloat64() + shift
		}
		r := MannWhitney(b, c, 0.9, 0)
		if r.Lo <= shift && shift <= r.Hi {
			covered++
		}
	}
	got := float64(covered) / trials
	t.Logf("coverage %.3f", got)
	if got < 0.85 || got > 0.95 {
		t.Errorf("90%% interval covered the true shift in %.3f of trials, want 0.85 to 0.95", got)
	}
}
