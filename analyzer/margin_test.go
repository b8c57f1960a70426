package analyzer

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// marginRun feeds one errors metric with a margin intervals of n requests per version at the
// given error rates, and returns the interval it passed or failed at (0: neither), and the last
// result.
func marginRun(t *testing.T, rng *rand.Rand, margin *float64, n, pb, pc float64, intervals int) (passed, failed int, last MetricResult) {
	t.Helper()
	p := sequentialPolicy(t)
	m := p.Spec.Metrics[0]
	if m.Kind != policies.KindErrors {
		t.Fatalf("metric 0 is %s", m.Kind)
	}
	m.Margin = margin
	start := time.Date(2026, 12, 3, 3, 0, 0, 0, time.UTC)
	ev := NewEvidence()
	for i := range intervals {
		iv := metrics.Interval{Start: start.Add(time.Duration(i) * 10 * time.Second), End: start.Add(time.Duration(i+1) * 10 * time.Second),
			Baseline: metrics.Counts{Series: 1, Requests: n, Errors: binomial(rng, n, pb)},
			Canary:   metrics.Counts{Series: 1, Requests: n, Errors: binomial(rng, n, pc)}}
		ev.Add(SequentialJudge{}, p, m, iv)
		ev.Intervals++
		last = SequentialJudge{}.Judge(ev.metric(m), m, p.Spec.Analysis, 0.025)
		switch last.Verdict {
		case Pass:
			return i + 1, 0, last
		case Fail:
			return 0, i + 1, last
		}
	}
	return 0, 0, last
}

// TestErrorMarginShowsRareErrorsHarmless is the case a ratio cannot show: a healthy service at
// 0.1% errors and 10 req/s makes a handful of errors per version in a quarter of an hour. With a
// margin of 0.2 points most runs pass within 15 minutes; without one almost none do, and the
// inconclusive reason says what margin the data would have supported.
func TestErrorMarginShowsRareErrorsHarmless(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 1))
	margin := 0.002
	const runs, horizon = 100, 180 // 10 s intervals: 30 min
	within15, within30, withoutMargin := 0, 0, 0
	for range runs {
		passed, failed, _ := marginRun(t, rng, &margin, 100, 0.001, 0.001, horizon)
		if failed > 0 {
			continue
		}
		if passed > 0 && passed <= 90 {
			within15++
		}
		if passed > 0 {
			within30++
		}
		if p, _, _ := marginRun(t, rng, nil, 100, 0.001, 0.001, horizon); p > 0 {
			withoutMargin++
		}
	}
	t.Logf("healthy 0.1%% at 10 req/s: with a 0.2-point margin %d/%d passed within 15 min, %d within 30; without %d", within15, runs, within30, withoutMargin)
	if within15 < 50 || within30 < 80 {
		t.Errorf("with a 0.2-point margin %d/%d passed within 15 min and %d within 30: want at least half and 80%%", within15, runs, within30)
	}
	if withoutMargin >= within30 {
		t.Errorf("without a margin %d passed, with one %d: the margin should pass more", withoutMargin, within30)
	}
	_, _, last := marginRun(t, rng, nil, 100, 0.001, 0.001, 60)
	if last.Verdict != Inconclusive || !strings.Contains(last.Reason, "the data so far would support a margin of ") {
		t.Errorf("%s: %s; want inconclusive, saying what margin the data support", last.Verdict, last.Reason)
	}
	if sm := float64(last.Stats.SupportedMargin); !(sm > 0 && sm < 0.02) {
		t.Errorf("supported margin %g after 10 minutes at 0.1%%: want a few tenths of a point", sm)
	}
}

// TestErrorMarginKeepsAlpha checks the promote side's guarantee under the binomial model: a
// canary exactly at the margin's edge (tolerance times the baseline's rate plus the margin)
// is passed in at most alpha of runs however long it is watched, and one well beyond it
// (0.1% -> 0.5% with a 0.2-point margin) almost never.
func TestErrorMarginKeepsAlpha(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 2))
	margin := 0.002
	const runs = 400
	edge, beyond := 0, 0
	for range runs {
		if p, _, _ := marginRun(t, rng, &margin, 100, 0.001, 1.5*0.001+margin, 180); p > 0 {
			edge++
		}
		if p, _, _ := marginRun(t, rng, &margin, 100, 0.001, 0.005, 180); p > 0 {
			beyond++
		}
	}
	t.Logf("passed: %d/%d at the margin's edge, %d/%d at 0.5%%", edge, runs, beyond, runs)
	// alpha is 0.025: 10 expected at most; 20 is beyond any reasonable chance (p < 0.002).
	if edge > 20 {
		t.Errorf("a canary at the margin's edge passed in %d/%d runs: want at most alpha 2.5%%", edge, runs)
	}
	if beyond > 4 {
		t.Errorf("a canary at 0.5%% against 0.1%% with a 0.2-point margin passed in %d/%d runs", beyond, runs)
	}
}

// TestMarginTestIsASupermartingale checks E[e] <= 1 for each bet at the null's boundary, for
// unequal traffic and for a baseline without errors.
func TestMarginTestIsASupermartingale(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 3))
	for _, c := range []struct{ nc, nb, pb, tol, m float64 }{
		{100, 100, 0.001, 1.5, 0.002}, {10, 1000, 0.01, 1.5, 0.005}, {500, 50, 0, 1.5, 0.01}, {200, 200, 0.05, 1, 0.01},
	} {
		const runs = 20000
		sums := make([]float64, len(marginBets))
		for range runs {
			mt := newMarginTest(c.tol)
			mt.add(c.nc, c.nb, binomial(rng, c.nc, c.tol*c.pb+c.m), binomial(rng, c.nb, c.pb), 1)
			for i := range marginBets {
				sums[i] += math.Exp(mt.A[i] + c.m*mt.B[i])
			}
		}
		for i, u := range marginBets {
			if mean := sums[i] / runs; mean > 1.05 {
				t.Errorf("%+v, bet %g: E[e] = %.3f at the null's boundary, want at most 1", c, u, mean)
			}
		}
	}
}
