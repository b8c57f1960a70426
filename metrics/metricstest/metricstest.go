// Package metricstest holds what the tests of the metrics sources share: the example policy,
// its queries, and the check that an interval holds only counts.
package metricstest

import (
	"encoding/json"
	"math"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// Policy is the threshold example policy (policies/examples/my-app-threshold.yaml).
func Policy(t testing.TB) *policies.Policy {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	ps, err := policies.LoadFile(filepath.Join(filepath.Dir(file), "../../policies/examples/my-app-threshold.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

// CounterQuery is the counter query of the example policy's metric of kind.
func CounterQuery(t testing.TB, kind policies.MetricKind) metrics.Query {
	t.Helper()
	p := Policy(t)
	for _, m := range p.Spec.Metrics {
		if m.Kind == kind {
			q, err := metrics.NewCounterQuery(p, m)
			if err != nil {
				t.Fatal(err)
			}
			return q
		}
	}
	t.Fatalf("the test policy has no %s metric", kind)
	return metrics.Query{}
}

// RequireCounts fails unless every number of the interval is one a counter can count: finite
// and not negative (a bucket's bound may be +Inf, never NaN), and the interval can be recorded.
func RequireCounts(t testing.TB, iv metrics.Interval) {
	t.Helper()
	for _, c := range []metrics.Counts{iv.Baseline, iv.Canary} {
		nums := []float64{c.Requests, c.Errors}
		for _, b := range c.Buckets {
			nums = append(nums, b.Count)
			if math.IsNaN(b.UpperBound) {
				t.Fatalf("bucket with a NaN bound: %+v", c.Buckets)
			}
		}
		for _, n := range nums {
			if !metrics.Countable(n) {
				t.Fatalf("interval holds %g: %+v", n, c)
			}
		}
		if c.Series < 0 || c.Dropped < 0 {
			t.Fatalf("negative series or dropped: %+v", c)
		}
	}
	if _, err := json.Marshal(iv); err != nil {
		t.Fatalf("the interval cannot be recorded: %v", err)
	}
}
