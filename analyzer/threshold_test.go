package analyzer

import (
	"math"
	"strings"
	"testing"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

func f(x float64) *float64 { return &x }

func errorsObs(bReq, bErr, cReq, cErr float64) metrics.Observation {
	return metrics.Observation{
		Kind:     policies.KindErrors,
		Baseline: metrics.Arm{Version: "v1", Present: true, Requests: bReq, Errors: bErr},
		Canary:   metrics.Arm{Version: "v2", Present: true, Requests: cReq, Errors: cErr},
	}
}

func latencyObs(b, c []metrics.Bucket) metrics.Observation {
	return metrics.Observation{
		Kind:     policies.KindLatency,
		Baseline: metrics.Arm{Version: "v1", Present: true, Requests: b[len(b)-1].Count, Buckets: b},
		Canary:   metrics.Arm{Version: "v2", Present: true, Requests: c[len(c)-1].Count, Buckets: c},
	}
}

func TestThresholdJudge(t *testing.T) {
	inf := math.Inf(1)
	errRatio := policies.Metric{Name: "err", Kind: policies.KindErrors, Thresholds: policies.Thresholds{MaxRatio: f(2)}}
	errMax := policies.Metric{Name: "err", Kind: policies.KindErrors, Thresholds: policies.Thresholds{Max: f(0.05)}}
	errDiff := policies.Metric{Name: "err", Kind: policies.KindErrors, Thresholds: policies.Thresholds{MaxDifference: f(0.01)}}
	errBoth := policies.Metric{Name: "err", Kind: policies.KindErrors, Thresholds: policies.Thresholds{Max: f(0.05), MaxRatio: f(2)}}
	lat := policies.Metric{Name: "p99", Kind: policies.KindLatency, Quantile: 0.99, Thresholds: policies.Thresholds{MaxRatio: f(1.5)}}
	val := policies.Metric{Name: "up", Kind: policies.KindValue, Thresholds: policies.Thresholds{Min: f(1)}}
	valRatio := policies.Metric{Name: "cpu", Kind: policies.KindValue, Thresholds: policies.Thresholds{MaxRatio: f(1.2)}}

	fast := []metrics.Bucket{{UpperBound: 0.25, Count: 900}, {UpperBound: 0.5, Count: 990}, {UpperBound: 1, Count: 1000}, {UpperBound: inf, Count: 1000}}
	slow := []metrics.Bucket{{UpperBound: 0.25, Count: 300}, {UpperBound: 0.5, Count: 600}, {UpperBound: 1, Count: 900}, {UpperBound: 2.5, Count: 1000}, {UpperBound: inf, Count: 1000}}

	tests := []struct {
		name       string
		m          policies.Metric
		obs        metrics.Observation
		min        int
		want       Verdict
		wantReason string
	}{
		{"equal error rates pass", errRatio, errorsObs(1000, 10, 100, 1), 50, Pass, "ratio 1.00"},
		{"5x errors fail on the ratio", errRatio, errorsObs(1000, 10, 100, 5), 50, Fail, "5.00x the baseline's 1.00%"},
		{"absolute max", errMax, errorsObs(1000, 0, 100, 6), 50, Fail, "6.00% is above max 5.00%"},
		{"absolute max without a baseline", errMax, metrics.Observation{Kind: policies.KindErrors, Canary: metrics.Arm{Present: true, Requests: 100, Errors: 1}}, 50, Pass, "within bounds"},
		{"max difference", errDiff, errorsObs(1000, 10, 100, 3), 50, Fail, "more than maxDifference 1.00%"},
		{"several failures are all named", errBoth, errorsObs(1000, 10, 100, 10), 50, Fail, "above max 5.00%; error rate 10.00% is 10.00x"},
		{"zero-error baseline and a canary with errors must not pass (Kayenta)", errRatio, errorsObs(1000, 0, 100, 1), 50, Fail, "infinitely worse"},
		{"zero errors on both arms pass", errRatio, errorsObs(1000, 0, 100, 0), 50, Pass, "ratio 1.00"},
		{"canary without data is inconclusive", errRatio, metrics.Observation{Kind: policies.KindErrors, Baseline: metrics.Arm{Present: true, Requests: 10}, Canary: metrics.Arm{Version: "v2"}}, 50, Inconclusive, `no data for the canary (version "v2")`},
		{"baseline without data is inconclusive for a ratio", errRatio, metrics.Observation{Kind: policies.KindErrors, Baseline: metrics.Arm{Version: "v1"}, Canary: metrics.Arm{Present: true, Requests: 100}}, 50, Inconclusive, "no data for the baseline"},
		{"too few canary requests", errRatio, errorsObs(1000, 10, 49, 40), 50, Inconclusive, "the canary served 49 requests in the window, fewer than minRequests 50"},
		{"too few baseline requests", errRatio, errorsObs(10, 0, 100, 40), 50, Inconclusive, "the baseline served 10 requests"},
		{"zero requests is inconclusive even with minRequests 0", errRatio, errorsObs(1000, 10, 0, 0), 0, Inconclusive, "NaN"},
		{"an absolute failure stands without a baseline", errBoth, metrics.Observation{Kind: policies.KindErrors, Canary: metrics.Arm{Present: true, Requests: 100, Errors: 50}}, 50, Fail, "above max"},
		{"3x slower p99 fails", lat, latencyObs(fast, slow), 50, Fail, "above maxRatio 1.5"},
		{"same latency passes", lat, latencyObs(fast, fast), 50, Pass, "ratio 1.00"},
		{"value below min", val, metrics.Observation{Kind: policies.KindValue, Canary: metrics.Arm{Present: true, Value: 0}}, 50, Fail, "below min"},
		{"value NaN is inconclusive", val, metrics.Observation{Kind: policies.KindValue, Canary: metrics.Arm{Present: true, Value: math.NaN()}}, 50, Inconclusive, "NaN"},
		{"value +Inf is inconclusive", val, metrics.Observation{Kind: policies.KindValue, Canary: metrics.Arm{Present: true, Value: inf}}, 50, Inconclusive, "+Inf"},
		{"value metrics ignore minRequests", valRatio, metrics.Observation{Kind: policies.KindValue, Baseline: metrics.Arm{Present: true, Value: 1}, Canary: metrics.Arm{Present: true, Value: 1.1}}, 50, Pass, "ratio 1.10"},
		{"baseline NaN is inconclusive for a ratio", valRatio, metrics.Observation{Kind: policies.KindValue, Baseline: metrics.Arm{Present: true, Value: math.NaN()}, Canary: metrics.Arm{Present: true, Value: 1.1}}, 50, Inconclusive, "baseline's value is NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ThresholdJudge{}.Judge(tt.m, tt.min, tt.obs)
			if got.Verdict != tt.want || !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("got %s (%s), want %s containing %q", got.Verdict, got.Reason, tt.want, tt.wantReason)
			}
		})
	}
}

func TestJudgeNumbers(t *testing.T) {
	m := policies.Metric{Name: "err", Kind: policies.KindErrors, Thresholds: policies.Thresholds{MaxRatio: f(2)}}
	r := ThresholdJudge{}.Judge(m, 50, errorsObs(1000, 10, 200, 6))
	checks := []struct {
		name      string
		got, want float64
	}{
		{"baseline", float64(r.Baseline), 0.01},
		{"canary", float64(r.Canary), 0.03},
		{"ratio", float64(r.Ratio), 3},
		{"difference", float64(r.Difference), 0.02},
		{"baseline requests", float64(r.BaselineRequests), 1000},
		{"canary requests", float64(r.CanaryRequests), 200},
		{"canary errors", float64(r.CanaryErrors), 6},
	}
	for _, c := range checks {
		if math.Abs(c.got-c.want) > 1e-12 {
			t.Errorf("%s = %g, want %g", c.name, c.got, c.want)
		}
	}
}

func TestOverall(t *testing.T) {
	res := func(name string, v Verdict, critical bool) MetricResult {
		return MetricResult{Name: name, Verdict: v, Critical: critical, Reason: "r"}
	}
	tests := []struct {
		name string
		ms   []MetricResult
		want Verdict
	}{
		{"all pass", []MetricResult{res("a", Pass, true), res("b", Pass, true)}, Pass},
		{"a failure wins over inconclusive", []MetricResult{res("a", Inconclusive, true), res("b", Fail, true)}, Fail},
		{"inconclusive is never a pass", []MetricResult{res("a", Pass, true), res("b", Inconclusive, true)}, Inconclusive},
		{"advisory failure does not fail", []MetricResult{res("a", Pass, true), res("b", Fail, false)}, Pass},
		{"advisory no-data does not hold", []MetricResult{res("a", Pass, true), res("b", Inconclusive, false)}, Pass},
		{"nothing critical judged", []MetricResult{res("b", Pass, false)}, Inconclusive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := Overall(tt.ms); got != tt.want {
				t.Errorf("Overall = %s, want %s", got, tt.want)
			}
		})
	}
}

func posInf() float64 { return math.Inf(1) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
