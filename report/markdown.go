package report

import (
	"fmt"
	"io"
	"strings"
)

// verdictMark puts a sign a reader sees at a glance before a verdict.
func verdictMark(v string) string {
	switch v {
	case "pass":
		return "✅ pass"
	case "fail":
		return "❌ fail"
	}
	return "⏸️ " + v
}

func writeMarkdown(w io.Writer, r Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "### coalmine: %s %s\n\n", verdictMark(string(r.Verdict)), r.Policy)
	fmt.Fprintf(&b, "%s\n\n", mdEscape(title(r)))
	fmt.Fprintln(&b, "| metric | requests (baseline / canary) | errors (baseline / canary) | baseline | canary | ratio | interval | p | criterion | verdict | reason |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, x := range rows(r) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", mdEscape(x.name), x.requests, x.errors, x.baseline, x.canary,
			x.ratio, x.interval, x.p, mdEscape(x.threshold), verdictMark(x.verdict), mdEscape(x.reason))
	}
	if r.Cluster != nil {
		fmt.Fprintf(&b, "\nCluster: %s\n", mdEscape(r.Cluster.Line()))
	}
	fmt.Fprintf(&b, "\n**Verdict: %s** — %s\n\n", strings.ToUpper(string(r.Verdict)), mdEscape(r.Reason))
	verb := "Action"
	if r.DryRun {
		verb = "Would"
	}
	fmt.Fprintf(&b, "**%s %s**: %s\n", verb, r.Decision.Action, mdEscape(r.Decision.Effect))
	if r.DryRun {
		fmt.Fprintf(&b, "\n_Dry run: nothing was changed._\n")
	}
	fmt.Fprintf(&b, "\n<details><summary>Queries</summary>\n\n")
	for _, m := range r.Metrics {
		fmt.Fprintf(&b, "%s:\n\n```promql\n%s\n```\n\n", m.Name, m.Query)
	}
	fmt.Fprintf(&b, "</details>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// mdEscape keeps a value inside one table cell and shows it as text. Values come from others
// (metric names, Prometheus's errors, the canary's series): HTML and Markdown links in them
// would render in a CI summary, an image there loads from wherever its author likes.
var mdEscaper = strings.NewReplacer(
	"|", `\|`, "\n", " ", "\r", " ",
	"&", "&amp;", "<", "&lt;", ">", "&gt;",
	`\`, `\\`, "[", `\[`, "]", `\]`, "`", "\\`", "!", `\!`,
)

func mdEscape(s string) string { return mdEscaper.Replace(s) }
