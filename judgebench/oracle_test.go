package judgebench

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestSPRTStep(t *testing.T) {
	// Equal traffic, 3 canary errors and 1 baseline error, r = 2:
	// 3 ln 2 - 4 ln 1.5.
	s := SPRT{R: 2}
	s.Add(100, 100, 3, 1)
	if want := 3*math.Ln2 - 4*math.Log(1.5); math.Abs(s.L-want) > 1e-12 {
		t.Errorf("L = %v, want %v", s.L, want)
	}
	before := s.L
	s.Add(100, 100, 0, 0)
	s.Add(0, 0, 0, 0)
	if s.L != before {
		t.Errorf("an interval without events moved L from %v to %v", before, s.L)
	}
}

// oracleRuns runs the oracle on n streams of the cell and returns the minutes to fail,
// +Inf for runs it never failed.
func oracleRuns(c Cell, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		o := runOracle(nil, c, Generate(c.Scenario, rand.New(rand.NewPCG(11, uint64(i)))))
		out[i] = math.Inf(1)
		if o.Fail > 0 {
			out[i] = minutes(o.Fail)
		}
	}
	return out
}

func cell(t *testing.T, name string) Cell {
	t.Helper()
	for _, c := range Grid() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no cell %q", name)
	return Cell{}
}

func TestOracleDetectsFiveTimes(t *testing.T) {
	ts := oracleRuns(cell(t, HeadlineFive), 200)
	// 1% -> 5% at 10 req/s: about 3 canary errors for every baseline one, crossing ln 20 in
	// well under a minute.
	if m := Median(ts); !(m <= 0.75) {
		t.Errorf("median time to fail %v min, want <= 0.75", m)
	}
	if p := Quantile(ts, 0.99); !(p <= 2) {
		t.Errorf("p99 time to fail %v min, want every run caught within 2 min", p)
	}
}

func TestOracleHealthyFalseRollbacks(t *testing.T) {
	const runs = 400
	fails := 0
	for _, x := range oracleRuns(cell(t, HealthyHeadline), runs) {
		if !math.IsInf(x, 1) {
			fails++
		}
	}
	// Wald: a healthy canary ever crosses ln(1/alpha) with probability at most alpha.
	if lo, _ := Wilson(fails, runs, Z95); lo > Alpha {
		t.Errorf("%d of %d healthy canaries failed: significantly more than alpha %v", fails, runs, Alpha)
	}
}

func TestOracleLatency(t *testing.T) {
	if got := OracleEdge(BaselineLatency); got != 0.5 {
		t.Errorf("edge nearest a p99 of %gs = %v, want 0.5", BaselineLatency.P99, got)
	}
	c := cell(t, LatencyWhole)
	if r := OracleRatio(c); r < 2 || r > 3 {
		t.Errorf("oracle ratio on %q = %v, want the true ratio of shares slower than 0.5s, about 2.4", c.Name, r)
	}
	if r := OracleRatio(cell(t, "lat healthy @10/s")); r != 2 {
		t.Errorf("oracle ratio on a healthy cell = %v, want 2", r)
	}
	ts := oracleRuns(c, 100)
	if m := Median(ts); !(m < 5) {
		t.Errorf("median time to fail %v min on %q, want < 5", m, c.Name)
	}
}
