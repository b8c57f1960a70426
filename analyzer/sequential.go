package analyzer

import (
	"fmt"
	"math"
	"slices"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// StreamJudge judges a metric from evidence gathered interval by interval.
type StreamJudge interface {
	// Add folds one interval, already in me's totals and history, into the judge's tests.
	Add(me *MetricEvidence, m policies.Metric, a policies.Analysis, iv metrics.Interval)
	// Judge gives the verdict on the evidence so far; alpha is the metric's share of the
	// policy's alpha.
	Judge(me *MetricEvidence, m policies.Metric, a policies.Analysis, alpha float64) MetricResult
}

// SequentialJudge is the anytime-valid judge: the conditional-binomial mixture test on each
// interval's counts (errors; for latency, requests slower than each bucket edge). It fails a
// metric as soon as the evidence that the canary is worse crosses alpha and passes it once the
// evidence that it is no worse than the tolerance does; however often it looks, a healthy
// canary fails with probability at most alpha.
type SequentialJudge struct{}

// minPromoteSlow is how many requests slower than the judged quantile the baseline must have
// served before the edge that can pass a latency metric is chosen.
const minPromoteSlow = 20

// Add implements StreamJudge.
func (SequentialJudge) Add(me *MetricEvidence, m policies.Metric, a policies.Analysis, iv metrics.Interval) {
	b, c := iv.Baseline, iv.Canary
	switch m.Kind {
	case policies.KindErrors:
		if me.Test == nil {
			me.Test = newCountTest(a.Tolerance)
		}
		if me.MarginTest == nil {
			me.MarginTest = newMarginTest(a.Tolerance)
		}
		me.MarginTest.add(c.Requests, b.Requests, c.Errors, b.Errors, marginPower(me.Test, a.Tempering))
		me.Test.add(c.Requests, b.Requests, c.Errors, b.Errors, a.Tempering)
		me.Test.update()
		me.PFail, me.PPromote = me.Test.PFail, me.Test.PPromote
		if m.Margin != nil {
			me.MarginTest.update(*m.Margin)
			me.PPromote = me.MarginTest.PPromote
		}
	case policies.KindLatency:
		if me.Edges == nil {
			me.Edges = finiteEdges(b.Buckets, c.Buckets)
			if len(me.Edges) == 0 {
				me.Edges = nil
				return
			}
			for range me.Edges {
				me.EdgeTests = append(me.EdgeTests, newCountTest(a.Tolerance))
			}
			if m.Margin != nil {
				me.MarginEdges, me.MarginTests = marginEdges(me.Edges, *m.Margin), make([]*countTest, len(me.Edges))
				for i, j := range me.MarginEdges {
					if j >= 0 {
						me.MarginTests[i] = newCountTest(a.Tolerance)
					}
				}
			}
		}
		fails := make([]float64, 0, len(me.Edges))
		for i, le := range me.Edges {
			t := me.EdgeTests[i]
			sb, okb := b.Slower(le)
			sc, okc := c.Slower(le)
			if okb && okc {
				t.add(c.Requests, b.Requests, sc, sb, a.Tempering)
				t.update()
			}
			fails = append(fails, t.lnFail())
			if j := marginEdge(me, i); j >= 0 {
				// The canary slower than the edge a margin above, the baseline slower than this one.
				if sc, okc := c.Slower(me.Edges[j]); okc && okb {
					me.MarginTests[i].add(c.Requests, b.Requests, sc, sb, a.Tempering)
					me.MarginTests[i].update()
				}
			}
		}
		// One mixture over the edges: a mixture of test martingales is one, so the metric
		// keeps its alpha whichever edge the regression shows at.
		me.PFail = math.Min(me.PFail, math.Exp(-logMeanExp(fails, len(fails))))
		if me.PromoteEdge == nil {
			me.PromoteEdge = promoteEdge(me, m.Quantile)
		}
		if me.PromoteEdge != nil {
			me.PPromote = me.EdgeTests[*me.PromoteEdge].PPromote
			if j := marginEdge(me, *me.PromoteEdge); j >= 0 {
				me.PPromote = me.MarginTests[*me.PromoteEdge].PPromote
			}
		}
	}
}

// marginPower is the tempering of an errors metric's margin test for its next interval: the
// promote side's (the dispersion as seen). Before either version has made an error there is no
// dispersion to see, and nothing to temper: requests without errors count in full once the
// canary has served warmUpIntervals intervals, so that a service without errors can be shown
// within its margin.
func marginPower(t *countTest, power float64) float64 {
	if t.BaselineY+t.CanaryY == 0 {
		if t.CanaryK >= warmUpIntervals {
			return power
		}
		return 0
	}
	return t.promotePower(power)
}

// marginEdges maps each edge to the first edge at least margin above it, -1 when there is none:
// where the canary is counted slow when the baseline is counted slow at the edge.
func marginEdges(edges []float64, margin float64) []int {
	out := make([]int, len(edges))
	for i, le := range edges {
		out[i] = -1
		for j := i; j < len(edges); j++ {
			if edges[j] >= le+margin*(1-1e-9) {
				out[i] = j
				break
			}
		}
	}
	return out
}

// marginEdge is the canary's edge for edge i under the metric's margin; -1 without a margin or
// without an edge that far above.
func marginEdge(me *MetricEvidence, i int) int {
	if i < 0 || i >= len(me.MarginEdges) || me.MarginTests[i] == nil {
		return -1
	}
	return me.MarginEdges[i]
}

// finiteEdges are the finite bucket bounds of both versions' histograms, sorted.
func finiteEdges(a, b []metrics.Bucket) []float64 {
	seen := map[float64]bool{}
	var edges []float64
	for _, bs := range [][]metrics.Bucket{a, b} {
		for _, x := range bs {
			if !math.IsInf(x.UpperBound, 0) && !math.IsNaN(x.UpperBound) && !seen[x.UpperBound] {
				seen[x.UpperBound] = true
				edges = append(edges, x.UpperBound)
			}
		}
	}
	slices.Sort(edges)
	return edges
}

// promoteEdge picks the edge whose test passes a latency metric: the highest edge that at least
// 1-q of the baseline's requests are slower than, so the test is about the judged quantile.
// Chosen from the baseline alone, once it has served enough; nil before.
func promoteEdge(me *MetricEvidence, q float64) *int {
	n := me.Baseline.Requests
	if n*(1-q) < minPromoteSlow || len(me.Edges) == 0 {
		return nil
	}
	idx := 0
	for i, le := range me.Edges {
		if me.Baseline.slower(le) >= (1-q)*n {
			idx = i
		}
	}
	return &idx
}

// slower is how many of the totalled requests were slower than le.
func (t Totals) slower(le float64) float64 {
	for _, b := range t.Buckets {
		if b.UpperBound == le {
			return math.Max(0, t.Requests-b.Count)
		}
	}
	return 0
}

// Judge implements StreamJudge.
func (SequentialJudge) Judge(me *MetricEvidence, m policies.Metric, a policies.Analysis, alpha float64) MetricResult {
	r := evidenceResult(me, m)
	st := newStats(policies.JudgeSequential)
	r.Stats = st
	st.Alpha, st.Tolerance = Number(alpha), Number(a.Tolerance)
	st.PValue, st.PromoteP = Number(me.PFail), Number(me.PPromote)
	subject := "error rate"
	t := me.Test
	if m.Kind == policies.KindLatency {
		var edge int
		if t, edge = me.shownEdge(); t != nil {
			st.Edge = Number(me.Edges[edge])
			subject = fmt.Sprintf("share slower than %ss", formatEdge(me.Edges[edge]))
		}
	}
	if m.Kind == policies.KindErrors {
		if m.Margin != nil {
			st.Margin = Number(*m.Margin)
		}
		if mt := me.MarginTest; mt != nil {
			st.SupportedMargin = Number(mt.supportedMargin(alpha))
		}
	}
	if t != nil {
		lo, hi := t.interval(alpha)
		st.Low, st.High = Number(lo), Number(hi)
		st.Estimate = Number(t.shownRatio(lo, hi))
	}
	numbers := func() string {
		if t == nil {
			return "no data yet"
		}
		return fmt.Sprintf("%s %s vs baseline %s: ratio %s, %s always-valid interval %s",
			subject, share(t.CanaryY, t.CanaryN), share(t.BaselineY, t.BaselineN),
			FormatRatio(float64(st.Estimate)), level(alpha), formatInterval(float64(st.Low), float64(st.High)))
	}
	switch {
	case me.PFail <= alpha:
		return r.with(Fail, fmt.Sprintf("%s; %s <= alpha %g: the canary is worse", numbers(), formatP(me.PFail), alpha))
	case me.LastCanarySeries == 0:
		return r.with(Inconclusive, "no data for the canary at the last interval")
	case me.LastBaselineSeries == 0:
		return r.with(Inconclusive, "no data for the baseline at the last interval")
	case me.Canary.Requests < float64(a.MinRequests) || me.Baseline.Requests < float64(a.MinRequests):
		return r.with(Inconclusive, fmt.Sprintf("%s requests from the baseline and %s from the canary so far; each needs minRequests %d",
			formatCount(me.Baseline.Requests), formatCount(me.Canary.Requests), a.MinRequests))
	case me.PPromote <= alpha:
		margin := ""
		if m.Kind == policies.KindErrors && m.Margin != nil {
			margin = fmt.Sprintf(" plus a margin of %s points", points(*m.Margin))
		}
		if pe := me.PromoteEdge; pe != nil && marginEdge(me, *pe) >= 0 {
			mt := me.MarginTests[*pe]
			margin = fmt.Sprintf(" with margin %gs: canary slower than %ss %s vs baseline slower than %ss %s",
				*m.Margin, formatEdge(me.Edges[marginEdge(me, *pe)]), share(mt.CanaryY, mt.CanaryN), formatEdge(me.Edges[*pe]), share(mt.BaselineY, mt.BaselineN))
		}
		return r.with(Pass, fmt.Sprintf("%s; shown below tolerance %g%s (%s <= %g)", numbers(), a.Tolerance, margin, formatP(me.PPromote), alpha))
	}
	bound := fmt.Sprintf("tolerance %g", a.Tolerance)
	if m.Kind == policies.KindErrors && m.Margin != nil {
		bound += fmt.Sprintf(" plus a margin of %s points", points(*m.Margin))
	}
	return r.with(Inconclusive, fmt.Sprintf("%s; not yet shown worse (%s) nor below %s (%s)%s%s",
		numbers(), formatP(me.PFail), bound, formatP(me.PPromote), supported(t, float64(st.High), a.Tolerance, subject),
		supportedMargin(float64(st.SupportedMargin), m.Margin, a.Tolerance)))
}

// supportedMargin words the smallest margin the data so far would have passed an errors metric
// with, when it is more than the policy's.
func supportedMargin(sm float64, margin *float64, tolerance float64) string {
	switch {
	case math.IsNaN(sm):
		return ""
	case margin != nil && sm <= *margin:
		return ""
	}
	return fmt.Sprintf("; with tolerance %g, the data so far would support a margin of %s points", tolerance, points(sm))
}

// points words an error rate as percentage points: 0.002 is "0.20".
func points(x float64) string {
	if x < 0.0001 {
		return fmt.Sprintf("%.4f", 100*x)
	}
	return fmt.Sprintf("%.2f", 100*x)
}

// supported words the smallest allowance the data so far would have passed: the upper end of
// the always-valid interval, as a tolerance and as points above the baseline's rate. It tells
// the owner of an inconclusive canary what tolerance the evidence could carry.
func supported(t *countTest, hi, tolerance float64, subject string) string {
	if t == nil || !metrics.Finite(hi) || hi <= tolerance || t.BaselineN <= 0 {
		return ""
	}
	base := t.BaselineY / t.BaselineN
	return fmt.Sprintf("; the data so far would support a tolerance of %s, a %s up to %.2f points above the baseline's %.2f%%",
		FormatRatio(hi), subject, 100*(hi-1)*base, 100*base)
}

// shownRatio is the ratio a report shows: the canary's rate over the baseline's across the
// analysis, kept within the confidence interval (the caps and tempering that guard against
// bursts flatten the likelihood, so its maximum understates a large ratio).
func (t *countTest) shownRatio(lo, hi float64) float64 {
	if t.CanaryN <= 0 || t.BaselineN <= 0 || t.CanaryY+t.BaselineY == 0 {
		return math.NaN()
	}
	r := ratio(t.CanaryY/t.CanaryN, t.BaselineY/t.BaselineN)
	if !math.IsNaN(lo) && r < lo {
		r = lo
	}
	if !math.IsNaN(hi) && r > hi {
		r = hi
	}
	return r
}

// shownEdge is the latency edge a report shows: the one with the most evidence of a
// regression, or else the one that can pass the metric.
func (me *MetricEvidence) shownEdge() (*countTest, int) {
	best := -1
	for i, t := range me.EdgeTests {
		if t.PFail < 1 && (best < 0 || t.PFail < me.EdgeTests[best].PFail) {
			best = i
		}
	}
	if best < 0 && me.PromoteEdge != nil {
		best = *me.PromoteEdge
	}
	if best < 0 {
		return nil, 0
	}
	return me.EdgeTests[best], best
}

// evidenceResult fills a metric result's counts and values from the evidence.
func evidenceResult(me *MetricEvidence, m policies.Metric) MetricResult {
	r := newResult(m, metrics.Observation{})
	r.Baseline, r.Canary = Number(me.Baseline.value(m)), Number(me.Canary.value(m))
	r.BaselineRequests, r.CanaryRequests = Number(me.Baseline.Requests), Number(me.Canary.Requests)
	if m.Kind == policies.KindErrors {
		r.BaselineErrors, r.CanaryErrors = Number(me.Baseline.Errors), Number(me.Canary.Errors)
	}
	if b, c := float64(r.Baseline), float64(r.Canary); metrics.Finite(b) && metrics.Finite(c) {
		r.Difference, r.Ratio = Number(c-b), Number(ratio(c, b))
	}
	r.History = me.History
	return r
}

func share(y, n float64) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%% (%s/%s)", 100*y/n, formatCount(y), formatCount(n))
}

// FormatRatio words a canary/baseline ratio for people: "2.08", "inf", "-" when unknown.
func FormatRatio(x float64) string {
	switch {
	case math.IsNaN(x):
		return "-"
	case math.IsInf(x, 1):
		return "inf"
	}
	return fmt.Sprintf("%.2f", x)
}

// formatInterval words a confidence interval: "[1.30, 2.83]".
func formatInterval(lo, hi float64) string {
	return fmt.Sprintf("[%s, %s]", FormatRatio(lo), FormatRatio(hi))
}

// formatP words a p-value: "p = 0.0123", "p < 0.0001".
func formatP(p float64) string {
	if p < 0.0001 {
		return "p < 0.0001"
	}
	return fmt.Sprintf("p = %.4f", p)
}

func level(alpha float64) string {
	return fmt.Sprintf("%g%%", math.Round(1e4*(1-alpha))/100)
}

func formatEdge(le float64) string { return fmt.Sprintf("%g", le) }
