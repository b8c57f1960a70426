package sandbox

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults applied by StartPrometheus to a zero PrometheusOptions field.
const (
	DefaultScrapeInterval = time.Second
	DefaultListen         = "127.0.0.1:0"
	DefaultReadyTimeout   = 30 * time.Second
	DefaultStopTimeout    = 10 * time.Second
)

// PrometheusOptions configures StartPrometheus. The zero value is usable: it
// starts a Prometheus with no targets in a temporary directory.
type PrometheusOptions struct {
	// Binary is the prometheus executable, a path or a name looked up on PATH.
	// Default: $COALMINE_PROMETHEUS, else "prometheus" on PATH, else
	// /usr/bin/prometheus.
	Binary string
	// Dir holds prometheus.yml, the TSDB (data/) and the default log file
	// (prometheus.log). It is created if missing. Default: a temporary
	// directory that Stop removes.
	Dir string
	// ScrapeInterval is the global scrape and rule evaluation interval; the
	// scrape timeout is the same, capped at 10s. Default: 1s.
	ScrapeInterval time.Duration
	// FileSDFiles are file_sd_configs files (JSON or YAML target groups, see
	// WriteFileSD) scraped by the job "pods". Prometheus watches them, so
	// targets can be added and removed while it runs. Relative paths are
	// relative to the current directory, not to Dir.
	FileSDFiles []string
	// KubernetesSDKubeconfig, when set, is the kubeconfig file of a cluster
	// whose pods the job "kubernetes-pods" discovers (kubernetes_sd_configs,
	// role pod) and scrapes as the usual kubernetes-pods job does: pods
	// annotated prometheus.io/scrape: "true", at the pod IP and the
	// prometheus.io/port annotation, labelled namespace, pod and every pod
	// label. Needs a Prometheus built with Kubernetes discovery (the one
	// scripts/install-kube.sh builds, see StartCluster): Debian's rejects it.
	// A relative path is relative to the current directory.
	KubernetesSDKubeconfig string
	// Listen is the web listen address. A port of 0 picks a free port.
	// Default: 127.0.0.1:0.
	Listen string
	// Stdout and Stderr receive Prometheus' own logs. Default: Dir/prometheus.log.
	Stdout, Stderr io.Writer
	// Args are extra command-line flags, e.g. "--query.lookback-delta=30s".
	Args []string
	// BasicAuth, when set, puts Prometheus behind HTTP basic authentication with this user, as
	// its --web.config.file does (basic_auth_users, the password stored as a bcrypt hash).
	// Every endpoint then asks for it, and the sandbox's own readiness checks and API client
	// send it.
	BasicAuth *BasicAuth
	// ReadyTimeout bounds the wait for /-/ready. Default: 30s.
	ReadyTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	// Default: 10s.
	StopTimeout time.Duration
}

// BasicAuth is a user and password of HTTP basic authentication.
type BasicAuth struct {
	Username, Password string
}

// withDefaults returns o with defaults filled in and checks what can be
// checked before starting a process.
func (o PrometheusOptions) withDefaults() (PrometheusOptions, error) {
	if o.ScrapeInterval == 0 {
		o.ScrapeInterval = DefaultScrapeInterval
	}
	if o.ScrapeInterval < time.Millisecond {
		return o, fmt.Errorf("scrape interval %s must be at least 1ms", o.ScrapeInterval)
	}
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return o, fmt.Errorf("listen address %q: %w", o.Listen, err)
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if a := o.BasicAuth; a != nil && (a.Username == "" || a.Password == "" || strings.ContainsAny(a.Username, ":\n")) {
		return o, fmt.Errorf("basic auth needs a username (no ':') and a password")
	}
	if o.ReadyTimeout < 0 || o.StopTimeout < 0 {
		return o, fmt.Errorf("timeouts must not be negative")
	}
	files := make([]string, 0, len(o.FileSDFiles))
	for _, f := range o.FileSDFiles {
		// Prometheus' file_sd rejects other extensions with a less obvious message.
		switch strings.ToLower(filepath.Ext(f)) {
		case ".json", ".yml", ".yaml":
		default:
			return o, fmt.Errorf("file_sd file %q must end in .json, .yml or .yaml", f)
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			return o, fmt.Errorf("file_sd file %q: %w", f, err)
		}
		files = append(files, abs)
	}
	o.FileSDFiles = files
	if o.KubernetesSDKubeconfig != "" {
		abs, err := filepath.Abs(o.KubernetesSDKubeconfig)
		if err != nil {
			return o, fmt.Errorf("kubeconfig %q: %w", o.KubernetesSDKubeconfig, err)
		}
		o.KubernetesSDKubeconfig = abs
	}
	bin, err := findBinary(o.Binary, os.Getenv)
	if err != nil {
		return o, err
	}
	o.Binary = bin
	return o, nil
}
