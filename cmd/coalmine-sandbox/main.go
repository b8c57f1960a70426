// Command coalmine-sandbox brings up, on loopback, what coalmine runs against in the demo: the
// traffic simulator playing the seed app's pods and a real Prometheus scraping them. It keeps
// them up until SIGINT or SIGTERM, then tears everything down.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/sandbox"
	"github.com/coalmine/coalmine/simulator"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const synopsis = `Usage: coalmine-sandbox --scenario FILE [--cluster] [--dir DIR] [--ready-file FILE]

Without --cluster: starts the traffic simulator with a scenario and a real Prometheus (Debian's
prometheus package, or $COALMINE_PROMETHEUS) that scrapes every simulated pod with the labels the
kubernetes-pods relabelling gives. When every pod is scraped it prints the Prometheus URL and,
with --ready-file, writes it there.

With --cluster: starts a real control plane on loopback (etcd, kube-apiserver, controller-manager,
scheduler, kwok; built by scripts/install-kube.sh), Prometheus 3 discovering pods through it, and
the simulator playing the app inside every Ready pod. The ready file then holds shell variables:
KUBECONFIG, PROMETHEUS_URL and KUBECTL.

Runs until SIGINT or SIGTERM, then tears everything down.`

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("coalmine-sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, "%s\n\nFlags:\n", synopsis); fs.PrintDefaults() }
	scenarioFile := fs.String("scenario", "", "simulator scenario file (required)")
	dir := fs.String("dir", "", "working directory for Prometheus and the targets file (default: a temporary one)")
	readyFile := fs.String("ready-file", "", "write the Prometheus URL to this file once every pod is scraped")
	adminAddr := fs.String("admin-addr", "", "serve the simulator's admin API (GET/PUT /scenario) on this address")
	scrape := fs.Duration("scrape-interval", time.Second, "Prometheus scrape interval")
	cluster := fs.Bool("cluster", false, "run a real control plane and play the app inside its pods")
	noProm := fs.Bool("no-prometheus", false, "with --cluster: start no Prometheus (for coalmine's pods source)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *scenarioFile == "" {
		fmt.Fprintln(stderr, "coalmine-sandbox: --scenario is required")
		return 2
	}
	var out io.Writer = stderr
	if f, ok := stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		out = zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05"}
	}
	logger := zerolog.New(out).With().Timestamp().Logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *cluster {
		err = upCluster(ctx, logger, stdout, *scenarioFile, *dir, *readyFile, *adminAddr, *scrape, !*noProm)
	} else {
		err = up(ctx, logger, stdout, *scenarioFile, *dir, *readyFile, *adminAddr, *scrape)
	}
	if err != nil {
		logger.Error().Err(err).Msg("sandbox failed")
		return 1
	}
	return 0
}

// prepare loads the scenario and makes the working directory: dir, or a temporary one that
// cleanup removes.
func prepare(scenarioFile, dir string) (simulator.Scenario, string, func(), error) {
	sc, err := simulator.Load(scenarioFile)
	if err != nil {
		return sc, "", nil, err
	}
	if dir != "" {
		return sc, dir, func() {}, os.MkdirAll(dir, 0o755)
	}
	if dir, err = os.MkdirTemp("", "coalmine-sandbox-"); err != nil {
		return sc, "", nil, err
	}
	return sc, dir, func() { os.RemoveAll(dir) }, nil
}

func up(ctx context.Context, logger zerolog.Logger, stdout io.Writer, scenarioFile, dir, readyFile, adminAddr string, scrape time.Duration) error {
	sc, dir, cleanup, err := prepare(scenarioFile, dir)
	if err != nil {
		return err
	}
	defer cleanup()
	targets := filepath.Join(dir, "targets.json")
	sim, err := simulator.Start(ctx, sc, simulator.Options{TargetsFile: targets, Logger: logger.With().Str("component", "simulator").Logger()})
	if err != nil {
		return err
	}
	defer sim.Stop()
	logger.Info().Int("pods", len(sim.Targets())).Msg("simulator started")
	if adminAddr != "" {
		stopAdmin, err := serveAdmin(adminAddr, sim, logger)
		if err != nil {
			return err
		}
		defer stopAdmin()
	}

	prom, err := sandbox.StartPrometheus(ctx, sandbox.PrometheusOptions{Dir: filepath.Join(dir, "prometheus"), FileSDFiles: []string{targets}, ScrapeInterval: scrape})
	if err != nil {
		return err
	}
	defer prom.Stop()
	logger.Info().Str("url", prom.URL()).Msg("prometheus started; waiting for it to scrape every pod")
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := prom.WaitForTargets(waitCtx, len(sim.Targets())); err != nil {
		return fmt.Errorf("wait for targets: %w", err)
	}
	fmt.Fprintln(stdout, prom.URL())
	if readyFile != "" {
		if err := os.WriteFile(readyFile, []byte(prom.URL()+"\n"), 0o644); err != nil {
			return fmt.Errorf("write ready file: %w", err)
		}
	}
	logger.Info().Str("url", prom.URL()).Msg("sandbox ready")
	<-ctx.Done()
	logger.Info().Msg("tearing down")
	return nil
}
