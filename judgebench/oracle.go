package judgebench

import (
	"math"

	"github.com/coalmine/coalmine/policies"
)

// SPRT is Wald's sequential probability ratio test of "the canary's event rate is R times the
// baseline's" against "the same", on the conditional-binomial model of JUDGING.md, with the
// fail side only. Knowing the true R, it is the fastest test at its alpha: the floor.
type SPRT struct {
	R float64
	// L is the log-likelihood ratio so far.
	L float64
}

// Add folds one interval in: requests n and events y of the canary and the baseline.
func (t *SPRT) Add(nc, nb, yc, yb float64) {
	if nc+nb <= 0 || yc+yb <= 0 {
		return
	}
	rho := nc / (nc + nb)
	t.L += yc*math.Log(t.R) - (yc+yb)*math.Log1p(rho*(t.R-1))
}

// Crossed reports whether the test rejects "the same" at alpha.
func (t *SPRT) Crossed(alpha float64) bool { return t.L >= math.Log(1/alpha) }

// OracleEdge is the finite bucket edge nearest the baseline's true p99, in log distance: the
// latency oracle counts the requests slower than it.
func OracleEdge(l Latency) float64 {
	best := Edges[0]
	for _, le := range Edges[:len(Edges)-1] {
		if math.Abs(math.Log(le/l.P99)) < math.Abs(math.Log(best/l.P99)) {
			best = le
		}
	}
	return best
}

// OracleRatio is the ratio the oracle tests on a cell: the true one (of error rates, or of the
// shares slower than OracleEdge), or 2 on a healthy cell, where any failure is false.
func OracleRatio(c Cell) float64 {
	r := c.ErrorRatio
	if c.Metric == policies.KindLatency {
		le := OracleEdge(c.Baseline)
		r = c.Canary.Slower(le) / c.Baseline.Slower(le)
	}
	if c.Healthy() || !(r > 1) {
		return 2
	}
	return r
}

func runOracle(_ *policies.Policy, c Cell, s Stream) Outcome {
	t := SPRT{R: OracleRatio(c)}
	le := OracleEdge(c.Baseline)
	for i := range s.Errors {
		if c.Metric == policies.KindLatency {
			b, cn := s.Latency[i].Baseline, s.Latency[i].Canary
			yb, _ := b.Slower(le)
			yc, _ := cn.Slower(le)
			t.Add(cn.Requests, b.Requests, yc, yb)
		} else {
			b, cn := s.Errors[i].Baseline, s.Errors[i].Canary
			t.Add(cn.Requests, b.Requests, cn.Errors, b.Errors)
		}
		if t.Crossed(Alpha) {
			return Outcome{Fail: i + 1}
		}
	}
	return Outcome{}
}
