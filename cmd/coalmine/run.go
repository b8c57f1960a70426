package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"

	"github.com/coalmine/coalmine/buildinfo"
	"github.com/coalmine/coalmine/daemon"
)

const runLong = `The in-cluster daemon. Watches the CanaryPolicy objects of --namespaces (default: all), each
acting only in its own namespace, and writes their status on every transition (an invalid object
gets phase Invalid and an Event, and its last valid generation stays in force); or, with
--policies DIR, runs the policy files of DIR instead, read again when they change. Watches the
Deployments the policies name, and drives every canary that appears (a canary Deployment scaled
above 0, a Deployment rolling out the canary's version) with the same engine as 'coalmine gate',
many at once. Replicas elect a leader through a Lease; only the leader acts, and a standby that takes
over resumes every canary from its annotations. A policy may act only in --namespaces (when
given) and read credentials files only under --credentials-dir. Serves /metrics, /healthz and
/readyz. Stops cleanly on SIGTERM, leaving every canary resumable.`

func newRunCommand(s streams) *cobra.Command {
	opts := daemon.DefaultOptions()
	var (
		kf         kubeFlags
		lf         logFlags
		namespaces []string
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "The in-cluster daemon: drive every canary the CanaryPolicy objects (or policy files) describe",
		Long:  runLong,
		Example: `  coalmine run --namespaces shop,payments --credentials-dir /etc/coalmine/credentials
  coalmine run --policies /etc/coalmine/policies   # policy files instead of objects`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Namespaces = namespaces
			return exit(runDaemon(cmd.Context(), opts, &kf, &lf, s.err))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.PoliciesDir, "policies", "", "directory of policy files to run instead of the CanaryPolicy objects")
	fs.DurationVar(&opts.ReloadInterval, "reload-interval", opts.ReloadInterval, "how often the policy directory is read again")
	fs.StringSliceVar(&namespaces, "namespaces", nil, "namespaces to watch, the only ones a policy may target (comma-separated or repeated; default: all)")
	fs.StringSliceVar(&namespaces, "namespace", nil, "same as --namespaces")
	_ = fs.MarkHidden("namespace")
	fs.StringVar(&opts.CredentialsDir, "credentials-dir", "", "directory the files of policies' Prometheus settings (credentials_file, ca_file, ...) must be in (default: none allowed)")
	fs.StringVar(&opts.PrometheusURL, "prometheus-url", "", "override every policy's spec.prometheus.url")
	fs.StringVar(&opts.MetricsAddr, "metrics-addr", opts.MetricsAddr, "address for /metrics, /healthz and /readyz")
	fs.BoolVar(&opts.LeaderElect, "leader-elect", opts.LeaderElect, "elect a leader through a Lease; only the leader acts")
	fs.StringVar(&opts.LeaseName, "lease-name", opts.LeaseName, "name of the leader-election Lease")
	fs.StringVar(&opts.LeaseNamespace, "lease-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the Lease (default: $POD_NAMESPACE)")
	fs.StringVar(&opts.Identity, "identity", firstNonEmpty(os.Getenv("POD_NAME"), opts.Identity), "this replica's name in the Lease (default: $POD_NAME or the host name)")
	fs.DurationVar(&opts.LeaseDuration, "lease-duration", opts.LeaseDuration, "how long a standby waits before taking over a silent leader")
	fs.DurationVar(&opts.RenewDeadline, "renew-deadline", opts.RenewDeadline, "how long the leader keeps trying to renew before giving up")
	fs.DurationVar(&opts.RetryPeriod, "retry-period", opts.RetryPeriod, "how often replicas try to acquire or renew the Lease")
	fs.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", opts.ShutdownTimeout, "how long a clean stop may take")
	fs.IntVar(&opts.Workers, "workers", opts.Workers, "canaries ticking at once")
	kf.register(fs, false)
	// Reads come from informers; what reaches the API server is writes on transitions and the
	// rare fresh read, so 1,000 canaries fit well within these.
	fs.Float64Var(&kf.qps, "kube-api-qps", 50, "requests per second to the API server, sustained")
	fs.IntVar(&kf.burst, "kube-api-burst", 100, "requests to the API server in a burst")
	lf.register(fs)
	return cmd
}

func runDaemon(ctx context.Context, opts daemon.Options, kf *kubeFlags, lf *logFlags, stderr io.Writer) int {
	logger, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "coalmine run: %v\n", err)
		return exitUsage
	}
	client, err := kf.client()
	if err != nil {
		fmt.Fprintf(stderr, "coalmine run: %v\n", err)
		return exitUsage
	}
	cfg, err := kf.config()
	if err != nil {
		fmt.Fprintf(stderr, "coalmine run: %v\n", err)
		return exitUsage
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "coalmine run: %v\n", err)
		return exitUsage
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Collector())
	if err := daemon.New(client, opts, logger, reg).WithPolicyObjects(dyn).Run(ctx); err != nil {
		logger.Error().Err(err).Msg("daemon stopped")
		return exitUnavailable
	}
	logger.Info().Msg("daemon stopped cleanly")
	return exitPass
}

func firstNonEmpty(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return ""
}
