package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/coalmine/coalmine/daemon"
	"github.com/coalmine/coalmine/policies"
)

// canaryStatus is one line of coalmine status: a policy's canary as its record on the cluster
// says (or, before any, as its CanaryPolicy's status does).
type canaryStatus struct {
	Namespace string         `json:"namespace" yaml:"namespace"`
	Policy    string         `json:"policy" yaml:"policy"`
	Baseline  string         `json:"baseline,omitempty" yaml:"baseline,omitempty"`
	Canary    string         `json:"canary,omitempty" yaml:"canary,omitempty"`
	Phase     policies.Phase `json:"phase" yaml:"phase"`
	Step      int            `json:"step,omitempty" yaml:"step,omitempty"`
	Steps     int            `json:"steps,omitempty" yaml:"steps,omitempty"`
	Verdict   string         `json:"verdict,omitempty" yaml:"verdict,omitempty"`
	Started   *time.Time     `json:"started,omitempty" yaml:"started,omitempty"`
	Reason    string         `json:"reason,omitempty" yaml:"reason,omitempty"`
	Driver    string         `json:"driver,omitempty" yaml:"driver,omitempty"`
	PausedBy  string         `json:"pausedBy,omitempty" yaml:"pausedBy,omitempty"`
}

type statusFlags struct {
	canaryFlags
	log   logFlags
	out   outputFlags
	watch bool
	every time.Duration
}

func newStatusCommand(s streams) *cobra.Command {
	f := &statusFlags{}
	cmd := &cobra.Command{
		Use:   "status [POLICY...] [-n NAMESPACE | -A] | -f FILE",
		Short: "Show every canary: policy, versions, phase, step, verdict, age",
		Long: `Show the canaries of the CanaryPolicy objects you can see (or of policy files), as their records on
the cluster say: the versions, the phase (Pending, Analyzing, Paused, WaitingForApproval, Promoting,
RollingBack, Promoted, RolledBack, Inconclusive, Stopped), the step, the last verdict and the age.`,
		Example: `  coalmine status -A
  coalmine status my-app -n shop -o wide --watch
  kubectl coalmine status -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return exitCode(runStatus(cmd.Context(), s, f, args))
		},
	}
	f.canaryFlags.register(cmd, true)
	f.log.register(cmd.Flags())
	f.out.register(cmd, "table", "wide", "json", "yaml")
	_ = cmd.Flags().MarkHidden("output-file")
	cmd.Flags().BoolVarP(&f.watch, "watch", "w", false, "after listing, print each canary again as it changes")
	cmd.Flags().DurationVar(&f.every, "watch-interval", 2*time.Second, "how often --watch reads the records")
	return cmd
}

func runStatus(ctx context.Context, s streams, f *statusFlags, args []string) int {
	logger, err := f.log.logger(s.err)
	if err != nil {
		fmt.Fprintf(s.err, "coalmine status: %v\n", err)
		return exitUsage
	}
	if err := f.out.check(); err != nil {
		fmt.Fprintf(s.err, "coalmine status: %v\n", err)
		return exitUsage
	}
	if f.watch && (f.out.format == "json" || f.out.format == "yaml") {
		fmt.Fprintln(s.err, "coalmine status: --watch prints lines; use -o table or wide")
		return exitUsage
	}
	seen := map[string]string{}
	tw := tabwriter.NewWriter(s.out, 0, 4, 3, ' ', 0)
	header := false
	for {
		cs, _, err := f.canaries(ctx, s.in, args, logger)
		if err != nil {
			return failWith(s, err)
		}
		rows := make([]canaryStatus, 0, len(cs))
		for _, c := range cs {
			r, err := statusOf(ctx, c)
			if err != nil {
				return failWith(s, err)
			}
			rows = append(rows, r)
		}
		switch f.out.format {
		case "json":
			b, _ := json.MarshalIndent(map[string]any{"canaries": rows}, "", "  ")
			fmt.Fprintln(s.out, string(b))
			return exitPass
		case "yaml":
			b, _ := yaml.Marshal(map[string]any{"canaries": rows})
			fmt.Fprint(s.out, string(b))
			return exitPass
		}
		wide := f.out.format == "wide"
		if !header {
			writeStatusHeader(tw, wide)
			header = true
		}
		for _, r := range rows {
			line := statusLine(r, wide, time.Now())
			key := r.Namespace + "/" + r.Policy
			// --watch prints a canary again when it changes, not as it ages.
			if same := seen[key] == statusKey(r); same && len(seen) > 0 && f.watch {
				continue
			}
			seen[key] = statusKey(r)
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
		if !f.watch {
			return exitPass
		}
		select {
		case <-ctx.Done():
			return exitPass
		case <-time.After(f.every):
		}
	}
}

// statusOf reads one canary's line.
func statusOf(ctx context.Context, c canary) (canaryStatus, error) {
	var r canaryStatus
	if c.object != nil {
		r.Namespace, r.Policy = c.object.GetNamespace(), c.object.GetName()
		if st, ok := c.object.Object["status"].(map[string]any); ok {
			r.Phase = policies.Phase(fmt.Sprint(st["phase"]))
			if m, ok := st["message"].(string); ok {
				r.Reason = m
			}
		}
	}
	if c.policy == nil {
		if r.Phase == "" {
			r.Phase = policies.PhaseInvalid
		}
		return r, nil
	}
	p := c.policy
	r.Namespace, r.Policy = p.Spec.Target.Namespace, p.Metadata.Name
	rec, err := c.record(ctx)
	if err != nil {
		return r, err
	}
	if rec == nil || rec.Policy != p.Metadata.Name {
		if r.Phase == "" || r.Phase == "<nil>" {
			r.Phase = policies.PhasePending
		}
		r.Baseline, r.Canary = p.Spec.Target.Baseline.Version, p.Spec.Target.Canary.Version
		return r, nil
	}
	started := rec.Started
	r.Baseline, r.Canary, r.Phase = rec.Baseline, rec.Canary, daemon.RecordPhase(rec)
	r.Step, r.Steps, r.Started, r.Reason, r.Driver = rec.Step+1, rec.Steps, &started, rec.Reason, rec.Driver
	for _, v := range rec.Verdicts {
		if v.Step == rec.Step {
			r.Verdict = string(v.Verdict)
			if r.Reason == "" {
				r.Reason = v.Reason
			}
		}
	}
	if rec.Paused != nil {
		r.PausedBy = rec.Paused.By
	}
	return r, nil
}

func writeStatusHeader(w io.Writer, wide bool) {
	h := "NAMESPACE\tPOLICY\tBASELINE\tCANARY\tPHASE\tSTEP\tVERDICT\tAGE"
	if wide {
		h += "\tDRIVER\tREASON"
	}
	fmt.Fprintln(w, h)
}

func statusLine(r canaryStatus, wide bool, now time.Time) string {
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	step, age := "-", "-"
	if r.Steps > 0 {
		step = fmt.Sprintf("%d/%d", r.Step, r.Steps)
	}
	if r.Started != nil {
		age = duration.HumanDuration(now.Sub(*r.Started))
	}
	line := strings.Join([]string{r.Namespace, r.Policy, dash(r.Baseline), dash(r.Canary), string(r.Phase), step, dash(r.Verdict), age}, "\t")
	if wide {
		reason := r.Reason
		if len(reason) > 120 {
			reason = reason[:117] + "..."
		}
		line += "\t" + dash(r.Driver) + "\t" + dash(strings.ReplaceAll(reason, "\n", " "))
	}
	return line
}

// statusKey is what --watch compares: a canary is printed again when any of it changes.
func statusKey(r canaryStatus) string {
	return fmt.Sprint(r.Baseline, r.Canary, r.Phase, r.Step, r.Verdict, r.PausedBy)
}
