package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coalmine/coalmine/policies"
)

const validateLong = `Checks policy files: YAML syntax, unknown fields, values, and that every PromQL template renders
and parses. Exits 0 when every policy is valid; otherwise prints one line per problem on stderr,
as FILE:LINE: FIELD PROBLEM, and exits 2.`

func newValidateCommand(s streams) *cobra.Command {
	var (
		pf                policyFlags
		quiet, checkFiles bool
	)
	cmd := &cobra.Command{
		Use:   "validate -f FILE [FILE...]",
		Short: "Check policy files",
		Long:  validateLong,
		Example: `  coalmine validate -f my-app.yaml
  coalmine validate my-app.yaml -q
  coalmine validate -f policies/
  cat my-app.yaml | coalmine validate -f -`,
		ValidArgsFunction: yamlFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := pf.load(s.in, args)
			if err == nil && checkFiles {
				var errs policies.Errors
				for _, p := range ps {
					errs = append(errs, p.CheckFiles()...)
				}
				if len(errs) > 0 {
					err = errs
				}
			}
			if err != nil {
				fmt.Fprintln(s.err, err)
				return exitCode(exitUsage)
			}
			if !quiet {
				for _, p := range ps {
					fmt.Fprintf(s.out, "%s: %s is valid; %s; %s; %s\n", p.Origin.File, p.Metadata.Name, releasing(p), sourcing(p), judging(p))
				}
			}
			return nil
		},
	}
	pf.register(cmd.Flags())
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing when every policy is valid")
	cmd.Flags().BoolVar(&checkFiles, "check-files", false, "also check that every file the Prometheus settings name (password_file, ca_file, ...) can be read here (off by default: a daemon's policy names files in its pod)")
	return cmd
}

// yamlFiles completes positional arguments with policy files.
func yamlFiles(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
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
		versions := fmt.Sprintf("in (%s, %s)", t.Baseline.Version, t.Canary.Version)
		if !p.Pinned() {
			versions = "the baseline's and the canary's, read from the Deployments,"
		}
		return fmt.Sprintf("source pods: no Prometheus; scrapes the Ready pods of %s labelled %s=%s, %s %s at their prometheus.io/port (and /path, /scheme) annotations, needs get/list on pods",
			t.Namespace, t.Labels.App, t.App, t.Labels.Version, versions)
	}
	url := policies.RedactedURL(p.Spec.Prometheus.URL)
	if url == "" {
		url = "--prometheus-url"
	}
	return fmt.Sprintf("source prometheus: queries %s for series labelled %s, %s, %s", url, t.Labels.Namespace, t.Labels.App, t.Labels.Version)
}

// releasing says which releases the policy drives: one, of the versions it pins, or each new pod
// template of its canary's Deployment.
func releasing(p *policies.Policy) string {
	t := p.Spec.Target
	if p.Pinned() {
		return fmt.Sprintf("drives one release, %s to %s", t.Baseline.Version, t.Canary.Version)
	}
	return fmt.Sprintf("drives release after release: versions read from the Deployments, baseline after promotion %s", p.AfterPromotion())
}
