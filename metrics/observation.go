// Package metrics reads what the canary and the baseline did: per version, request and error
// counts, histogram buckets or plain values, as one observation per metric. It knows nothing
// about verdicts.
package metrics

import (
	"errors"
	"math"
	"time"

	"github.com/coalmine/coalmine/policies"
)

// Outcomes callers branch on, checked with errors.Is.
var (
	// ErrUnavailable means the metrics could not be read: Prometheus was unreachable, timed out,
	// failed, or answered with something that is not a Prometheus API response. It is never a
	// verdict.
	ErrUnavailable = errors.New("prometheus unavailable")
	// ErrQuery means Prometheus rejected or could not execute the query: the policy is wrong.
	ErrQuery = errors.New("query rejected")
	// ErrMultipleSeries means a version had more than one series where one was expected, as when
	// a query does not aggregate by the version label alone.
	ErrMultipleSeries = errors.New("more than one series for a version")
	// ErrUnexpectedSeries means the answer held a series that belongs to neither version, or one
	// without the labels the metric kind needs.
	ErrUnexpectedSeries = errors.New("unexpected series")
)

// Bucket is one cumulative histogram bucket: the count of observations <= UpperBound.
type Bucket struct {
	UpperBound float64 `json:"le"`
	Count      float64 `json:"count"`
}

// Arm is what one version's series said. Present is false when the version had no series.
type Arm struct {
	Version string `json:"version"`
	Present bool   `json:"present"`
	// Value is the number a value metric returned.
	Value float64 `json:"value,omitempty"`
	// Requests and Errors are an errors metric's counts over the window. For a latency metric
	// Requests is the histogram's count.
	Requests float64 `json:"requests,omitempty"`
	Errors   float64 `json:"errors,omitempty"`
	// Buckets is a latency metric's histogram over the window, sorted by upper bound.
	Buckets []Bucket `json:"buckets,omitempty"`
}

// HasRequests reports whether the arm carries a request count (errors and latency metrics).
func HasRequests(kind policies.MetricKind) bool {
	return kind == policies.KindErrors || kind == policies.KindLatency
}

// Observation is one metric read for both versions at one evaluation time.
type Observation struct {
	Metric   string              `json:"metric"`
	Kind     policies.MetricKind `json:"kind"`
	Query    string              `json:"query"`
	Time     time.Time           `json:"time"`
	Baseline Arm                 `json:"baseline"`
	Canary   Arm                 `json:"canary"`
	Warnings []string            `json:"warnings,omitempty"`
}

// Finite reports whether x is a number a judge can compare.
func Finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
