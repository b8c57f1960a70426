package judgebench

import (
	"math"
	"slices"
	"time"
)

// Z95 is the standard normal quantile of a two-sided 95% interval.
const Z95 = 1.959963984540054

// Wilson is the Wilson score interval for a proportion: k successes in n trials, at the normal
// quantile z. Unlike the Wald interval it stays inside [0, 1] and is honest at k = 0, which is
// where a judge's false-rollback rate should be.
func Wilson(k, n int, z float64) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	nf := float64(n)
	p := float64(k) / nf
	z2 := z * z
	den := 1 + z2/nf
	center := (p + z2/(2*nf)) / den
	half := z * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf)) / den
	return math.Max(0, center-half), math.Min(1, center+half)
}

// Quantile is the q-quantile of xs by nearest rank: the smallest x with at least a share q of
// xs at or below it. xs may hold +Inf for "never", so the p80 of times to fail is finite exactly
// when at most 20% of the runs never failed, and a median time to promote exactly when at least
// half promoted. NaN for no xs.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Median is Quantile(xs, 0.5).
func Median(xs []float64) float64 { return Quantile(xs, 0.5) }

// Summary is one judge's record on one cell. Times are in minutes; +Inf is "not within the
// horizon" and NaN "not applicable".
type Summary struct {
	Runs             int
	Healthy          bool
	Fails, Promotes  int
	FailLo, FailHi   float64
	MedianFail       float64
	P80Fail          float64
	MedianPromote    float64
	FailRate         float64
	PromoteRate      float64
	MedianFailVsBest float64
}

// Summarize turns a judge's outcomes on a cell into its summary. oracleMedian is the oracle's
// median time to fail on the cell, NaN if unknown.
func Summarize(c Cell, outs []Outcome, oracleMedian float64) Summary {
	s := Summary{Runs: len(outs), Healthy: c.Healthy(), MedianFailVsBest: math.NaN()}
	var detected, fails, promotes []float64
	for _, o := range outs {
		f, p := math.Inf(1), math.Inf(1)
		if o.Fail > 0 {
			f = minutes(o.Fail)
			detected = append(detected, f)
			s.Fails++
		}
		if o.Promote > 0 {
			p = minutes(o.Promote)
			s.Promotes++
		}
		fails = append(fails, f)
		promotes = append(promotes, p)
	}
	s.FailLo, s.FailHi = Wilson(s.Fails, s.Runs, Z95)
	if s.Runs > 0 {
		s.FailRate = float64(s.Fails) / float64(s.Runs)
		s.PromoteRate = float64(s.Promotes) / float64(s.Runs)
	}
	s.MedianFail = Median(detected)
	s.P80Fail = Quantile(fails, 0.8)
	s.MedianPromote = Quantile(promotes, 0.5)
	if oracleMedian > 0 && !math.IsInf(oracleMedian, 0) {
		s.MedianFailVsBest = s.MedianFail / oracleMedian
	}
	return s
}

// minutes is the time at the end of the step-th interval (1-based), in minutes.
func minutes(step int) float64 { return (time.Duration(step) * Interval).Minutes() }
