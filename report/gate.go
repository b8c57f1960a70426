package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/coalmine/coalmine/analyzer"
)

// ProgressLine is one line per gate tick: step, elapsed, each metric's baseline vs canary and
// verdict, and what the tick did.
func ProgressLine(t analyzer.Tick) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s step %d/%d +%s", t.Time.UTC().Format("15:04:05"), t.Step+1, t.Steps, shortDuration(t.Elapsed))
	switch {
	case t.Result != nil:
		for _, m := range t.Result.Metrics {
			fmt.Fprintf(&b, " | %s %s vs %s %s", m.Name, analyzer.FormatValue(m.Kind, float64(m.Canary)), analyzer.FormatValue(m.Kind, float64(m.Baseline)), m.Verdict)
		}
		fmt.Fprintf(&b, " => %s", t.Result.Verdict)
	case t.Err != nil:
		b.WriteString(" | metrics unavailable")
	case !t.Ready:
		b.WriteString(" | canary pods not Ready")
	}
	fmt.Fprintf(&b, ": %s (%s)", t.Action, t.Reason)
	return b.String()
}

func shortDuration(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

// stepResults keeps, per step, the last tick that judged.
func stepResults(r analyzer.Report) []analyzer.Tick {
	last := map[int]analyzer.Tick{}
	for _, t := range r.Ticks {
		if t.Result != nil {
			last[t.Step] = t
		}
	}
	steps := make([]int, 0, len(last))
	for s := range last {
		steps = append(steps, s)
	}
	sort.Ints(steps)
	out := make([]analyzer.Tick, 0, len(steps))
	for _, s := range steps {
		out = append(out, last[s])
	}
	return out
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the gate's report as JUnit XML: a test case per metric per step (its last
// verdict there), plus one for the canary's health when it failed without a metric failing.
func WriteJUnit(w io.Writer, policy string, r analyzer.Report) error {
	suite := junitSuite{Name: "coalmine gate " + policy}
	if n := len(r.Ticks); n > 0 {
		suite.Time = fmt.Sprintf("%.3f", r.Ticks[n-1].Elapsed.Seconds())
	}
	class := "coalmine." + policy
	metricFailed := false
	for _, t := range stepResults(r) {
		for _, m := range t.Result.Metrics {
			c := junitCase{
				Name:      fmt.Sprintf("step %d/%d: %s", t.Step+1, t.Steps, m.Name),
				ClassName: class,
				SystemOut: fmt.Sprintf("baseline %s, canary %s\n%s", analyzer.FormatValue(m.Kind, float64(m.Baseline)), analyzer.FormatValue(m.Kind, float64(m.Canary)), m.Query),
			}
			switch m.Verdict {
			case analyzer.Fail:
				c.Failure = &junitMessage{Message: m.Reason, Text: m.Reason}
				suite.Failures++
				metricFailed = true
			case analyzer.Inconclusive:
				c.Skipped = &junitMessage{Message: m.Reason}
				suite.Skipped++
			}
			suite.Cases = append(suite.Cases, c)
		}
	}
	if r.Outcome != analyzer.OutcomePromoted && !metricFailed {
		c := junitCase{Name: "canary outcome", ClassName: class}
		if r.Outcome == analyzer.OutcomeRolledBack || r.Outcome == analyzer.OutcomeStopped {
			c.Failure = &junitMessage{Message: string(r.Outcome) + ": " + r.Reason, Text: r.Reason}
			suite.Failures++
		} else {
			c.Skipped = &junitMessage{Message: string(r.Outcome) + ": " + r.Reason}
			suite.Skipped++
		}
		suite.Cases = append(suite.Cases, c)
	}
	suite.Tests = len(suite.Cases)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitSuite{suite}}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// WriteGateMarkdown writes the gate's summary for a CI step summary or a pull-request comment.
func WriteGateMarkdown(w io.Writer, policy string, r analyzer.Report) error {
	var b strings.Builder
	mark := map[analyzer.Outcome]string{
		analyzer.OutcomePromoted: "✅ promoted", analyzer.OutcomeRolledBack: "❌ rolled back",
		analyzer.OutcomeInconclusive: "⏸️ inconclusive", analyzer.OutcomeUnavailable: "⚠️ metrics unavailable",
		analyzer.OutcomeStopped: "✋ stopped",
	}[r.Outcome]
	fmt.Fprintf(&b, "### coalmine gate: %s %s\n\n%s\n\n", mark, policy, mdEscape(r.Reason))
	fmt.Fprintln(&b, "| step | elapsed | metric | baseline | canary | verdict | reason |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|")
	for _, t := range stepResults(r) {
		for _, m := range t.Result.Metrics {
			fmt.Fprintf(&b, "| %d/%d | %s | %s | %s | %s | %s | %s |\n", t.Step+1, t.Steps, shortDuration(t.Elapsed), mdEscape(m.Name),
				analyzer.FormatValue(m.Kind, float64(m.Baseline)), analyzer.FormatValue(m.Kind, float64(m.Canary)), verdictMark(string(m.Verdict)), mdEscape(m.Reason))
		}
	}
	fmt.Fprintf(&b, "\n<details><summary>Timeline (%d ticks)</summary>\n\n", len(r.Ticks))
	for _, t := range r.Ticks {
		fmt.Fprintf(&b, "- %s\n", mdEscape(ProgressLine(t)))
	}
	fmt.Fprintf(&b, "\n</details>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
