package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/policies"
)

// htmlPage is one self-contained HTML page: an evaluation (report) or a gate's run.
type htmlPage struct {
	Title, Kicker, Heading string
	DryRun                 bool
	Facts                  []fact
	Outcome                outcomeView
	// Summary is a row per metric; SummaryTitle heads it when the page needs to say whence.
	SummaryTitle string
	Summary      []summaryRow
	Timeline     []timelineRow
	Metrics      []metricView
	Footer       string
}

type fact struct{ Label, Value string }

type outcomeView struct {
	Word, Class, Reason string
	// Decision is what was or would be done; Notes are lines under it (dry run, cluster).
	Decision, Effect string
	Notes            []string
}

type summaryRow struct {
	ID, Name, Verdict, Class, Baseline, Canary, Ratio, Interval, P string
}

type timelineRow struct {
	Time, Step, Elapsed, Action, Verdict, Class, Reason string
}

type metricView struct {
	ID, Name               string
	Advisory               bool
	Verdict, Class, Reason string
	ValueLabel             string
	Numbers                []numberRow
	Judge                  []fact
	Steps                  []stepRow
	Chart                  chartView
	Warnings               []string
	Query                  string
}

// numberRow is a quantity for each version.
type numberRow struct{ Label, Baseline, Canary string }

type stepRow struct {
	Step, Elapsed, Baseline, Canary, Verdict, Class, Reason string
}

func writeHTML(w io.Writer, r Report) error {
	res := r.Result
	page := htmlPage{
		Title:   fmt.Sprintf("coalmine: %s %s", strings.ToUpper(string(res.Verdict)), res.Policy),
		Kicker:  "coalmine report",
		Heading: res.Policy,
		DryRun:  r.DryRun,
		Facts:   releaseFacts(res),
		Footer:  "Rendered by coalmine, report schema " + r.Schema + ".",
	}
	page.Facts = append(page.Facts, fact{"window", fmt.Sprintf("%s ending %s", res.Window, res.Time.UTC().Format(time.RFC3339))})
	if r.File != "" {
		page.Facts = append(page.Facts, fact{"policy file", r.File})
	}
	verb := "Action"
	if r.DryRun {
		verb = "Would"
	}
	page.Outcome = outcomeView{
		Word: strings.ToUpper(string(res.Verdict)), Class: verdictClass(res.Verdict), Reason: res.Reason,
		Decision: fmt.Sprintf("%s %s", verb, r.Decision.Action), Effect: r.Decision.Effect,
	}
	if r.DryRun {
		page.Outcome.Notes = append(page.Outcome.Notes, "Dry run: nothing was changed.")
	}
	if r.Cluster != nil {
		page.Outcome.Notes = append(page.Outcome.Notes, "Cluster: "+r.Cluster.Line())
	}
	xs := rows(r)
	for i, m := range res.Metrics {
		mv := newMetricView(i, m, xs[i])
		mv.Chart = newChart(chartInput{
			name: m.Name, kind: m.Kind, thresholds: m.Thresholds, stats: m.Stats, points: m.History, per: "interval",
			baseline: float64(m.Baseline), canary: float64(m.Canary), baselineVersion: res.Baseline, canaryVersion: res.Canary,
		})
		page.Metrics = append(page.Metrics, mv)
		page.Summary = append(page.Summary, summaryRow{mv.ID, m.Name, xs[i].verdict, mv.Class, xs[i].baseline, xs[i].canary, xs[i].ratio, xs[i].interval, xs[i].p})
	}
	return executePage(w, page)
}

// WriteGateHTML writes the gate's run as one self-contained HTML page: its outcome, every tick,
// and per metric a chart over the whole run with the last tick's numbers.
func WriteGateHTML(w io.Writer, policy string, r analyzer.Report) error {
	outcome := map[analyzer.Outcome]string{
		analyzer.OutcomePromoted: "promoted", analyzer.OutcomeRolledBack: "rolled back",
		analyzer.OutcomeInconclusive: "inconclusive", analyzer.OutcomeUnavailable: "metrics unavailable",
		analyzer.OutcomeStopped: "stopped",
	}[r.Outcome]
	if outcome == "" {
		outcome = string(r.Outcome)
	}
	page := htmlPage{
		Title:        fmt.Sprintf("coalmine gate: %s %s", outcome, policy),
		Kicker:       "coalmine gate",
		Heading:      policy,
		Outcome:      outcomeView{Word: strings.ToUpper(outcome), Class: outcomeClass(r.Outcome), Reason: r.Reason},
		Footer:       fmt.Sprintf("Rendered by coalmine from the gate's %d ticks.", len(r.Ticks)),
		SummaryTitle: "Metrics at the last tick that judged them",
	}
	var lastRes *analyzer.Result
	for _, t := range r.Ticks {
		if t.Result != nil {
			lastRes = t.Result
		}
	}
	if lastRes != nil {
		page.Facts = releaseFacts(*lastRes)
	}
	if n := len(r.Ticks); n > 0 {
		start := r.Ticks[0].Time.Add(-r.Ticks[0].Elapsed)
		if r.Progress != nil && !r.Progress.Started.IsZero() {
			start = r.Progress.Started
		}
		page.Facts = append(page.Facts,
			fact{"started", start.UTC().Format(time.RFC3339)},
			fact{"last tick", fmt.Sprintf("%s (+%s, step %d/%d)", r.Ticks[n-1].Time.UTC().Format(time.RFC3339), shortDuration(r.Ticks[n-1].Elapsed), r.Ticks[n-1].Step+1, r.Ticks[n-1].Steps)},
			fact{"ticks", fmt.Sprint(n)})
	}
	var markers []chartMarker
	for _, t := range r.Ticks {
		row := timelineRow{Time: t.Time.UTC().Format(axisTimeLayout), Step: fmt.Sprintf("%d/%d", t.Step+1, t.Steps),
			Elapsed: shortDuration(t.Elapsed), Action: t.Action, Verdict: "-", Reason: t.Reason}
		switch {
		case t.Result != nil:
			row.Verdict, row.Class = string(t.Result.Verdict), verdictClass(t.Result.Verdict)
		case t.Err != nil:
			row.Verdict, row.Class = "metrics unavailable", "inconclusive"
		case !t.Ready:
			row.Verdict = "not Ready"
		}
		page.Timeline = append(page.Timeline, row)
		switch t.Action {
		case "advance":
			markers = append(markers, chartMarker{t.Time, fmt.Sprintf("step %d", t.Step+2)})
		case "promote", "rollback", "stop":
			markers = append(markers, chartMarker{t.Time, t.Action})
		}
	}
	for i, name := range gateMetrics(r) {
		var lastTick analyzer.Tick
		var m analyzer.MetricResult
		var pts []analyzer.Point
		var steps []stepRow
		for _, t := range r.Ticks {
			mr, ok := metricOf(t.Result, name)
			if !ok {
				// Break the line where the tick did not judge the metric.
				pts = append(pts, analyzer.Point{End: t.Time, Baseline: analyzer.Number(math.NaN()), Canary: analyzer.Number(math.NaN()),
					BaselineN: math.NaN(), CanaryN: math.NaN()})
				continue
			}
			lastTick, m = t, mr
			pts = append(pts, analyzer.Point{End: t.Time, Baseline: mr.Baseline, Canary: mr.Canary,
				BaselineN: float64(mr.BaselineRequests), CanaryN: float64(mr.CanaryRequests)})
		}
		for _, t := range stepResults(r) {
			if mr, ok := metricOf(t.Result, name); ok {
				steps = append(steps, stepRow{fmt.Sprintf("%d/%d", t.Step+1, t.Steps), shortDuration(t.Elapsed),
					analyzer.FormatValue(mr.Kind, float64(mr.Baseline)), analyzer.FormatValue(mr.Kind, float64(mr.Canary)),
					string(mr.Verdict), verdictClass(mr.Verdict), mr.Reason})
			}
		}
		per := "tick"
		if m.Stats != nil && len(m.History) > 0 {
			// The judge's own per-interval history covers the run more finely than the ticks.
			pts, per = m.History, "interval"
		}
		x := rows(Report{Result: analyzer.Result{Metrics: []analyzer.MetricResult{m}}})[0]
		mv := newMetricView(i, m, x)
		mv.Steps = steps
		mv.Chart = newChart(chartInput{
			name: m.Name, kind: m.Kind, thresholds: m.Thresholds, stats: m.Stats, points: pts, per: per, markers: markers,
			baseline: float64(m.Baseline), canary: float64(m.Canary), baselineVersion: lastTick.Result.Baseline, canaryVersion: lastTick.Result.Canary,
		})
		page.Metrics = append(page.Metrics, mv)
		page.Summary = append(page.Summary, summaryRow{mv.ID, m.Name, x.verdict, mv.Class, x.baseline, x.canary, x.ratio, x.interval, x.p})
	}
	return executePage(w, page)
}

// gateMetrics names the metrics any tick judged, in the order they first appear.
func gateMetrics(r analyzer.Report) []string {
	var names []string
	seen := map[string]bool{}
	for _, t := range r.Ticks {
		if t.Result == nil {
			continue
		}
		for _, m := range t.Result.Metrics {
			if !seen[m.Name] {
				seen[m.Name] = true
				names = append(names, m.Name)
			}
		}
	}
	return names
}

func metricOf(res *analyzer.Result, name string) (analyzer.MetricResult, bool) {
	if res == nil {
		return analyzer.MetricResult{}, false
	}
	for _, m := range res.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return analyzer.MetricResult{}, false
}

func releaseFacts(res analyzer.Result) []fact {
	return []fact{
		{"app", res.Namespace + "/" + res.App},
		{"baseline", res.Baseline},
		{"canary", res.Canary},
	}
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// newMetricView lays out one metric's section from its result and its table row, so the HTML
// words every number as the text and Markdown tables do.
func newMetricView(i int, m analyzer.MetricResult, x row) metricView {
	mv := metricView{
		ID:   fmt.Sprintf("metric-%d-%s", i+1, strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(m.Name), "-"), "-")),
		Name: m.Name, Advisory: !m.Critical, Verdict: x.verdict, Class: verdictClass(m.Verdict), Reason: m.Reason,
		Warnings: m.Warnings, Query: m.Query,
	}
	mv.ValueLabel = map[policies.MetricKind]string{policies.KindErrors: "error rate", policies.KindLatency: "latency"}[m.Kind]
	if mv.ValueLabel == "" {
		mv.ValueLabel = "value"
	}
	mv.Numbers = []numberRow{{mv.ValueLabel, x.baseline, x.canary}}
	if m.Kind != policies.KindValue {
		mv.Numbers = append(mv.Numbers, numberRow{"requests", count(float64(m.BaselineRequests)), count(float64(m.CanaryRequests))})
	}
	if m.Kind == policies.KindErrors {
		mv.Numbers = append(mv.Numbers, numberRow{"errors", count(float64(m.BaselineErrors)), count(float64(m.CanaryErrors))})
	}
	mv.Judge = []fact{
		{"ratio (canary / baseline)", ratio(float64(m.Ratio))},
		{"difference (canary - baseline)", analyzer.FormatValue(m.Kind, float64(m.Difference))},
	}
	if st := m.Stats; st != nil {
		mv.Judge = append(mv.Judge, fact{"judge", string(st.Judge)}, fact{"estimate", ratio(float64(st.Estimate))})
		switch st.Judge {
		case policies.JudgeSequential:
			mv.Judge = append(mv.Judge, fact{fmt.Sprintf("always-valid interval (%s%%)", number(100*(1-float64(st.Alpha)))), x.interval})
		case policies.JudgeMannWhitney:
			mv.Judge = append(mv.Judge, fact{"shift interval (98%)", fmt.Sprintf("[%s, %s]",
				analyzer.FormatValue(m.Kind, float64(st.Low)), analyzer.FormatValue(m.Kind, float64(st.High)))})
		}
		mv.Judge = append(mv.Judge,
			fact{"p-value (canary no worse)", x.p},
			fact{"promote p (worse by the tolerance)", pValue(float64(st.PromoteP))},
			fact{"alpha", number(float64(st.Alpha))},
			fact{"tolerance", number(float64(st.Tolerance))})
		if m.Kind == policies.KindLatency {
			mv.Judge = append(mv.Judge, fact{"edge", analyzer.FormatValue(m.Kind, float64(st.Edge))})
		}
		mv.Judge = append(mv.Judge, fact{"intervals", fmt.Sprint(st.Intervals)})
	} else {
		mv.Judge = append(mv.Judge, fact{"judge", string(policies.JudgeThreshold)})
	}
	if x.threshold != "" {
		mv.Judge = append(mv.Judge, fact{"criterion", x.threshold})
	}
	if t := Thresholds(m.Kind, m.Thresholds); t != "" && t != x.threshold {
		mv.Judge = append(mv.Judge, fact{"thresholds", t})
	}
	return mv
}

// number prints a judge's parameter, "-" when unset.
func number(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%g", x)
}

func verdictClass(v analyzer.Verdict) string {
	switch v {
	case analyzer.Pass, analyzer.Fail:
		return string(v)
	}
	return "inconclusive"
}

func outcomeClass(o analyzer.Outcome) string {
	switch o {
	case analyzer.OutcomePromoted:
		return "pass"
	case analyzer.OutcomeRolledBack, analyzer.OutcomeStopped:
		return "fail"
	}
	return "inconclusive"
}

func executePage(w io.Writer, page htmlPage) error {
	t, err := template.New("page").Funcs(template.FuncMap{
		"px":  px,
		"add": func(a, b float64) float64 { return a + b },
		"sub": func(a, b float64) float64 { return a - b },
	}).Parse(pageTemplate + chartTemplate)
	if err != nil {
		return fmt.Errorf("html template: %w", err)
	}
	return t.Execute(w, page)
}

// pageStyle keeps the page self-contained: no fonts, images or scripts to fetch. It reads on a
// phone (tables scroll sideways, charts scale) and prints without dark backgrounds.
const pageStyle = `
:root{--bg:#fff;--fg:#1f2328;--muted:#59636e;--rule:#d1d9e0;--card:#f6f8fa;--grid:#e6e9ed;
--pass:#1a7f37;--pass-bg:#dafbe1;--fail:#cf222e;--fail-bg:#ffebe9;--inc:#9a6700;--inc-bg:#fff8c5;
--baseline:#0969da;--canary:#e16f24;--threshold:#cf222e;--edge:#8250df}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--rule:#3d444d;--card:#151b23;--grid:#262c36;
--pass:#3fb950;--pass-bg:#12261e;--fail:#f85149;--fail-bg:#25171c;--inc:#d29922;--inc-bg:#272115;
--baseline:#4493f8;--canary:#f0883e;--threshold:#f85149;--edge:#ab7df8}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1000px;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.2rem 0 .6rem;overflow-wrap:anywhere}
h2{font-size:1.3rem;margin:0 0 .4rem;overflow-wrap:anywhere}
h3{font-size:1rem;margin:1rem 0 .3rem}
a{color:inherit}
.kicker{margin:0;color:var(--muted);font-size:.9rem;text-transform:uppercase;letter-spacing:.06em}
.facts{display:flex;flex-wrap:wrap;gap:.2rem 1.4rem;margin:0 0 1rem;padding:0}
.facts div{display:flex;gap:.4rem}.facts dt{color:var(--muted)}.facts dd{margin:0;overflow-wrap:anywhere}
.badge{display:inline-block;padding:0 .5em;border:1px solid currentColor;border-radius:1em;font-size:.85rem;font-weight:600;vertical-align:middle;white-space:nowrap}
.pass{color:var(--pass)}.fail{color:var(--fail)}.inconclusive{color:var(--inc)}
.badge.pass{background:var(--pass-bg)}.badge.fail{background:var(--fail-bg)}.badge.inconclusive{background:var(--inc-bg)}
.badge.dry{color:var(--fg);background:var(--inc-bg);border-color:var(--inc)}
.badge.advisory{color:var(--muted);font-weight:400}
.outcome{border:2px solid currentColor;border-radius:.6rem;padding:.8rem 1rem;margin:0 0 1.5rem}
.outcome .big{font-size:clamp(2.2rem,9vw,3.6rem);font-weight:800;line-height:1.1;margin:0;letter-spacing:.02em}
.outcome p{color:var(--fg);margin:.4rem 0;overflow-wrap:anywhere}.outcome .big{color:inherit}
.outcome .reason{font-size:1.1rem}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:0 0 1rem}
table{border-collapse:collapse;font-size:.95rem;min-width:100%}
th,td{border-bottom:1px solid var(--rule);padding:.3rem .6rem;text-align:left;vertical-align:top}
thead th{color:var(--muted);font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.reason{min-width:18rem}td.name{white-space:nowrap}
section.metric{border-top:1px solid var(--rule);padding-top:1.2rem;margin-top:1.5rem}
.metric .reason{overflow-wrap:anywhere}
.numbers{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:0 1.5rem}
figure.chart{margin:.5rem 0 1rem}
.coalmine-chart{display:block;width:100%;height:auto;max-height:70vh}
.coalmine-chart text{font-size:13px;fill:var(--muted)}
.coalmine-chart .grid line{stroke:var(--grid);stroke-width:1}
.coalmine-chart .axis line{stroke:var(--muted);stroke-width:1}
.coalmine-chart .line{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
.coalmine-chart .line.baseline{stroke:var(--baseline)}.coalmine-chart .line.canary{stroke:var(--canary);stroke-width:2.5}
.coalmine-chart .line.ratio{stroke:var(--threshold);stroke-width:1.5;stroke-dasharray:6 4}
.coalmine-chart .line.tolerance{stroke:var(--muted);stroke-width:1.5;stroke-dasharray:6 4}
.coalmine-chart .dot.baseline,.coalmine-chart .bar.baseline{fill:var(--baseline)}
.coalmine-chart .dot.canary,.coalmine-chart .bar.canary{fill:var(--canary)}
.coalmine-chart .bar.nodata{fill:none}
.coalmine-chart .band{fill:var(--canary);fill-opacity:.18;stroke:none}
.coalmine-chart .rule{stroke-width:1.5}
.coalmine-chart .rule.threshold,.coalmine-chart .rule.ratio{stroke:var(--threshold);stroke-dasharray:6 4}
.coalmine-chart .rule.edge{stroke:var(--edge);stroke-dasharray:2 3}
.coalmine-chart .rule.marker{stroke:var(--muted);stroke-dasharray:1 3}
.coalmine-chart .rule-label.threshold,.coalmine-chart .rule-label.ratio{fill:var(--threshold)}
.coalmine-chart .rule-label.edge{fill:var(--edge)}
.coalmine-chart .bar-value{fill:var(--fg);font-weight:600}
.coalmine-chart .note{font-style:italic}
.coalmine-chart .rule-label,.coalmine-chart .bar-value{paint-order:stroke;stroke:var(--bg);stroke-width:4px;stroke-linejoin:round}
.legend{display:flex;flex-wrap:wrap;gap:.2rem 1.2rem;font-size:.9rem;color:var(--muted)}
.key{overflow-wrap:anywhere}
.swatch{display:inline-block;width:1.6em;height:0;border-top:3px solid;vertical-align:middle;margin-right:.4em}
.swatch.baseline{border-color:var(--baseline)}.swatch.canary{border-color:var(--canary)}
.swatch.threshold,.swatch.ratio{border-top:2px dashed var(--threshold)}
.swatch.tolerance{border-top:2px dashed var(--muted)}.swatch.edge{border-top:2px dotted var(--edge)}
.swatch.band{height:.8em;border:0;background:var(--canary);opacity:.3}
.swatch,.badge,.coalmine-chart{-webkit-print-color-adjust:exact;print-color-adjust:exact}
pre{background:var(--card);border:1px solid var(--rule);border-radius:.4rem;padding:.6rem;overflow-x:auto;font-size:.85rem}
.warnings{color:var(--inc)}
footer{color:var(--muted);font-size:.85rem;margin-top:2rem;border-top:1px solid var(--rule);padding-top:.5rem}
@media (max-width:600px){main{padding:.6rem}body{font-size:15px}.numbers{grid-template-columns:1fr}td.reason{min-width:14rem}
.coalmine-chart text{font-size:20px}}
@media print{
:root{--bg:#fff;--fg:#000;--muted:#444;--rule:#bbb;--card:#fff;--grid:#ddd;--pass-bg:#fff;--fail-bg:#fff;--inc-bg:#fff}
body{background:#fff;color:#000;font-size:11pt}main{max-width:none;padding:0}
.scroll,pre{overflow:visible}pre{white-space:pre-wrap;overflow-wrap:anywhere}
td.reason{min-width:0}
figure.chart,table,pre,.outcome{break-inside:avoid;page-break-inside:avoid}
h2,h3{break-after:avoid;page-break-after:avoid}
.coalmine-chart{max-height:none}
nav a{text-decoration:none}}
`

// pageTemplate is the page around the charts, for a report and for a gate's run.
const pageTemplate = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{{.Title}}</title>
<style>` + pageStyle + `</style>
</head>
<body>
<main>
<header>
<p class="kicker">{{.Kicker}}{{if .DryRun}} <span class="badge dry">DRY RUN</span>{{end}}</p>
<h1>{{.Heading}}</h1>
<dl class="facts">{{range .Facts}}<div><dt>{{.Label}}</dt><dd>{{.Value}}</dd></div>{{end}}</dl>
</header>
{{with .Outcome}}<section class="outcome {{.Class}}" aria-label="outcome">
<p class="big">{{.Word}}</p>
<p class="reason">{{.Reason}}</p>
{{if .Decision}}<p class="decision"><strong>{{.Decision}}</strong>: {{.Effect}}</p>
{{end}}{{range .Notes}}<p class="note">{{.}}</p>
{{end}}</section>{{end}}
{{if .Summary}}<nav aria-label="metrics">
{{with .SummaryTitle}}<h2>{{.}}</h2>
{{end}}<div class="scroll"><table>
<thead><tr><th>metric</th><th>verdict</th><th class="num">baseline</th><th class="num">canary</th><th class="num">ratio</th><th class="num">interval</th><th class="num">p</th></tr></thead>
<tbody>{{range .Summary}}
<tr><td class="name"><a href="#{{.ID}}">{{.Name}}</a></td><td><span class="badge {{.Class}}">{{.Verdict}}</span></td><td class="num">{{.Baseline}}</td><td class="num">{{.Canary}}</td><td class="num">{{.Ratio}}</td><td class="num">{{.Interval}}</td><td class="num">{{.P}}</td></tr>{{end}}
</tbody></table></div>
</nav>{{end}}
{{if .Timeline}}<section class="timeline">
<h2>Timeline</h2>
<div class="scroll"><table>
<thead><tr><th>time (UTC)</th><th>step</th><th class="num">elapsed</th><th>action</th><th>verdict</th><th>reason</th></tr></thead>
<tbody>{{range .Timeline}}
<tr><td class="num">{{.Time}}</td><td>{{.Step}}</td><td class="num">{{.Elapsed}}</td><td>{{.Action}}</td><td>{{if .Class}}<span class="badge {{.Class}}">{{.Verdict}}</span>{{else}}{{.Verdict}}{{end}}</td><td class="reason">{{.Reason}}</td></tr>{{end}}
</tbody></table></div>
</section>{{end}}
{{range .Metrics}}<section class="metric" id="{{.ID}}">
<h2>{{.Name}} <span class="badge {{.Class}}">{{.Verdict}}</span>{{if .Advisory}} <span class="badge advisory">advisory</span>{{end}}</h2>
<p class="reason">{{.Reason}}</p>
{{template "chart" .Chart}}
<div class="numbers">
<div class="scroll"><table>
<thead><tr><th></th><th class="num">baseline</th><th class="num">canary</th></tr></thead>
<tbody>{{range .Numbers}}
<tr><th>{{.Label}}</th><td class="num">{{.Baseline}}</td><td class="num">{{.Canary}}</td></tr>{{end}}
</tbody></table></div>
<div class="scroll"><table>
<tbody>{{range .Judge}}
<tr><th>{{.Label}}</th><td class="num">{{.Value}}</td></tr>{{end}}
</tbody></table></div>
</div>
{{if .Steps}}<h3>By step</h3>
<div class="scroll"><table>
<thead><tr><th>step</th><th class="num">elapsed</th><th class="num">baseline</th><th class="num">canary</th><th>verdict</th><th>reason</th></tr></thead>
<tbody>{{range .Steps}}
<tr><td>{{.Step}}</td><td class="num">{{.Elapsed}}</td><td class="num">{{.Baseline}}</td><td class="num">{{.Canary}}</td><td><span class="badge {{.Class}}">{{.Verdict}}</span></td><td class="reason">{{.Reason}}</td></tr>{{end}}
</tbody></table></div>
{{end}}{{if .Warnings}}<ul class="warnings">{{range .Warnings}}<li>{{.}}</li>{{end}}</ul>
{{end}}<h3>Query</h3>
<pre><code>{{.Query}}</code></pre>
</section>
{{end}}<footer>{{.Footer}}</footer>
</main>
</body>
</html>
`
