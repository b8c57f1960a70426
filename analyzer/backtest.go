package analyzer

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// BacktestRun is one canary replayed from the past: started at Start, ended at End with
// Verdict (fail: it would have been rolled back; pass: promoted; inconclusive: neither by its
// maxDuration or the end of the backtest).
type BacktestRun struct {
	Start   time.Time     `json:"start"`
	End     time.Time     `json:"end"`
	After   time.Duration `json:"after"`
	Verdict Verdict       `json:"verdict"`
	Reason  string        `json:"reason"`
	// Ticks is the number of evaluations replayed.
	Ticks int `json:"ticks"`
	// Result is the last evaluation: the numbers behind the verdict.
	Result Result `json:"result"`
}

// Backtest is a policy replayed over a past range, a canary starting every Every.
type Backtest struct {
	Policy    string        `json:"policy"`
	Namespace string        `json:"namespace"`
	App       string        `json:"app"`
	Baseline  string        `json:"baselineVersion"`
	Canary    string        `json:"canaryVersion"`
	Judge     string        `json:"judge"`
	From      time.Time     `json:"from"`
	To        time.Time     `json:"to"`
	Every     time.Duration `json:"every"`
	// AA is set for an A/A replay: both arms are the baseline version, split by a label.
	AA    string        `json:"aa,omitempty"`
	Alpha float64       `json:"alpha"`
	Runs  []BacktestRun `json:"runs"`
	// Counts of runs by verdict.
	Failed       int `json:"failed"`
	Passed       int `json:"passed"`
	Inconclusive int `json:"inconclusive"`
	// FailRate is Failed/len(Runs) with its 95% Wilson interval: in an A/A replay, the policy's
	// false-rollback rate on this traffic.
	FailRate     Number `json:"failRate"`
	FailRateLow  Number `json:"failRateLow"`
	FailRateHigh Number `json:"failRateHigh"`
}

// Backtest replays p over [from, to]: a canary starts at from and every every after, each
// running until its verdict is decisive, its maxDuration passes, or to comes. Progress, when
// set, is told after each run. Metrics that cannot be read end the backtest with an error:
// a replay with holes would say nothing true.
func (a *Analyzer) Backtest(ctx context.Context, p *policies.Policy, from, to time.Time, every time.Duration, progress func(done, total int, r BacktestRun)) (Backtest, error) {
	t := p.Spec.Target
	bt := Backtest{
		Policy: p.Metadata.Name, Namespace: t.Namespace, App: t.App, Baseline: t.Baseline.Version, Canary: t.Canary.Version,
		Judge: string(p.Spec.Analysis.Judge), From: from, To: to, Every: every, AA: a.aaLabel, Alpha: p.Spec.Analysis.Alpha,
	}
	if every <= 0 {
		return bt, fmt.Errorf("backtest: the time between canaries must be > 0")
	}
	if !to.After(from) {
		return bt, fmt.Errorf("backtest: --to must be after --from")
	}
	var starts []time.Time
	for s := from; s.Before(to); s = s.Add(every) {
		starts = append(starts, s)
	}
	for i, s := range starts {
		if err := ctx.Err(); err != nil {
			return bt, err
		}
		end := s.Add(time.Duration(p.Spec.Analysis.MaxDuration))
		if end.After(to) {
			end = to
		}
		run, err := a.backtestRun(ctx, p, s, end)
		if err != nil {
			return bt, fmt.Errorf("canary starting %s: %w", s.UTC().Format(time.RFC3339), err)
		}
		bt.Runs = append(bt.Runs, run)
		switch run.Verdict {
		case Fail:
			bt.Failed++
		case Pass:
			bt.Passed++
		default:
			bt.Inconclusive++
		}
		if progress != nil {
			progress(i+1, len(starts), run)
		}
	}
	rate, lo, hi := Wilson(bt.Failed, len(bt.Runs))
	bt.FailRate, bt.FailRateLow, bt.FailRateHigh = Number(rate), Number(lo), Number(hi)
	return bt, nil
}

// backtestRun replays one canary from start to at most end, tick by tick.
func (a *Analyzer) backtestRun(ctx context.Context, p *policies.Policy, start, end time.Time) (BacktestRun, error) {
	interval := time.Duration(p.Spec.Analysis.Interval)
	// The engine promotes once every step has run its stepDuration and the verdict passes; the
	// sequential judge's pass is itself the decision.
	minPass := time.Duration(p.Spec.Strategy.StepDuration) * time.Duration(max(1, len(p.Spec.Strategy.Steps)))
	decisive := func(res Result, at time.Time) bool {
		switch res.Verdict {
		case Fail:
			return true
		case Pass:
			return p.Spec.Analysis.Judge == policies.JudgeSequential || !at.Before(start.Add(minPass))
		}
		return false
	}
	run := BacktestRun{Start: start}
	finish := func(res Result, at time.Time, ticks int) BacktestRun {
		run.End, run.After, run.Ticks, run.Result = at, at.Sub(start), ticks, res
		run.Verdict, run.Reason = res.Verdict, res.Reason
		if !decisive(res, at) {
			run.Verdict = Inconclusive
			if res.Verdict == Pass {
				run.Reason = fmt.Sprintf("passing, but ended before the steps' %s: %s", minPass, res.Reason)
			}
		}
		return run
	}
	judge := StreamJudgeFor(p)
	if judge == nil {
		// Windowed judges: one evaluation per tick, as the engine does.
		var res Result
		ticks := 0
		for at := start.Add(interval); !at.After(end); at = at.Add(interval) {
			var err error
			if res, err = a.EvaluateSplit(ctx, p, at, at, time.Duration(p.Spec.Analysis.Window)); err != nil {
				return run, err
			}
			ticks++
			if decisive(res, at) {
				return finish(res, at, ticks), nil
			}
		}
		return finish(res, end, ticks), nil
	}
	reader, err := a.counterReader()
	if err != nil {
		return run, err
	}
	// One range query per metric for the whole run, then the ticks replayed one by one.
	series := map[string][]metrics.Snapshot{}
	queries := map[string]string{}
	for _, m := range p.Spec.Metrics {
		if !streams(p, m) {
			continue
		}
		q, err := a.counterQuery(p, m)
		if err != nil {
			return run, err
		}
		queries[m.Name] = q.PromQL
		if series[m.Name], err = reader.CountersRange(ctx, q, start, end, interval); err != nil {
			return run, fmt.Errorf("observe: %w", err)
		}
	}
	ev := NewEvidence()
	var res Result
	ticks := 0
	for k := 0; ; k++ {
		at := start.Add(time.Duration(k) * interval)
		if at.After(end) {
			break
		}
		added := false
		for _, m := range p.Spec.Metrics {
			snaps := series[m.Name]
			if !streams(p, m) || k >= len(snaps) {
				continue
			}
			if iv, ok := ev.next(m.Name, snaps[k]); ok {
				ev.Add(judge, p, m, iv)
				added = true
			}
		}
		if !added {
			continue
		}
		ev.Intervals++
		if res, err = a.judgeEvidence(ctx, p, at, ev, judge, queries); err != nil {
			return run, err
		}
		ticks++
		if decisive(res, at) {
			return finish(res, at, ticks), nil
		}
	}
	return finish(res, end, ticks), nil
}

// Wilson is a share k/n with its 95% Wilson score interval; NaNs when n is 0.
func Wilson(k, n int) (p, lo, hi float64) {
	if n == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	const z = 1.959963984540054
	nf := float64(n)
	p = float64(k) / nf
	den := 1 + z*z/nf
	center := (p + z*z/(2*nf)) / den
	half := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / den
	return p, math.Max(0, center-half), math.Min(1, center+half)
}
