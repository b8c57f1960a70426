package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"

	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/report"
)

const backtestLong = `Replays a policy over a past range with Prometheus range queries, as if a canary had started at
T1 and again every DUR (default: the policy's maxDuration) until T2, and says for each when it
would have been rolled back or promoted. Nothing is changed anywhere.

With --aa the policy's baseline version plays both arms: its series are split in halves by the
--aa-label label (pod), and every rollback is a false one. Over many windows this estimates the
policy's false-rollback rate on your own traffic before anyone enforces it.

Times are RFC 3339 (2026-12-01T00:00:00Z), "now", or "now-6h".

Exit codes: 0 no canary would have been rolled back, 1 at least one would have, 2 usage error or
invalid policy, 4 Prometheus unreachable.`

type backtestFlags struct {
	policy                                policyFlags
	out                                   outputFlags
	promURL, from, to, aaLabel, namespace string
	every                                 model.Duration
	aa                                    bool
	log                                   logFlags
}

func newBacktestCommand(s streams) *cobra.Command {
	var f backtestFlags
	cmd := &cobra.Command{
		Use:   "backtest -f FILE --from T1 [--to T2]",
		Short: "Replay a policy over a past range: when would canaries have failed or passed?",
		Long:  backtestLong,
		Example: `  coalmine backtest -f my-app.yaml --from now-7d --every 1h
  coalmine backtest -f my-app.yaml --from now-24h --aa -o markdown --output-file aa.md`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exit(runBacktest(cmd.Context(), &f, s))
		},
	}
	fs := cmd.Flags()
	f.policy.register(fs)
	fs.StringVar(&f.promURL, "prometheus-url", "", "Prometheus base URL (default: the policy's spec.prometheus.url)")
	fs.StringVar(&f.from, "from", "", "start of the range (required)")
	fs.StringVar(&f.to, "to", "now", "end of the range")
	fs.Var(durationValue{&f.every}, "every", "time between replayed canaries (default: the policy's spec.analysis.maxDuration)")
	fs.BoolVar(&f.aa, "aa", false, "A/A replay: the baseline version against itself, split by --aa-label")
	fs.StringVar(&f.aaLabel, "aa-label", "pod", "the label whose values split the baseline into two arms in an A/A replay")
	fs.StringVarP(&f.namespace, "namespace", "n", "", "overrides spec.target.namespace")
	f.out.register(cmd, "text", "json", "markdown")
	f.log.register(fs)
	return cmd
}

func runBacktest(ctx context.Context, f *backtestFlags, s streams) int {
	stdout, stderr := s.out, s.err
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "coalmine backtest: "+format+"\n", a...)
		return exitUsage
	}
	if f.from == "" {
		return usageErr("no start given (--from T1)")
	}
	if err := f.out.check(); err != nil {
		return usageErr("%v", err)
	}
	now := time.Now()
	start, err := parseTime(f.from, now)
	if err != nil {
		return usageErr("--from: %v", err)
	}
	end, err := parseTime(f.to, now)
	if err != nil {
		return usageErr("--to: %v", err)
	}
	logger, err := f.log.logger(stderr)
	if err != nil {
		return usageErr("%v", err)
	}
	p, err := f.policy.loadOne(s.in, nil)
	if err != nil {
		return usageErr("%v", err)
	}
	file := p.Origin.File
	prom, logger, err := setup(p, f.namespace, f.promURL, nil, logger)
	if err != nil {
		return usageErr("%v", err)
	}
	aa, aaLabel, every, format, output := f.aa, f.aaLabel, f.every, f.out.format, f.out.file
	an := analyzer.New(prom, logger)
	if aa {
		if !p.Spec.Analysis.Judge.Streams() {
			return usageErr("--aa splits the baseline's series, which only the counter-reading judges (sequential, mannwhitney) read; %s uses judge %s", file, p.Spec.Analysis.Judge)
		}
		p.Spec.Target.Canary.Version = p.Spec.Target.Baseline.Version
		an = an.WithAA(aaLabel)
	}
	gap := time.Duration(p.Spec.Analysis.MaxDuration)
	if every > 0 {
		gap = time.Duration(every)
	}
	progress := newProgress(stderr)
	bt, err := an.Backtest(ctx, p, start, end, gap, progress.run)
	progress.done()
	if err != nil {
		code := exitForError(err)
		fmt.Fprintf(stderr, "coalmine backtest: %v\n", err)
		return code
	}
	var buf bytes.Buffer
	if err := report.WriteBacktest(&buf, format, bt); err != nil {
		return usageErr("%v", err)
	}
	if output == "" {
		_, err = stdout.Write(buf.Bytes())
	} else {
		err = writeFileAtomic(output, buf.Bytes())
	}
	if err != nil {
		fmt.Fprintf(stderr, "coalmine backtest: %v\n", err)
		return exitUsage
	}
	logger.Info().Int("canaries", len(bt.Runs)).Int("rolled_back", bt.Failed).Int("promoted", bt.Passed).Msg("backtest done")
	if bt.Failed > 0 {
		return exitFail
	}
	return exitPass
}

// parseTime reads an RFC 3339 time, "now", or "now-DURATION".
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	if rest, ok := strings.CutPrefix(s, "now-"); ok {
		d, err := model.ParseDuration(rest)
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(-time.Duration(d)), nil
	}
	return time.Parse(time.RFC3339, s)
}

// progress shows how far a long command is: a bar redrawn in place on a terminal, a plain line
// per step in CI logs.
type progress struct {
	w    io.Writer
	tty  bool
	last string
}

func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, tty: ok && isatty.IsTerminal(f.Fd())}
}

func (p *progress) run(done, total int, r analyzer.BacktestRun) {
	what := fmt.Sprintf("canary from %s: %s after %s", r.Start.UTC().Format("2006-01-02 15:04:05"), r.Verdict, r.After.Round(time.Second))
	if !p.tty {
		fmt.Fprintf(p.w, "backtest %d/%d: %s\n", done, total, what)
		return
	}
	const width = 30
	filled := width * done / max(1, total)
	p.last = fmt.Sprintf("\r[%s%s] %d/%d %s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total, what)
	fmt.Fprintf(p.w, "%s\x1b[K", p.last)
}

func (p *progress) done() {
	if p.tty && p.last != "" {
		fmt.Fprintln(p.w)
	}
}
