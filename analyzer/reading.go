package analyzer

import (
	"context"
	"fmt"
	"time"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// Reading is what the metrics source answered for one tick, for all of a policy's metrics: the
// raw counters of the metrics read interval by interval, and the windowed observation of the
// others. Judging a reading reads nothing more, so the live tick, report's replay, watch and
// backtest are short loops over the same two pieces: read, then judge.
type Reading struct {
	Time time.Time
	// Counters holds each streamed metric's counters at Time, by metric name.
	Counters map[string]metrics.Snapshot
	// Windows holds each windowed metric's observation over the window ending at Time (its
	// baseline, for a blue/green canary, over the window before the switch), by metric name.
	Windows map[string]metrics.Observation
	// Queries are the rendered queries of the streamed metrics, by metric name, for reports.
	Queries map[string]string
}

func newReading(at time.Time) Reading {
	return Reading{Time: at, Counters: map[string]metrics.Snapshot{}, Windows: map[string]metrics.Observation{}, Queries: map[string]string{}}
}

// Read asks the source, once per metric, for everything a tick at time at judges. baselineAt,
// when set and not at, is when the windowed metrics' baseline is read (blue/green: before the
// switch).
func (a *Analyzer) Read(ctx context.Context, p *policies.Policy, at, baselineAt time.Time) (Reading, error) {
	r := newReading(at)
	var reader CounterReader
	for _, m := range p.Spec.Metrics {
		if streams(p, m) {
			if reader == nil {
				var err error
				if reader, err = a.counterReader(); err != nil {
					return r, err
				}
			}
			q, err := a.counterQuery(p, m)
			if err != nil {
				return r, err
			}
			r.Queries[m.Name] = q.PromQL
			if r.Counters[m.Name], err = reader.Counters(ctx, q, at); err != nil {
				return r, fmt.Errorf("observe: %w", err)
			}
			continue
		}
		obs, err := a.observeWindow(ctx, p, m, at, baselineAt)
		if err != nil {
			return r, err
		}
		r.Windows[m.Name] = obs
	}
	return r, nil
}

// ReadRange reads every interval of [start, end] as Read would have at each: one range query per
// streamed metric, the windowed metrics at each tick.
func (a *Analyzer) ReadRange(ctx context.Context, p *policies.Policy, start, end, baselineAt time.Time) ([]Reading, error) {
	interval := time.Duration(p.Spec.Analysis.Interval)
	var out []Reading
	for at := start; !at.After(end); at = at.Add(interval) {
		out = append(out, newReading(at))
	}
	for _, m := range p.Spec.Metrics {
		if !streams(p, m) {
			for i := range out {
				obs, err := a.observeWindow(ctx, p, m, out[i].Time, baselineAt)
				if err != nil {
					return nil, err
				}
				out[i].Windows[m.Name] = obs
			}
			continue
		}
		reader, err := a.counterReader()
		if err != nil {
			return nil, err
		}
		q, err := a.counterQuery(p, m)
		if err != nil {
			return nil, err
		}
		snaps, err := reader.CountersRange(ctx, q, start, end, interval)
		if err != nil {
			return nil, fmt.Errorf("observe: %w", err)
		}
		for i := range out {
			out[i].Queries[m.Name] = q.PromQL
			if i < len(snaps) {
				out[i].Counters[m.Name] = snaps[i]
			}
		}
	}
	return out, nil
}

// observeWindow reads a windowed metric over the window ending at at, its baseline over the
// window ending at baselineAt.
func (a *Analyzer) observeWindow(ctx context.Context, p *policies.Policy, m policies.Metric, at, baselineAt time.Time) (metrics.Observation, error) {
	q, err := metrics.NewQuery(p, m, time.Duration(p.Spec.Analysis.Window))
	if err != nil {
		return metrics.Observation{}, err
	}
	obs, err := a.observer.Observe(ctx, q, at)
	if err != nil {
		return obs, fmt.Errorf("observe: %w", err)
	}
	if !baselineAt.IsZero() && !baselineAt.Equal(at) {
		before, err := a.observer.Observe(ctx, q, baselineAt)
		if err != nil {
			return obs, fmt.Errorf("observe the baseline at %s: %w", baselineAt.Format(time.RFC3339), err)
		}
		obs.Baseline = before.Baseline
	}
	return obs, nil
}

// Judge judges one reading: the streamed metrics on the evidence, after folding in the interval
// since their last reading (ev belongs to the caller, who keeps it from tick to tick; nil for the
// threshold judge), the windowed ones on their window. It reads nothing.
func (a *Analyzer) Judge(p *policies.Policy, r Reading, ev *Evidence) (Result, error) {
	res := newRunResult(p, r.Time, time.Duration(p.Spec.Analysis.Window))
	judge := StreamJudgeFor(p)
	var streamed []MetricResult
	if judge != nil {
		if ev == nil {
			return res, fmt.Errorf("judge %q needs its evidence", p.Spec.Analysis.Judge)
		}
		added := false
		for _, m := range p.Spec.Metrics {
			snap, ok := r.Counters[m.Name]
			if !streams(p, m) || !ok {
				continue
			}
			if iv, ok := ev.next(m.Name, snap); ok && ev.Add(judge, p, m, iv) {
				added = true
			}
		}
		if added {
			ev.Intervals++
		}
		streamed = JudgeStream(p, ev, judge)
	}
	windowJudge, err := JudgeFor(p)
	if err != nil {
		return res, err
	}
	for _, m := range p.Spec.Metrics {
		var mr MetricResult
		if streams(p, m) {
			mr, streamed = streamed[0], streamed[1:]
			mr.Query = r.Queries[m.Name]
		} else {
			obs, ok := r.Windows[m.Name]
			if !ok {
				return res, fmt.Errorf("metric %q was not read", m.Name)
			}
			mr = windowJudge.Judge(m, p.Spec.Analysis.MinRequests, obs)
		}
		a.logger.Debug().Str("metric", m.Name).Str("verdict", string(mr.Verdict)).Str("reason", mr.Reason).Msg("metric judged")
		res.Metrics = append(res.Metrics, mr)
	}
	res.Verdict, res.Reason = Overall(res.Metrics)
	return res, nil
}
