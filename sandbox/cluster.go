package sandbox

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Defaults applied by StartCluster to a zero ClusterOptions field.
const (
	DefaultClusterStartTimeout = 90 * time.Second
	DefaultPodCIDR             = "127.0.1.0/24"
)

// ClusterOptions configures StartCluster. The zero value is usable.
type ClusterOptions struct {
	// BinDir holds the binaries, as scripts/install-kube.sh lays them out
	// (BinDir/<component>-<version>/<binary>) or flat (BinDir/<binary>, with
	// kwok's stage YAMLs next to kwok). Default: $COALMINE_KUBE_BIN, else
	// DefaultKubeBinDir.
	BinDir string
	// Dir holds the etcd data, certificates, kubeconfig files, stage
	// configuration and one log file per component (<component>.log). It is
	// created if missing. Default: a temporary directory that Stop removes.
	Dir string
	// PodCIDR is where kwok takes pod IPs from. It must be loopback so that
	// tests can listen on a pod's IP. Clusters running at the same time need
	// distinct ranges. Default: 127.0.1.0/24.
	PodCIDR string
	// WithPrometheus also starts a Prometheus 3.7.3 (built by
	// scripts/install-kube.sh) that discovers the cluster's pods and scrapes
	// those annotated prometheus.io/scrape: "true"; see
	// PrometheusOptions.KubernetesSDKubeconfig.
	WithPrometheus bool
	// Prometheus is the base configuration of that Prometheus. StartCluster
	// sets KubernetesSDKubeconfig, and Binary and Dir when they are empty.
	Prometheus PrometheusOptions
	// Controllers are more kube-controller-manager controllers to run beside the deployment,
	// replicaset and garbage-collector controllers, by their --controllers names
	// (horizontal-pod-autoscaler-controller, say).
	Controllers []string
	// ControllerManagerArgs are more kube-controller-manager flags, e.g.
	// "--horizontal-pod-autoscaler-sync-period=1s".
	ControllerManagerArgs []string
	// StartTimeout bounds the whole start. Default: 90s.
	StartTimeout time.Duration
	// StopTimeout is how long Stop waits for each component after SIGTERM
	// before SIGKILL. Default: 10s.
	StopTimeout time.Duration
}

// Cluster is a Kubernetes control plane on loopback started by StartCluster:
// etcd, kube-apiserver, kube-controller-manager (deployment, replicaset and
// garbage-collector controllers, and ClusterOptions.Controllers), kube-scheduler and kwok with one fake
// node, NodeName, whose pods become Ready (see UnreadyLabel) and get
// loopback IPs from ClusterOptions.PodCIDR. Callers must Stop it.
type Cluster struct {
	dir         string
	removeDir   bool
	stopTimeout time.Duration
	bins        kubeBinaries
	adminToken  string
	kubeconfig  string
	rest        *rest.Config
	client      kubernetes.Interface
	prometheus  *Prometheus
	startup     time.Duration

	procs []*process // in start order

	stopOnce sync.Once
	stopErr  error
}

// StartCluster starts a cluster and returns once the API server is ready and
// kwok reports the node Ready (about 5 s). ctx bounds only the start. On
// error nothing is left running.
func StartCluster(ctx context.Context, o ClusterOptions) (*Cluster, error) {
	begin := time.Now()
	if o.PodCIDR == "" {
		o.PodCIDR = DefaultPodCIDR
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = DefaultClusterStartTimeout
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.StartTimeout < 0 || o.StopTimeout < 0 {
		return nil, fmt.Errorf("start cluster: timeouts must not be negative")
	}
	if ip, _, err := net.ParseCIDR(o.PodCIDR); err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("start cluster: pod CIDR %q must be a loopback range like %s", o.PodCIDR, DefaultPodCIDR)
	}
	bins, err := findKubeBinaries(o.BinDir, o.WithPrometheus, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	c := &Cluster{dir: o.Dir, stopTimeout: o.StopTimeout, bins: bins}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "coalmine-cluster-"); err != nil {
			return nil, fmt.Errorf("start cluster: %w", err)
		}
		c.removeDir = true
	} else if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()
	if err := c.start(ctx, o); err != nil {
		_ = c.Stop() // the start error is the one that matters
		return nil, fmt.Errorf("start cluster in %s: %w", c.dir, err)
	}
	c.startup = time.Since(begin)
	return c, nil
}

// start brings the components up one after the other.
func (c *Cluster) start(ctx context.Context, o ClusterOptions) error {
	var err error
	if c.adminToken, err = randomToken(); err != nil {
		return err
	}
	if err := writeAuthFiles(c.dir, c.adminToken); err != nil {
		return err
	}
	etcdURL, err := c.startEtcd(ctx)
	if err != nil {
		return err
	}
	if err := c.startAPIServer(ctx, etcdURL); err != nil {
		return err
	}
	if c.client, err = kubernetes.NewForConfig(c.rest); err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	// Without --secure-port these two serve no health endpoint; a Deployment
	// that becomes Ready is what shows they work.
	controllers := append([]string{"deployment-controller", "replicaset-controller", "garbage-collector-controller"}, o.Controllers...)
	if _, err := c.launch("kube-controller-manager", c.bins.controllerManager, append([]string{
		"--kubeconfig=" + c.kubeconfig,
		"--controllers=" + strings.Join(controllers, ","),
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		// Reconcile quickly: tests wait on rollouts.
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
	}, o.ControllerManagerArgs...)...); err != nil {
		return err
	}
	if _, err := c.launch("kube-scheduler", c.bins.scheduler,
		"--kubeconfig="+c.kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
	); err != nil {
		return err
	}
	if err := c.startKwok(ctx, o.PodCIDR); err != nil {
		return err
	}
	if o.WithPrometheus {
		po := o.Prometheus
		if po.Binary == "" {
			po.Binary = c.bins.prometheus
		}
		if po.Dir == "" {
			po.Dir = filepath.Join(c.dir, "prometheus")
		}
		po.KubernetesSDKubeconfig = c.kubeconfig
		if c.prometheus, err = StartPrometheus(ctx, po); err != nil {
			return err
		}
	}
	for _, p := range c.procs {
		if err := p.exited(); err != nil {
			return err
		}
	}
	return nil
}

// launch starts a component with its log in Dir/<name>.log and adds it to
// the processes Stop stops.
func (c *Cluster) launch(name, bin string, args ...string) (*process, error) {
	p, err := startProcess(name, bin, args, c.dir, nil, nil, filepath.Join(c.dir, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.anyExitOnTerm = true
	c.procs = append(c.procs, p)
	return p, nil
}

// launchOnFreePorts starts a component on n ports that were free a moment
// before and waits until ready says so, trying other ports if another
// process took one of them in the meantime.
func (c *Cluster) launchOnFreePorts(ctx context.Context, name string, n int, start func(ports []string) (*process, error), ready func(ctx context.Context) (bool, string)) error {
	for attempt := 1; ; attempt++ {
		ports := make([]string, n)
		for i := range ports {
			addr, err := freeAddr("127.0.0.1")
			if err != nil {
				return err
			}
			_, ports[i], _ = net.SplitHostPort(addr)
		}
		p, err := start(ports)
		if err != nil {
			return err
		}
		err = waitReady(ctx, p, ready)
		if err == nil {
			return nil
		}
		if attempt < portAttempts && p.logs.contains("address already in use") {
			p.kill()
			c.procs = c.procs[:len(c.procs)-1]
			continue
		}
		return err
	}
}

// waitReady polls ready until it reports true, p exits or ctx ends.
func waitReady(ctx context.Context, p *process, ready func(ctx context.Context) (bool, string)) error {
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	last := "no answer yet"
	for {
		if err := p.exited(); err != nil {
			return err
		}
		ok, status := ready(ctx)
		if ok {
			return nil
		}
		last = status
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to become ready (%s): %w; last log lines:\n%s",
				p.name, last, ctx.Err(), p.logs.lastLines(logLines))
		case <-ticker.C:
		}
	}
}

// startEtcd starts a single-member etcd and returns its client URL.
func (c *Cluster) startEtcd(ctx context.Context) (string, error) {
	var clientURL string
	hc := &http.Client{Timeout: 2 * time.Second}
	err := c.launchOnFreePorts(ctx, "etcd", 2, func(ports []string) (*process, error) {
		clientURL = "http://127.0.0.1:" + ports[0]
		peerURL := "http://127.0.0.1:" + ports[1]
		return c.launch("etcd", c.bins.etcd,
			"--name=sandbox",
			"--data-dir="+filepath.Join(c.dir, "etcd"),
			"--listen-client-urls="+clientURL,
			"--advertise-client-urls="+clientURL,
			"--listen-peer-urls="+peerURL,
			"--initial-advertise-peer-urls="+peerURL,
			"--initial-cluster=sandbox="+peerURL,
			"--log-level=warn",
			// A test cluster need not survive a power cut; fsync dominates
			// its latency on a shared disk.
			"--unsafe-no-fsync",
		)
	}, func(ctx context.Context) (bool, string) {
		return httpReady(ctx, hc, clientURL+"/health", "", `"health":"true"`)
	})
	if err != nil {
		return "", err
	}
	return clientURL, nil
}

// startAPIServer starts kube-apiserver, waits for /readyz and writes the
// admin kubeconfig.
func (c *Cluster) startAPIServer(ctx context.Context, etcdURL string) error {
	certDir := filepath.Join(c.dir, "apiserver")
	var (
		server string
		caPEM  []byte
		hc     *http.Client
	)
	err := c.launchOnFreePorts(ctx, "kube-apiserver", 1, func(ports []string) (*process, error) {
		server, caPEM, hc = "https://127.0.0.1:"+ports[0], nil, nil
		// Certificates made for another port would still do, but start clean.
		_ = os.RemoveAll(certDir)
		return c.launch("kube-apiserver", c.bins.apiserver,
			"--etcd-servers="+etcdURL,
			"--bind-address=127.0.0.1",
			"--secure-port="+ports[0],
			"--cert-dir="+certDir,
			"--token-auth-file="+filepath.Join(c.dir, tokenAuthFile),
			"--service-account-key-file="+filepath.Join(c.dir, saPubFile),
			"--service-account-signing-key-file="+filepath.Join(c.dir, saKeyFile),
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--authorization-mode=RBAC",
			"--service-cluster-ip-range=10.0.0.0/24",
			// ServiceAccount would require a token controller; the
			// TaintNodesByCondition taint would need the node-lifecycle one.
			"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
			// The "kubernetes" Service's endpoints may not be loopback.
			"--endpoint-reconciler-type=none",
			"--profiling=false",
		)
	}, func(ctx context.Context) (bool, string) {
		if hc == nil {
			// --cert-dir: kube-apiserver writes a self-signed serving
			// certificate followed by its CA before it listens.
			b, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
			if err != nil {
				return false, "no serving certificate yet"
			}
			pool := x509.NewCertPool()
			if bytes.Count(b, []byte("BEGIN CERTIFICATE")) < 2 || !pool.AppendCertsFromPEM(b) {
				return false, "serving certificate not complete yet"
			}
			caPEM = b
			hc = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			}}
		}
		return httpReady(ctx, hc, server+"/readyz", c.adminToken, "ok")
	})
	if err != nil {
		return err
	}
	c.rest = &rest.Config{
		Host:            server,
		BearerToken:     c.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM},
		QPS:             100,
		Burst:           200,
	}
	c.kubeconfig = filepath.Join(c.dir, adminKubeconfigFile)
	return writeKubeconfig(c.kubeconfig, server, caPEM, "admin", c.adminToken)
}

// startKwok writes the stages, starts kwok, creates the node and waits
// until kwok has made it Ready.
func (c *Cluster) startKwok(ctx context.Context, podCIDR string) error {
	cfg, err := kwokConfig(c.bins.stages)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(c.dir, "kwok.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return fmt.Errorf("write kwok config: %w", err)
	}
	p, err := c.launch("kwok", c.bins.kwok,
		"--kubeconfig="+c.kubeconfig,
		"--config="+cfgPath,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+kwokNodeAnnotation+"=fake",
		"--cidr="+podCIDR,
		"--node-ip=127.0.0.1",
	)
	if err != nil {
		return err
	}
	if err := createKwokNode(ctx, c.client); err != nil {
		return err
	}
	return waitReady(ctx, p, func(ctx context.Context) (bool, string) {
		ok, err := nodeReady(ctx, c.client)
		if err != nil {
			return false, err.Error()
		}
		return ok, "node " + NodeName + " not Ready yet"
	})
}

// httpReady GETs url and reports whether it answered 200 with a body
// containing want, and otherwise what it answered.
func httpReady(ctx context.Context, hc *http.Client, url, token, want string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		return false, fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return true, ""
}

// Kubeconfig returns the path of a kubeconfig file for the cluster's admin
// (group system:masters), with context ContextName.
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// RESTConfig returns a copy of the admin's client configuration.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.rest) }

// Client returns a clientset authenticated as the admin.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// Prometheus returns the Prometheus started with WithPrometheus, or nil.
func (c *Cluster) Prometheus() *Prometheus { return c.prometheus }

// Dir returns the directory holding the cluster's files and logs.
func (c *Cluster) Dir() string { return c.dir }

// Kubectl returns the path of the kubectl binary matching the cluster.
func (c *Cluster) Kubectl() string { return c.bins.kubectl }

// StartupTime is how long StartCluster took until the cluster was ready.
func (c *Cluster) StartupTime() time.Duration { return c.startup }

// Stop stops Prometheus, kwok, the scheduler, the controller manager,
// kube-apiserver and etcd, in that order (SIGTERM, then SIGKILL after the
// stop timeout), and removes Dir if StartCluster created it. It is safe to
// call more than once; later calls return the first call's result. It
// reports a component that exited on its own or had to be killed.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Cluster) stop() error {
	var errs []error
	if c.prometheus != nil {
		if err := c.prometheus.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		if err := c.procs[i].terminate(c.stopTimeout); err != nil {
			errs = append(errs, err)
		}
	}
	if c.removeDir {
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", c.dir, err))
		}
	}
	return errors.Join(errs...)
}

// logTails returns the last lines of every component's log, for a test
// that failed.
func (c *Cluster) logTails(n int) string {
	var b strings.Builder
	for _, p := range c.procs {
		fmt.Fprintf(&b, "--- %s (%s/%s.log):\n%s\n", p.name, c.dir, p.name, p.logs.lastLines(n))
	}
	return b.String()
}
