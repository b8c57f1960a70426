package report

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/policies"
)

// yAxis fits a scale with round ticks to values (NaN and infinities ignored), sets the chart's
// value ticks and returns the projection, which clamps to the plot.
func (c *chartView) yAxis(kind policies.MetricKind, values []float64) func(float64) float64 {
	lo, hi := 0.0, math.Inf(-1)
	for _, v := range values {
		if !finite(v) {
			continue
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if math.IsInf(hi, -1) || hi <= lo {
		hi = lo + 1
		if kind == policies.KindErrors {
			hi = lo + 0.01
		}
	}
	step := niceStep((hi - lo) / 4)
	lo, hi = math.Floor(lo/step)*step, math.Ceil(hi/step)*step
	n := int(math.Round((hi - lo) / step))
	ticks := make([]float64, n+1)
	for i := range ticks {
		ticks[i] = lo + float64(i)*step
	}
	y := func(v float64) float64 {
		switch {
		case math.IsNaN(v), v <= lo:
			return c.Plot.Bottom()
		case v >= hi:
			return c.Plot.Y
		}
		return c.Plot.Bottom() - c.Plot.H*(v-lo)/(hi-lo)
	}
	for i, l := range tickLabels(kind, ticks) {
		c.YTicks = append(c.YTicks, axisTick{Pos: y(ticks[i]), Label: l})
	}
	return y
}

// tickLabels formats axis values as the report does, with more digits when that would make two
// ticks read the same (tiny error rates).
func tickLabels(kind policies.MetricKind, ticks []float64) []string {
	labels := make([]string, len(ticks))
	for i, v := range ticks {
		labels[i] = analyzer.FormatValue(kind, v)
	}
	for i := 1; i < len(labels); i++ {
		if labels[i] != labels[i-1] {
			continue
		}
		for j, v := range ticks {
			switch kind {
			case policies.KindErrors:
				labels[j] = fmt.Sprintf("%.4g%%", 100*v)
			case policies.KindLatency:
				labels[j] = fmt.Sprintf("%.4gs", v)
			default:
				labels[j] = fmt.Sprintf("%.6g", v)
			}
		}
		break
	}
	return labels
}

// niceStep rounds a raw tick step up to 1, 2, 2.5 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5} {
		if raw <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// timeTicks picks at most about five round times between t0 and t1.
func timeTicks(t0, t1 time.Time) []time.Time {
	var step time.Duration
	for _, s := range []int{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400} {
		if step = time.Duration(s) * time.Second; t1.Sub(t0)/step <= 5 {
			break
		}
	}
	var ts []time.Time
	t := t0.Truncate(step)
	if t.Before(t0) {
		t = t.Add(step)
	}
	for ; !t.After(t1); t = t.Add(step) {
		ts = append(ts, t)
	}
	return ts
}

// segments are the [start, end) index ranges of vs without NaN.
func segments(vs []float64) [][2]int {
	var segs [][2]int
	start := -1
	for i, v := range vs {
		switch {
		case math.IsNaN(v) && start >= 0:
			segs = append(segs, [2]int{start, i})
			start = -1
		case !math.IsNaN(v) && start < 0:
			start = i
		}
	}
	if start >= 0 {
		segs = append(segs, [2]int{start, len(vs)})
	}
	return segs
}

// linePath is an SVG path through the points' values, lifting the pen over NaN. A point alone
// between gaps draws nothing, or, with tick > 0, a horizontal dash that wide each side.
func linePath(pts []analyzer.Point, vs []float64, x func(time.Time) float64, y func(float64) float64, tick float64) string {
	var b strings.Builder
	for _, seg := range segments(vs) {
		if i := seg[0]; seg[1]-i == 1 && tick > 0 {
			b.WriteString("M" + coord(x(pts[i].End)-tick, y(vs[i])) + "H" + px(x(pts[i].End)+tick))
			continue
		}
		for i := seg[0]; i < seg[1]; i++ {
			cmd := "L"
			if i == seg[0] {
				cmd = "M"
			}
			b.WriteString(cmd + coord(x(pts[i].End), y(vs[i])))
		}
	}
	return b.String()
}

func coord(x, y float64) string { return px(x) + "," + px(y) }

// px prints a coordinate: a tenth of a viewBox unit is finer than any screen shows.
func px(v float64) string { return fmt.Sprintf("%.1f", v) }

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// last is the last value that is not NaN, or NaN.
func last(vs []float64) float64 {
	for i := len(vs) - 1; i >= 0; i-- {
		if !math.IsNaN(vs[i]) {
			return vs[i]
		}
	}
	return math.NaN()
}

// chartTemplate draws a chartView. Colours come from the page's stylesheet, so dark mode and
// print restyle the charts too.
const chartTemplate = `{{define "chart"}}<figure class="chart">
<svg class="coalmine-chart" role="img" aria-label="{{.Label}}" viewBox="0 0 {{.W}} {{.H}}" preserveAspectRatio="xMidYMid meet">
<g class="grid">{{range .YTicks}}<line x1="{{px $.Plot.X}}" y1="{{px .Pos}}" x2="{{px $.Plot.Right}}" y2="{{px .Pos}}"/>{{end}}</g>
<g class="axis">{{range .YTicks}}<text x="{{px (sub $.Plot.X 8)}}" y="{{px (add .Pos 4)}}" text-anchor="end">{{.Label}}</text>{{end}}
{{range .XTicks}}<line x1="{{px .Pos}}" y1="{{px $.Plot.Bottom}}" x2="{{px .Pos}}" y2="{{px (add $.Plot.Bottom 5)}}"/><text x="{{px .Pos}}" y="{{px (add $.Plot.Bottom 22)}}" text-anchor="{{.Anchor}}">{{.Label}}</text>{{end}}
<line class="frame" x1="{{px $.Plot.X}}" y1="{{px $.Plot.Bottom}}" x2="{{px $.Plot.Right}}" y2="{{px $.Plot.Bottom}}"/></g>
{{range .Bands}}<polygon class="band" points="{{.}}"/>
{{end}}{{range .Bars}}<rect class="bar {{.Class}}" x="{{px .X}}" y="{{px .Y}}" width="{{px .W}}" height="{{px .H}}"/>
{{end}}{{range .Rules}}<line class="rule {{.Class}}" x1="{{px .X1}}" y1="{{px .Y1}}" x2="{{px .X2}}" y2="{{px .Y2}}"/>
{{end}}{{range .Lines}}<path class="line {{.Class}}" fill="none" d="{{.D}}"/>
{{end}}{{range .Dots}}<circle class="dot {{.Class}}" cx="{{px .X}}" cy="{{px .Y}}" r="{{px .R}}"><title>{{.Title}}</title></circle>{{end}}
{{range .Texts}}<text class="{{.Class}}" x="{{px .X}}" y="{{px .Y}}" text-anchor="{{.Anchor}}">{{.Label}}</text>{{end}}
{{with .Note}}<text class="note" x="{{px $.Plot.X}}" y="{{px (sub $.Plot.Y 8)}}">{{.}}</text>{{end}}
</svg>
<figcaption class="legend">{{range .Legend}}<span class="key"><span class="swatch {{.Class}}"></span>{{.Label}}</span> {{end}}{{with .Note}}<span class="key note">{{.}}</span>{{end}}</figcaption>
</figure>{{end}}`
