package report

import (
	"bytes"
	"html"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coalmine/coalmine/analyzer"
)

// wiggle makes the sample histories look like traffic without math.Sin, whose last bits may
// differ between architectures and move a golden file's coordinates.
var wiggle = []float64{0, .3, -.2, .5, .1, -.4, .2, 0, -.1, .4, -.3, .2, .1, -.2, .3, 0, -.1, .2, -.3, .1}

// withHistory returns a copy of r whose metrics have 20 intervals of history, 15s apart and
// ending at the report's time, around each metric's window values. The canary has no data at
// one interval, so its line must break there.
func withHistory(r Report) Report {
	r.Metrics = append([]analyzer.MetricResult(nil), r.Metrics...)
	for i := range r.Metrics {
		m := &r.Metrics[i]
		m.History = nil
		b, c := float64(m.Baseline), float64(m.Canary)
		for j, w := range wiggle {
			p := analyzer.Point{
				End:       r.Time.Add(time.Duration(j-len(wiggle)+1) * 15 * time.Second),
				Baseline:  analyzer.Number(b * (1 + 0.2*w)),
				Canary:    analyzer.Number(c * (1 - 0.3*w)),
				BaselineN: 20000, CanaryN: 2000,
			}
			if j == 7 {
				p.Canary, p.CanaryN = analyzer.Number(math.NaN()), 0
			}
			m.History = append(m.History, p)
		}
	}
	return r
}

func renderHTML(t *testing.T, r Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, "html", r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func renderGateHTML(t *testing.T, rep analyzer.Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteGateHTML(&buf, "my-app", rep); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestHTMLGolden(t *testing.T) {
	golden(t, "html", sampleReport(), filepath.Join("testdata", "report.html"))
	golden(t, "html", withHistory(sequentialReport()), filepath.Join("testdata", "report-sequential.html"))

	got := renderGateHTML(t, sampleGate())
	file := filepath.Join("testdata", "gate.html")
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update)", err)
	}
	if got != string(want) {
		t.Errorf("gate HTML differs from %s:\n%s", file, got)
	}
}

// htmlSamples are every page the tests render, by name.
func htmlSamples(t *testing.T) map[string]string {
	return map[string]string{
		"report":            renderHTML(t, sampleReport()),
		"report-sequential": renderHTML(t, withHistory(sequentialReport())),
		"gate":              renderGateHTML(t, sampleGate()),
	}
}

var linkAttr = regexp.MustCompile(`(?i)\b(src|href|xlink:href|action|srcset|poster|data)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)`)

func TestHTMLSelfContained(t *testing.T) {
	for name, page := range htmlSamples(t) {
		t.Run(name, func(t *testing.T) {
			lower := strings.ToLower(page)
			for _, bad := range []string{"http://", "https://", "<script", "<link", "<img", "<iframe", "<object", "<embed", "@import", "url(", "@font-face"} {
				if strings.Contains(lower, bad) {
					t.Errorf("page contains %q: it must not fetch anything", bad)
				}
			}
			for _, m := range linkAttr.FindAllStringSubmatch(page, -1) {
				if v := strings.Trim(m[2], `"'`); !strings.HasPrefix(v, "#") {
					t.Errorf("%s=%q points outside the page", m[1], v)
				}
			}
			if !strings.Contains(page, `<meta name="viewport" content="width=device-width, initial-scale=1">`) {
				t.Error("no viewport meta: the page would not fit a phone")
			}
			if !strings.Contains(page, "@media print") {
				t.Error("no print rules")
			}
		})
	}
}

var svgTag = regexp.MustCompile(`<svg\b[^>]*>`)

func TestHTMLChartPerMetric(t *testing.T) {
	seq := withHistory(sequentialReport())
	for _, tt := range []struct {
		name    string
		page    string
		metrics int
		// each lists what every chart of the page must draw, band what the first must.
		each []string
		band bool
	}{
		{"report without history", renderHTML(t, sampleReport()), 3, []string{`<rect class="bar baseline"`, "one window, no per-interval history"}, false},
		{"sequential with history", renderHTML(t, seq), 2, []string{`<path class="line baseline" fill="none" d="M`, `<path class="line canary" fill="none" d="M`}, true},
		{"gate", renderGateHTML(t, sampleGate()), 3, []string{`<circle class="dot canary"`, `<line class="rule marker"`}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tags := svgTag.FindAllString(tt.page, -1)
			if len(tags) != tt.metrics {
				t.Fatalf("%d <svg> elements, want one per metric (%d)", len(tags), tt.metrics)
			}
			for _, tag := range tags {
				for _, attr := range []string{`class="coalmine-chart"`, `role="img"`, `aria-label="`, `viewBox="0 0 `} {
					if !strings.Contains(tag, attr) {
						t.Errorf("%s lacks %s", tag, attr)
					}
				}
			}
			charts := strings.Split(tt.page, "<svg")[1:]
			for i, c := range charts {
				c = c[:strings.Index(c, "</svg>")]
				for _, want := range tt.each {
					if !strings.Contains(c, want) {
						t.Errorf("chart %d lacks %s", i, want)
					}
				}
			}
			if got := strings.Contains(charts[0][:strings.Index(charts[0], "</svg>")], `<polygon class="band"`); got != tt.band {
				t.Errorf("first chart has a confidence band: %v, want %v", got, tt.band)
			}
		})
	}
	// The canary has no data at one interval: its line lifts the pen there.
	page := renderHTML(t, seq)
	m := regexp.MustCompile(`<path class="line canary" fill="none" d="([^"]*)"`).FindStringSubmatch(page)
	if m == nil || strings.Count(m[1], "M") != 2 {
		t.Errorf("canary line should break once at the missing interval: %v", m)
	}
	if !strings.Contains(page, "canary/baseline always-valid interval [1.54, 2.83]") {
		t.Error("the band is not labelled as the always-valid interval")
	}
}

func TestGateHTMLUsesHistory(t *testing.T) {
	seq := withHistory(sequentialReport()).Result
	rep := analyzer.Report{Outcome: analyzer.OutcomeRolledBack, Reason: seq.Reason, Ticks: []analyzer.Tick{
		{Time: seq.Time, Step: 0, Steps: 2, Elapsed: 5 * time.Minute, Ready: true, Result: &seq, Action: "rollback", Reason: seq.Reason},
	}}
	page := renderGateHTML(t, rep)
	if got := strings.Count(page, "baseline and canary per interval, 20 points"); got != 2 {
		t.Errorf("%d charts drawn from the judge's history, want 2", got)
	}
	if !strings.Contains(page, `<polygon class="band"`) {
		t.Error("no always-valid band on the sequential errors metric")
	}
}

// visibleText is the page's text as a reader sees it: tags dropped, entities decoded.
func visibleText(page string) string {
	page = regexp.MustCompile(`(?s)<style>.*?</style>`).ReplaceAllString(page, "")
	return html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page, "\n"))
}

// markdownCells returns the cells of a Markdown document's table rows, header and separator
// rows left out.
func markdownCells(md string) [][]string {
	var out [][]string
	header := true
	for _, line := range strings.Split(md, "\n") {
		switch {
		case strings.HasPrefix(line, "|---"):
			header = false
			continue
		case !strings.HasPrefix(line, "| "):
			header = true
			continue
		case header:
			continue
		}
		line = strings.ReplaceAll(strings.Trim(line, "| "), `\|`, "\x00")
		var cells []string
		for _, c := range strings.Split(line, " | ") {
			cells = append(cells, strings.ReplaceAll(c, "\x00", "|"))
		}
		out = append(out, cells)
	}
	return out
}

// mdUnescaper undoes mdEscape: what a Markdown cell shows once rendered.
var mdUnescaper = strings.NewReplacer(`\|`, "|", "&amp;", "&", "&lt;", "<", "&gt;", ">", `\\`, `\`, `\[`, "[", `\]`, "]", "\\`", "`", `\!`, "!")

// cellTexts is what must appear in the HTML for a Markdown cell, as it renders: the two halves
// of a "baseline / canary" pair, a verdict without its sign, a name without "(advisory)".
func cellTexts(cell string) []string {
	cell = mdUnescaper.Replace(cell)
	switch {
	case strings.HasSuffix(cell, " (advisory)"):
		return []string{strings.TrimSuffix(cell, " (advisory)"), "advisory"}
	case regexp.MustCompile(`^[^ ]+ / [^ ]+$`).MatchString(cell):
		return strings.Split(cell, " / ")
	}
	for _, v := range []string{"pass", "fail", "inconclusive"} {
		if strings.HasSuffix(cell, " "+v) && len(cell) < len(v)+12 {
			return []string{v}
		}
	}
	return []string{cell}
}

func TestHTMLAgreesWithMarkdown(t *testing.T) {
	for _, tt := range []struct {
		name     string
		md, page string
		rows     int
	}{
		{"report", render(t, sampleReport(), "markdown"), renderHTML(t, sampleReport()), 3},
		{"sequential", render(t, sequentialReport(), "markdown"), renderHTML(t, withHistory(sequentialReport())), 2},
		{"gate", gateMarkdown(t), renderGateHTML(t, sampleGate()), 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			text := visibleText(tt.page)
			rows := markdownCells(tt.md)
			if len(rows) != tt.rows {
				t.Fatalf("parsed %d Markdown rows, want %d", len(rows), tt.rows)
			}
			for _, cells := range rows {
				for _, cell := range cells {
					for _, want := range cellTexts(cell) {
						if !strings.Contains(text, want) {
							t.Errorf("Markdown shows %q (cell %q); the HTML does not", want, cell)
						}
					}
				}
			}
		})
	}
}

func render(t *testing.T, r Report, format string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, format, r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func gateMarkdown(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteGateMarkdown(&buf, "my-app", sampleGate()); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestHTMLNaN(t *testing.T) {
	// sampleReport's latency metric has no canary data: NaN value, ratio, requests.
	nanHistory := withHistory(sampleReport())
	for i := range nanHistory.Metrics[1].History {
		nanHistory.Metrics[1].History[i].Canary = analyzer.Number(math.NaN())
	}
	for name, page := range map[string]string{
		"report":       renderHTML(t, sampleReport()),
		"history":      renderHTML(t, nanHistory),
		"sequential":   renderHTML(t, withHistory(sequentialReport())),
		"gate":         renderGateHTML(t, sampleGate()),
		"gate history": renderGateHTML(t, analyzer.Report{Ticks: []analyzer.Tick{{Time: nanHistory.Time, Steps: 1, Result: &nanHistory.Result}}}),
	} {
		t.Run(name, func(t *testing.T) {
			if loc := regexp.MustCompile(`(?i)\bnan\b|\binf(inity)?\b`).FindStringIndex(page); loc != nil {
				t.Errorf("page shows %q: want - for no data", page[max(0, loc[0]-80):loc[1]])
			}
		})
	}
	page := renderHTML(t, sampleReport())
	if !strings.Contains(page, `<tr><th>latency</th><td class="num">0.48s</td><td class="num">-</td></tr>`) {
		t.Error(`the latency canary without data should read "-"`)
	}
	if !strings.Contains(page, `<rect class="bar canary nodata"`) || !regexp.MustCompile(`<text class="bar-value"[^>]*>no data</text>`).MatchString(page) {
		t.Error(`the latency chart should say the canary has no data`)
	}
}
