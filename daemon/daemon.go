package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/coalmine/coalmine/buildinfo"
	"github.com/coalmine/coalmine/notify"
	"github.com/coalmine/coalmine/policies"
)

// Options configure the daemon.
type Options struct {
	// PoliciesDir, when set, is a directory of policy files to run instead of the CanaryPolicy
	// objects of the cluster.
	PoliciesDir string
	// ReloadInterval is how often PoliciesDir is read again.
	ReloadInterval time.Duration
	// Namespaces limits the Deployments watched, and the namespaces a policy may target; empty
	// watches every namespace.
	Namespaces []string
	// CredentialsDir is where the files a policy's Prometheus settings read (credentials_file,
	// ca_file, ...) must be; empty refuses every such file. A policy is written by a team, the
	// daemon reads the files: without the bound, a policy could send the daemon's own token to
	// a URL of its choosing.
	CredentialsDir string
	// PrometheusURL, when set, overrides every policy's spec.prometheus.url.
	PrometheusURL string
	// MetricsAddr serves /metrics, /healthz and /readyz.
	MetricsAddr string
	// LeaderElect makes replicas take turns through a Lease; only the holder drives canaries.
	LeaderElect    bool
	LeaseName      string
	LeaseNamespace string
	Identity       string
	LeaseDuration  time.Duration
	RenewDeadline  time.Duration
	RetryPeriod    time.Duration
	// ShutdownTimeout bounds a clean stop: runners stop, the Lease is released, HTTP drains.
	ShutdownTimeout time.Duration
	// Workers is how many canaries tick at once. A tick mostly waits (for Prometheus, and up to
	// batchDelay for the other canaries' identical queries), so many workers are cheap.
	Workers int
}

// DefaultOptions are the options the command starts from.
func DefaultOptions() Options {
	host, _ := os.Hostname()
	return Options{
		ReloadInterval: 5 * time.Second, MetricsAddr: ":8080",
		LeaderElect: true, LeaseName: "coalmine", Identity: host,
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		ShutdownTimeout: 20 * time.Second, Workers: 128,
	}
}

// Daemon drives every canary its policies describe.
type Daemon struct {
	opts    Options
	client  kubernetes.Interface
	logger  zerolog.Logger
	reg     *prometheus.Registry
	metrics *selfMetrics
	store   *Store            // the policies of PoliciesDir; nil when they are objects
	dyn     dynamic.Interface // reads CanaryPolicy objects and writes their status
	ready   atomic.Bool
	leading atomic.Bool
	addr    atomic.Value // string: the address /metrics listens on

	mu      sync.Mutex
	control *controller // set while leading

	// notices delivers the canaries' notifications; notifier keeps their marks.
	notices  *notify.Dispatcher
	notifier *Notifier
}

// New returns a daemon. Its /metrics serves reg. It runs the policies of opts.PoliciesDir when
// set, and otherwise the cluster's CanaryPolicy objects, read through WithPolicyObjects' client.
func New(client kubernetes.Interface, opts Options, logger zerolog.Logger, reg *prometheus.Registry) *Daemon {
	d := &Daemon{
		opts: opts, client: client, logger: logger, reg: reg,
		metrics: newSelfMetrics(reg),
	}
	if opts.PoliciesDir != "" {
		d.store = NewStore(opts.PoliciesDir, logger).WithCheck(admission(opts))
	}
	sender := notify.NewSender(notify.KubeSecrets{Client: client}, buildinfo.Get().Version)
	// Options are all valid: the dispatcher cannot fail to start.
	d.notices, _ = notify.NewDispatcher(notify.Options{Send: sender.Send, Registerer: reg, Logger: logger})
	d.notifier = NewNotifier(d.notices, logger)
	return d
}

// WithPolicyObjects gives the daemon the client it watches CanaryPolicy objects with and writes
// their status through; without PoliciesDir it is required.
func (d *Daemon) WithPolicyObjects(dyn dynamic.Interface) *Daemon {
	d.dyn = dyn
	return d
}

// Addr is the address the HTTP server listens on, once Run has started it.
func (d *Daemon) Addr() string {
	a, _ := d.addr.Load().(string)
	return a
}

// Run serves HTTP, loads the policies, and drives canaries (while leading) until ctx is done,
// then stops within ShutdownTimeout, leaving every canary resumable from its annotations.
func (d *Daemon) Run(ctx context.Context) error {
	if d.store != nil {
		if d.opts.ReloadInterval <= 0 {
			return errors.New("reload interval must be > 0")
		}
		if _, err := d.store.Reload(); err != nil {
			d.metrics.reloads.WithLabelValues("failure").Inc()
			d.logger.Error().Err(err).Msg("policies loaded with problems; valid files are in force")
		} else {
			d.metrics.reloads.WithLabelValues("success").Inc()
		}
	} else if err := d.checkPolicyResource(); err != nil {
		return err
	}
	srv, err := d.serve()
	if err != nil {
		return err
	}
	d.ready.Store(true)
	var wg sync.WaitGroup
	wg.Go(func() { _ = d.notices.Run(ctx) })
	if d.store != nil {
		wg.Go(func() { d.reloadLoop(ctx) })
	}

	if d.opts.LeaderElect {
		err = d.elect(ctx)
	} else {
		d.lead(ctx)
	}
	wg.Wait()
	shutdown, cancel := context.WithTimeout(context.Background(), d.opts.ShutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(shutdown); serr != nil {
		d.logger.Warn().Err(serr).Msg("http server did not drain")
	}
	return err
}

// checkPolicyResource makes sure the cluster serves CanaryPolicy objects: without the
// CustomResourceDefinition, the informer would wait for ever and say nothing.
func (d *Daemon) checkPolicyResource() error {
	if d.dyn == nil {
		return errors.New("no policy directory and no client for CanaryPolicy objects")
	}
	gv := policies.Group + "/" + policies.Version
	list, err := d.client.Discovery().ServerResourcesForGroupVersion(gv)
	if err == nil {
		for _, r := range list.APIResources {
			if r.Name == policies.Resource {
				return nil
			}
		}
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("discover %s: %w", gv, err)
	}
	return fmt.Errorf("the cluster does not serve %s.%s: install the CustomResourceDefinition (kubectl apply -f deploy/crd/), or run policy files with --policies DIR", policies.Resource, policies.Group)
}

func (d *Daemon) elect(ctx context.Context) error {
	if d.opts.LeaseNamespace == "" {
		return errors.New("leader election needs a lease namespace (--lease-namespace or $POD_NAMESPACE)")
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: d.opts.LeaseName, Namespace: d.opts.LeaseNamespace},
		Client:     d.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: d.opts.Identity},
	}
	// The elector only signals; the canaries are driven here, so that the Lease is released
	// once they have stopped, never while a tick may still act (client-go's ReleaseOnCancel
	// releases it as soon as the context ends, before the leader's callback has returned).
	started := make(chan context.Context, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: d.opts.LeaseDuration,
		RenewDeadline: d.opts.RenewDeadline,
		RetryPeriod:   d.opts.RetryPeriod,
		Name:          d.opts.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) { started <- ctx },
			OnStoppedLeading: func() { d.logger.Info().Str("identity", d.opts.Identity).Msg("not leading") },
			OnNewLeader: func(id string) {
				d.logger.Info().Str("leader", id).Str("identity", d.opts.Identity).Msg("leader known")
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	// A replica that loses the Lease stops driving canaries and campaigns again.
	for ctx.Err() == nil {
		select {
		case <-started: // a term that ended before it was driven: nothing to drive
		default:
		}
		ran := make(chan struct{})
		go func() {
			defer close(ran)
			le.Run(ctx)
		}()
		select {
		case leadCtx := <-started:
			d.lead(leadCtx) // returns once every worker has stopped
			<-ran
			d.release(lock)
		case <-ran:
		}
	}
	return nil
}

// release gives the Lease up once this replica's canaries have stopped, so that a standby
// takes over at once instead of after the Lease expires. It writes only a Lease this replica
// still holds, at the version it read.
func (d *Daemon) release(lock *resourcelock.LeaseLock) {
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.RenewDeadline)
	defer cancel()
	rec, _, err := lock.Get(ctx)
	if err != nil || rec.HolderIdentity != d.opts.Identity {
		return
	}
	now := metav1.NewTime(time.Now())
	err = lock.Update(ctx, resourcelock.LeaderElectionRecord{
		LeaderTransitions: rec.LeaderTransitions, LeaseDurationSeconds: 1, RenewTime: now, AcquireTime: now,
	})
	if err != nil {
		d.logger.Warn().Err(err).Msg("lease not released; a standby takes over when it expires")
		return
	}
	d.logger.Info().Str("identity", d.opts.Identity).Msg("lease released")
}

// driver is this install's name in the records it writes: every replica of one install (one
// Lease) is one driver, so a standby resumes what the leader left; another install, or a gate,
// is another.
func (d *Daemon) driver() string {
	if d.opts.LeaderElect {
		return fmt.Sprintf("daemon %s/%s", d.opts.LeaseNamespace, d.opts.LeaseName)
	}
	return "daemon " + d.opts.Identity
}

// lead drives canaries until ctx is done or leadership is lost.
func (d *Daemon) lead(ctx context.Context) {
	d.leading.Store(true)
	d.metrics.leader.Set(1)
	defer func() {
		d.leading.Store(false)
		d.metrics.leader.Set(0)
	}()
	d.logger.Info().Str("identity", d.opts.Identity).Msg("leading: driving canaries")
	d.notifier.Reset()
	c := newController(d)
	d.mu.Lock()
	d.control = c
	d.mu.Unlock()
	c.run(ctx)
	d.mu.Lock()
	d.control = nil
	d.mu.Unlock()
	d.logger.Info().Str("identity", d.opts.Identity).Msg("canaries stopped")
}

func (d *Daemon) reloadLoop(ctx context.Context) {
	t := time.NewTicker(d.opts.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := d.store.Reload()
		if err != nil {
			d.metrics.reloads.WithLabelValues("failure").Inc()
		} else {
			d.metrics.reloads.WithLabelValues("success").Inc()
		}
		if len(changed) == 0 {
			continue
		}
		d.logger.Info().Strs("policies", changed).Msg("policies changed")
		d.mu.Lock()
		c := d.control
		d.mu.Unlock()
		if c != nil {
			for _, k := range changed {
				c.queue.Add(k)
			}
		}
	}
}

func (d *Daemon) serve() (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.ready.Load() {
			http.Error(w, "policies not loaded", http.StatusServiceUnavailable)
			return
		}
		role := "standby"
		if d.leading.Load() {
			role = "leader"
		}
		_, _ = fmt.Fprintf(w, "ok (%s)\n", role)
	})
	ln, err := net.Listen("tcp", d.opts.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", d.opts.MetricsAddr, err)
	}
	d.addr.Store(ln.Addr().String())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.logger.Error().Err(err).Msg("http server stopped")
		}
	}()
	d.logger.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics, /healthz, /readyz")
	return srv, nil
}
