package judgebench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// Formats of the printed report.
const (
	FormatText     = "text"
	FormatMarkdown = "markdown"
)

// columns head every judge's table.
var columns = []string{"cell", "runs", "false rollbacks [95% CI]", "detected", "median fail", "p80 fail", "promoted", "median promote", "fail time / oracle's"}

// Print writes the report: the settings, one table per judge, the targets, the wall time.
func Print(w io.Writer, rep *Report, format string) error {
	if format != FormatText && format != FormatMarkdown {
		return fmt.Errorf("format %q: want %s or %s", format, FormatText, FormatMarkdown)
	}
	md := format == FormatMarkdown
	p := &printer{w: w, md: md}
	p.heading(1, "coalmine judge benchmark")
	p.para(fmt.Sprintf("Simulated canaries, %d s scrapes over %g min; every judge is fed the same streams (seed %d). "+
		"Times are minutes from the start of the analysis. Healthy cells: false rollbacks with a 95%% Wilson interval, "+
		"and median time to promote (>30: fewer than half promoted). Regressed cells: share detected within 30 min, "+
		"median time to fail among those detected, p80 over all runs (>30: more than 20%% undetected), share wrongly "+
		"promoted, and the median time to fail over the oracle's.",
		int(Interval.Seconds()), Horizon.Minutes(), rep.Config.Seed))
	p.list([]string{
		fmt.Sprintf("Streams: per arm Poisson requests at the cell's rate, Binomial errors, log-normal latency (median %gs, p99 %gs on the baseline) bucketed into Prometheus's default buckets by sequential binomials; the latency and error-rate metrics count the same requests. Error cells keep latency healthy; latency cells keep errors at 1%%.",
			BaselineLatency.Median, BaselineLatency.P99),
		fmt.Sprintf("Policy: both metrics critical, alpha %g (split between them by the counter-reading judges), tolerance %g, tempering %g, minRequests %d, interval %s, window 5m (mannwhitney), 1m (threshold), warmup 0s (2m on the warm-up cell: the grid measures the judge; the default warm-up of one interval would add it to every time).",
			Alpha, Tolerance, float64(Tempering), MinRequests, Interval),
		"Special cells (healthy unless named a regression): ramp, canary traffic 10%, 50%, then 100% of the baseline's for 10 min each; incident, both arms' error rates x10 from 12.5 to 17.5 min (a judge that promoted before never sees it); bursty, each arm independently has 10x the error rate in a random 1 in 10 intervals (threshold max set from the long-run 1.9%); latency +20% whole distribution (median and p99 x1.2) and tail only (p99 x1.2, median kept); " +
			"clumpy xD, each arm's error rate multiplied in each interval by its own gamma factor of mean 1, so that its errors per interval vary D times as much as the binomial's; " +
			"warm-up, the canary's latency x1.5 for its first 2 min, judged with a 2 min warm-up; load, both arms' traffic 0.2, 0.5, 1 then 2 times the rate, 7.5 min each; " +
			"shared noise, one gamma factor (dispersion 5) on both arms' error rates in each interval; canary 1% of traffic, the canary served 1% of the baseline's requests; rare, error rates of 0.1% and 0.01%; margin Xpt, the errors metric's absolute margin (X percentage points beside the tolerance) for the sequential judge, which the other judges have no counterpart of. A wrong promotion is a promotion of a canary at 1.5x or worse and beyond tolerance times the baseline's rate plus the cell's margin.",
		"Threshold judge: a check whose window has no data for the canary is inconclusive, and counted as a failed check, as Flagger counts no data.",
		fmt.Sprintf("Oracle: on latency cells it tests only the share slower than %gs, the edge nearest the baseline's p99, so it is the floor for that one edge; a judge that reads every edge can beat it (ratio below 1) when a whole-distribution shift shows more at lower edges.",
			OracleEdge(BaselineLatency)),
		"Medians and p80s are by nearest rank over the runs, so a p80 is finite exactly when at most 20% of runs went undetected and a median time to promote exactly when at least half promoted.",
	})
	for _, j := range rep.Judges {
		p.heading(2, j.Name)
		p.para(j.About + ".")
		rows := [][]string{columns}
		for _, cr := range rep.Cells {
			rows = append(rows, row(cr, j))
		}
		p.table(rows, true)
	}
	if hasJudge(rep, Sequential.Name) {
		p.heading(2, "targets (sequential)")
		rows := [][]string{{"", "target", "measured"}}
		for _, c := range Targets(rep) {
			rows = append(rows, []string{string(c.Status), c.Target, c.Measured})
		}
		p.table(rows, false)
	}
	p.para(fmt.Sprintf("%d runs over %d cells, %d workers, wall time %s.",
		rep.Runs, len(rep.Cells), rep.Workers, rep.Wall.Round(100*time.Millisecond)))
	return p.err
}

// row is a judge's line for a cell.
func row(cr CellResult, j Judge) []string {
	s := cr.Summary(j.Name)
	r := []string{cr.Cell.Name, fmt.Sprint(s.Runs)}
	promoted, promote := percentage(s.PromoteRate), "-"
	if j.Name == Oracle.Name {
		promoted = "-" // the oracle only fails
	}
	if s.Healthy {
		if j.Name != Oracle.Name {
			promote = minutesText(s.MedianPromote)
		}
		return append(r, rateWithCI(s), "-", "-", "-", promoted, promote, "-")
	}
	ratio := "-"
	if !math.IsNaN(s.MedianFailVsBest) {
		ratio = fmt.Sprintf("%.2f", s.MedianFailVsBest)
	}
	return append(r, "-", percentage(s.FailRate), minutesText(s.MedianFail), minutesText(s.P80Fail), promoted, promote, ratio)
}

func hasJudge(rep *Report, name string) bool {
	for _, j := range rep.Judges {
		if j.Name == name {
			return true
		}
	}
	return false
}

// printer writes text or Markdown and keeps the first error.
type printer struct {
	w   io.Writer
	md  bool
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) heading(level int, s string) {
	if p.md {
		p.printf("%s %s\n\n", strings.Repeat("#", level+1), s)
		return
	}
	p.printf("%s\n%s\n\n", s, strings.Repeat("=-"[level-1:level], len(s)))
}

func (p *printer) para(s string) { p.printf("%s\n\n", s) }

func (p *printer) list(items []string) {
	for _, it := range items {
		p.printf("- %s\n", it)
	}
	p.printf("\n")
}

// table writes rows, the first being the header: a Markdown table, or aligned columns. In a
// Markdown table of numbers every column but the first is right-aligned.
func (p *printer) table(rows [][]string, numbers bool) {
	if p.md {
		for i, r := range rows {
			p.printf("| %s |\n", strings.Join(r, " | "))
			if i == 0 {
				seps := make([]string, len(r))
				for k := range seps {
					seps[k] = "---"
					if numbers && k > 0 {
						seps[k] = "--:" // numbers right-aligned
					}
				}
				p.printf("| %s |\n", strings.Join(seps, " | "))
			}
		}
		p.printf("\n")
		return
	}
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		if p.err == nil {
			_, p.err = fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
	}
	if p.err == nil {
		p.err = tw.Flush()
	}
	p.printf("\n")
}
