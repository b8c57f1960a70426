package judgebench

import (
	"math"
	"testing"
)

func TestWilson(t *testing.T) {
	tests := []struct {
		name   string
		k, n   int
		lo, hi float64
	}{
		// 10 of 100 at 95%: the textbook example.
		{name: "10 of 100", k: 10, n: 100, lo: 0.0552, hi: 0.1744},
		// No false rollback in 200 runs still allows up to 1.9%.
		{name: "none of 200", k: 0, n: 200, lo: 0, hi: 0.0188},
		{name: "all of 200", k: 200, n: 200, lo: 0.9812, hi: 1},
		{name: "half of 10", k: 5, n: 10, lo: 0.2366, hi: 0.7634},
		{name: "no runs", k: 0, n: 0, lo: 0, hi: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi := Wilson(tt.k, tt.n, Z95)
			if math.Abs(lo-tt.lo) > 5e-5 || math.Abs(hi-tt.hi) > 5e-5 {
				t.Errorf("Wilson(%d, %d) = [%.4f, %.4f], want [%.4f, %.4f]", tt.k, tt.n, lo, hi, tt.lo, tt.hi)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name string
		xs   []float64
		q    float64
		want float64
	}{
		{name: "median of odd", xs: []float64{3, 1, 2}, q: 0.5, want: 2},
		{name: "median of even is the lower middle", xs: []float64{4, 1, 3, 2}, q: 0.5, want: 2},
		{name: "median with a minority never", xs: []float64{1, inf, 2}, q: 0.5, want: 2},
		{name: "median with half never", xs: []float64{1, 2, inf, inf}, q: 0.5, want: 2},
		{name: "median with more than half never", xs: []float64{1, inf, inf}, q: 0.5, want: inf},
		{name: "p80 with 20% never", xs: []float64{1, 2, 3, 4, 5, 6, 7, 8, inf, inf}, q: 0.8, want: 8},
		{name: "p80 with 30% never", xs: []float64{1, 2, 3, 4, 5, 6, 7, inf, inf, inf}, q: 0.8, want: inf},
		{name: "p80 of two", xs: []float64{0, 10}, q: 0.8, want: 10},
		{name: "p80 of five", xs: []float64{5, 1, 4, 2, 3}, q: 0.8, want: 4},
		{name: "min", xs: []float64{1, 5, 3}, q: 0, want: 1},
		{name: "one value", xs: []float64{7}, q: 0.8, want: 7},
		{name: "max", xs: []float64{1, 5, 3}, q: 1, want: 5},
		{name: "empty", xs: nil, q: 0.5, want: math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Quantile(tt.xs, tt.q)
			if !(got == tt.want || math.Abs(got-tt.want) < 1e-12 || math.IsNaN(got) && math.IsNaN(tt.want)) {
				t.Errorf("Quantile(%v, %v) = %v, want %v", tt.xs, tt.q, got, tt.want)
			}
		})
	}
	xs := []float64{3, 1, 2}
	Median(xs)
	if xs[0] != 3 {
		t.Error("Median sorted its argument in place")
	}
}

func TestSummarize(t *testing.T) {
	healthy := Cell{Scenario: Scenario{ErrorRatio: 1, Baseline: BaselineLatency, Canary: BaselineLatency}}
	regressed := Cell{Scenario: Scenario{ErrorRatio: 2, Baseline: BaselineLatency, Canary: BaselineLatency}}
	// Steps of 10 s: 6 is 1 min, 30 is 5 min.
	outs := []Outcome{{Fail: 6}, {Fail: 30}, {Fail: 12}, {Promote: 60}, {}}
	t.Run("healthy", func(t *testing.T) {
		s := Summarize(healthy, outs, math.NaN())
		if !s.Healthy || s.Runs != 5 || s.Fails != 3 || s.Promotes != 1 {
			t.Fatalf("summary %+v: want healthy, 5 runs, 3 fails, 1 promotion", s)
		}
		if lo, hi := Wilson(3, 5, Z95); s.FailLo != lo || s.FailHi != hi || s.FailRate != 0.6 {
			t.Errorf("fail rate %v [%v, %v], want 0.6 [%v, %v]", s.FailRate, s.FailLo, s.FailHi, lo, hi)
		}
		if !math.IsInf(s.MedianPromote, 1) {
			t.Errorf("median promote %v, want +Inf: 1 of 5 promoted", s.MedianPromote)
		}
	})
	t.Run("regressed", func(t *testing.T) {
		s := Summarize(regressed, outs, 1)
		if s.Healthy || s.MedianFail != 2 {
			t.Errorf("median fail %v, want 2 (of 1, 2, 5 min among the detected)", s.MedianFail)
		}
		// Over all five, undetected as +Inf: 1, 2, 5, Inf, Inf; the 4th.
		if !math.IsInf(s.P80Fail, 1) {
			t.Errorf("p80 fail %v, want +Inf: 40%% undetected", s.P80Fail)
		}
		if s.MedianFailVsBest != 2 {
			t.Errorf("median fail over the oracle's %v, want 2", s.MedianFailVsBest)
		}
	})
}
