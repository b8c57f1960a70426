package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/coalmine/coalmine/actuator"
	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/metrics/promapi"
	"github.com/coalmine/coalmine/metrics/scrape"
	"github.com/coalmine/coalmine/policies"
	"github.com/coalmine/coalmine/report"
)

const reportLong = `The dry-run mode. Queries Prometheus for the baseline and the canary named by the policy, judges
every metric, and prints a table (metric, requests, baseline, canary, threshold, verdict, reason),
the overall verdict and what coalmine would do. It changes nothing anywhere, and needs no
Kubernetes access when the policy names the version label values.

The sequential judge (the default) replays the window interval by interval. -o html writes one
self-contained page (charts of baseline vs canary over the window, the numbers, the queries)
readable on a phone and printable; -o json follows the schema coalmine.dev/report/v1alpha1
(report/schema/report.v1alpha1.json).

With --kubeconfig, --context, --server or --token it also reads the release on the cluster
(replicas, whether the canary's pods are Ready and healthy, the progress a running gate
recorded) through the dry-run actuator, which never writes.

Exit codes: 0 pass, 1 fail, 2 usage error or invalid policy, 3 inconclusive,
4 Prometheus or Kubernetes unreachable (no verdict).`

type reportFlags struct {
	policy      policyFlags
	out         outputFlags
	promURL, at string
	window      model.Duration
	log         logFlags
	kube        kubeFlags
}

func newReportCommand(s streams) *cobra.Command {
	var f reportFlags
	cmd := &cobra.Command{
		Use:   "report -f FILE",
		Short: "Judge a canary once and say what would be done (dry run: changes nothing)",
		Long:  reportLong,
		Example: `  coalmine report -f my-app.yaml
  coalmine report -f my-app.yaml --window 30m -o html --output-file report.html
  coalmine report -f my-app.yaml -o json --context prod -n shop`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exit(runReport(cmd.Context(), cmd, &f, s))
		},
	}
	fs := cmd.Flags()
	f.policy.register(fs)
	fs.StringVar(&f.promURL, "prometheus-url", "", "Prometheus base URL (default: the policy's spec.prometheus.url)")
	fs.Var(durationValue{&f.window}, "window", "analysis window, e.g. 5m (default: the policy's spec.analysis.window)")
	f.out.register(cmd, "text", "json", "markdown", "html")
	fs.StringVar(&f.at, "time", "", "evaluate the window ending at this RFC 3339 time (default: now)")
	f.kube.register(fs, true)
	f.log.register(fs)
	return cmd
}

func runReport(ctx context.Context, cmd *cobra.Command, f *reportFlags, s streams) int {
	stdout, stderr := s.out, s.err
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "coalmine report: "+format+"\n", a...)
		return exitUsage
	}
	if err := f.out.check(); err != nil {
		return usageErr("%v", err)
	}
	logger, err := f.log.logger(stderr)
	if err != nil {
		return usageErr("%v", err)
	}
	at := time.Now()
	if f.at != "" {
		if at, err = time.Parse(time.RFC3339, f.at); err != nil {
			return usageErr("--time: %v", err)
		}
	}
	p, err := f.policy.loadOne(s.in, nil)
	if err != nil {
		fmt.Fprintf(stderr, "coalmine report: %v\n", err)
		return exitUsage
	}
	file := p.Origin.File
	if p, err = withVersions(ctx, &f.kube, p, logger); err != nil {
		code := exitForKube(err)
		fmt.Fprintf(stderr, "coalmine report: %v\n", err)
		return code
	}
	prom, logger, err := setup(p, f.kube.namespace(), f.promURL, &f.kube, logger)
	if err != nil {
		fmt.Fprintf(stderr, "coalmine report: %v\n", err)
		return exitUsage
	}
	window := time.Duration(p.Spec.Analysis.Window)
	if f.window > 0 {
		// --window overrides spec.analysis.window: what is replayed, and the windowed queries.
		window = time.Duration(f.window)
		p.Spec.Analysis.Window = f.window
	}
	// The window is judged whole: the warm-up is for the start of a step, which a window
	// chosen after the fact need not hold (backtest, whose runs start canaries, keeps it).
	noWarmup := model.Duration(0)
	p.Spec.Analysis.Warmup = &noWarmup

	an := analyzer.New(prom, logger)
	var (
		res      analyzer.Result
		decision analyzer.Decision
	)
	if p.Spec.Source == policies.SourcePods {
		// The pods hold no past: watch them for the window instead, then decide as a canary
		// started with the watch would have.
		if f.at != "" {
			return usageErr("--time: the pods source has no history; it watches the pods from now for --window")
		}
		fmt.Fprintf(stderr, "coalmine report: watching the pods for %s (source: pods)\n", model.Duration(window))
		start := time.Now()
		if res, err = an.Watch(ctx, p, window); err == nil {
			decision = decideAtEnd(p, &res, start, res.Time)
		}
	} else if analyzer.StreamJudgeFor(p) == nil {
		// The threshold judge reads no interval by interval: it judges the one window that ends
		// at --time, whole, and decides as the gate would at the last tick of a canary started at
		// the window's beginning. (A replay's first tick would judge the window before it.)
		baselineAt := at
		if p.Spec.Strategy.Type == policies.StrategyBlueGreen {
			baselineAt = at.Add(-window) // as the engine: the baseline as it was before the switch
		}
		if res, err = an.EvaluateSplit(ctx, p, at, baselineAt, window); err == nil {
			decision = decideAtEnd(p, &res, at.Add(-window), at)
		}
	} else {
		// The window replayed as the gate would have driven a canary started at its beginning:
		// the same readings, judge and decision, so report, gate and backtest agree.
		var run analyzer.BacktestRun
		if run, err = an.Simulate(ctx, p, at.Add(-window), at); err == nil {
			// The numbers of the whole window; the decision as and when the gate made it.
			res, decision = run.Final, run.Decision
			res.Window = model.Duration(window).String()
		}
	}
	if err != nil {
		code := exitForError(err)
		logger.Error().Err(err).Int("exit_code", code).Msg("no verdict")
		fmt.Fprintf(stderr, "coalmine report: no verdict: %v\n", err)
		return code
	}
	// The counter-reading judges replay the window interval by interval; for the others the
	// window's values at each interval are read too, so every format can show how it went.
	if err := an.WindowHistory(ctx, p, &res, at, window); err != nil {
		logger.Warn().Err(err).Msg("no history for the charts")
	}
	rep := report.New(file, res, decision, true)
	if f.kube.given(cmd.Flags()) {
		if rep.Cluster, err = clusterState(ctx, &f.kube, p, logger); err != nil {
			code := exitForKube(err)
			fmt.Fprintf(stderr, "coalmine report: read the cluster: %v\n", err)
			return code
		}
	}
	if err := writeReport(stdout, f.out.file, f.out.format, rep); err != nil {
		fmt.Fprintf(stderr, "coalmine report: %v\n", err)
		return exitUsage
	}
	logger.Info().Str("verdict", string(res.Verdict)).Str("action", string(decision.Action)).Str("reason", res.Reason).Msg("canary judged")
	return exitForVerdict(res.Verdict)
}

// decideAtEnd is the decision on res, judged at at, of a canary started at start with one step
// done: what the gate would do at that tick.
func decideAtEnd(p *policies.Policy, res *analyzer.Result, start, at time.Time) analyzer.Decision {
	rec := analyzer.NewProgress(p, start)
	rec.Done("", start)
	return analyzer.Decide(p, rec, analyzer.Observed{Ready: true}, res, at, start.Add(time.Duration(p.Spec.Analysis.MaxDuration)))
}

// clusterState reads the release through the dry-run actuator: reads only, writes nothing.
func clusterState(ctx context.Context, kf *kubeFlags, p *policies.Policy, logger zerolog.Logger) (*report.Cluster, error) {
	client, err := kf.client()
	if err != nil {
		return nil, err
	}
	rel, err := actuator.NewRelease(client, p, logger)
	if err != nil {
		return nil, err
	}
	dry := actuator.NewDryRun(rel, logger)
	raw, err := dry.Progress(ctx)
	if err != nil {
		return nil, err
	}
	prog, err := analyzer.DecodeProgress(raw, p)
	if err != nil {
		return nil, err
	}
	c := &report.Cluster{Progress: prog}
	if prog != nil && prog.Step < dry.Steps() {
		c.Step = prog.Step
	}
	if c.State, err = dry.Fingerprint(ctx, true); err != nil {
		return nil, err
	}
	state := map[string]string(nil)
	if prog != nil {
		state = prog.Release
	}
	if state == nil {
		if state, err = dry.Prepare(ctx); err != nil {
			return nil, err
		}
	}
	if c.CanaryReady, c.HealthIssue, err = dry.Health(ctx, c.Step, state); err != nil {
		return nil, err
	}
	return c, nil
}

// metricsSource is what the commands read metrics through: a Prometheus server, or the pods.
type metricsSource interface {
	analyzer.Observer
	analyzer.CounterReader
}

// setup applies the -n and --prometheus-url overrides to a policy, and builds the metrics source
// and a logger that names the policy: what report, gate and backtest share. The pods source
// lists pods through kube, which is only asked for then.
func setup(p *policies.Policy, namespace, promURL string, kube *kubeFlags, logger zerolog.Logger) (metricsSource, zerolog.Logger, error) {
	file := p.Origin.File
	if namespace != "" {
		p.Spec.Target.Namespace = namespace
	}
	logger = logger.With().Str("policy", p.Metadata.Name).Str("namespace", p.Spec.Target.Namespace).Logger()
	if p.Spec.Source == policies.SourcePods {
		if kube == nil {
			return nil, logger, fmt.Errorf("%s: source pods needs the cluster, which this command does not read", file)
		}
		client, err := kube.client()
		if err != nil {
			return nil, logger, err
		}
		return scrape.NewPods(client, p.Spec.Pods, logger), logger, nil
	}
	url := p.Spec.Prometheus.URL
	if promURL != "" {
		url = promURL
	}
	if url == "" {
		return nil, logger, fmt.Errorf("no Prometheus URL: set spec.prometheus.url in %s or pass --prometheus-url", file)
	}
	// A credentials file that cannot be read is the policy's problem, named at its line.
	if errs := p.CheckFiles(); len(errs) > 0 {
		return nil, logger, errs
	}
	prom, err := promapi.New(url, p.Spec.Prometheus, logger)
	if err != nil {
		return nil, logger, err
	}
	return prom, logger, nil
}

// writeReport renders the report to stdout or, whole or not at all, to a file.
func writeReport(stdout io.Writer, output, format string, rep report.Report) error {
	var buf bytes.Buffer
	if err := report.Write(&buf, format, rep); err != nil {
		return err
	}
	if output == "" {
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	return writeFileAtomic(output, buf.Bytes())
}

// writeFileAtomic writes a file whole or not at all: a temporary file renamed into place.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	// Readable by the CI that uploads it, as any file a tool writes (CreateTemp makes 0600).
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
