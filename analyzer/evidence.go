package analyzer

import (
	"math"
	"time"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// historyCap bounds the per-interval points a metric keeps: enough for a Mann-Whitney window
// and for a chart of a long analysis, small enough to ride in an annotation.
const historyCap = 240

// Evidence is what the counter-reading judges (sequential, mannwhitney) have gathered over a
// canary's analysis. The engine owns it and keeps it in the canary's progress record, so a
// process that restarts carries on with the evidence, not from nothing. The counters' last
// values are not kept: after a restart the first reading is a new starting point.
type Evidence struct {
	// Intervals is the number of intervals added.
	Intervals int `json:"intervals"`
	// Start and End bound the intervals added.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Metrics holds each metric's evidence by name.
	Metrics map[string]*MetricEvidence `json:"metrics"`
	// KeepHistory is how many of each metric's last points the record keeps: what a judge
	// reads of the history (the Mann-Whitney window); the rest is for charts, which are read
	// again from the source.
	KeepHistory int `json:"keepHistory,omitempty"`
	// WarmUntil is the end of the current step's warm-up: an interval that ends by then is left
	// out. The engine sets it from the record and the policy before each reading.
	WarmUntil time.Time `json:"-"`

	deltas map[string]*metrics.Deltas
}

// NewEvidence returns empty evidence.
func NewEvidence() *Evidence {
	return &Evidence{Metrics: map[string]*MetricEvidence{}, deltas: map[string]*metrics.Deltas{}}
}

// next turns a metric's snapshot into the interval since its last one.
func (e *Evidence) next(metric string, s metrics.Snapshot) (metrics.Interval, bool) {
	if e.deltas == nil {
		e.deltas = map[string]*metrics.Deltas{}
	}
	d, ok := e.deltas[metric]
	if !ok {
		d = &metrics.Deltas{}
		e.deltas[metric] = d
	}
	return d.Next(s)
}

// forRecord is the evidence as the record keeps it: the history cut to KeepHistory points.
func (e *Evidence) forRecord() *Evidence {
	out := *e
	out.Metrics = make(map[string]*MetricEvidence, len(e.Metrics))
	for name, me := range e.Metrics {
		c := *me
		c.History = c.History[max(0, len(c.History)-e.KeepHistory):]
		if len(c.History) == 0 {
			c.History = nil
		}
		out.Metrics[name] = &c
	}
	return &out
}

// metric returns a metric's evidence, created empty when new.
func (e *Evidence) metric(m policies.Metric) *MetricEvidence {
	if e.Metrics == nil {
		e.Metrics = map[string]*MetricEvidence{}
	}
	me, ok := e.Metrics[m.Name]
	if !ok {
		me = &MetricEvidence{Kind: m.Kind, PFail: 1, PPromote: 1}
		e.Metrics[m.Name] = me
	}
	return me
}

// MetricEvidence is one metric's accumulated evidence.
type MetricEvidence struct {
	Kind policies.MetricKind `json:"kind"`
	// Baseline and Canary total what each version served over every interval added.
	Baseline Totals `json:"baseline"`
	Canary   Totals `json:"canary"`
	// Test is an errors metric's count test, and MarginTest its test against an absolute
	// margin: the promote side when the metric has one, and the margin the data would support
	// when it has not.
	Test       *countTest  `json:"test,omitempty"`
	MarginTest *marginTest `json:"marginTest,omitempty"`
	// Edges are a latency metric's finite bucket bounds, fixed at its first interval, and
	// EdgeTests the count test of "slower than the edge" at each.
	Edges     []float64    `json:"edges,omitempty"`
	EdgeTests []*countTest `json:"edgeTests,omitempty"`
	// MarginEdges and MarginTests, for a latency metric with a margin: for each edge, the first
	// edge at least the margin above it (-1: none), and the count test of the canary slower than
	// that one against the baseline slower than this one, which can pass the metric.
	MarginEdges []int        `json:"marginEdges,omitempty"`
	MarginTests []*countTest `json:"marginTests,omitempty"`
	// PromoteEdge is the index of the edge whose test can pass a latency metric: the one just
	// below the baseline's judged quantile, chosen once the baseline has served enough; -1
	// before.
	PromoteEdge *int `json:"promoteEdge,omitempty"`
	// PFail and PPromote are the metric's always-valid p-values: of "the canary is no worse"
	// and of "the canary is worse by the tolerance or more". Running minima.
	PFail    float64 `json:"pFail"`
	PPromote float64 `json:"pPromote"`
	// History is the metric's value per interval, oldest first, at most historyCap of them.
	History []Point `json:"history,omitempty"`
	// LastSeries is how many series each version had at the last interval: 0 is no data.
	LastBaselineSeries int `json:"lastBaselineSeries"`
	LastCanarySeries   int `json:"lastCanarySeries"`
	// CanaryDropped counts the canary's series read as no data because their values were not
	// counts (NaN, infinite, negative): a metric with any is never passed.
	CanaryDropped int `json:"canaryDropped,omitempty"`
}

// Totals are one version's counts summed over the intervals.
type Totals struct {
	Requests float64          `json:"requests"`
	Errors   float64          `json:"errors,omitempty"`
	Buckets  []metrics.Bucket `json:"buckets,omitempty"`
}

func (t *Totals) add(c metrics.Counts) {
	t.Requests += c.Requests
	t.Errors += c.Errors
	for _, b := range c.Buckets {
		found := false
		for i := range t.Buckets {
			if t.Buckets[i].UpperBound == b.UpperBound {
				t.Buckets[i].Count += b.Count
				found = true
				break
			}
		}
		if !found {
			t.Buckets = append(t.Buckets, b)
		}
	}
}

// Point is a metric's value for each version over one interval: an error ratio or a latency
// quantile, NaN when the version served nothing.
type Point struct {
	End       time.Time `json:"end"`
	Baseline  Number    `json:"baseline"`
	Canary    Number    `json:"canary"`
	BaselineN float64   `json:"baselineRequests"`
	CanaryN   float64   `json:"canaryRequests"`
}

// add folds one interval into the metric's totals and history; the judge then adds it to its
// tests.
func (me *MetricEvidence) add(m policies.Metric, iv metrics.Interval) {
	me.Baseline.add(iv.Baseline)
	me.Canary.add(iv.Canary)
	me.LastBaselineSeries, me.LastCanarySeries = iv.Baseline.Series, iv.Canary.Series
	me.History = append(me.History, Point{
		End:       iv.End,
		Baseline:  Number(intervalValue(m, iv.Baseline)),
		Canary:    Number(intervalValue(m, iv.Canary)),
		BaselineN: iv.Baseline.Requests,
		CanaryN:   iv.Canary.Requests,
	})
	if len(me.History) > historyCap {
		me.History = me.History[len(me.History)-historyCap:]
	}
}

// intervalValue is the judged value of one version over one interval.
func intervalValue(m policies.Metric, c metrics.Counts) float64 {
	if c.Requests <= 0 {
		return math.NaN()
	}
	if m.Kind == policies.KindLatency {
		return metrics.Quantile(m.Quantile, c.Buckets)
	}
	return c.Errors / c.Requests
}

// value is the judged value over every interval: the error ratio, or the quantile of the summed
// histogram.
func (t Totals) value(m policies.Metric) float64 {
	if t.Requests <= 0 {
		return math.NaN()
	}
	if m.Kind == policies.KindLatency {
		return metrics.Quantile(m.Quantile, t.Buckets)
	}
	return t.Errors / t.Requests
}
