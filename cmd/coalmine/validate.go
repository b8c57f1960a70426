package main

import (
	"fmt"
	"io"

	"github.com/coalmine/coalmine/policies"
)

const validateSynopsis = `Usage: coalmine validate -f FILE [FILE...]

Checks policy files: YAML syntax, unknown fields, values, and that every PromQL template renders
and parses. Exits 0 when every policy is valid; otherwise prints one line per problem on stderr,
as FILE:LINE: FIELD PROBLEM, and exits 2.`

func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", validateSynopsis, stderr)
	var files stringList
	fs.Var(&files, "f", "policy file (repeatable; further files may follow as arguments)")
	fs.Var(&files, "file", "same as -f")
	quiet := fs.Bool("q", false, "print nothing when every policy is valid")
	if code, stop := parse(fs, args); stop {
		return code
	}
	files = append(files, fs.Args()...)
	if len(files) == 0 {
		fmt.Fprintln(stderr, "coalmine validate: no policy file given (-f FILE)")
		return exitUsage
	}
	ps, err := policies.LoadFiles(files...)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	if !*quiet {
		for _, p := range ps {
			fmt.Fprintf(stdout, "%s: %s is valid; %s; %s\n", p.Origin.File, p.Metadata.Name, sourcing(p), judging(p))
		}
	}
	return exitPass
}

// judging says in words how a policy's canary will be judged, so that a reader of validate's
// output knows what the defaults chose.
func judging(p *policies.Policy) string {
	a := p.Spec.Analysis
	streamed, windowed := 0, 0
	for _, m := range p.Spec.Metrics {
		if m.Kind != policies.KindValue && a.Judge.Streams() {
			streamed++
		} else {
			windowed++
		}
	}
	var s string
	switch a.Judge {
	case policies.JudgeSequential:
		s = fmt.Sprintf("judge sequential: %d metric(s) read as raw counters every %s, alpha %g shared, tolerance %g", streamed, a.Interval, a.Alpha, a.Tolerance)
	case policies.JudgeMannWhitney:
		s = fmt.Sprintf("judge mannwhitney: %d metric(s) read as raw counters every %s, compared over %s windows", streamed, a.Interval, a.Window)
	default:
		return fmt.Sprintf("judge threshold: %d metric(s) checked against their thresholds over %s windows every %s", windowed, a.Window, a.Interval)
	}
	if windowed > 0 {
		s += fmt.Sprintf("; %d value metric(s) against their thresholds over %s windows", windowed, a.Window)
	}
	return s
}

// sourcing says where a policy's metrics will be read, and what that needs.
func sourcing(p *policies.Policy) string {
	t := p.Spec.Target
	if p.Spec.Source == policies.SourcePods {
		return fmt.Sprintf("source pods: no Prometheus; scrapes the Ready pods of %s labelled %s=%s, %s in (%s, %s) at their prometheus.io/port (and /path, /scheme) annotations, needs get/list on pods",
			t.Namespace, t.Labels.App, t.App, t.Labels.Version, t.Baseline.Version, t.Canary.Version)
	}
	url := policies.RedactedURL(p.Spec.Prometheus.URL)
	if url == "" {
		url = "--prometheus-url"
	}
	return fmt.Sprintf("source prometheus: queries %s for series labelled %s, %s, %s", url, t.Labels.Namespace, t.Labels.App, t.Labels.Version)
}
