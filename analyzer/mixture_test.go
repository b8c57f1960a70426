package analyzer

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// binomial draws Binomial(n, p) by inversion of Poisson for small means, normal otherwise:
// good enough for test streams.
func binomial(rng *rand.Rand, n, p float64) float64 {
	mean := n * p
	if mean < 30 {
		// Poisson(mean) by multiplication.
		l, k, prod := math.Exp(-mean), 0.0, rng.Float64()
		for prod > l {
			k++
			prod *= rng.Float64()
		}
		return math.Min(k, n)
	}
	return math.Max(0, math.Round(mean+math.Sqrt(mean*(1-p))*rng.NormFloat64()))
}

// runStream feeds a count test intervals of n requests per arm with error rates pb and pc, and
// reports the interval at which it failed (-1 never) and whether it could promote by the end.
func runStream(rng *rand.Rand, intervals int, n, pb, pc, alpha float64) (failedAt int, promoted bool) {
	t := newCountTest(1.5)
	failedAt = -1
	for i := range intervals {
		t.add(n, n, binomial(rng, n, pc), binomial(rng, n, pb), 1)
		t.update()
		if t.PFail <= alpha && failedAt < 0 {
			failedAt = i
		}
	}
	return failedAt, t.PPromote <= alpha
}

func TestCountTestKeepsAlphaHoweverOftenItLooks(t *testing.T) {
	// 400 healthy canaries, 180 looks each (30 min of 10 s intervals), 1% errors at 10 req/s
	// per arm: at most alpha of them may ever fail. The binomial bound on 400 draws at 5%
	// leaves room up to about 8%; a test that is not anytime-valid fails far more (a z-test
	// repeated every look: about 25%).
	rng := rand.New(rand.NewPCG(1, 2))
	const alpha, runs = 0.05, 400
	failed := 0
	for range runs {
		if at, _ := runStream(rng, 180, 100, 0.01, 0.01, alpha); at >= 0 {
			failed++
		}
	}
	if rate := float64(failed) / runs; rate > 0.08 {
		t.Errorf("%.1f%% of healthy canaries failed, want at most about alpha (5%%)", 100*rate)
	}
}

func TestCountTestDetectsAndPromotes(t *testing.T) {
	tests := []struct {
		name         string
		pb, pc       float64
		wantFailBy   int // interval by which at least 90% have failed; 0: must not fail
		wantPromoted bool
	}{
		{name: "5x errors fail within 2 minutes", pb: 0.01, pc: 0.05, wantFailBy: 12},
		{name: "2x errors fail within 15 minutes", pb: 0.01, pc: 0.02, wantFailBy: 90},
		{name: "a healthy canary with enough errors is promoted", pb: 0.05, pc: 0.05, wantPromoted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			failedBy, promoted := 0, 0
			const runs = 100
			for range runs {
				at, prom := runStream(rng, 180, 100, tt.pb, tt.pc, 0.05)
				if at >= 0 && (tt.wantFailBy == 0 || at <= tt.wantFailBy) {
					failedBy++
				}
				if prom {
					promoted++
				}
			}
			if tt.wantFailBy > 0 && failedBy < 90 {
				t.Errorf("%d/%d failed by interval %d, want at least 90", failedBy, runs, tt.wantFailBy)
			}
			if tt.wantFailBy == 0 && failedBy > 10 {
				t.Errorf("%d/%d healthy canaries failed", failedBy, runs)
			}
			if tt.wantPromoted && promoted < 90 {
				t.Errorf("%d/%d promoted, want at least 90", promoted, runs)
			}
			// Promoting a canary worse than the tolerance is the promote side's error: at most
			// alpha of the time (with room for chance on 100 runs).
			if !tt.wantPromoted && promoted > 10 {
				t.Errorf("%d/%d regressed canaries promoted", promoted, runs)
			}
		})
	}
}

func TestCountTestIntervalCoversTheRatio(t *testing.T) {
	// The always-valid interval must hold the true ratio in at least 1-alpha of runs, at the
	// end and (since it is anytime-valid) at any look.
	rng := rand.New(rand.NewPCG(5, 6))
	const runs, alpha = 200, 0.05
	missed := 0
	var estimates []float64
	for range runs {
		tst := newCountTest(1.5)
		for range 60 {
			tst.add(300, 100, binomial(rng, 300, 0.03), binomial(rng, 100, 0.01), 1) // ratio 3, uneven traffic
		}
		lo, hi := tst.interval(alpha)
		if !(lo <= 3 && 3 <= hi) {
			missed++
		}
		estimates = append(estimates, tst.estimate())
	}
	slices.Sort(estimates)
	if med := estimates[runs/2]; math.Abs(med-3) > 0.3 {
		t.Errorf("median estimate %.2f, want about the true ratio 3", med)
	}
	if missed > runs*alpha*1.6 {
		t.Errorf("interval missed the true ratio in %d/%d runs", missed, runs)
	}
}

func TestCountTestEdgeCases(t *testing.T) {
	tst := newCountTest(1.5)
	tst.add(0, 0, 0, 0, 1)
	tst.add(100, 100, 0, 0, 1)
	tst.update()
	if tst.PFail < 1-1e-9 || tst.PPromote < 1-1e-9 || !math.IsNaN(tst.estimate()) {
		t.Errorf("no errors must be no evidence: pFail %g pPromote %g estimate %g", tst.PFail, tst.PPromote, tst.estimate())
	}
	tst.add(-5, 100, 3, 0, 1) // a negative count is nonsense: ignored
	if tst.CanaryN != 100 {
		t.Errorf("negative interval counted: canary requests %g", tst.CanaryN)
	}
	// A canary with errors where the baseline has none: the estimate is infinite, not NaN.
	for range 20 {
		tst.add(100, 100, 5, 0, 1)
	}
	tst.update()
	if e := tst.estimate(); !math.IsInf(e, 1) || tst.PFail > 0.001 {
		t.Errorf("errors only in the canary: estimate %g pFail %g", e, tst.PFail)
	}
}

func TestEvidenceRoundTrip(t *testing.T) {
	// The record keeps what the decisions read (T and L at the failing alternatives, rounded
	// down to float32, never up) and rebuilds the rest of the grid from the totals.
	rng := rand.New(rand.NewPCG(5, 5))
	tst := newCountTest(1.5)
	for range 40 {
		tst.add(100, 100, binomial(rng, 100, 0.03), binomial(rng, 100, 0.01), 1)
		tst.update()
	}
	b, err := json.Marshal(tst)
	if err != nil {
		t.Fatal(err)
	}
	var back countTest
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	near := func(got, want float64) bool {
		return got <= want && want-got <= 1e-6*math.Max(1, math.Abs(want)) // rounded down, float32
	}
	for _, d := range append([]int{0}, failSteps[:]...) {
		if i := gridHalf + d; !near(back.L[i], tst.L[i]) {
			t.Errorf("l[%d] %g came back as %g", i, tst.L[i], back.L[i])
		}
	}
	for j := 1; j < len(tst.T); j++ {
		if got, want := back.T[j]-back.T[0], tst.T[j]-tst.T[0]; !near(got, want) {
			t.Errorf("t[%d]-t[0] %g came back as %g", j, want, got)
		}
	}
	if back.lnFail() > tst.lnFail() || tst.lnFail()-back.lnFail() > 1e-5 || back.lnPromote() > tst.lnPromote() || tst.lnPromote()-back.lnPromote() > 1e-5 {
		t.Errorf("what the decisions read changed: lnFail %g -> %g, lnPromote %g -> %g", tst.lnFail(), back.lnFail(), tst.lnPromote(), back.lnPromote())
	}
	if back.PFail != tst.PFail || back.PPromote != tst.PPromote || back.CanaryY != tst.CanaryY || back.RecentN != tst.RecentN || back.BaselineS != tst.BaselineS {
		t.Errorf("came back as %+v, want %+v", back, *tst)
	}
	// The interval and the estimate a report shows move by at most one grid point (9%).
	lo, hi := tst.interval(0.05)
	blo, bhi := back.interval(0.05)
	est, best := tst.estimate(), back.estimate()
	t.Logf("interval [%g, %g] estimate %g came back as [%g, %g] %g", lo, hi, est, blo, bhi, best)
	if abs(gridIndex(blo)-gridIndex(lo)) > 1 || abs(gridIndex(bhi)-gridIndex(hi)) > 1 || math.Abs(math.Log2(best/est)) > 1.0/gridPerOctave {
		t.Errorf("interval [%g, %g] estimate %g came back as [%g, %g] %g", lo, hi, est, blo, bhi, best)
	}
}

func abs(x int) int { return max(x, -x) }

func TestCountTestBurstsAreNotRegressions(t *testing.T) {
	// Both versions healthy, but in a random 1 in 10 intervals each has 10x the errors (one bad
	// pod, retries): the binomial model alone fails about a third of such canaries; the caps and
	// the dispersion's tempering must bring that near alpha.
	rng := rand.New(rand.NewPCG(21, 22))
	const runs, alpha = 400, 0.025
	failed := 0
	for range runs {
		tst := newCountTest(1.5)
		for range 180 {
			pb, pc := 0.01, 0.01
			if rng.Float64() < 0.1 {
				pb = 0.1
			}
			if rng.Float64() < 0.1 {
				pc = 0.1
			}
			tst.add(100, 100, binomial(rng, 100, pc), binomial(rng, 100, pb), 1)
			tst.update()
			if tst.PFail <= alpha {
				failed++
				break
			}
		}
	}
	if rate := float64(failed) / runs; rate > 0.06 {
		t.Errorf("%.1f%% of healthy bursty canaries failed at alpha %g", 100*rate, alpha)
	}
}

func TestCountTestStaysASupermartingale(t *testing.T) {
	// What keeps alpha: under the null, each ratio's likelihood ratio, capped and tempered as it
	// is, has an expectation of at most 1 at any time. Checked by simulation at several ratios,
	// with traffic that makes the caps and the tempering act (uneven traffic, many events).
	rng := rand.New(rand.NewPCG(31, 32))
	const runs = 3000
	ratios := []int{gridIndex(1.54), gridIndex(2), gridIndex(5.19)}
	sums := make([]float64, len(ratios))
	for range runs {
		tst := newCountTest(1.5)
		for range 40 {
			tst.add(50, 150, binomial(rng, 50, 0.03), binomial(rng, 150, 0.03), 1)
		}
		for j, k := range ratios {
			sums[j] += math.Exp(tst.L[k])
		}
	}
	for j, k := range ratios {
		t.Logf("ratio %.2f: mean LR %.3f", gridRatio(k), sums[j]/runs)
		if mean := sums[j] / runs; mean > 1.15 {
			t.Errorf("ratio %.2f: E[LR] = %.3f under the null, want at most 1", gridRatio(k), mean)
		}
	}
}

func TestCountTestEvidenceInProportionToData(t *testing.T) {
	// One 30 s interval of a report: 15,000 requests per version. A canary with 4x the
	// baseline's 1% errors must fail on it alone; the caps that keep one burst from deciding
	// are not a ceiling on what thousands of requests can show.
	tests := []struct {
		name     string
		n, pb    float64
		ratio    float64
		wantFail bool
	}{
		{"4x errors over 15,000 requests", 15000, 0.01, 4, true},
		{"10x errors over 3,000 requests", 3000, 0.01, 10, true},
		{"a burst: 1.7x over 3,000 requests", 3000, 0.01, 1.7, false},
		{"2x over 300 requests", 300, 0.01, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tst := newCountTest(1.5)
			tst.add(tt.n, tt.n, math.Round(tt.n*tt.pb*tt.ratio), math.Round(tt.n*tt.pb), 1)
			tst.update()
			if failed := tst.PFail <= 0.05; failed != tt.wantFail {
				t.Errorf("p = %.4g after one interval: failed %t, want %t", tst.PFail, failed, tt.wantFail)
			}
		})
	}
}

func TestInconclusiveSaysWhatTheDataSupport(t *testing.T) {
	// Six intervals of 1,000 requests per version at 1% errors: too little to show the canary
	// below 1.5x, enough to say what tolerance it could have been shown below.
	p := sequentialPolicy(t)
	m := p.Spec.Metrics[0]
	ev := NewEvidence()
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	for i := range 6 {
		iv := metrics.Interval{Start: start.Add(time.Duration(i) * 10 * time.Second), End: start.Add(time.Duration(i+1) * 10 * time.Second),
			Baseline: metrics.Counts{Series: 1, Requests: 1000, Errors: 10}, Canary: metrics.Counts{Series: 1, Requests: 1000, Errors: 10}}
		ev.Add(SequentialJudge{}, p, m, iv)
		ev.Intervals++
	}
	r := SequentialJudge{}.Judge(ev.metric(m), m, p.Spec.Analysis, 0.025)
	if r.Verdict != Inconclusive || !strings.Contains(r.Reason, "the data so far would support a tolerance of ") || !strings.Contains(r.Reason, "points above the baseline's 1.00%") {
		t.Errorf("%s: %s; want inconclusive, saying what tolerance the data support", r.Verdict, r.Reason)
	}
}

// TestLatencyMarginPromotesSooner shows a latency metric with a margin: a canary as fast as the
// baseline is shown within the margin (its requests slower than the baseline's p99 edge plus
// the margin are far fewer than the baseline's slower than the edge) sooner than within the
// tolerance alone; a canary slower by more than the margin is not promoted either way.
func TestLatencyMarginPromotesSooner(t *testing.T) {
	p := sequentialPolicy(t)
	m := p.Spec.Metrics[1]
	if m.Kind != policies.KindLatency {
		t.Fatalf("metric 1 is %s", m.Kind)
	}
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	// Per interval and version: 1,000 requests, cum counts at 0.25, 0.5, 1, +Inf.
	hist := func(c25, c5, c1 float64) metrics.Counts {
		return metrics.Counts{Series: 1, Requests: 1000, Buckets: []metrics.Bucket{
			{UpperBound: 0.25, Count: c25}, {UpperBound: 0.5, Count: c5}, {UpperBound: 1, Count: c1}, {UpperBound: math.Inf(1), Count: 1000}}}
	}
	passAt := func(margin *float64, canary metrics.Counts) int {
		m := m
		m.Margin = margin
		ev := NewEvidence()
		for i := range 180 {
			iv := metrics.Interval{Start: start.Add(time.Duration(i) * 10 * time.Second), End: start.Add(time.Duration(i+1) * 10 * time.Second),
				Baseline: hist(900, 990, 998), Canary: canary}
			ev.Add(SequentialJudge{}, p, m, iv)
			ev.Intervals++
			if r := (SequentialJudge{}).Judge(ev.metric(m), m, p.Spec.Analysis, 0.025); r.Verdict != Inconclusive {
				if r.Verdict == Pass {
					return i + 1
				}
				return -1
			}
		}
		return 0
	}
	half := 0.5
	same := hist(900, 990, 998)
	plain, withMargin := passAt(nil, same), passAt(&half, same)
	t.Logf("as fast as the baseline: passed after %d intervals without a margin, %d with 0.5s", plain, withMargin)
	if withMargin <= 0 || plain <= 0 || withMargin >= plain {
		t.Errorf("a canary as fast as the baseline passed after %d intervals with a 0.5s margin, %d without: want both, the margin sooner", withMargin, plain)
	}
	// Slower by more than the margin: 5% beyond 0.5s and 4% beyond 1s, against 1% and 0.2%.
	if at := passAt(&half, hist(800, 950, 960)); at > 0 {
		t.Errorf("a canary slower by more than the margin passed after %d intervals", at)
	}
}

// TestMarginTestsSurviveTheRecord checks that a latency metric's margin tests are kept in the
// record and read back as they were.
func TestMarginTestsSurviveTheRecord(t *testing.T) {
	p := sequentialPolicy(t)
	half := 0.5
	p.Spec.Metrics[1].Margin = &half
	m := p.Spec.Metrics[1]
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	ev := NewEvidence()
	for i := range 20 {
		b := metrics.Counts{Series: 1, Requests: 1000, Buckets: []metrics.Bucket{{UpperBound: 0.25, Count: 900}, {UpperBound: 0.5, Count: 990}, {UpperBound: 1, Count: 998}, {UpperBound: math.Inf(1), Count: 1000}}}
		ev.Add(SequentialJudge{}, p, m, metrics.Interval{Start: start.Add(time.Duration(i) * 10 * time.Second), End: start.Add(time.Duration(i+1) * 10 * time.Second), Baseline: b, Canary: b})
		ev.Intervals++
	}
	rec := NewProgress(p, start)
	rec.Done("fp", start)
	rec.Evidence = ev
	s, err := EncodeProgress(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeProgress(s, p)
	if err != nil {
		t.Fatal(err)
	}
	want, have := ev.metric(m), got.Evidence.metric(m)
	if len(have.MarginTests) != len(want.MarginTests) || !slices.Equal(have.MarginEdges, want.MarginEdges) || have.MarginTests[1] == nil || have.MarginTests[1].PPromote != want.MarginTests[1].PPromote {
		t.Errorf("margin tests after the record: edges %v (want %v), %d tests (want %d)", have.MarginEdges, want.MarginEdges, len(have.MarginTests), len(want.MarginTests))
	}
}
