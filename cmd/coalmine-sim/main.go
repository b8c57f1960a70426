// Command coalmine-sim plays the seed app (containersol/k8s-deployment-strategies) for coalmine's
// tests and demo: one /metrics endpoint per simulated pod, and a Prometheus file_sd targets file,
// or, in cluster mode, one /metrics endpoint per Ready pod of a Kubernetes cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"k8s.io/client-go/kubernetes"

	"github.com/coalmine/coalmine/simulator"
)

// shutdownTimeout bounds how long the admin server waits for in-flight requests on exit.
const shutdownTimeout = 5 * time.Second

const usage = `Usage: coalmine-sim --scenario FILE [flags]
       coalmine-sim --scenario FILE --kubeconfig FILE [--context NAME] [flags]

coalmine-sim plays the seed app (containersol/k8s-deployment-strategies) for coalmine's tests and
demo. Every simulated pod serves the app's http_requests_total and request_duration_seconds on its
own /metrics endpoint, and a Prometheus file_sd targets file lists the pods with the namespace,
pod, app and version labels of a Kubernetes scrape. It runs until SIGINT or SIGTERM.

With --kubeconfig or --context, coalmine-sim runs in cluster mode: the pods are the Ready pods of
the cluster (such as kwok's, on 127.0.1.x) labelled app and version as in the scenario and
annotated prometheus.io/scrape: "true" and prometheus.io/port. Each gets a listener on its pod IP
and port, for a Prometheus with kubernetes_sd_configs to scrape; the scenario's pods counts are
ignored. The app's rps is split over the pods its Service selects (all its pods when it has no
Service), so scaling a Deployment or switching a Service's selector moves the traffic.
--host, --base-port and --target-host do not apply; --targets-file is optional.

With --admin-addr, GET /scenario shows the running scenario (YAML, or JSON with
Accept: application/json), PUT /scenario replaces it (YAML, or JSON with
Content-Type: application/json) and GET /targets lists the pods.

Flags:
`

// config is the parsed command line.
type config struct {
	scenario    string
	targetsFile string
	adminAddr   string
	host        string
	basePort    int
	targetHost  string
	kubeconfig  string
	kubeContext string
	logFormat   string
	logLevel    string
}

// cluster reports whether the command line asks for cluster mode.
func (c config) cluster() bool { return c.kubeconfig != "" || c.kubeContext != "" }

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

// run parses args, then serves until a signal arrives. It returns the exit code: 0 on success and
// for --help, 2 for a bad command line, 1 when the simulator fails.
func run(args []string, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	logger, err := newLogger(stderr, cfg.logFormat, cfg.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "coalmine-sim: %v\n", err)
		return 2
	}
	var kube kubernetes.Interface
	if cfg.cluster() {
		if kube, err = kubeClient(cfg.kubeconfig, cfg.kubeContext); err != nil {
			logger.Error().Err(err).Msg("coalmine-sim failed")
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, kube, logger); err != nil {
		logger.Error().Err(err).Msg("coalmine-sim failed")
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("coalmine-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.scenario, "scenario", "", "scenario `file` (YAML) to play; required")
	fs.StringVar(&cfg.targetsFile, "targets-file", "", "Prometheus file_sd `file` to keep in step with the pods; none if empty")
	fs.StringVar(&cfg.adminAddr, "admin-addr", "", "`address` for the admin API (GET/PUT /scenario, GET /targets), such as 127.0.0.1:9100; none if empty")
	fs.StringVar(&cfg.host, "host", "127.0.0.1", "`host` the pods' /metrics listeners bind to")
	fs.IntVar(&cfg.basePort, "base-port", 0, "first `port` of the pods' listeners, counting up; 0 for random free ports")
	fs.StringVar(&cfg.targetHost, "target-host", "", "`host` written to the targets file, such as host.docker.internal for a Prometheus in a container; defaults to --host, or 127.0.0.1 when --host is 0.0.0.0")
	fs.StringVar(&cfg.kubeconfig, "kubeconfig", "", "kubeconfig `file` for cluster mode, where the pods are those of the cluster (default: $KUBECONFIG or ~/.kube/config when only --context is set)")
	fs.StringVar(&cfg.kubeContext, "context", "", "kubeconfig `context` for cluster mode; default: the current context")
	fs.StringVar(&cfg.logFormat, "log-format", "console", "log `format`: console or json")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	switch {
	case cfg.cluster() && (set["host"] || set["base-port"] || set["target-host"]):
		err = errors.New("--host, --base-port and --target-host do not apply in cluster mode (--kubeconfig, --context)")
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected arguments %q", fs.Args())
	case cfg.scenario == "":
		err = errors.New("--scenario is required")
	case cfg.basePort < 0 || cfg.basePort > 65535:
		err = fmt.Errorf("--base-port %d out of range", cfg.basePort)
	}
	if err != nil {
		fmt.Fprintf(stderr, "coalmine-sim: %v\n\n", err)
		fs.Usage()
		return config{}, err
	}
	return cfg, nil
}

func newLogger(w io.Writer, format, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !isTerminal(w)}
	default:
		return zerolog.Logger{}, fmt.Errorf("--log-format %q: want console or json", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// serve runs the simulator, and the admin server if asked for, until ctx is done. A non-nil kube
// selects cluster mode.
func serve(ctx context.Context, cfg config, kube kubernetes.Interface, logger zerolog.Logger) error {
	sc, err := simulator.Load(cfg.scenario)
	if err != nil {
		return err
	}
	var adminLn net.Listener
	if cfg.adminAddr != "" {
		// Listen before starting the pods, so that a busy admin port fails fast.
		if adminLn, err = net.Listen("tcp", cfg.adminAddr); err != nil {
			return fmt.Errorf("admin listener %q: %w", cfg.adminAddr, err)
		}
	}
	sim, err := simulator.Start(ctx, sc, simulator.Options{
		Kube:        kube,
		Host:        cfg.host,
		BasePort:    cfg.basePort,
		TargetHost:  cfg.targetHost,
		TargetsFile: cfg.targetsFile,
		Logger:      logger,
	})
	if err != nil {
		if adminLn != nil {
			_ = adminLn.Close() // never served
		}
		return err
	}
	logger.Info().Str("scenario", cfg.scenario).Str("targets_file", cfg.targetsFile).
		Bool("cluster", kube != nil).Int("pods", len(sim.Targets())).Msg("simulator started")

	var serveErr error
	if adminLn == nil {
		<-ctx.Done()
	} else {
		admin := &http.Server{Handler: sim.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
		errc := make(chan error, 1)
		go func() { errc <- admin.Serve(adminLn) }()
		logger.Info().Str("address", adminLn.Addr().String()).Msg("admin api listening")
		select {
		case <-ctx.Done():
		case err := <-errc:
			serveErr = fmt.Errorf("admin server: %w", err)
		}
		shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := admin.Shutdown(shutdownCtx); err != nil {
			serveErr = errors.Join(serveErr, fmt.Errorf("admin server shutdown: %w", err))
		}
	}
	logger.Info().Msg("simulator stopping")
	return errors.Join(serveErr, sim.Stop())
}

// isTerminal reports whether w is a terminal, where colours help rather than litter.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
