package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// Files that StartPrometheus creates in PrometheusOptions.Dir.
const (
	ConfigFile = "prometheus.yml"
	DataDir    = "data"
	LogFile    = "prometheus.log"
)

// portAttempts is how often StartPrometheus picks a new free port when
// another process took the one it picked before Prometheus bound it.
const portAttempts = 3

// logLines is how many lines of Prometheus' log errors quote.
const logLines = 20

// Prometheus is a running Prometheus process started by StartPrometheus.
// Callers must stop it: `defer p.Stop()`, or use StartPrometheusT, which
// registers Stop with t.Cleanup so that a failing test still stops it.
type Prometheus struct {
	url         string
	dir         string
	removeDir   bool
	stopTimeout time.Duration
	api         v1.API
	http        *http.Client

	*process

	stopOnce sync.Once
	stopErr  error
}

// StartPrometheus writes a configuration into o.Dir, starts the Prometheus
// binary and waits until it answers GET /-/ready with 200. ctx bounds only the
// start: the process runs until Stop or Kill. On error nothing is left
// running.
func StartPrometheus(ctx context.Context, o PrometheusOptions) (*Prometheus, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	dir, removeDir := o.Dir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "coalmine-prometheus-"); err != nil {
			return nil, fmt.Errorf("start prometheus: %w", err)
		}
		removeDir = true
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	p, err := start(ctx, o, dir)
	if err != nil {
		if removeDir {
			_ = os.RemoveAll(dir) // the start error is the one that matters
		}
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	p.removeDir = removeDir
	return p, nil
}

// start writes the configuration and launches Prometheus in dir, retrying
// with another port if a picked free port was taken in the meantime.
func start(ctx context.Context, o PrometheusOptions, dir string) (*Prometheus, error) {
	cfg, err := renderConfig(o)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, ConfigFile)
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	if o.BasicAuth != nil {
		flag, err := writeWebConfig(dir, o.BasicAuth)
		if err != nil {
			return nil, err
		}
		o.Args = append(append([]string{}, o.Args...), flag)
	}
	host, port, _ := net.SplitHostPort(o.Listen) // checked by withDefaults
	for attempt := 1; ; attempt++ {
		addr := o.Listen
		if port == "0" {
			if addr, err = freeAddr(host); err != nil {
				return nil, err
			}
		}
		p, err := launch(o, dir, cfgPath, addr)
		if err != nil {
			return nil, err
		}
		err = p.waitReady(ctx, o.ReadyTimeout)
		if err == nil {
			return p, nil
		}
		p.Kill()
		if port == "0" && attempt < portAttempts && p.logs.contains("address already in use") {
			continue
		}
		return nil, err
	}
}

// launch starts the Prometheus process listening on addr.
func launch(o PrometheusOptions, dir, cfgPath, addr string) (*Prometheus, error) {
	args := append([]string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, DataDir),
		"--storage.tsdb.retention.time=1d",
		"--web.listen-address=" + addr,
	}, o.Args...)
	proc, err := startProcess("prometheus", o.Binary, args, dir, o.Stdout, o.Stderr, filepath.Join(dir, LogFile))
	if err != nil {
		return nil, err
	}
	p := &Prometheus{
		url:         "http://" + dialAddr(addr),
		dir:         dir,
		stopTimeout: o.StopTimeout,
		http:        &http.Client{Timeout: 2 * time.Second, Transport: transport(o.BasicAuth)},
		process:     proc,
	}
	client, err := api.NewClient(api.Config{Address: p.url, RoundTripper: transport(o.BasicAuth)})
	if err != nil {
		p.Kill()
		return nil, fmt.Errorf("prometheus client: %w", err)
	}
	p.api = v1.NewAPI(client)
	return p, nil
}

// freeAddr returns host:port with a port that was free a moment ago.
func freeAddr(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// dialAddr turns a listen address into one clients can connect to.
func dialAddr(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// URL returns Prometheus' base URL, e.g. http://127.0.0.1:41234.
func (p *Prometheus) URL() string { return p.url }

// Dir returns the directory holding the configuration, the TSDB and the log.
func (p *Prometheus) Dir() string { return p.dir }

// API returns a client for Prometheus' HTTP API.
func (p *Prometheus) API() v1.API { return p.api }

// Kill sends SIGKILL to Prometheus now and waits for it to exit, to simulate
// an outage. The files in Dir stay; call Stop afterwards to release them.
func (p *Prometheus) Kill() { p.kill() }

// Stop asks Prometheus to shut down with SIGTERM, sends SIGKILL if it is
// still running after the stop timeout, and removes Dir if StartPrometheus
// created it. It is safe to call more than once and after Kill; later calls
// return the first call's result. It reports a Prometheus that had to be
// killed or that exited on its own before Stop or Kill.
func (p *Prometheus) Stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop() })
	return p.stopErr
}

func (p *Prometheus) stop() error {
	var errs []error
	if err := p.terminate(p.stopTimeout); err != nil {
		errs = append(errs, err)
	}
	if p.removeDir {
		if err := os.RemoveAll(p.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", p.dir, err))
		}
	}
	return errors.Join(errs...)
}

// waitReady polls /-/ready until it answers 200, the process exits, ctx ends
// or timeout passes.
func (p *Prometheus) waitReady(ctx context.Context, timeout time.Duration) error {
	return waitProcessReady(ctx, timeout, p.url+"/-/ready", p.done, p.exited,
		func() string { return p.logs.lastLines(logLines) }, p.ready)
}

// ready reports whether /-/ready answers 200, and otherwise what it answered.
func (p *Prometheus) ready(ctx context.Context) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/-/ready", nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return false, err.Error()
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, resp.Status
}
