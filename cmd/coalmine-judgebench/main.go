// Command coalmine-judgebench measures the decision quality of coalmine's judges: every judge
// is fed the same simulated canaries, healthy and regressed, with fixed seeds, and a table per
// judge says how often it rolled back a healthy canary, how fast it caught a regression and how
// fast it promoted. `make bench-judge` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"strings"
	"syscall"

	"github.com/coalmine/coalmine/judgebench"
)

const usage = `Usage: coalmine-judgebench [flags]

coalmine-judgebench simulates canary analyses (10 s scrapes, 30 min) over a grid of baseline error
rates, regression ratios and traffic, plus ramps, incidents, bursty errors and latency regressions,
feeds every judge the same streams and prints, per judge, false rollbacks on healthy cells, time to
fail on regressed ones and time to promote, then checks the sequential judge against its targets.
The results depend only on -seed and -runs, not on -parallel.

Flags:
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is the whole program; it returns the exit code: 0 when done, 1 when interrupted or
// unable to write, 2 for a bad command line.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, format, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := judgebench.Run(ctx, cfg)
	if err == nil {
		err = judgebench.Print(stdout, rep, format)
	}
	if err != nil {
		fmt.Fprintf(stderr, "coalmine-judgebench: %v\n", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (judgebench.Config, string, error) {
	var (
		cfg    judgebench.Config
		judges string
		cells  string
		format string
	)
	fs := flag.NewFlagSet("coalmine-judgebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.Runs, "runs", judgebench.DefaultRuns, fmt.Sprintf("`N` runs of each healthy or headline cell; healthy cells never get fewer than %d, cells far from the headline ones a half or a quarter of N", judgebench.MinHealthyRuns))
	fs.Uint64Var(&cfg.Seed, "seed", 1, "`seed` of every stream")
	fs.StringVar(&judges, "judges", "sequential,threshold,mannwhitney,oracle", "comma-separated `judges` to report")
	fs.StringVar(&cells, "cells", "", "run only the cells whose name matches this `regexp`, such as '@10/s' or '^err 1%->'")
	fs.StringVar(&format, "format", judgebench.FormatText, "output `format`: text, or markdown for the README")
	fs.IntVar(&cfg.Parallel, "parallel", runtime.GOMAXPROCS(0), "`workers` simulating at once")
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	for _, j := range strings.Split(judges, ",") {
		if j = strings.TrimSpace(j); j != "" {
			cfg.Judges = append(cfg.Judges, j)
		}
	}
	var err error
	switch {
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected arguments %q", fs.Args())
	case cfg.Runs <= 0:
		err = fmt.Errorf("-runs %d must be > 0", cfg.Runs)
	case cfg.Parallel <= 0:
		err = fmt.Errorf("-parallel %d must be > 0", cfg.Parallel)
	case len(cfg.Judges) == 0:
		err = errors.New("-judges names no judge")
	case format != judgebench.FormatText && format != judgebench.FormatMarkdown:
		err = fmt.Errorf("-format %q: want text or markdown", format)
	}
	if err == nil && cells != "" {
		if cfg.Cells, err = regexp.Compile(cells); err != nil {
			err = fmt.Errorf("-cells: %w", err)
		}
	}
	if err == nil {
		_, err = judgebench.SelectJudges(cfg.Judges)
	}
	if err != nil {
		fmt.Fprintf(stderr, "coalmine-judgebench: %v\n\n", err)
		fs.Usage()
		return cfg, "", err
	}
	return cfg, format, nil
}
