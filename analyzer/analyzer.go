package analyzer

import (
	"context"
	"fmt"
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

// Judge gives the verdict on one metric's observation.
type Judge interface {
	Judge(m policies.Metric, minRequests int, obs metrics.Observation) MetricResult
}

// Analyzer evaluates a policy: it observes every metric and judges each.
type Analyzer struct {
	observer Observer
	logger   zerolog.Logger
}

// New returns an analyzer that reads metrics through observer.
func New(observer Observer, logger zerolog.Logger) *Analyzer {
	return &Analyzer{observer: observer, logger: logger}
}

// JudgeFor returns the judge a policy names.
func JudgeFor(p *policies.Policy) (Judge, error) {
	switch p.Spec.Analysis.Judge {
	case policies.JudgeThreshold:
		return ThresholdJudge{}, nil
	}
	return nil, fmt.Errorf("unknown judge %q", p.Spec.Analysis.Judge)
}

// Evaluate judges the policy's canary over the window that ends at at. An error means the
// metrics could not be read or the policy's queries are wrong; it is never a verdict.
func (a *Analyzer) Evaluate(ctx context.Context, p *policies.Policy, at time.Time, window time.Duration) (Result, error) {
	return a.EvaluateSplit(ctx, p, at, at, window)
}

// EvaluateSplit is Evaluate with the baseline read over the window ending at baselineAt: a
// blue/green canary is judged against the baseline as it was before the switch.
func (a *Analyzer) EvaluateSplit(ctx context.Context, p *policies.Policy, at, baselineAt time.Time, window time.Duration) (Result, error) {
	judge, err := JudgeFor(p)
	if err != nil {
		return Result{}, err
	}
	t := p.Spec.Target
	res := Result{
		Policy: p.Metadata.Name, Namespace: t.Namespace, App: t.App,
		Baseline: t.Baseline.Version, Canary: t.Canary.Version,
		Time: at, Window: model.Duration(window).String(),
	}
	for _, m := range p.Spec.Metrics {
		q, err := metrics.NewQuery(p, m, window)
		if err != nil {
			return res, err
		}
		obs, err := a.observer.Observe(ctx, q, at)
		if err != nil {
			return res, fmt.Errorf("observe: %w", err)
		}
		if !baselineAt.Equal(at) {
			before, err := a.observer.Observe(ctx, q, baselineAt)
			if err != nil {
				return res, fmt.Errorf("observe the baseline at %s: %w", baselineAt.Format(time.RFC3339), err)
			}
			obs.Baseline = before.Baseline
		}
		mr := judge.Judge(m, p.Spec.Analysis.MinRequests, obs)
		a.logger.Debug().Str("metric", m.Name).Str("verdict", string(mr.Verdict)).Str("reason", mr.Reason).Msg("metric judged")
		res.Metrics = append(res.Metrics, mr)
	}
	res.Verdict, res.Reason = Overall(res.Metrics)
	return res, nil
}
