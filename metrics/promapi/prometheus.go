package promapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/sigv4"
	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// Prometheus reads observations from a Prometheus server's HTTP API.
type Prometheus struct {
	api     v1.API
	timeout time.Duration
	logger  zerolog.Logger
	// OnQuery, when set, is told how long each query took and how it ended (for /metrics).
	OnQuery func(took time.Duration, err error)
}

// New builds a client for the server at url with the policy's timeout, auth and TLS. A file
// the settings name that cannot be read is an error here, not an unavailable Prometheus at
// the first query: it is the policy's mistake, and waiting will not mend it.
func New(url string, cfg policies.Prometheus, logger zerolog.Logger) (*Prometheus, error) {
	if err := policies.CheckPrometheusURL(url); err != nil {
		return nil, fmt.Errorf("prometheus url: %w", err)
	}
	if errs := cfg.CheckFiles(); len(errs) > 0 {
		return nil, fmt.Errorf("prometheus settings: %w", errs)
	}
	rt, err := config.NewRoundTripperFromConfig(cfg.HTTP, "coalmine")
	if err != nil {
		return nil, fmt.Errorf("prometheus http client: %w", err)
	}
	if cfg.SigV4 != nil {
		// As Prometheus's remote_write: the request is signed, then goes through the http
		// settings. Credentials are looked up now (the keys given, else AWS's default chain),
		// bounded by the query timeout, so that a policy without any fails here.
		ctx, cancel := context.WithTimeout(context.Background(), signerTimeout(cfg))
		rt, err = sigv4.NewSigV4RoundTripper(cfg.SigV4, rt, sigv4.WithContext(ctx))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("prometheus sigv4: %w", err)
		}
	}
	client, err := api.NewClient(api.Config{Address: url, RoundTripper: bounded{next: rt, max: maxAnswerBytes}})
	if err != nil {
		return nil, fmt.Errorf("prometheus client: %w", err)
	}
	return &Prometheus{api: v1.NewAPI(client), timeout: time.Duration(cfg.Timeout), logger: logger}, nil
}

// signerTimeout bounds the lookup of SigV4 credentials: the policy's query timeout, or 10 s.
func signerTimeout(cfg policies.Prometheus) time.Duration {
	if cfg.Timeout > 0 {
		return time.Duration(cfg.Timeout)
	}
	return 10 * time.Second
}

// Observe runs one query at time at and decodes the answer.
func (p *Prometheus) Observe(ctx context.Context, q metrics.Query, at time.Time) (metrics.Observation, error) {
	ctx, cancel := p.withTimeout(ctx)
	defer cancel()
	start := time.Now()
	v, warnings, err := p.query(ctx, q.PromQL, at)
	p.logger.Debug().Str("metric", q.Metric).Dur("took", time.Since(start)).Err(err).Msg("prometheus query")
	if err != nil {
		return metrics.Observation{Metric: q.Metric, Kind: q.Kind, Query: q.PromQL, Time: at}, classify(q.Metric, err)
	}
	obs, err := metrics.Decode(q, v)
	obs.Time = at
	obs.Warnings = warnings
	return obs, err
}

// Counters reads a counter query's series at time at.
func (p *Prometheus) Counters(ctx context.Context, q metrics.Query, at time.Time) (metrics.Snapshot, error) {
	ctx, cancel := p.withTimeout(ctx)
	defer cancel()
	v, _, err := p.query(ctx, q.PromQL, at)
	if err != nil {
		return metrics.Snapshot{Time: at}, classify(q.Metric, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return metrics.Snapshot{Time: at}, fmt.Errorf("%w: metric %q: the query returned %s, want an instant vector", metrics.ErrUnexpectedSeries, q.Metric, v.Type())
	}
	return metrics.DecodeCounters(q, vec, at)
}

// ObserveRange runs a windowed query at every step from start to end: the window's values as
// they were at each step, for charts.
func (p *Prometheus) ObserveRange(ctx context.Context, q metrics.Query, start, end time.Time, step time.Duration) ([]metrics.Observation, error) {
	vecs, err := p.rangeVectors(ctx, q, start, end, step)
	if err != nil {
		return nil, err
	}
	out := make([]metrics.Observation, 0, len(vecs))
	for _, tv := range vecs {
		obs, err := metrics.Decode(q, tv.vec)
		if err != nil {
			return nil, err
		}
		obs.Time = tv.at
		out = append(out, obs)
	}
	return out, nil
}

// CountersRange reads a counter query's series at every step from start to end, as the
// instant queries of a running canary would have seen them: a replay of the past.
func (p *Prometheus) CountersRange(ctx context.Context, q metrics.Query, start, end time.Time, step time.Duration) ([]metrics.Snapshot, error) {
	vecs, err := p.rangeVectors(ctx, q, start, end, step)
	if err != nil {
		return nil, err
	}
	snaps := make([]metrics.Snapshot, 0, len(vecs))
	for _, tv := range vecs {
		s, err := metrics.DecodeCounters(q, tv.vec, tv.at)
		if err != nil {
			return nil, err
		}
		snaps = append(snaps, s)
	}
	return snaps, nil
}

type timedVector struct {
	at  time.Time
	vec model.Vector
}

// maxRangeSteps is Prometheus's own limit of points per series in a range query's answer: a
// longer range is refused before a vector is made for each of its steps.
const maxRangeSteps = 11000

// rangeVectors runs q as a range query and regroups its answer, series by time, into one
// vector per step from start (as many as start + k*step <= end), as instant queries at each
// step would have answered.
//
// Prometheus evaluates a range at start + k*step with start rounded to the millisecond, so the
// range is asked in whole milliseconds: else, one time in two, every step came back 1 ms off ours
// and each step was read as an empty one beside an unasked one. Engines that move the steps on
// their own (VictoriaMetrics and query frontends align them to the step for their caches) answer
// at other times: each point is taken for the asked step nearest it, within half a step.
func (p *Prometheus) rangeVectors(ctx context.Context, q metrics.Query, start, end time.Time, step time.Duration) ([]timedVector, error) {
	if step <= 0 || end.Before(start) {
		return nil, fmt.Errorf("metric %q: range from %s to %s by %s: no step", q.Metric, start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano), step)
	}
	steps := int(end.Sub(start)/step) + 1
	if steps > maxRangeSteps {
		return nil, fmt.Errorf("metric %q: a range of %d steps of %s: Prometheus answers at most %d points a series; ask a shorter range or a longer step", q.Metric, steps, step, maxRangeSteps)
	}
	start = start.Truncate(time.Millisecond)
	end = start.Add(time.Duration(steps-1) * step)
	ctx, cancel := p.withTimeout(ctx)
	defer cancel()
	begin := time.Now()
	v, warnings, err := p.api.QueryRange(ctx, q.PromQL, v1.Range{Start: start, End: end, Step: step}, v1.WithTimeout(p.timeout))
	if p.OnQuery != nil {
		p.OnQuery(time.Since(begin), err)
	}
	if err == nil {
		err = partial(warnings)
	}
	if err != nil {
		return nil, classify(q.Metric, err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("%w: metric %q: the range query returned %s, want a matrix", metrics.ErrUnexpectedSeries, q.Metric, v.Type())
	}
	times := make([]model.Time, steps)
	for i := range times {
		times[i] = model.TimeFromUnixNano(start.Add(time.Duration(i) * step).UnixNano())
	}
	vecs := make([]model.Vector, steps)
	half := model.Time(step.Milliseconds() / 2)
	for _, ss := range m {
		taken := -1 // one point per series and step: the first
		for _, pt := range ss.Values {
			i, ok := nearestStep(times, pt.Timestamp, half)
			if !ok || i == taken {
				continue // not a step asked for
			}
			taken = i
			vecs[i] = append(vecs[i], &model.Sample{Metric: ss.Metric, Value: pt.Value, Timestamp: pt.Timestamp})
		}
	}
	out := make([]timedVector, steps)
	for i, t := range times {
		out[i] = timedVector{at: t.Time(), vec: vecs[i]}
	}
	return out, nil
}

// nearestStep is the index of the step of times (sorted) nearest ts, if within half.
func nearestStep(times []model.Time, ts, half model.Time) (int, bool) {
	i, _ := slices.BinarySearch(times, ts)
	best, found := 0, false
	for _, j := range []int{i - 1, i} {
		if j < 0 || j >= len(times) {
			continue
		}
		d := max(ts-times[j], times[j]-ts)
		if d <= half && (!found || d < max(ts-times[best], times[best]-ts)) {
			best, found = j, true
		}
	}
	return best, found
}

func (p *Prometheus) query(ctx context.Context, promql string, at time.Time) (model.Value, []string, error) {
	start := time.Now()
	v, warnings, err := p.api.Query(ctx, promql, at, v1.WithTimeout(p.timeout))
	if p.OnQuery != nil {
		p.OnQuery(time.Since(start), err)
	}
	if err == nil {
		err = partial(warnings)
	}
	return v, warnings, err
}

// maxWarningText bounds what an answer's warnings add to an error: they are written by others.
const maxWarningText = 512

// partial makes an answer with warnings no answer. Prometheus, Thanos and Cortex warn when a
// store or a shard did not answer, and a canary judged on part of its data could pass on it:
// partial data is unavailable data, and the canary holds. Prometheus 2's informational
// annotations ("PromQL info: metric might not be a counter"), which it sent among the
// warnings, say nothing of missing data and are let through.
func partial(warnings v1.Warnings) error {
	var serious []string
	for _, w := range warnings {
		if !strings.HasPrefix(w, "PromQL info:") {
			serious = append(serious, w)
		}
	}
	if len(serious) == 0 {
		return nil
	}
	text := strings.Join(serious, "; ")
	if len(text) > maxWarningText {
		text = text[:maxWarningText] + "..."
	}
	return fmt.Errorf("the answer came with warnings, so it may be partial: %q", text)
}

// withTimeout bounds one query by the policy's timeout, when it sets one.
func (p *Prometheus) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if p.timeout > 0 {
		return context.WithTimeout(ctx, p.timeout)
	}
	return ctx, func() {}
}

// classify tells a rejected query (the policy's fault) from an unavailable Prometheus.
func classify(metric string, err error) error {
	var apiErr *v1.Error
	if errors.As(err, &apiErr) && (apiErr.Type == v1.ErrBadData || apiErr.Type == v1.ErrExec) {
		return fmt.Errorf("%w: metric %q: %s", metrics.ErrQuery, metric, apiErr.Msg)
	}
	return fmt.Errorf("%w: metric %q: %w", metrics.ErrUnavailable, metric, err)
}
