package analyzer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// Step is one tick of a counter-reading judge: it reads every metric at time at (Read), adds
// the interval since the last reading to ev, and judges (Judge). ev belongs to the caller, who
// keeps it from tick to tick.
func (a *Analyzer) Step(ctx context.Context, p *policies.Policy, at time.Time, ev *Evidence) (Result, error) {
	if StreamJudgeFor(p) == nil {
		return Result{}, fmt.Errorf("judge %q does not read counters", p.Spec.Analysis.Judge)
	}
	r, err := a.Read(ctx, p, at, time.Time{})
	if err != nil {
		return newRunResult(p, at, time.Duration(p.Spec.Analysis.Window)), err
	}
	return a.Judge(p, r, ev)
}

// Replay judges the policy over [start, end] as a canary ticking every interval would have:
// fresh evidence, the readings of the range (ReadRange), judged one by one. It is the
// counter-reading judges' answer to "what does this window say?".
func (a *Analyzer) Replay(ctx context.Context, p *policies.Policy, start, end time.Time) (Result, *Evidence, error) {
	if StreamJudgeFor(p) == nil {
		return Result{}, nil, fmt.Errorf("judge %q does not read counters", p.Spec.Analysis.Judge)
	}
	readings, err := a.ReadRange(ctx, p, start, end, time.Time{})
	if err != nil {
		return Result{}, nil, err
	}
	ev := NewEvidence()
	res := newRunResult(p, end, time.Duration(p.Spec.Analysis.Window))
	for _, r := range readings {
		if res, err = a.Judge(p, r, ev); err != nil {
			return res, ev, err
		}
	}
	res.Window = (end.Sub(start)).String()
	return res, ev, nil
}

// Add folds one interval of metric m into the evidence and into judge's tests, and reports
// whether it did: an interval that ends within the warm-up (WarmUntil), or whose counts are
// not counts, is left out. Step and Replay call it with what they read; the benchmark, with
// what it simulates.
func (e *Evidence) Add(judge StreamJudge, p *policies.Policy, m policies.Metric, iv metrics.Interval) bool {
	if !iv.End.After(e.WarmUntil) {
		return false
	}
	if !finiteCounts(iv.Baseline) || !finiteCounts(iv.Canary) {
		return false // hostile or broken counters: no data, never evidence (the source drops them first)
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
	return true
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
// point, so a window shorter than two intervals is stretched to two. A reading that finds the
// metrics unavailable (a pod that did not answer this once) is passed over, as the gate holds a
// tick: the next reading takes the increase since the last good one. If the last reading is
// unavailable there is no verdict.
func (a *Analyzer) Watch(ctx context.Context, p *policies.Policy, window time.Duration) (Result, error) {
	interval := time.Duration(p.Spec.Analysis.Interval)
	ev := NewEvidence()
	start := time.Now()
	var res Result
	for {
		var err error
		res, err = a.Step(ctx, p, time.Now(), ev)
		done := time.Since(start) >= window
		switch {
		case errors.Is(err, metrics.ErrUnavailable) && !done:
			a.logger.Warn().Err(err).Msg("reading passed over")
		case err != nil:
			return res, err
		case ev.Intervals > 0 && done:
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
