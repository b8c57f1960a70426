package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"

	"github.com/coalmine/coalmine/actuator"
	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/buildinfo"
	"github.com/coalmine/coalmine/daemon"
	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/notify"
	"github.com/coalmine/coalmine/report"
)

const gateLong = `Drives one release to an end on the cluster. Per step of the policy's strategy it waits for the
canary's pods to be Ready, analyses for the step's duration (or until a decisive verdict), then
advances, promotes or rolls back. Prints one progress line per tick. Progress is recorded on the
Deployment, so running it again after a crash resumes where it was and never applies a step twice.

--summary appends (as $GITHUB_STEP_SUMMARY expects); --junit and --report replace their files.

Exit codes: 0 promoted, 1 rolled back, 2 usage error or invalid policy, 3 inconclusive at the
deadline (spec.analysis.onInconclusive says whether it was held or rolled back), 4 Prometheus or
Kubernetes unreachable, 5 stopped because someone else changed the release, 6 another driver
holds the canary, 130 interrupted (resumable).`

type gateFlags struct {
	policy                              policyFlags
	promURL, junit, summary, htmlReport string
	timeout                             model.Duration
	dryRun                              bool
	kube                                kubeFlags
	log                                 logFlags
}

func newGateCommand(s streams) *cobra.Command {
	var f gateFlags
	cmd := &cobra.Command{
		Use:   "gate -f FILE",
		Short: "Drive one release on the cluster to a verdict: promote or roll back",
		Long:  gateLong,
		Example: `  coalmine gate -f my-app.yaml --context prod
  coalmine gate -f my-app.yaml --junit canary.xml --summary "$GITHUB_STEP_SUMMARY" --report canary.html`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exit(runGate(cmd.Context(), &f, s))
		},
	}
	fs := cmd.Flags()
	f.policy.register(fs)
	fs.StringVar(&f.promURL, "prometheus-url", "", "Prometheus base URL (default: the policy's spec.prometheus.url)")
	fs.Var(durationValue{&f.timeout}, "timeout", "give up after this long (default: the policy's spec.analysis.maxDuration)")
	fs.StringVar(&f.junit, "junit", "", "write a JUnit XML report here (a test case per metric per step)")
	fs.StringVar(&f.summary, "summary", "", "append a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
	fs.StringVar(&f.htmlReport, "report", "", "write a self-contained HTML report here: charts per metric, the timeline, the numbers")
	fs.BoolVar(&f.dryRun, "dry-run", false, "read the cluster and Prometheus, write nothing, log what would be done")
	f.kube.register(fs, true)
	f.log.register(fs)
	return cmd
}

func runGate(ctx context.Context, f *gateFlags, s streams) int {
	stdout, stderr := s.out, s.err
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "coalmine gate: "+format+"\n", a...)
		return exitUsage
	}
	logger, err := f.log.logger(stderr)
	if err != nil {
		return usageErr("%v", err)
	}
	p, err := f.policy.loadOne(s.in, nil)
	if err != nil {
		return usageErr("%v", err)
	}
	prom, logger, err := setup(p, f.kube.namespace(), f.promURL, &f.kube, logger)
	if err != nil {
		return usageErr("%v", err)
	}
	kf, timeout, dryRun, junit, summary, htmlReport := &f.kube, f.timeout, f.dryRun, f.junit, f.summary, f.htmlReport
	client, err := kf.client()
	if err != nil {
		return usageErr("%v", err)
	}
	rel, err := actuator.NewRelease(client, p, logger)
	if err != nil {
		return usageErr("%v", err)
	}
	var release analyzer.Release = rel
	if dryRun {
		release = actuator.NewDryRun(rel, logger)
	}
	notifier, stopNotices := gateNotifier(ctx, client, dryRun, logger)
	defer stopNotices()
	var canary *analyzer.Canary
	canary = &analyzer.Canary{
		Policy: p, Release: release, Analyzer: analyzer.New(prom, logger), Logger: logger,
		OnTick: func(t analyzer.Tick) {
			fmt.Fprintln(stdout, report.ProgressLine(t))
			notifier.Offer(ctx, canary.Policy, canary.Record(), rel)
		},
		Driver: gateDriver(),
	}
	limit := time.Duration(p.Spec.Analysis.MaxDuration)
	if timeout > 0 {
		limit = time.Duration(timeout)
	}
	rep, err := canary.Run(ctx, time.Now().Add(limit))
	// The end's notices, then a bounded wait for them: the verdict is made, and people are told.
	notifier.Offer(ctx, canary.Policy, canary.Record(), rel)
	wait, cancel := context.WithTimeout(ctx, noticeWait)
	if werr := notifier.Wait(wait); werr != nil {
		logger.Warn().Err(werr).Msg("notifications not all delivered before the gate exits")
	}
	cancel()
	if werr := writeGateFiles(junit, summary, htmlReport, p.Metadata.Name, rep); werr != nil {
		fmt.Fprintf(stderr, "coalmine gate: %v\n", werr)
	}
	if err != nil {
		code := exitForKube(err)
		logger.Error().Err(err).Int("exit_code", code).Msg("gate stopped")
		fmt.Fprintf(stderr, "coalmine gate: %v\n", err)
		return code
	}
	fmt.Fprintf(stdout, "coalmine gate: %s: %s\n", rep.Outcome, rep.Reason)
	logger.Info().Str("outcome", string(rep.Outcome)).Str("reason", rep.Reason).Msg("canary ended")
	return exitForOutcome(rep.Outcome)
}

func writeGateFiles(junit, summary, htmlReport, policy string, rep analyzer.Report) error {
	var errs []error
	for _, out := range []struct {
		file  string
		write func(io.Writer, string, analyzer.Report) error
		// appends: $GITHUB_STEP_SUMMARY gathers every step's summary; add to it, never replace it.
		appends bool
	}{{htmlReport, report.WriteGateHTML, false}, {junit, report.WriteJUnit, false}, {summary, report.WriteGateMarkdown, true}} {
		if out.file == "" {
			continue
		}
		var buf bytes.Buffer
		if err := out.write(&buf, policy, rep); err != nil {
			errs = append(errs, err)
			continue
		}
		if out.appends {
			errs = append(errs, appendFile(out.file, buf.Bytes()))
			continue
		}
		errs = append(errs, writeFileAtomic(out.file, buf.Bytes()))
	}
	return errors.Join(errs...)
}

// appendFile adds data at the end of a file, creating it (mode 0644) when missing.
func appendFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("append to %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return nil
}

// gateDriver is the gate's name in the records it writes: the host it runs on, so that a gate
// run again there (a retried CI job) resumes its canary, and any other driver refuses it.
func gateDriver() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown host"
	}
	return "gate on " + host
}

func exitForOutcome(o analyzer.Outcome) int {
	switch o {
	case analyzer.OutcomeBusy:
		return exitBusy
	case analyzer.OutcomePromoted:
		return exitPass
	case analyzer.OutcomeRolledBack:
		return exitFail
	case analyzer.OutcomeUnavailable:
		return exitUnavailable
	case analyzer.OutcomeStopped:
		return exitStopped
	}
	return exitInconclusive
}

// exitForKube maps a cluster error: a wrong name or missing permission is the user's to fix
// (2); anything else means the API server could not be used (4). An interrupted gate is 130.
func exitForKube(err error) int {
	switch {
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, analyzer.ErrNoCanary):
		return exitUsage
	case apierrors.IsNotFound(err), apierrors.IsForbidden(err), apierrors.IsUnauthorized(err), apierrors.IsInvalid(err):
		return exitUsage
	case errors.Is(err, metrics.ErrQuery), errors.Is(err, metrics.ErrMultipleSeries), errors.Is(err, metrics.ErrUnexpectedSeries):
		return exitUsage
	}
	return exitUnavailable
}

// noticeWait bounds how long a gate that has ended waits for its notifications.
const noticeWait = 30 * time.Second

// gateNotifier starts the gate's notification sender; a dry run sends nothing. stop ends it.
func gateNotifier(ctx context.Context, client kubernetes.Interface, dryRun bool, logger zerolog.Logger) (*daemon.Notifier, func()) {
	if dryRun {
		return nil, func() {}
	}
	sender := notify.NewSender(notify.KubeSecrets{Client: client}, buildinfo.Get().Version)
	disp, err := notify.NewDispatcher(notify.Options{Send: sender.Send, Registerer: prometheus.NewRegistry(), Logger: logger})
	if err != nil {
		logger.Warn().Err(err).Msg("notifications off")
		return nil, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = disp.Run(ctx)
	}()
	return daemon.NewNotifier(disp, logger), func() { cancel(); <-done }
}
