package analyzer

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// Step is one tick of a counter-reading judge: it reads every errors and latency metric's
// counters at time at, adds the interval since the last reading to ev, and judges the
// evidence so far; value metrics are judged over their window as usual. ev belongs to the
// caller, who keeps it from tick to tick.
func (a *Analyzer) Step(ctx context.Context, p *policies.Policy, at time.Time, ev *Evidence) (Result, error) {
	judge := StreamJudgeFor(p)
	if judge == nil {
		return Result{}, fmt.Errorf("judge %q does not read counters", p.Spec.Analysis.Judge)
	}
	reader, err := a.counterReader()
	if err != nil {
		return Result{}, err
	}
	added := false
	queries := map[string]string{}
	for _, m := range p.Spec.Metrics {
		if !streams(p, m) {
			continue
		}
		q, err := a.counterQuery(p, m)
		if err != nil {
			return Result{}, err
		}
		queries[m.Name] = q.PromQL
		snap, err := reader.Counters(ctx, q, at)
		if err != nil {
			return Result{}, fmt.Errorf("observe: %w", err)
		}
		if iv, ok := ev.next(m.Name, snap); ok {
			ev.Add(judge, p, m, iv)
			added = true
		}
	}
	if added {
		ev.Intervals++
	}
	return a.judgeEvidence(ctx, p, at, ev, judge, queries)
}

// Replay judges the policy over [start, end] as a canary ticking every interval would have:
// fresh evidence, one range query per metric. It is the counter-reading judges' answer to
// "what does this window say?" (report, backtest).
func (a *Analyzer) Replay(ctx context.Context, p *policies.Policy, start, end time.Time) (Result, *Evidence, error) {
	judge := StreamJudgeFor(p)
	if judge == nil {
		return Result{}, nil, fmt.Errorf("judge %q does not read counters", p.Spec.Analysis.Judge)
	}
	reader, err := a.counterReader()
	if err != nil {
		return Result{}, nil, err
	}
	ev := NewEvidence()
	step := time.Duration(p.Spec.Analysis.Interval)
	queries := map[string]string{}
	for _, m := range p.Spec.Metrics {
		if !streams(p, m) {
			continue
		}
		q, err := a.counterQuery(p, m)
		if err != nil {
			return Result{}, nil, err
		}
		queries[m.Name] = q.PromQL
		snaps, err := reader.CountersRange(ctx, q, start, end, step)
		if err != nil {
			return Result{}, nil, fmt.Errorf("observe: %w", err)
		}
		n := 0
		for _, s := range snaps {
			if iv, ok := ev.next(m.Name, s); ok {
				ev.Add(judge, p, m, iv)
				n++
			}
		}
		ev.Intervals = max(ev.Intervals, n)
	}
	res, err := a.judgeEvidence(ctx, p, end, ev, judge, queries)
	res.Window = (end.Sub(start)).String()
	return res, ev, err
}

// Add folds one interval of metric m into the evidence and into judge's tests. Step and
// Replay call it with what they read; the benchmark, with what it simulates.
func (e *Evidence) Add(judge StreamJudge, p *policies.Policy, m policies.Metric, iv metrics.Interval) {
	if !finiteCounts(iv.Baseline) || !finiteCounts(iv.Canary) {
		return // hostile or broken counters: no data, never evidence (the source drops them first)
	}
	if e.Start.IsZero() || iv.Start.Before(e.Start) {
		e.Start = iv.Start
	}
	if iv.End.After(e.End) {
		e.End = iv.End
	}
	me := e.metric(m)
	me.CanaryDropped += iv.Canary.Dropped
	me.add(m, iv)
	judge.Add(me, m, p.Spec.Analysis, iv)
}

// maxIntervalCount bounds a count in one interval: far above any real service (a million
// requests a second for thirty years), low enough that no sum of them overflows.
const maxIntervalCount = 1e15

// finiteCounts reports whether every count of c is finite, not negative and within
// maxIntervalCount.
func finiteCounts(c metrics.Counts) bool {
	ok := func(x float64) bool { return counts(x) && x <= maxIntervalCount }
	if !ok(c.Requests) || !ok(c.Errors) {
		return false
	}
	for _, b := range c.Buckets {
		if math.IsNaN(b.UpperBound) || !ok(b.Count) {
			return false
		}
	}
	return true
}

// JudgeStream gives the verdict of each of p's streamed metrics (errors and latency) on the
// evidence, each with its share of alpha, in the policy's order.
func JudgeStream(p *policies.Policy, ev *Evidence, judge StreamJudge) []MetricResult {
	alpha := p.Spec.Analysis.Alpha / float64(max(1, criticalStreams(p)))
	var out []MetricResult
	for _, m := range p.Spec.Metrics {
		if !streams(p, m) {
			continue
		}
		mr := judge.Judge(ev.metric(m), m, p.Spec.Analysis, alpha)
		if mr.Stats != nil {
			mr.Stats.Intervals = ev.Intervals
		}
		if ev.Intervals == 0 {
			mr = mr.with(Inconclusive, "no interval yet: the first reading is the counters' starting point")
		}
		if me := ev.metric(m); me.CanaryDropped > 0 && mr.Verdict == Pass {
			// A canary that hides its own counters (an errors counter reading +Inf is no data)
			// could look better than it is: it is never promoted on them.
			mr = mr.with(Inconclusive, fmt.Sprintf("the canary exposed %d counter series that are not counts (NaN, infinite or negative); never promoted on such counters", me.CanaryDropped))
		}
		out = append(out, mr)
	}
	return out
}

// judgeEvidence gives every metric's verdict: the streamed ones from the evidence, each with
// its share of alpha, the value metrics over their window. queries are the streamed metrics'
// rendered queries, by metric, as the reading rendered them.
func (a *Analyzer) judgeEvidence(ctx context.Context, p *policies.Policy, at time.Time, ev *Evidence, judge StreamJudge, queries map[string]string) (Result, error) {
	window := time.Duration(p.Spec.Analysis.Window)
	res, err := a.evaluateWindow(ctx, p, at, at, window, func(m policies.Metric) bool { return streams(p, m) })
	if err != nil {
		return res, err
	}
	streamed := JudgeStream(p, ev, judge)
	var out []MetricResult
	valueResults := res.Metrics
	for _, m := range p.Spec.Metrics {
		if !streams(p, m) {
			out = append(out, valueResults[0])
			valueResults = valueResults[1:]
			continue
		}
		mr := streamed[0]
		streamed = streamed[1:]
		mr.Query = queries[m.Name]
		a.logger.Debug().Str("metric", m.Name).Str("verdict", string(mr.Verdict)).Str("reason", mr.Reason).Msg("metric judged")
		out = append(out, mr)
	}
	res.Metrics = out
	res.Verdict, res.Reason = Overall(res.Metrics)
	return res, nil
}

// criticalStreams counts the critical metrics that share the policy's alpha.
func criticalStreams(p *policies.Policy) int {
	n := 0
	for _, m := range p.Spec.Metrics {
		if m.IsCritical() && streams(p, m) {
			n++
		}
	}
	return n
}

func (a *Analyzer) counterReader() (CounterReader, error) {
	r, ok := a.observer.(CounterReader)
	if !ok {
		return nil, fmt.Errorf("the %s and %s judges read raw counters, which this metrics source cannot", policies.JudgeSequential, policies.JudgeMannWhitney)
	}
	return r, nil
}

// Watch judges the policy from now for window, reading every interval: what a source without
// history (the pods) answers to "what does the window say?". The first reading is the starting
// point, so a window shorter than two intervals is stretched to two.
func (a *Analyzer) Watch(ctx context.Context, p *policies.Policy, window time.Duration) (Result, error) {
	interval := time.Duration(p.Spec.Analysis.Interval)
	ev := NewEvidence()
	start := time.Now()
	var res Result
	for {
		var err error
		if res, err = a.Step(ctx, p, time.Now(), ev); err != nil {
			return res, err
		}
		if ev.Intervals > 0 && time.Since(start) >= window {
			res.Window = time.Since(start).Round(time.Second).String()
			return res, nil
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, fmt.Errorf("%w: %w", metrics.ErrUnavailable, ctx.Err())
		case <-t.C:
		}
	}
}
