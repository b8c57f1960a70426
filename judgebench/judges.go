package judgebench

import (
	"time"

	"github.com/prometheus/common/model"

	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// The judges' settings.
const (
	Alpha     = 0.05
	Tolerance = 1.5
	Tempering = 1
	// MinRequests is 0: Flagger has no such setting (only no data fails a check), and the
	// sequential judge's verdicts are valid at any count.
	MinRequests = 0
	// CheckEvery is the fixed-sample judges' period in intervals: once a minute.
	CheckEvery = int(time.Minute / Interval)
	// ChecksToPromote is how many passed checks promote under a fixed-sample judge: Flagger's and
	// Kayenta's 10 one-minute iterations.
	ChecksToPromote = 10
	// ThresholdErrorFactor sets the threshold judge's error max at this times the baseline's
	// rate ("min success rate 98%" at a 1% baseline), and ThresholdLatencyFactor its latency max
	// at this times the baseline's true p99.
	ThresholdErrorFactor   = 2
	ThresholdLatencyFactor = 1.5
)

// Judge is one way of deciding a canary, run over a stream.
type Judge struct {
	Name string
	// About says in one line how it is run.
	About string
	run   func(p *policies.Policy, c Cell, s Stream) Outcome
	// judge is the policy's judge; empty for the oracle, which needs no policy.
	judge policies.Judge
}

// Outcome is what a judge did with one stream: the interval (1-based) at whose end it rolled
// the canary back or promoted it; 0 for never.
type Outcome struct {
	Fail, Promote int
}

// The judges, in the order of the tables. Oracle is the floor the others are measured against.
var (
	Sequential = Judge{Name: "sequential", judge: policies.JudgeSequential, run: runSequential,
		About: "coalmine's anytime-valid mixture test, judged every 10 s interval: fail rolls back, pass promotes"}
	Threshold = Judge{Name: "threshold", judge: policies.JudgeThreshold, run: runThreshold,
		About: "Flagger-like: each minute the last minute's canary against absolute maxes (errors 2x the baseline's rate, p99 1.5x the baseline's true p99); " +
			"a failed or inconclusive check (no data) rolls back (Flagger's threshold 1), 10 passed checks promote"}
	MannWhitney = Judge{Name: "mannwhitney", judge: policies.JudgeMannWhitney, run: runMannWhitney,
		About: "Kayenta-like: each minute a Mann-Whitney test over the last 5 min of 10 s values; a failed check rolls back, " +
			"10 passed checks promote (an inconclusive check neither)"}
	Oracle = Judge{Name: "oracle", run: runOracle,
		About: "Wald's SPRT for the cell's true ratio on its one metric (r = 2 on healthy cells), alpha 0.05, fail side only: the floor"}
)

// Judges lists every judge by name.
func Judges() []Judge { return []Judge{Sequential, Threshold, MannWhitney, Oracle} }

// NewPolicy is the policy a judge is run with on a cell: both metrics, critical, 10 s
// interval, 5 min window.
func NewPolicy(j policies.Judge, c Cell) *policies.Policy {
	p := policies.Default()
	p.Metadata.Name = "judgebench"
	p.Spec.Target.Namespace = "bench"
	p.Spec.Target.App = "app"
	p.Spec.Target.Baseline = policies.Arm{Deployment: "app-v1", Version: "v1"}
	p.Spec.Target.Canary = policies.Arm{Deployment: "app-v2", Version: "v2"}
	a := &p.Spec.Analysis
	a.Judge = j
	a.Interval = model.Duration(Interval)
	a.Window = model.Duration(5 * time.Minute)
	a.MaxDuration = model.Duration(Horizon)
	a.Alpha, a.Tolerance, a.Tempering, a.MinRequests = Alpha, Tolerance, Tempering, MinRequests
	// The grid measures the judge: nothing is left out but on the cell about warm-up. The
	// default warm-up (one interval) would add that interval to every time to decide.
	w := model.Duration(c.Warmup)
	a.Warmup = &w
	errs := policies.Metric{Name: "error-rate", Kind: policies.KindErrors,
		Requests: `http_requests_total{ {{.Selector}} }`,
		Errors:   `http_requests_total{ {{.Selector}}, code=~"5.." }`}
	lat := policies.Metric{Name: "latency-p99", Kind: policies.KindLatency, Quantile: 0.99,
		Buckets: `request_duration_seconds_bucket{ {{.Selector}} }`}
	if j == policies.JudgeThreshold {
		maxErr := ThresholdErrorFactor * c.ThresholdErrorRate
		maxLat := ThresholdLatencyFactor * c.Baseline.P99
		errs.Thresholds.Max, lat.Thresholds.Max = &maxErr, &maxLat
	}
	if m := c.ErrorMargin; m > 0 && j == policies.JudgeSequential {
		errs.Margin = &m
	}
	p.Spec.Metrics = []policies.Metric{errs, lat}
	return &p
}

// newEvidence is a judge's evidence at the start of a run: the policy's warm-up left out, as
// the engine leaves out each step's.
func newEvidence(p *policies.Policy) *analyzer.Evidence {
	ev := analyzer.NewEvidence()
	ev.WarmUntil = start.Add(p.Spec.Analysis.WarmUp())
	return ev
}

func runSequential(p *policies.Policy, _ Cell, s Stream) Outcome {
	judge := analyzer.SequentialJudge{}
	ev := newEvidence(p)
	for i := range s.Errors {
		addInterval(ev, judge, p, s, i)
		switch v, _ := analyzer.Overall(analyzer.JudgeStream(p, ev, judge)); v {
		case analyzer.Fail:
			return Outcome{Fail: i + 1}
		case analyzer.Pass:
			return Outcome{Promote: i + 1}
		}
	}
	return Outcome{}
}

func runMannWhitney(p *policies.Policy, _ Cell, s Stream) Outcome {
	judge := analyzer.MannWhitneyJudge{}
	ev := newEvidence(p)
	passed := 0
	for i := range s.Errors {
		addInterval(ev, judge, p, s, i)
		if (i+1)%CheckEvery != 0 {
			continue
		}
		switch v, _ := analyzer.Overall(analyzer.JudgeStream(p, ev, judge)); v {
		case analyzer.Fail:
			return Outcome{Fail: i + 1}
		case analyzer.Pass:
			if passed++; passed == ChecksToPromote {
				return Outcome{Promote: i + 1}
			}
		}
	}
	return Outcome{}
}

// addInterval feeds the i-th interval of both metrics to a counter-reading judge.
func addInterval(ev *analyzer.Evidence, judge analyzer.StreamJudge, p *policies.Policy, s Stream, i int) {
	ev.Add(judge, p, p.Spec.Metrics[0], s.Errors[i])
	ev.Add(judge, p, p.Spec.Metrics[1], s.Latency[i])
	ev.Intervals++
}

func runThreshold(p *policies.Policy, _ Cell, s Stream) Outcome {
	judge := analyzer.ThresholdJudge{}
	errs, lat := p.Spec.Metrics[0], p.Spec.Metrics[1]
	passed := 0
	for end := CheckEvery; end <= len(s.Errors); end += CheckEvery {
		if time.Duration(end)*Interval <= p.Spec.Analysis.WarmUp() {
			continue // as the engine: no check in the warm-up
		}
		rs := []analyzer.MetricResult{
			judge.Judge(errs, p.Spec.Analysis.MinRequests, observe(p, errs, s.Errors[end-CheckEvery:end])),
			judge.Judge(lat, p.Spec.Analysis.MinRequests, observe(p, lat, s.Latency[end-CheckEvery:end])),
		}
		// Flagger counts a check without data as failed, like one out of range.
		if v, _ := analyzer.Overall(rs); v != analyzer.Pass {
			return Outcome{Fail: end}
		}
		if passed++; passed == ChecksToPromote {
			return Outcome{Promote: end}
		}
	}
	return Outcome{}
}

// observe sums a window's intervals into the observation a range query over it would give.
func observe(p *policies.Policy, m policies.Metric, ivs []metrics.Interval) metrics.Observation {
	obs := metrics.Observation{
		Metric: m.Name, Kind: m.Kind, Time: ivs[len(ivs)-1].End,
		Baseline: metrics.Arm{Version: p.Spec.Target.Baseline.Version, Present: true},
		Canary:   metrics.Arm{Version: p.Spec.Target.Canary.Version, Present: true},
	}
	for _, iv := range ivs {
		sum(&obs.Baseline, iv.Baseline)
		sum(&obs.Canary, iv.Canary)
	}
	return obs
}

func sum(a *metrics.Arm, c metrics.Counts) {
	a.Requests += c.Requests
	a.Errors += c.Errors
	if a.Buckets == nil && c.Buckets != nil {
		a.Buckets = make([]metrics.Bucket, len(c.Buckets))
		for i, b := range c.Buckets {
			a.Buckets[i].UpperBound = b.UpperBound
		}
	}
	for i, b := range c.Buckets {
		a.Buckets[i].Count += b.Count
	}
}
