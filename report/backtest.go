package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/model"

	"github.com/coalmine/coalmine/analyzer"
)

// BacktestSchemaVersion is the version of the JSON backtest's shape.
const BacktestSchemaVersion = "coalmine.dev/backtest/v1alpha1"

// backtestJSON is the JSON form of a backtest: the schema, then the backtest's fields.
type backtestJSON struct {
	Schema string `json:"schema"`
	analyzer.Backtest
}

// WriteBacktest renders a backtest in format: text, json or markdown.
func WriteBacktest(w io.Writer, format string, bt analyzer.Backtest) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(backtestJSON{Schema: BacktestSchemaVersion, Backtest: bt})
	case "text":
		return writeBacktestText(w, bt)
	case "markdown", "md":
		return writeBacktestMarkdown(w, bt)
	}
	return fmt.Errorf("unknown format %q (want text, json or markdown)", format)
}

func backtestTitle(bt analyzer.Backtest) string {
	versions := fmt.Sprintf("baseline %s vs canary %s", bt.Baseline, bt.Canary)
	if bt.AA != "" {
		versions = fmt.Sprintf("A/A: %s against itself, split by %q", bt.Baseline, bt.AA)
	}
	return fmt.Sprintf("%s: backtest of %s/%s, %s, %s to %s, a canary every %s, judge %s",
		bt.Policy, bt.Namespace, bt.App, versions, bt.From.UTC().Format(time.RFC3339), bt.To.UTC().Format(time.RFC3339),
		model.Duration(bt.Every), bt.Judge)
}

// BacktestSummary words the backtest's outcome in one or two lines.
func BacktestSummary(bt analyzer.Backtest) string {
	s := fmt.Sprintf("%d canaries: %d would have been rolled back, %d promoted, %d inconclusive",
		len(bt.Runs), bt.Failed, bt.Passed, bt.Inconclusive)
	if bt.AA != "" && len(bt.Runs) > 0 {
		s += fmt.Sprintf("\nA/A false-rollback rate %s (%d/%d), 95%% Wilson interval [%s, %s]; the policy's alpha is %g%%",
			percent(float64(bt.FailRate)), bt.Failed, len(bt.Runs), percent(float64(bt.FailRateLow)), percent(float64(bt.FailRateHigh)), 100*bt.Alpha)
		if float64(bt.FailRateLow) > bt.Alpha {
			s += ": more than alpha, even allowing for chance; the traffic breaks the judge's assumptions (bursty errors?), consider spec.analysis.tempering"
		} else {
			s += ": consistent with alpha"
		}
	}
	return s
}

func writeBacktestText(w io.Writer, bt analyzer.Backtest) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", backtestTitle(bt))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tOUTCOME\tAFTER\tREASON")
	for _, r := range bt.Runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Start.UTC().Format(time.RFC3339), outcomeWord(r.Verdict), shortDuration(r.After), r.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\n%s\n", BacktestSummary(bt))
	_, err := io.WriteString(w, b.String())
	return err
}

func writeBacktestMarkdown(w io.Writer, bt analyzer.Backtest) error {
	var b strings.Builder
	fmt.Fprintf(&b, "### coalmine backtest: %s\n\n%s\n\n", bt.Policy, mdEscape(backtestTitle(bt)))
	fmt.Fprintln(&b, "| start | outcome | after | reason |")
	fmt.Fprintln(&b, "|---|---|---|---|")
	for _, r := range bt.Runs {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.Start.UTC().Format(time.RFC3339), verdictMark(string(r.Verdict)), shortDuration(r.After), mdEscape(r.Reason))
	}
	fmt.Fprintf(&b, "\n**%s**\n", strings.ReplaceAll(mdEscape(BacktestSummary(bt)), "  ", " "))
	_, err := io.WriteString(w, b.String())
	return err
}

// outcomeWord says what the engine would have done on a verdict.
func outcomeWord(v analyzer.Verdict) string {
	switch v {
	case analyzer.Fail:
		return "rollback"
	case analyzer.Pass:
		return "promote"
	}
	return "inconclusive"
}

func percent(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*x)
}
