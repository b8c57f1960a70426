package analyzer

import (
	"fmt"
	"time"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// MannWhitneyJudge judges like Kayenta: the window's per-interval values of the canary against
// the baseline's (outliers beyond 3 IQR dropped), a Mann-Whitney 98% confidence interval for
// the shift, and "worse" when the interval lies above 0 and the canary's mean is at least
// thresholds.maxRatio (default 1) times the baseline's. It is a fixed-sample test repeated
// every interval, kept so teams moving from Kayenta can compare, and so the benchmark can.
type MannWhitneyJudge struct{}

// Kayenta's settings.
const (
	mwConfidence = 0.98
	mwIQRFactor  = 3
	mwMinPoints  = 3
)

// Add implements StreamJudge: the judge reads only the history the analyzer keeps.
func (MannWhitneyJudge) Add(*MetricEvidence, policies.Metric, policies.Analysis, metrics.Interval) {}

// Judge implements StreamJudge.
func (MannWhitneyJudge) Judge(me *MetricEvidence, m policies.Metric, a policies.Analysis, _ float64) MetricResult {
	r := evidenceResult(me, m)
	n := int(time.Duration(a.Window) / time.Duration(a.Interval))
	pts := me.History
	if n > 0 && len(pts) > n {
		pts = pts[len(pts)-n:]
	}
	var b, c []float64
	for _, p := range pts {
		b = append(b, float64(p.Baseline))
		c = append(c, float64(p.Canary))
	}
	mw := MannWhitney(b, c, mwConfidence, mwIQRFactor)
	allowed := 1.0
	if m.Thresholds.MaxRatio != nil {
		allowed = *m.Thresholds.MaxRatio
	}
	st := newStats(policies.JudgeMannWhitney)
	r.Stats = st
	st.PValue = Number(mw.P)
	st.Estimate = Number(ratio(mw.CanaryMean, mw.BaselineMean))
	st.Low, st.High = Number(mw.Lo), Number(mw.Hi)
	f := formatterFor(m.Kind)
	numbers := fmt.Sprintf("%s per interval: canary mean %s vs baseline %s over %d/%d intervals; shift %s, 98%% interval [%s, %s], %s",
		f.name, f.value(mw.CanaryMean), f.value(mw.BaselineMean), mw.CanaryN, mw.BaselineN,
		f.value(mw.Estimate), f.value(mw.Lo), f.value(mw.Hi), formatP(mw.P))
	switch {
	case me.LastCanarySeries == 0:
		return r.with(Inconclusive, "no data for the canary at the last interval")
	case mw.BaselineN < mwMinPoints || mw.CanaryN < mwMinPoints:
		return r.with(Inconclusive, fmt.Sprintf("%d baseline and %d canary intervals with traffic in the window; need %d each", mw.BaselineN, mw.CanaryN, mwMinPoints))
	case me.Canary.Requests < float64(a.MinRequests) || me.Baseline.Requests < float64(a.MinRequests):
		return r.with(Inconclusive, fmt.Sprintf("%s requests from the baseline and %s from the canary so far; each needs minRequests %d",
			formatCount(me.Baseline.Requests), formatCount(me.Canary.Requests), a.MinRequests))
	case MannWhitneyHigh(mw, allowed):
		return r.with(Fail, fmt.Sprintf("%s: higher, mean ratio %s >= %g", numbers, FormatRatio(float64(st.Estimate)), allowed))
	}
	return r.with(Pass, numbers)
}
