package report

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/policies"
)

// The chart's geometry, in viewBox units: the SVG scales to its container's width, so these
// fix its proportions and the room the axis labels get, not its size on screen.
const (
	chartW, chartH               = 640, 280
	plotL, plotR, plotT, plotB   = 76, 36, 24, 40
	dotsUpTo                     = 60 // draw every point as a dot (with a tooltip) up to this many
	guideTick                    = 8  // half the width of a guide's dash at a point alone
	axisTimeLayout               = "15:04:05"
	barMaxWidth, barSlotFraction = 120.0, 0.5
)

// chartView is an SVG chart laid out and ready for the template: every coordinate is in
// viewBox units.
type chartView struct {
	W, H           int
	Label          string
	Plot           plotBox
	YTicks, XTicks []axisTick
	Bands          []string
	Bars           []chartBar
	Rules          []chartRule
	Lines          []chartLine
	Dots           []chartDot
	// Texts label rules and bars; drawn last, over the lines.
	Texts  []chartText
	Note   string
	Legend []legendKey
}

type plotBox struct{ X, Y, W, H float64 }

func (p plotBox) Right() float64  { return p.X + p.W }
func (p plotBox) Bottom() float64 { return p.Y + p.H }

type axisTick struct {
	Pos           float64
	Label, Anchor string
}

// chartRule is a straight guide: a threshold, a latency edge, a step marker.
type chartRule struct {
	Class          string
	X1, Y1, X2, Y2 float64
}

type chartLine struct{ Class, D string }

type chartDot struct {
	Class   string
	X, Y, R float64
	Title   string
}

type chartBar struct {
	Class      string
	X, Y, W, H float64
}

type chartText struct {
	Class, Label, Anchor string
	X, Y                 float64
}

type legendKey struct{ Class, Label string }

// chartInput is what a chart is drawn from: one metric's points over time (or, with none, its
// single window's values) and the judge's numbers that become guides.
type chartInput struct {
	name       string
	kind       policies.MetricKind
	thresholds policies.Thresholds
	stats      *analyzer.Stats
	points     []analyzer.Point
	// per names what a point is, for the description: "interval" or "tick".
	per string
	// markers are moments worth a vertical line: a gate's step changes and its end.
	markers []chartMarker
	// baseline and canary are the window's values, drawn as bars when there are no points.
	baseline, canary               float64
	baselineVersion, canaryVersion string
}

type chartMarker struct {
	t     time.Time
	label string
}

// guide is a line the judge compares the canary with: an absolute value (abs), or the
// baseline times mul plus add.
type guide struct {
	class, label string
	abs          float64
	mul, add     float64
}

func (g guide) relative() bool { return math.IsNaN(g.abs) }

func (g guide) at(baseline float64) float64 {
	if g.relative() {
		return baseline*g.mul + g.add
	}
	return g.abs
}

// guides are the lines that say where the canary would fail or pass, by judge.
func guides(kind policies.MetricKind, th policies.Thresholds, st *analyzer.Stats) []guide {
	nan := math.NaN()
	ratioGuide := func(r float64, what string) guide {
		return guide{class: "ratio", label: fmt.Sprintf("baseline × %g (%s)", r, what), abs: nan, mul: r}
	}
	var gs []guide
	judge := policies.JudgeThreshold
	if st != nil {
		judge = st.Judge
	}
	switch judge {
	case policies.JudgeSequential:
		if e := float64(st.Edge); kind == policies.KindLatency && finite(e) {
			gs = append(gs, guide{class: "edge", label: "edge " + analyzer.FormatValue(kind, e), abs: e})
		}
		if tol := float64(st.Tolerance); kind == policies.KindErrors && finite(tol) {
			gs = append(gs, guide{class: "tolerance", label: fmt.Sprintf("baseline × %g (tolerance)", tol), abs: nan, mul: tol})
		}
	case policies.JudgeMannWhitney:
		if th.MaxRatio != nil {
			gs = append(gs, ratioGuide(*th.MaxRatio, "maxRatio"))
		}
	default:
		if th.Max != nil {
			gs = append(gs, guide{class: "threshold", label: "max " + analyzer.FormatValue(kind, *th.Max), abs: *th.Max})
		}
		if th.Min != nil {
			gs = append(gs, guide{class: "threshold", label: "min " + analyzer.FormatValue(kind, *th.Min), abs: *th.Min})
		}
		if th.MaxRatio != nil {
			gs = append(gs, ratioGuide(*th.MaxRatio, "maxRatio"))
		}
		if th.MaxDifference != nil {
			d := *th.MaxDifference
			gs = append(gs, guide{class: "ratio", label: "baseline + " + analyzer.FormatValue(kind, d) + " (maxDifference)", abs: nan, mul: 1, add: d})
		}
	}
	return gs
}

// band is the sequential judge's always-valid interval of canary/baseline, for an errors metric:
// where the canary's rate lies given the baseline's.
func band(kind policies.MetricKind, st *analyzer.Stats) (lo, hi float64, ok bool) {
	if st == nil || st.Judge != policies.JudgeSequential || kind != policies.KindErrors {
		return 0, 0, false
	}
	lo, hi = float64(st.Low), float64(st.High)
	return lo, hi, !math.IsNaN(lo) && !math.IsNaN(hi)
}

// newChart lays out a metric's chart: its lines over time, or with no points the window's two
// values as bars.
func newChart(in chartInput) chartView {
	c := chartView{W: chartW, H: chartH, Plot: plotBox{plotL, plotT, chartW - plotL - plotR, chartH - plotT - plotB}}
	c.Legend = []legendKey{
		{"baseline", strings.TrimSpace("baseline " + in.baselineVersion)},
		{"canary", strings.TrimSpace("canary " + in.canaryVersion)},
	}
	if len(in.points) == 0 {
		c.barChart(in)
	} else {
		c.lineChart(in)
	}
	// The description a screen reader gives names every guide the legend does.
	var guides []string
	for _, k := range c.Legend[2:] {
		guides = append(guides, k.Label)
	}
	if len(guides) > 0 {
		c.Label += "; " + strings.Join(guides, "; ")
	}
	return c
}

// lineChart draws baseline and canary over time, a gap where a version had no data.
func (c *chartView) lineChart(in chartInput) {
	// Points come oldest first: a judge's history and a gate's ticks both are.
	pts := in.points
	t0, t1 := pts[0].End, pts[len(pts)-1].End
	span := t1.Sub(t0)
	if span <= 0 {
		t0, t1, span = t0.Add(-30*time.Second), t1.Add(30*time.Second), time.Minute
	}
	x := func(t time.Time) float64 { return c.Plot.X + c.Plot.W*float64(t.Sub(t0))/float64(span) }

	base, can := make([]float64, len(pts)), make([]float64, len(pts))
	for i, p := range pts {
		base[i], can[i] = float64(p.Baseline), float64(p.Canary)
	}
	gs := guides(in.kind, in.thresholds, in.stats)
	values := append(append([]float64(nil), base...), can...)
	guideVals := make([][]float64, len(gs))
	for j, g := range gs {
		guideVals[j] = make([]float64, len(pts))
		for i := range pts {
			guideVals[j][i] = g.at(base[i])
		}
		values = append(values, guideVals[j]...)
	}
	bandLo, bandHi, hasBand := band(in.kind, in.stats)
	if hasBand {
		for _, b := range base {
			values = append(values, b*bandLo, b*bandHi)
		}
	}
	y := c.yAxis(in.kind, values)
	for _, t := range timeTicks(t0, t1) {
		// The last label ends at its tick rather than running off the chart.
		tk := axisTick{Pos: x(t), Label: t.UTC().Format(axisTimeLayout), Anchor: "middle"}
		if tk.Pos > c.Plot.Right()-30 {
			tk.Anchor = "end"
		}
		c.XTicks = append(c.XTicks, tk)
	}

	if hasBand {
		for _, seg := range segments(base) {
			if seg[1]-seg[0] < 2 {
				continue
			}
			var up, down []string
			for i := seg[0]; i < seg[1]; i++ {
				up = append(up, coord(x(pts[i].End), y(base[i]*bandHi)))
			}
			for i := seg[1] - 1; i >= seg[0]; i-- {
				down = append(down, coord(x(pts[i].End), y(base[i]*bandLo)))
			}
			c.Bands = append(c.Bands, strings.Join(append(up, down...), " "))
		}
		c.Legend = append(c.Legend, legendKey{"band", fmt.Sprintf("canary/baseline always-valid interval [%s, %s] × baseline", ratio(bandLo), ratio(bandHi))})
	}
	for j, g := range gs {
		if g.relative() {
			c.Lines = append(c.Lines, chartLine{Class: g.class, D: linePath(pts, guideVals[j], x, y, guideTick)})
		} else {
			c.hRule(g.class, y(g.abs), g.label)
		}
		c.Legend = append(c.Legend, legendKey{g.class, g.label})
	}
	for _, mk := range in.markers {
		if mk.t.Before(t0) || mk.t.After(t1) {
			continue
		}
		mx := x(mk.t)
		c.Rules = append(c.Rules, chartRule{"marker", mx, c.Plot.Y, mx, c.Plot.Bottom()})
		c.Texts = append(c.Texts, chartText{"rule-label marker", mk.label, "end", mx - 3, c.Plot.Y + 12})
	}
	// The baseline's dots are the larger, so a canary on top of it leaves a ring showing.
	for _, s := range []struct {
		class string
		vs    []float64
		n     func(analyzer.Point) float64
		r     float64
	}{
		{"baseline", base, func(p analyzer.Point) float64 { return p.BaselineN }, 4},
		{"canary", can, func(p analyzer.Point) float64 { return p.CanaryN }, 2.5},
	} {
		c.Lines = append(c.Lines, chartLine{Class: s.class, D: linePath(pts, s.vs, x, y, 0)})
		for i, v := range s.vs {
			isolated := (i == 0 || math.IsNaN(s.vs[i-1])) && (i == len(s.vs)-1 || math.IsNaN(s.vs[i+1]))
			if math.IsNaN(v) || (len(pts) > dotsUpTo && !isolated) {
				continue
			}
			title := fmt.Sprintf("%s %s %s", pts[i].End.UTC().Format(axisTimeLayout), s.class, analyzer.FormatValue(in.kind, v))
			if n := s.n(pts[i]); in.kind != policies.KindValue && finite(n) {
				title += fmt.Sprintf(" (%s requests)", count(n))
			}
			c.Dots = append(c.Dots, chartDot{Class: s.class, X: x(pts[i].End), Y: y(v), R: s.r, Title: title})
		}
	}
	c.Label = fmt.Sprintf("%s: baseline and canary per %s, %d points from %s to %s UTC; last baseline %s, canary %s",
		in.name, in.per, len(pts), pts[0].End.UTC().Format(axisTimeLayout), pts[len(pts)-1].End.UTC().Format(axisTimeLayout),
		analyzer.FormatValue(in.kind, last(base)), analyzer.FormatValue(in.kind, last(can)))
}

// barChart draws the window's two values side by side: a report without per-interval history
// (the threshold judge) still shows how far apart the versions are and where the bounds lie.
func (c *chartView) barChart(in chartInput) {
	c.Note = "one window, no per-interval history"
	gs := guides(in.kind, in.thresholds, in.stats)
	values := []float64{in.baseline, in.canary}
	for _, g := range gs {
		values = append(values, g.at(in.baseline))
	}
	y := c.yAxis(in.kind, values)
	slot := c.Plot.W / 2
	width := math.Min(barMaxWidth, slot*barSlotFraction)
	zero := y(0)
	for i, v := range []float64{in.baseline, in.canary} {
		mid, key := c.Plot.X+slot*(float64(i)+0.5), c.Legend[i]
		c.XTicks = append(c.XTicks, axisTick{Pos: mid, Label: key.Label, Anchor: "middle"})
		if math.IsNaN(v) {
			c.Bars = append(c.Bars, chartBar{key.Class + " nodata", mid - width/2, zero, width, 0})
			c.Texts = append(c.Texts, chartText{"bar-value", "no data", "middle", mid, zero - 6})
			continue
		}
		top := math.Min(y(v), zero)
		c.Bars = append(c.Bars, chartBar{key.Class, mid - width/2, top, width, math.Max(math.Abs(zero-y(v)), 1)})
		c.Texts = append(c.Texts, chartText{"bar-value", analyzer.FormatValue(in.kind, v), "middle", mid, top - 6})
	}
	for _, g := range gs {
		v := g.at(in.baseline)
		c.Legend = append(c.Legend, legendKey{g.class, g.label})
		if math.IsNaN(v) {
			continue
		}
		c.hRule(g.class, y(v), g.label)
		if g.relative() {
			// A bound relative to the baseline is a bound on the canary: draw it across the
			// canary's bar, labelled beside it.
			r, t := &c.Rules[len(c.Rules)-1], &c.Texts[len(c.Texts)-1]
			r.X1, r.X2, t.X = c.Plot.X+slot*1.1, c.Plot.Right()-slot*0.1, c.Plot.X+slot*1.5-width/2-6
		}
	}
	c.Label = fmt.Sprintf("%s: one window, no per-interval history: baseline %s, canary %s", in.name,
		analyzer.FormatValue(in.kind, in.baseline), analyzer.FormatValue(in.kind, in.canary))
}

// hRule draws a horizontal guide across the plot, labelled at its right end.
func (c *chartView) hRule(class string, y float64, label string) {
	c.Rules = append(c.Rules, chartRule{class, c.Plot.X, y, c.Plot.Right(), y})
	c.Texts = append(c.Texts, chartText{"rule-label " + class, label, "end", c.Plot.Right(), y - 4})
}
