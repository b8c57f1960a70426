package analyzer

import (
	"fmt"
	"math"
	"strings"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// ThresholdJudge bounds the canary's value absolutely (min, max) and relative to the baseline
// (maxRatio, maxDifference) over one window, like Flagger's checks but with a baseline.
type ThresholdJudge struct{}

// Judge gives the verdict on one metric's observation. minRequests is the requests each arm needs
// before a metric that counts requests is judged.
func (ThresholdJudge) Judge(m policies.Metric, minRequests int, obs metrics.Observation) MetricResult {
	r := newResult(m, obs)
	f := formatterFor(m.Kind)
	th := m.Thresholds
	needRequests := metrics.HasRequests(m.Kind)

	if reason, ok := usable("canary", obs.Canary, float64(r.Canary), needRequests, minRequests); !ok {
		return r.with(Inconclusive, reason)
	}
	var failures []string
	if th.Max != nil && float64(r.Canary) > *th.Max {
		failures = append(failures, fmt.Sprintf("%s %s is above max %s", f.name, f.value(float64(r.Canary)), f.value(*th.Max)))
	}
	if th.Min != nil && float64(r.Canary) < *th.Min {
		failures = append(failures, fmt.Sprintf("%s %s is below min %s", f.name, f.value(float64(r.Canary)), f.value(*th.Min)))
	}
	if th.Relative() {
		if reason, ok := usable("baseline", obs.Baseline, float64(r.Baseline), needRequests, minRequests); !ok {
			if len(failures) > 0 {
				return r.with(Fail, strings.Join(failures, "; "))
			}
			return r.with(Inconclusive, reason)
		}
		ratio, diff := float64(r.Ratio), float64(r.Difference)
		if th.MaxRatio != nil && !(ratio <= *th.MaxRatio) {
			if math.IsInf(ratio, 1) {
				failures = append(failures, fmt.Sprintf("%s %s where the baseline has %s: infinitely worse, above maxRatio %g",
					f.name, f.value(float64(r.Canary)), f.value(float64(r.Baseline)), *th.MaxRatio))
			} else {
				failures = append(failures, fmt.Sprintf("%s %s is %.2fx the baseline's %s, above maxRatio %g",
					f.name, f.value(float64(r.Canary)), ratio, f.value(float64(r.Baseline)), *th.MaxRatio))
			}
		}
		if th.MaxDifference != nil && !(diff <= *th.MaxDifference) {
			failures = append(failures, fmt.Sprintf("%s %s is %s above the baseline's %s, more than maxDifference %s",
				f.name, f.value(float64(r.Canary)), f.value(diff), f.value(float64(r.Baseline)), f.value(*th.MaxDifference)))
		}
	}
	if len(failures) > 0 {
		return r.with(Fail, strings.Join(failures, "; "))
	}
	if th.Relative() {
		return r.with(Pass, fmt.Sprintf("%s %s vs baseline %s (ratio %.2f)", f.name, f.value(float64(r.Canary)), f.value(float64(r.Baseline)), float64(r.Ratio)))
	}
	return r.with(Pass, fmt.Sprintf("%s %s is within bounds", f.name, f.value(float64(r.Canary))))
}

// newResult fills the numbers of a metric result from an observation.
func newResult(m policies.Metric, obs metrics.Observation) MetricResult {
	nan := Number(math.NaN())
	r := MetricResult{
		Name: m.Name, Kind: m.Kind, Critical: m.IsCritical(), Thresholds: m.Thresholds, Query: obs.Query,
		Baseline: nan, Canary: nan, Ratio: nan, Difference: nan,
		BaselineRequests: nan, CanaryRequests: nan, BaselineErrors: nan, CanaryErrors: nan,
		Warnings: obs.Warnings,
	}
	r.Baseline = Number(value(m, obs.Baseline))
	r.Canary = Number(value(m, obs.Canary))
	if metrics.HasRequests(m.Kind) {
		if obs.Baseline.Present {
			r.BaselineRequests = Number(obs.Baseline.Requests)
		}
		if obs.Canary.Present {
			r.CanaryRequests = Number(obs.Canary.Requests)
		}
	}
	if m.Kind == policies.KindErrors {
		if obs.Baseline.Present {
			r.BaselineErrors = Number(obs.Baseline.Errors)
		}
		if obs.Canary.Present {
			r.CanaryErrors = Number(obs.Canary.Errors)
		}
	}
	b, c := float64(r.Baseline), float64(r.Canary)
	if metrics.Finite(b) && metrics.Finite(c) {
		r.Difference = Number(c - b)
		r.Ratio = Number(ratio(c, b))
	}
	return r
}

// ratio is c/b, with 0/0 = 1 (both equally good) and c/0 = +Inf for c > 0: a baseline without
// errors never lets a canary with errors pass (Kayenta's NaN bug).
func ratio(c, b float64) float64 {
	switch {
	case b == 0 && c == 0:
		return 1
	case b == 0:
		return math.Copysign(math.Inf(1), c)
	}
	return c / b
}

// value is the number judged for an arm, NaN when the arm has none.
func value(m policies.Metric, a metrics.Arm) float64 {
	if !a.Present {
		return math.NaN()
	}
	switch m.Kind {
	case policies.KindErrors:
		if a.Requests <= 0 {
			return math.NaN()
		}
		return a.Errors / a.Requests
	case policies.KindLatency:
		return metrics.Quantile(m.Quantile, a.Buckets)
	}
	return a.Value
}

// usable says whether an arm has enough data to be judged, and why not.
func usable(side string, a metrics.Arm, v float64, needRequests bool, minRequests int) (string, bool) {
	switch {
	case !a.Present:
		return fmt.Sprintf("no data for the %s (version %q)", side, a.Version), false
	case needRequests && a.Requests < float64(minRequests):
		return fmt.Sprintf("the %s served %s requests in the window, fewer than minRequests %d", side, formatCount(a.Requests), minRequests), false
	case math.IsNaN(v):
		return fmt.Sprintf("the %s's value is NaN", side), false
	case math.IsInf(v, 0):
		return fmt.Sprintf("the %s's value is %v", side, v), false
	}
	return "", true
}

func (r MetricResult) with(v Verdict, reason string) MetricResult {
	r.Verdict = v
	r.Reason = reason
	return r
}

// formatter words a metric's numbers.
type formatter struct {
	name  string
	value func(float64) string
}

func formatterFor(kind policies.MetricKind) formatter {
	switch kind {
	case policies.KindErrors:
		return formatter{name: "error rate", value: func(x float64) string { return FormatValue(kind, x) }}
	case policies.KindLatency:
		return formatter{name: "latency", value: func(x float64) string { return FormatValue(kind, x) }}
	}
	return formatter{name: "value", value: func(x float64) string { return FormatValue(kind, x) }}
}

// FormatValue words a judged value for people: a percentage for error rates, seconds for latency.
func FormatValue(kind policies.MetricKind, x float64) string {
	switch {
	case math.IsNaN(x):
		return "-"
	case kind == policies.KindErrors:
		return fmt.Sprintf("%.2f%%", 100*x)
	case kind == policies.KindLatency:
		return fmt.Sprintf("%.3gs", x)
	}
	return fmt.Sprintf("%.4g", x)
}

func formatCount(x float64) string {
	if x == math.Trunc(x) {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.1f", x)
}
