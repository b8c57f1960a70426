// Package report renders what an evaluation found and what coalmine would do about it, for
// people (text, Markdown, a self-contained HTML page with charts) and for programs (JSON, with
// the versioned schemas under schema/); and a gate's run and a backtest the same ways.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/policies"
)

// SchemaVersion is the version of the JSON report's shape.
const SchemaVersion = "coalmine.dev/report/v1alpha1"

// Report is one evaluation and its decision. The result's fields appear at the top level of the
// JSON form: verdict, reason, metrics[] and the rest.
type Report struct {
	Schema string `json:"schema"`
	DryRun bool   `json:"dryRun"`
	File   string `json:"file,omitempty"`
	analyzer.Result
	Decision analyzer.Decision `json:"decision"`
	// Cluster is what the release looks like on the cluster, when the report could read it.
	Cluster *Cluster `json:"cluster,omitempty"`
}

// Cluster is the release as read from the cluster (read-only, through the dry-run actuator).
type Cluster struct {
	// State summarises the objects coalmine controls, e.g. "my-app-v1=10 my-app-v2=1".
	State string `json:"state"`
	// Step is the step whose pods were checked (0-based), from coalmine's progress if any.
	Step        int    `json:"step"`
	CanaryReady bool   `json:"canaryReady"`
	HealthIssue string `json:"healthIssue,omitempty"`
	// Progress is the record a running gate or daemon keeps, if any.
	Progress *analyzer.Progress `json:"progress,omitempty"`
}

// Line words the cluster state in one line.
func (c *Cluster) Line() string {
	ready := "canary pods Ready"
	if !c.CanaryReady {
		ready = "canary pods not all Ready"
	}
	if c.HealthIssue != "" {
		ready = "canary unhealthy: " + c.HealthIssue
	}
	prog := "no coalmine progress recorded"
	if p := c.Progress; p != nil {
		prog = fmt.Sprintf("coalmine progress: %s at step %d since %s", p.Phase, p.Step+1, p.Started.UTC().Format("15:04:05"))
	}
	return fmt.Sprintf("%s; %s (step %d); %s", c.State, ready, c.Step+1, prog)
}

// New assembles a report.
func New(file string, r analyzer.Result, d analyzer.Decision, dryRun bool) Report {
	return Report{Schema: SchemaVersion, DryRun: dryRun, File: file, Result: r, Decision: d}
}

// Formats lists the formats Write knows.
func Formats() []string { return []string{"text", "json", "markdown", "html"} }

// Write renders the report in format.
func Write(w io.Writer, format string, r Report) error {
	switch format {
	case "text":
		return writeText(w, r)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "markdown", "md":
		return writeMarkdown(w, r)
	case "html":
		return writeHTML(w, r)
	}
	return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(Formats(), ", "))
}

// row is one metric as the tables show it.
type row struct {
	name, requests, errors, baseline, canary, ratio, interval, p, threshold, verdict, reason string
}

func rows(r Report) []row {
	var rs []row
	for _, m := range r.Metrics {
		name := m.Name
		if !m.Critical {
			name += " (advisory)"
		}
		x := row{
			name:      name,
			requests:  requests(m),
			errors:    pair(m.Kind == policies.KindErrors, float64(m.BaselineErrors), float64(m.CanaryErrors)),
			baseline:  analyzer.FormatValue(m.Kind, float64(m.Baseline)),
			canary:    analyzer.FormatValue(m.Kind, float64(m.Canary)),
			ratio:     ratio(float64(m.Ratio)),
			interval:  "-",
			p:         "-",
			threshold: Thresholds(m.Kind, m.Thresholds),
			verdict:   string(m.Verdict),
			reason:    m.Reason,
		}
		if st := m.Stats; st != nil {
			x.ratio = ratio(float64(st.Estimate))
			x.p = pValue(float64(st.PValue))
			x.threshold = criterion(m, st)
			if st.Judge == policies.JudgeSequential {
				x.interval = fmt.Sprintf("[%s, %s]", ratio(float64(st.Low)), ratio(float64(st.High)))
			}
		}
		rs = append(rs, x)
	}
	return rs
}

func requests(m analyzer.MetricResult) string {
	if m.Kind == policies.KindValue {
		return "-"
	}
	return fmt.Sprintf("%s / %s", count(float64(m.BaselineRequests)), count(float64(m.CanaryRequests)))
}

func pair(ok bool, b, c float64) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%s / %s", count(b), count(c))
}

func ratio(x float64) string { return analyzer.FormatRatio(x) }

func pValue(p float64) string {
	switch {
	case math.IsNaN(p):
		return "-"
	case p < 0.0001:
		return "<0.0001"
	}
	return fmt.Sprintf("%.4f", p)
}

// criterion words how a counter-reading judge decides a metric.
func criterion(m analyzer.MetricResult, st *analyzer.Stats) string {
	switch st.Judge {
	case policies.JudgeSequential:
		s := fmt.Sprintf("alpha %g, tolerance %g", float64(st.Alpha), float64(st.Tolerance))
		if e := float64(st.Edge); !math.IsNaN(e) {
			s = fmt.Sprintf("slower than %gs: ", e) + s
		}
		return s
	case policies.JudgeMannWhitney:
		allowed := 1.0
		if m.Thresholds.MaxRatio != nil {
			allowed = *m.Thresholds.MaxRatio
		}
		return fmt.Sprintf("Mann-Whitney 98%%, mean ratio >= %g fails", allowed)
	}
	return Thresholds(m.Kind, m.Thresholds)
}

func count(x float64) string {
	if x != x { // NaN
		return "-"
	}
	return fmt.Sprintf("%.0f", x)
}

// Thresholds words a metric's bounds: "max 5.00%, ratio <= 2".
func Thresholds(kind policies.MetricKind, t policies.Thresholds) string {
	var parts []string
	if t.Min != nil {
		parts = append(parts, "min "+analyzer.FormatValue(kind, *t.Min))
	}
	if t.Max != nil {
		parts = append(parts, "max "+analyzer.FormatValue(kind, *t.Max))
	}
	if t.MaxRatio != nil {
		parts = append(parts, fmt.Sprintf("ratio <= %g", *t.MaxRatio))
	}
	if t.MaxDifference != nil {
		parts = append(parts, "diff <= "+analyzer.FormatValue(kind, *t.MaxDifference))
	}
	return strings.Join(parts, ", ")
}

func title(r Report) string {
	res := r.Result
	return fmt.Sprintf("%s: %s/%s, baseline %s vs canary %s, window %s ending %s",
		res.Policy, res.Namespace, res.App, res.Baseline, res.Canary, res.Window, res.Time.UTC().Format("2006-01-02T15:04:05Z"))
}
