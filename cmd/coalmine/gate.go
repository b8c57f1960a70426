package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/common/model"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/coalmine/coalmine/actuator"
	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/report"
)

const gateSynopsis = `Usage: coalmine gate -f FILE [--timeout DUR] [--junit FILE] [--summary FILE] [--report FILE] [--kubeconfig FILE] [--context NAME] [-n NS]

Drives one release to an end on the cluster. Per step of the policy's strategy it waits for the
canary's pods to be Ready, analyses for the step's duration (or until a decisive verdict), then
advances, promotes or rolls back. Prints one progress line per tick. Progress is recorded on the
Deployment, so running it again after a crash resumes where it was and never applies a step twice.

Exit codes: 0 promoted, 1 rolled back, 2 usage error or invalid policy, 3 inconclusive at the
deadline (spec.analysis.onInconclusive says whether it was held or rolled back), 4 Prometheus or
Kubernetes unreachable, 5 stopped because someone else changed the release, 130 interrupted
(resumable).`

func runGate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("gate", gateSynopsis, stderr)
	var (
		file, promURL, junit, summary, htmlReport string
		timeout                                   model.Duration
		dryRun                                    bool
		kf                                        kubeFlags
		lf                                        logFlags
	)
	fs.StringVar(&file, "f", "", "policy file (required)")
	fs.StringVar(&file, "file", "", "same as -f")
	fs.StringVar(&promURL, "prometheus-url", "", "Prometheus base URL (default: the policy's spec.prometheus.url)")
	fs.Var(&timeout, "timeout", "give up after this long (default: the policy's spec.analysis.maxDuration)")
	fs.StringVar(&junit, "junit", "", "write a JUnit XML report here (a test case per metric per step)")
	fs.StringVar(&summary, "summary", "", "write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
	fs.StringVar(&htmlReport, "report", "", "write a self-contained HTML report here: charts per metric, the timeline, the numbers")
	fs.BoolVar(&dryRun, "dry-run", false, "read the cluster and Prometheus, write nothing, log what would be done")
	kf.register(fs)
	lf.register(fs)
	if code, stop := parse(fs, args); stop {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "coalmine gate: "+format+"\n", a...)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	if file == "" {
		return usageErr("no policy file given (-f FILE)")
	}
	logger, err := lf.logger(stderr)
	if err != nil {
		return usageErr("%v", err)
	}
	p, prom, logger, err := setup(file, kf.namespace, promURL, &kf, logger)
	if err != nil {
		return usageErr("%v", err)
	}
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
	canary := &analyzer.Canary{
		Policy: p, Release: release, Analyzer: analyzer.New(prom, logger), Logger: logger,
		OnTick: func(t analyzer.Tick) { fmt.Fprintln(stdout, report.ProgressLine(t)) },
		Driver: gateDriver(),
	}
	limit := time.Duration(p.Spec.Analysis.MaxDuration)
	if timeout > 0 {
		limit = time.Duration(timeout)
	}
	rep, err := canary.Run(ctx, time.Now().Add(limit))
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
	}{{htmlReport, report.WriteGateHTML}, {junit, report.WriteJUnit}, {summary, report.WriteGateMarkdown}} {
		if out.file == "" {
			continue
		}
		var buf bytes.Buffer
		if err := out.write(&buf, policy, rep); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, writeFileAtomic(out.file, buf.Bytes()))
	}
	return errors.Join(errs...)
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
	case apierrors.IsNotFound(err), apierrors.IsForbidden(err), apierrors.IsUnauthorized(err), apierrors.IsInvalid(err):
		return exitUsage
	case errors.Is(err, metrics.ErrQuery), errors.Is(err, metrics.ErrMultipleSeries), errors.Is(err, metrics.ErrUnexpectedSeries):
		return exitUsage
	}
	return exitUnavailable
}
