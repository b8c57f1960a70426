package judgebench

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/coalmine/coalmine/metrics"
)

func TestPoisson(t *testing.T) {
	tests := []struct {
		name   string
		lambda float64
	}{
		{name: "zero", lambda: 0},
		{name: "a slow arm's interval", lambda: 2},
		{name: "10 req/s for 10 s", lambda: 100},
		{name: "100 req/s for 10 s", lambda: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			mean, variance := moments(20000, func() float64 { return poisson(r, tt.lambda) })
			// Five standard errors of the mean; a Poisson's variance is its mean.
			if tol := 5 * math.Sqrt(tt.lambda/20000); math.Abs(mean-tt.lambda) > tol {
				t.Errorf("mean %v, want %v ± %v", mean, tt.lambda, tol)
			}
			if math.Abs(variance-tt.lambda) > 0.05*tt.lambda {
				t.Errorf("variance %v, want %v within 5%%", variance, tt.lambda)
			}
		})
	}
}

func TestBinomial(t *testing.T) {
	tests := []struct {
		name string
		n, p float64
	}{
		{name: "no trials", n: 0, p: 0.5},
		{name: "certain", n: 7, p: 1},
		{name: "rare errors", n: 100, p: 0.0005},
		{name: "1% of 1000", n: 1000, p: 0.01},
		{name: "half of a busy interval", n: 1500, p: 0.5},
		{name: "nearly all", n: 1000, p: 0.999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			var bad float64
			mean, variance := moments(20000, func() float64 {
				k := binomial(r, tt.n, tt.p)
				if k < 0 || k > tt.n || k != math.Trunc(k) {
					bad = k
				}
				return k
			})
			if bad != 0 {
				t.Fatalf("drew %v, outside 0..%v", bad, tt.n)
			}
			wantMean, wantVar := tt.n*tt.p, tt.n*tt.p*(1-tt.p)
			if tol := 5*math.Sqrt(wantVar/20000) + 1e-9; math.Abs(mean-wantMean) > tol {
				t.Errorf("mean %v, want %v ± %v", mean, wantMean, tol)
			}
			if math.Abs(variance-wantVar) > 0.06*wantVar+1e-9 {
				t.Errorf("variance %v, want %v within 6%%", variance, wantVar)
			}
		})
	}
}

func moments(n int, draw func() float64) (mean, variance float64) {
	var sum, sumSq float64
	for range n {
		x := draw()
		sum += x
		sumSq += x * x
	}
	mean = sum / float64(n)
	return mean, sumSq/float64(n) - mean*mean
}

func TestLatencyFit(t *testing.T) {
	for _, l := range []Latency{BaselineLatency, {Median: 0.12, P99: 0.48}, {Median: 0.1, P99: 0.48}} {
		if got := l.CDF(l.Median); math.Abs(got-0.5) > 1e-12 {
			t.Errorf("%+v: CDF(median) = %v, want 0.5", l, got)
		}
		if got := l.CDF(l.P99); math.Abs(got-0.99) > 1e-9 {
			t.Errorf("%+v: CDF(p99) = %v, want 0.99", l, got)
		}
	}
}

// streams generates n streams of sc.
func streams(sc Scenario, n int) []Stream {
	out := make([]Stream, n)
	for i := range out {
		out[i] = Generate(sc, rand.New(rand.NewPCG(9, uint64(i))))
	}
	return out
}

func TestGenerateErrorRates(t *testing.T) {
	tests := []struct {
		name string
		sc   Scenario
		runs int
	}{
		{name: "1% to 2% at 10/s", runs: 20, sc: Scenario{Rate: 10, ErrorRate: 0.01, ErrorRatio: 2, Baseline: BaselineLatency, Canary: BaselineLatency}},
		{name: "0.1% to 0.5% at 100/s", runs: 20, sc: Scenario{Rate: 100, ErrorRate: 0.001, ErrorRatio: 5, Baseline: BaselineLatency, Canary: BaselineLatency}},
		{name: "5% healthy at 1/s", runs: 100, sc: Scenario{Rate: 1, ErrorRate: 0.05, ErrorRatio: 1, Baseline: BaselineLatency, Canary: BaselineLatency}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var nb, yb, nc, yc float64
			for _, s := range streams(tt.sc, tt.runs) {
				for i, iv := range s.Errors {
					nb += iv.Baseline.Requests
					yb += iv.Baseline.Errors
					nc += iv.Canary.Requests
					yc += iv.Canary.Errors
					if iv.Canary.Requests != s.Latency[i].Canary.Requests || iv.Baseline.Requests != s.Latency[i].Baseline.Requests {
						t.Fatalf("interval %d: the metrics count different requests", i)
					}
				}
			}
			wantN := float64(tt.runs*Steps) * tt.sc.Rate * Interval.Seconds()
			for _, arm := range []struct {
				name       string
				n, y, rate float64
			}{{"baseline", nb, yb, tt.sc.ErrorRate}, {"canary", nc, yc, tt.sc.ErrorRate * tt.sc.ErrorRatio}} {
				if tol := 5 * math.Sqrt(wantN); math.Abs(arm.n-wantN) > tol {
					t.Errorf("%s requests %v, want %v ± %v", arm.name, arm.n, wantN, tol)
				}
				got := arm.y / arm.n
				if tol := 5 * math.Sqrt(arm.rate*(1-arm.rate)/arm.n); math.Abs(got-arm.rate) > tol {
					t.Errorf("%s error rate %.5f, want %.5f ± %.5f", arm.name, got, arm.rate, tol)
				}
			}
		})
	}
}

func TestGenerateLatencyShares(t *testing.T) {
	whole := Latency{Median: 0.12, P99: 0.48}
	tail := Latency{Median: 0.1, P99: 0.48}
	sc := Scenario{Rate: 100, ErrorRate: 0.01, ErrorRatio: 1, Baseline: BaselineLatency, Canary: whole}
	var base, canary [][]float64 // per stream, slower counts per edge
	var nb, nc float64
	for _, s := range streams(sc, 10) {
		for _, iv := range s.Latency {
			nb += iv.Baseline.Requests
			nc += iv.Canary.Requests
			base = append(base, slowerCounts(t, iv.Baseline.Buckets, iv.Baseline.Requests))
			canary = append(canary, slowerCounts(t, iv.Canary.Buckets, iv.Canary.Requests))
		}
	}
	for i, le := range Edges[:len(Edges)-1] {
		for _, arm := range []struct {
			name   string
			l      Latency
			counts [][]float64
			n      float64
		}{{"baseline", BaselineLatency, base, nb}, {"canary", whole, canary, nc}} {
			var slow float64
			for _, c := range arm.counts {
				slow += c[i]
			}
			want := arm.l.Slower(le)
			if tol := 5*math.Sqrt(want*(1-want)/arm.n) + 1e-9; math.Abs(slow/arm.n-want) > tol {
				t.Errorf("%s: share slower than %gs = %.5f, want %.5f ± %.5f", arm.name, le, slow/arm.n, want, tol)
			}
		}
	}
	// The shares that make p99 what was asked: 1% slower than the p99, lying between the
	// edges around it.
	le := OracleEdge(BaselineLatency)
	if b, w, tl := BaselineLatency.Slower(le), whole.Slower(le), tail.Slower(le); !(b < 0.01 && w > b && tl > b) {
		t.Errorf("shares slower than %gs: baseline %v, whole +20%% %v, tail +20%% %v; want the baseline's under 1%% and both regressions above it", le, b, w, tl)
	}
	if got := BaselineLatency.Slower(0.25); !(got > 0.01) {
		t.Errorf("baseline share slower than 0.25s = %v, want over 1%% (its p99 is 0.4s)", got)
	}
}

// slowerCounts turns cumulative buckets into the count slower than each finite edge.
func slowerCounts(t *testing.T, bs []metrics.Bucket, n float64) []float64 {
	t.Helper()
	if len(bs) != len(Edges) || bs[len(bs)-1].Count != n {
		t.Fatalf("buckets %v: want %d edges ending with the +Inf count %v", bs, len(Edges), n)
	}
	out := make([]float64, len(bs)-1)
	for i := range out {
		if i > 0 && bs[i].Count < bs[i-1].Count {
			t.Fatalf("buckets %v are not cumulative", bs)
		}
		out[i] = n - bs[i].Count
	}
	return out
}

func TestGenerateSpecialCells(t *testing.T) {
	cells := map[string]Cell{}
	for _, c := range Grid() {
		cells[c.Name] = c
	}
	t.Run("ramp", func(t *testing.T) {
		c := cells["ramp 10->50->100% err 1% @10/s"]
		var per [3]float64
		for _, s := range streams(c.Scenario, 20) {
			for i, iv := range s.Errors {
				per[i*3/Steps] += iv.Canary.Requests / iv.Baseline.Requests
			}
		}
		for k, want := range []float64{0.1, 0.5, 1} {
			if got := per[k] / float64(20*Steps/3); math.Abs(got-want) > 0.05*want+0.01 {
				t.Errorf("step %d: canary/baseline traffic %.3f, want %v", k, got, want)
			}
		}
	})
	t.Run("incident", func(t *testing.T) {
		c := cells["incident both x10 5m err 1% @10/s"]
		var in, out, nIn, nOut float64
		for _, s := range streams(c.Scenario, 20) {
			for _, iv := range s.Errors {
				at := iv.Start.Sub(start)
				y, n := iv.Baseline.Errors+iv.Canary.Errors, iv.Baseline.Requests+iv.Canary.Requests
				if at >= 12*time.Minute+30*time.Second && at < 17*time.Minute+30*time.Second {
					in, nIn = in+y, nIn+n
				} else {
					out, nOut = out+y, nOut+n
				}
			}
		}
		if got := (in / nIn) / (out / nOut); got < 8.5 || got > 11.5 {
			t.Errorf("error rate during the incident %.1fx the rest's, want 10x", got)
		}
	})
	t.Run("clumpy errors", func(t *testing.T) {
		// Variance over mean of each version's errors per interval: the cell's dispersion, for
		// the canary too, and the error rates kept.
		for _, name := range []string{"clumpy x3 err 1%->1% @10/s", "clumpy x6 err 1%->2% @10/s", "clumpy x3 err 1%->1.5% @100/s"} {
			c := cells[name]
			var yb, yc, nb, nc []float64
			for _, s := range streams(c.Scenario, 40) {
				for _, iv := range s.Errors {
					yb, yc = append(yb, iv.Baseline.Errors), append(yc, iv.Canary.Errors)
					nb, nc = append(nb, iv.Baseline.Requests), append(nc, iv.Canary.Requests)
				}
			}
			for _, v := range []struct {
				arm   string
				y, n  []float64
				ratio float64
			}{{"baseline", yb, nb, 1}, {"canary", yc, nc, c.ErrorRatio}} {
				i := 0
				mean, variance := moments(len(v.y), func() float64 { i++; return v.y[i-1] })
				var n float64
				for _, x := range v.n {
					n += x
				}
				p := mean * float64(len(v.y)) / n
				if want := c.ErrorRate * v.ratio; math.Abs(p-want) > 0.1*want {
					t.Errorf("%s, %s: error rate %.4f, want %.4f", name, v.arm, p, want)
				}
				// The Poisson request count adds its own share: about 1 + the mean's, at most.
				if d := variance / mean; d < 0.8*c.Dispersion || d > 1.3*c.Dispersion+0.2 {
					t.Errorf("%s, %s: dispersion %.2f, want about %g", name, v.arm, d, c.Dispersion)
				}
			}
		}
	})
	t.Run("warm-up", func(t *testing.T) {
		c := cells[WarmUpCell]
		var warm, later, nWarm, nLater float64
		for _, s := range streams(c.Scenario, 20) {
			for i, iv := range s.Latency {
				slow, _ := iv.Canary.Slower(0.5)
				if time.Duration(i)*Interval < 2*time.Minute {
					warm, nWarm = warm+slow, nWarm+iv.Canary.Requests
				} else {
					later, nLater = later+slow, nLater+iv.Canary.Requests
				}
			}
		}
		if w, l := warm/nWarm, later/nLater; w < 3*l {
			t.Errorf("share slower than 0.5s: %.4f in the warm-up, %.4f after; want the warm-up far slower", w, l)
		}
	})
	t.Run("load and share", func(t *testing.T) {
		load, tiny := cells["load 2->20/s err 1%->1% @10/s"], cells["canary 1% of traffic err 1%->1% @100/s"]
		s := streams(load.Scenario, 1)[0]
		if first, last := s.Errors[0].Baseline.Requests+s.Errors[0].Canary.Requests, s.Errors[Steps-1].Baseline.Requests+s.Errors[Steps-1].Canary.Requests; first > 100 || last < 300 {
			t.Errorf("load: %g requests in the first interval, %g in the last; want about 40 and 400", first, last)
		}
		var b, c float64
		for _, iv := range streams(tiny.Scenario, 1)[0].Errors {
			b, c = b+iv.Baseline.Requests, c+iv.Canary.Requests
		}
		if r := c / b; r < 0.008 || r > 0.012 {
			t.Errorf("tiny share: canary/baseline traffic %.4f, want 0.01", r)
		}
	})
	t.Run("bursts", func(t *testing.T) {
		// Dispersion of per-interval baseline errors, variance over mean: about 1 for
		// binomial errors, far more with a bad pod in 1 interval in 10.
		dispersion := func(sc Scenario) float64 {
			var ys []float64
			for _, s := range streams(sc, 20) {
				for _, iv := range s.Errors {
					ys = append(ys, iv.Baseline.Errors)
				}
			}
			i := 0
			mean, variance := moments(len(ys), func() float64 { i++; return ys[i-1] })
			return variance / mean
		}
		plain := cells[HealthyHeadline]
		bursty := cells["bursty 1-in-10 x10 err 1% @10/s"]
		if d := dispersion(plain.Scenario); d < 0.85 || d > 1.15 {
			t.Errorf("plain errors: dispersion %.2f, want about 1", d)
		}
		if d := dispersion(bursty.Scenario); d < 3 {
			t.Errorf("bursty errors: dispersion %.2f, want well above 1", d)
		}
	})
}

func TestGenerateReproducible(t *testing.T) {
	sc := Grid()[0].Scenario
	a := Generate(sc, rand.New(rand.NewPCG(5, 6)))
	b := Generate(sc, rand.New(rand.NewPCG(5, 6)))
	c := Generate(sc, rand.New(rand.NewPCG(5, 7)))
	if !reflect.DeepEqual(a, b) {
		t.Error("the same seed gave different streams")
	}
	if reflect.DeepEqual(a, c) {
		t.Error("different seeds gave the same stream")
	}
}
