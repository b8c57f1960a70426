package analyzer

import (
	"context"
	"fmt"
	"math"
	"time"

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
	// Decision is what was decided at End.
	Decision Decision `json:"decision"`
	// Final is the evaluation at the end of the replayed range, which goes on after a decision
	// that ends the canary: what a report over the whole window shows.
	Final Result `json:"-"`
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

// backtestRun replays one canary from start to at most end.
func (a *Analyzer) backtestRun(ctx context.Context, p *policies.Policy, start, end time.Time) (BacktestRun, error) {
	return a.Simulate(ctx, p, start, end)
}

// Simulate replays a canary started at start, tick by tick until end, as the gate's engine
// would have driven it had every action taken effect at once: the same readings, the same
// judge and the same Decide, on a record kept in memory. Its decision is the first that ends
// the canary (promote, rollback, stop); the judging goes on to end for Final. report's replay and backtest are this loop, so they
// and the gate agree by construction.
func (a *Analyzer) Simulate(ctx context.Context, p *policies.Policy, start, end time.Time) (BacktestRun, error) {
	deadline := start.Add(time.Duration(p.Spec.Analysis.MaxDuration))
	rec := NewProgress(p, start)
	rec.Done("", start)
	run := BacktestRun{Start: start}
	finish := func(res Result, d Decision, at time.Time, ticks int) BacktestRun {
		run.End, run.After, run.Ticks, run.Result, run.Decision = at, at.Sub(start), ticks, res, d
		run.Verdict, run.Reason = Inconclusive, d.Reason
		switch {
		case d.Action == Rollback && d.Cause != CauseDeadline:
			run.Verdict = Fail
		case d.Action == Promote:
			run.Verdict = Pass
		}
		return run
	}
	var baselineAt time.Time
	if p.Spec.Strategy.Type == policies.StrategyBlueGreen {
		baselineAt = start // as the engine: the baseline as it was before the switch
	}
	readings, err := a.ReadRange(ctx, p, start, end, baselineAt)
	if err != nil {
		return run, err
	}
	var ev *Evidence
	if StreamJudgeFor(p) != nil {
		ev = NewEvidence()
	}
	var (
		res   Result
		d     Decision
		ended bool
	)
	ticks := 0
	for _, r := range readings {
		if ev != nil {
			ev.WarmUntil = warmUntil(p, rec)
		}
		if res, err = a.Judge(p, r, ev); err != nil {
			return run, err
		}
		if ended {
			continue // judged to the end for the report's numbers; the decision is made
		}
		ticks++
		d = Decide(p, rec, Observed{Ready: true}, &res, r.Time, deadline)
		rec.Apply(d, &res, r.Time)
		switch d.Action {
		case Advance:
			rec.Done("", r.Time)
		case Promote, Rollback, Stop:
			run, ended = finish(res, d, r.Time, ticks), true
		}
	}
	run.Final = res
	if ended {
		return run, nil
	}
	run = finish(res, d, end, ticks)
	run.Final = res
	if res.Verdict == Pass {
		run.Reason = "passing, but the replay ended first: " + d.Reason
	}
	return run, nil
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
