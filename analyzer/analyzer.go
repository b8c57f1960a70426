package analyzer

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// Observer reads one metric for both versions at one time. The Prometheus source implements it.
type Observer interface {
	Observe(ctx context.Context, q metrics.Query, at time.Time) (metrics.Observation, error)
}

// CounterReader reads a metric's raw counter series: at one instant, or at every step of a
// past range. The Prometheus source and the batcher implement it; the counter-reading judges
// need it.
type CounterReader interface {
	Counters(ctx context.Context, q metrics.Query, at time.Time) (metrics.Snapshot, error)
	CountersRange(ctx context.Context, q metrics.Query, start, end time.Time, step time.Duration) ([]metrics.Snapshot, error)
}

// Judge gives the verdict on one metric's observation.
type Judge interface {
	Judge(m policies.Metric, minRequests int, obs metrics.Observation) MetricResult
}

// Analyzer evaluates a policy: it observes every metric and judges each.
type Analyzer struct {
	observer Observer
	logger   zerolog.Logger
	// aaLabel, when set, splits the baseline's series into two arms by this label (A/A).
	aaLabel string
}

// New returns an analyzer that reads metrics through observer.
func New(observer Observer, logger zerolog.Logger) *Analyzer {
	return &Analyzer{observer: observer, logger: logger}
}

// WithAA returns an analyzer for an A/A comparison: the policy's canary is its baseline version
// too, and the two arms are that version's series split in halves by the value of label (e.g.
// pod). Only the counter-reading judges can split.
func (a *Analyzer) WithAA(label string) *Analyzer {
	b := *a
	b.aaLabel = label
	return &b
}

// counterQuery is the counter query of metric m, split for an A/A comparison when asked.
func (a *Analyzer) counterQuery(p *policies.Policy, m policies.Metric) (metrics.Query, error) {
	q, err := metrics.NewCounterQuery(p, m)
	q.SplitLabel = a.aaLabel
	return q, err
}

// JudgeFor returns the judge of a policy's windowed metrics: all of them for the threshold
// judge, the value metrics for the others.
func JudgeFor(p *policies.Policy) (Judge, error) {
	if slices.Contains(policies.Judges(), p.Spec.Analysis.Judge) {
		return ThresholdJudge{}, nil
	}
	return nil, fmt.Errorf("unknown judge %q", p.Spec.Analysis.Judge)
}

// StreamJudgeFor returns the judge of a policy's errors and latency metrics when it reads them
// interval by interval; nil for the threshold judge.
func StreamJudgeFor(p *policies.Policy) StreamJudge {
	switch p.Spec.Analysis.Judge {
	case policies.JudgeSequential:
		return SequentialJudge{}
	case policies.JudgeMannWhitney:
		return MannWhitneyJudge{}
	}
	return nil
}

// streams reports whether metric m of p is read interval by interval.
func streams(p *policies.Policy, m policies.Metric) bool {
	return m.Kind != policies.KindValue && p.Spec.Analysis.Judge.Streams()
}

// Evaluate judges the policy's canary over the window that ends at at. An error means the
// metrics could not be read or the policy's queries are wrong; it is never a verdict.
func (a *Analyzer) Evaluate(ctx context.Context, p *policies.Policy, at time.Time, window time.Duration) (Result, error) {
	return a.EvaluateSplit(ctx, p, at, at, window)
}

// EvaluateSplit is Evaluate with the baseline read over the window ending at baselineAt: a
// blue/green canary is judged against the baseline as it was before the switch.
//
// The counter-reading judges have no evidence in one look: their metrics are replayed over the
// window, as a canary ticking every interval would have seen them (Replay).
func (a *Analyzer) EvaluateSplit(ctx context.Context, p *policies.Policy, at, baselineAt time.Time, window time.Duration) (Result, error) {
	if p.Spec.Analysis.Judge.Streams() {
		res, _, err := a.Replay(ctx, p, at.Add(-window), at)
		return res, err
	}
	pw := *p
	pw.Spec.Analysis.Window = model.Duration(window)
	r, err := a.Read(ctx, &pw, at, baselineAt)
	if err != nil {
		return newRunResult(p, at, window), err
	}
	return a.Judge(&pw, r, nil)
}

func newRunResult(p *policies.Policy, at time.Time, window time.Duration) Result {
	t := p.Spec.Target
	return Result{
		Policy: p.Metadata.Name, Namespace: t.Namespace, App: t.App,
		Baseline: t.Baseline.Version, Canary: t.Canary.Version,
		Time: at, Window: model.Duration(window).String(),
	}
}

// RangeObserver reads a windowed query at every step of a past range. The Prometheus source
// implements it.
type RangeObserver interface {
	ObserveRange(ctx context.Context, q metrics.Query, start, end time.Time, step time.Duration) ([]metrics.Observation, error)
}

// WindowHistory fills, for the metrics of res that have none, the history of their windowed
// values over the window ending at at, one point per interval: what a chart of a threshold
// judge's report shows. The verdicts are not changed.
func (a *Analyzer) WindowHistory(ctx context.Context, p *policies.Policy, res *Result, at time.Time, window time.Duration) error {
	ro, ok := a.observer.(RangeObserver)
	if !ok {
		return nil
	}
	// One point per interval, but at least ten over the window: a chart needs a line.
	step := min(time.Duration(p.Spec.Analysis.Interval), max(time.Second, (window/10).Truncate(time.Second)))
	for i := range res.Metrics {
		mr := &res.Metrics[i]
		if len(mr.History) > 0 {
			continue
		}
		var m policies.Metric
		for _, x := range p.Spec.Metrics {
			if x.Name == mr.Name {
				m = x
			}
		}
		q, err := metrics.NewQuery(p, m, window)
		if err != nil {
			return err
		}
		obs, err := ro.ObserveRange(ctx, q, at.Add(-window), at, step)
		if err != nil {
			return fmt.Errorf("history of metric %q: %w", m.Name, err)
		}
		for _, o := range obs {
			mr.History = append(mr.History, Point{
				End: o.Time, Baseline: Number(value(m, o.Baseline)), Canary: Number(value(m, o.Canary)),
				BaselineN: o.Baseline.Requests, CanaryN: o.Canary.Requests,
			})
		}
	}
	return nil
}
