package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/user"
	"slices"
	"time"

	"github.com/spf13/cobra"
	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/coalmine/coalmine/analyzer"
)

// control is what each command asks of a running canary.
var control = map[analyzer.Verb]struct{ short, long string }{
	analyzer.VerbPromote: {"Promote the canary once its current step passes (or at once, --skip-analysis)",
		"Promote the canary as soon as the analysis of its current step passes, skipping the steps, their durations and any approval still ahead. With --skip-analysis, promote it at the next tick whatever the analysis says."},
	analyzer.VerbAbort:   {"Roll the canary back at the next tick", "Roll the canary back at its next tick, whatever the analysis says."},
	analyzer.VerbPause:   {"Stop the canary from moving forward", "Hold the canary where it is: no step forward, no promotion, and its deadline waits. A failing canary is still rolled back."},
	analyzer.VerbResume:  {"Let a paused canary go on", "Let a paused canary go on; the time it was paused is added to its deadline."},
	analyzer.VerbRetry:   {"Start an ended canary again", "Start an ended canary (rolled back, stopped, inconclusive) again from its first step, with a new record."},
	analyzer.VerbApprove: {"Let a canary waiting for approval go on", "Let a canary waiting for approval (strategy.approveBefore) go on, or approve ahead of time up to --step."},
}

type controlFlags struct {
	canaryFlags
	log          logFlags
	reason       string
	skipAnalysis bool
	step         int
	wait         time.Duration
}

func newControlCommand(s streams, verb analyzer.Verb) *cobra.Command {
	f := &controlFlags{}
	c := control[verb]
	cmd := &cobra.Command{
		Use:   string(verb) + " POLICY [-n NAMESPACE] | -f FILE",
		Short: c.short,
		Long: c.long + `

The command is kept on the canary's Deployment (annotation coalmine.dev/commands) and taken by
whoever drives the canary, the daemon or a gate, at its next tick, with an Event on the
Deployment that names who asked. Anyone allowed to patch the Deployment may ask.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return exitCode(runControl(cmd.Context(), s, verb, f, args))
		},
	}
	f.canaryFlags.register(cmd, false)
	f.log.register(cmd.Flags())
	cmd.Flags().StringVar(&f.reason, "reason", "", "why, for the Event, status and notifications")
	cmd.Flags().DurationVar(&f.wait, "wait", 0, "wait this long for the canary's driver to take the command (0: do not wait)")
	switch verb {
	case analyzer.VerbPromote:
		cmd.Flags().BoolVar(&f.skipAnalysis, "skip-analysis", false, "promote at the next tick, without waiting for a passing analysis")
	case analyzer.VerbApprove:
		cmd.Flags().IntVar(&f.step, "step", 0, "approve up to this step (1-based; the number of steps plus one is the promotion); default: the one waiting")
	}
	return cmd
}

func runControl(ctx context.Context, s streams, verb analyzer.Verb, f *controlFlags, args []string) int {
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(s.err, "coalmine %s: "+format+"\n", append([]any{verb}, a...)...)
		return exitUsage
	}
	logger, err := f.log.logger(s.err)
	if err != nil {
		return usageErr("%v", err)
	}
	if len(args) == 0 && len(f.policy.files) == 0 {
		return usageErr("name the CanaryPolicy (coalmine %s POLICY -n NAMESPACE) or give its file (-f FILE)", verb)
	}
	cs, client, err := f.canaries(ctx, s.in, args, logger)
	if err != nil {
		return failWith(s, err)
	}
	if len(cs) != 1 || cs[0].policy == nil {
		if len(cs) == 1 {
			return usageErr("canarypolicy %s/%s is refused; coalmine status says why", cs[0].object.GetNamespace(), cs[0].object.GetName())
		}
		return usageErr("%d policies match; name one", len(cs))
	}
	c := cs[0]
	rec, err := c.record(ctx)
	if err != nil {
		return failWith(s, err)
	}
	name := c.policy.Spec.Target.Namespace + "/" + c.policy.Metadata.Name
	switch {
	case rec == nil:
		return usageErr("no canary of %s has started", name)
	case verb == analyzer.VerbRetry && !rec.Phase.Final():
		return usageErr("canary %s of %s is %s, not ended: nothing to retry", rec.Canary, name, rec.Phase)
	case verb != analyzer.VerbRetry && rec.Phase.Final():
		return usageErr("canary %s of %s has already ended (%s); coalmine retry starts it again", rec.Canary, name, rec.Phase)
	}
	cmdv := analyzer.Command{
		ID: newCommandID(), Verb: verb, Canary: rec.Canary, Attempt: rec.Started,
		Step: f.step, SkipAnalysis: f.skipAnalysis, By: whoAmI(ctx, client), Reason: f.reason, At: time.Now().UTC(),
	}
	if err := cmdv.Validate(); err != nil {
		return usageErr("%v", err)
	}
	err = c.rel.AddCommand(ctx, func(old string) (string, error) { return analyzer.AppendCommand(old, cmdv) })
	if err != nil {
		return failWith(s, err)
	}
	fmt.Fprintf(s.out, "%s of canary %s (%s) requested by %s; its driver takes it at the next tick\n", verb, rec.Canary, name, cmdv.By)
	if f.wait <= 0 {
		return exitPass
	}
	if err := waitTaken(ctx, c, cmdv, f.wait); err != nil {
		fmt.Fprintf(s.err, "coalmine %s: %v\n", verb, err)
		return exitInconclusive
	}
	fmt.Fprintf(s.out, "%s taken\n", verb)
	return exitPass
}

// waitTaken waits until the canary's record shows the command taken.
func waitTaken(ctx context.Context, c canary, cmd analyzer.Command, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if rec, err := c.record(ctx); err == nil && rec != nil && slices.Contains(rec.Handled, cmd.ID) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not taken within %s: is a daemon or a gate driving the canary?", d)
		case <-t.C:
		}
	}
}

func newCommandID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// whoAmI is the user the API server knows the caller as (a SelfSubjectReview), else the local
// user: who asked, as the Event tells it.
func whoAmI(ctx context.Context, client kubernetes.Interface) string {
	r, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err == nil && r.Status.UserInfo.Username != "" {
		return r.Status.UserInfo.Username
	}
	if u, err := user.Current(); err == nil {
		return u.Username + " (local user)"
	}
	return "unknown"
}

// failWith reports a cluster error with its exit code.
func failWith(s streams, err error) int {
	fmt.Fprintf(s.err, "coalmine: %v\n", err)
	return exitForKube(err)
}
