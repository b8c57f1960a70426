package judgebench

import (
	"fmt"
	"strconv"
	"time"

	"github.com/coalmine/coalmine/policies"
)

// The grid's axes, from the issue.
var (
	BaseErrorRates = []float64{0.0005, 0.001, 0.01, 0.05}
	Ratios         = []float64{1, 1.25, 1.5, 2, 3, 5, 10}
	Rates          = []float64{0.2, 1, 10, 100}
)

// BaselineLatency is every baseline's latency, and the special cells' canaries' unless they
// regress it.
var BaselineLatency = Latency{Median: 0.1, P99: 0.4}

// Cell is one row of the benchmark: a scenario and what it is about.
type Cell struct {
	Name string
	// Index numbers the cell in the full grid; with the run it seeds the cell's streams, so a
	// cell's streams do not depend on which other cells run.
	Index int
	Scenario
	// Metric is the metric the cell is about: the one it regresses, the one the oracle tests.
	Metric policies.MetricKind
	// Headline marks the cells the targets are about, and their neighbours.
	Headline bool
	// ThresholdErrorRate is the baseline error rate a Flagger user would see on a dashboard and
	// set the threshold judge's max from (twice it).
	ThresholdErrorRate float64
	// Warmup is the policy's warm-up on this cell; 0 leaves nothing out.
	Warmup time.Duration
	// ErrorMargin is the errors metric's absolute margin (a rate) for the judges that take
	// one; 0 is none.
	ErrorMargin float64
}

// RegressedBeyond reports whether the canary's error rate is worse than the policy accepts:
// 1.5x the baseline's or more and beyond tolerance times it plus the cell's margin. Promoting
// it is a wrong promotion.
func (c Cell) RegressedBeyond(tolerance float64) bool {
	if c.Healthy() || c.Metric != policies.KindErrors || c.ErrorRatio < 1.5 {
		return false
	}
	return c.ErrorRate*c.ErrorRatio >= (tolerance*c.ErrorRate+c.ErrorMargin)*(1-1e-9)
}

// Healthy reports whether the canary is as good as the baseline: every failure is a false
// rollback.
func (c Cell) Healthy() bool {
	return c.ErrorRatio == 1 && c.Canary == c.Baseline
}

// Names of the cells the targets are about.
var (
	HeadlineDouble  = ErrorCellName(0.01, 2, 10)
	HeadlineLowBase = ErrorCellName(0.001, 5, 10)
	HeadlineFive    = ErrorCellName(0.01, 5, 10)
	HealthyHeadline = ErrorCellName(0.01, 1, 10)
	LatencyWhole    = "lat p99+20% whole @10/s"
	LatencyTail     = "lat p99+20% tail @10/s"
)

// ErrorCellName names a grid cell: "err 1%->2% @10/s".
func ErrorCellName(base, ratio, rate float64) string {
	return fmt.Sprintf("err %s->%s @%s", percent(base), percent(base*ratio), perSecond(rate))
}

func percent(x float64) string { return strconv.FormatFloat(100*x, 'g', 4, 64) + "%" }

func perSecond(rate float64) string { return strconv.FormatFloat(rate, 'g', -1, 64) + "/s" }

// Grid is every cell: the error-rate grid, then the special cells.
func Grid() []Cell {
	var cells []Cell
	add := func(c Cell) {
		c.Index = len(cells)
		if c.ThresholdErrorRate == 0 {
			c.ThresholdErrorRate = c.ErrorRate
		}
		if c.Metric == "" {
			c.Metric = policies.KindErrors
		}
		cells = append(cells, c)
	}
	for _, base := range BaseErrorRates {
		for _, rate := range Rates {
			for _, ratio := range Ratios {
				add(Cell{
					Name:     ErrorCellName(base, ratio, rate),
					Headline: rate == 10 && (base == 0.01 || base == 0.001),
					Scenario: Scenario{
						Rate: rate, ErrorRate: base, ErrorRatio: ratio,
						Baseline: BaselineLatency, Canary: BaselineLatency,
					},
				})
			}
		}
	}
	healthy := Scenario{Rate: 10, ErrorRate: 0.01, ErrorRatio: 1, Baseline: BaselineLatency, Canary: BaselineLatency}
	with := func(f func(*Scenario)) Scenario {
		sc := healthy
		f(&sc)
		return sc
	}
	add(Cell{Name: "ramp 10->50->100% err 1% @10/s", Headline: true,
		Scenario: with(func(sc *Scenario) { sc.Ramp = []float64{0.1, 0.5, 1} })})
	add(Cell{Name: "incident both x10 5m err 1% @10/s", Headline: true,
		Scenario: with(func(sc *Scenario) {
			sc.Incident = Incident{From: Horizon/2 - 150*time.Second, To: Horizon/2 + 150*time.Second, Factor: 10}
		})})
	bursty := with(func(sc *Scenario) { sc.Burst = Burst{Prob: 0.1, Factor: 10} })
	add(Cell{Name: "bursty 1-in-10 x10 err 1% @10/s", Headline: true, Scenario: bursty,
		// A dashboard shows the long-run rate, bursts included.
		ThresholdErrorRate: bursty.ErrorRate * (1 - bursty.Burst.Prob + bursty.Burst.Prob*bursty.Burst.Factor)})
	add(Cell{Name: LatencyWhole, Headline: true, Metric: policies.KindLatency,
		Scenario: with(func(sc *Scenario) {
			sc.Canary = Latency{Median: 1.2 * BaselineLatency.Median, P99: 1.2 * BaselineLatency.P99}
		})})
	add(Cell{Name: LatencyTail, Headline: true, Metric: policies.KindLatency,
		Scenario: with(func(sc *Scenario) {
			sc.Canary = Latency{Median: BaselineLatency.Median, P99: 1.2 * BaselineLatency.P99}
		})})
	for _, rate := range []float64{10, 100} {
		add(Cell{Name: "lat healthy @" + perSecond(rate), Headline: true, Metric: policies.KindLatency,
			Scenario: with(func(sc *Scenario) { sc.Rate = rate })})
	}
	// Real traffic, beyond the grid: clumpy errors, warm-up, the day's load, noise both
	// versions share, a canary with a tiny share of the traffic. Added last, so that the
	// cells before keep their indexes and streams.
	for _, c := range []struct {
		d, rate float64
	}{{3, 10}, {6, 10}, {3, 100}} {
		for _, ratio := range []float64{1, 1.5, 2} {
			add(Cell{Name: fmt.Sprintf("clumpy x%g %s", c.d, ErrorCellName(0.01, ratio, c.rate)), Headline: true,
				Scenario: with(func(sc *Scenario) { sc.Rate, sc.ErrorRatio, sc.Dispersion = c.rate, ratio, c.d })})
		}
	}
	add(Cell{Name: WarmUpCell, Headline: true, Metric: policies.KindLatency, Warmup: 2 * time.Minute,
		Scenario: with(func(sc *Scenario) { sc.WarmUp = WarmUp{For: 2 * time.Minute, Factor: 1.5} })})
	for _, ratio := range []float64{1, 2} {
		add(Cell{Name: "load 2->20/s " + ErrorCellName(0.01, ratio, 10), Headline: true,
			Scenario: with(func(sc *Scenario) { sc.ErrorRatio, sc.Load = ratio, []float64{0.2, 0.5, 1, 2} })})
	}
	add(Cell{Name: "shared noise x5 err 1% @10/s", Headline: true,
		Scenario: with(func(sc *Scenario) { sc.SharedNoise = 5 })})
	for _, ratio := range []float64{1, 5} {
		add(Cell{Name: "canary 1% of traffic " + ErrorCellName(0.01, ratio, 100), Headline: true,
			Scenario: with(func(sc *Scenario) { sc.Rate, sc.ErrorRatio, sc.Ramp = 100, ratio, []float64{0.01} })})
	}
	// Rare errors, with and without an absolute margin: a relative tolerance cannot be shown
	// from a handful of errors, a margin can.
	for _, c := range []struct {
		base, rate, margin float64
		ratios             []float64
	}{
		{0.001, 10, 0.002, []float64{1, 3, 5}},
		{0.001, 50, 0, []float64{1}},
		{0.001, 50, 0.002, []float64{1, 5}},
		{0.0001, 100, 0, []float64{1}},
		{0.0001, 100, 0.0002, []float64{1, 5}},
	} {
		for _, ratio := range c.ratios {
			add(Cell{Name: "rare " + ErrorCellName(c.base, ratio, c.rate) + marginText(c.margin), Headline: true, ErrorMargin: c.margin,
				Scenario: with(func(sc *Scenario) { sc.Rate, sc.ErrorRate, sc.ErrorRatio = c.rate, c.base, ratio })})
		}
	}
	for _, ratio := range []float64{1, 5} {
		add(Cell{Name: "canary 1% of traffic " + ErrorCellName(0.01, ratio, 100) + marginText(0.005), Headline: true, ErrorMargin: 0.005,
			Scenario: with(func(sc *Scenario) { sc.Rate, sc.ErrorRatio, sc.Ramp = 100, ratio, []float64{0.01} })})
	}
	for _, ratio := range []float64{1, 2} {
		add(Cell{Name: "clumpy x3 " + ErrorCellName(0.01, ratio, 10) + marginText(0.002), Headline: true, ErrorMargin: 0.002,
			Scenario: with(func(sc *Scenario) { sc.ErrorRatio, sc.Dispersion = ratio, 3 })})
	}
	return cells
}

// RareMarginHeadline is the cell of the rare-errors target: a healthy service at 0.1% and
// 10 req/s, judged with a 0.2-point margin.
var RareMarginHeadline = "rare " + ErrorCellName(0.001, 1, 10) + marginText(0.002)

// marginText names a cell's margin: " margin 0.2pt"; "" for none.
func marginText(m float64) string {
	if m == 0 {
		return ""
	}
	return " margin " + strconv.FormatFloat(100*m, 'g', 4, 64) + "pt"
}

// WarmUpCell is the cell whose canary pods are slow for their first two minutes, judged with a
// policy that leaves them out.
const WarmUpCell = "warm-up: new pods 1.5x slower for 2m, warmup 2m, lat @10/s"

// RunsFor is how many runs a cell gets when the benchmark is asked for n: all of them for the
// healthy cells (false-rollback rates need them, and never fewer than MinHealthyRuns) and
// twice that for the errors cells at the tolerance (wrong-promotion rates), the
// headline cells and the special ones; half for the rest of the 10 req/s column and the 1%
// row; a quarter, at least 50, far from them.
func RunsFor(c Cell, n int) int {
	switch {
	case c.Healthy():
		return max(n, MinHealthyRuns)
	case c.Metric == policies.KindErrors && c.ErrorRatio == Tolerance && c.ErrorMargin == 0:
		// At the tolerance itself the promote side's guarantee is exactly its alpha share:
		// enough runs to tell 2.5% from 5%.
		return max(n, 2*MinHealthyRuns)
	case c.Headline:
		return n
	case c.Rate == 10 || c.ErrorRate == 0.01:
		return max(n/2, min(n, 50))
	}
	return max(n/4, min(n, 50))
}

// MinHealthyRuns is the fewest runs a healthy cell gets: with fewer, a false-rollback rate's
// interval is too wide to tell 2% from 5%.
const MinHealthyRuns = 200
