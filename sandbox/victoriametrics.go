package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ErrVictoriaMetricsNotFound means no runnable victoria-metrics binary was found. Tests fail
// on it rather than skip: CI must run them.
var ErrVictoriaMetricsNotFound = errors.New("victoria-metrics not found; run scripts/install-victoria-metrics.sh or make deps")

// EnvVictoriaMetrics names the environment variable that selects the victoria-metrics binary
// when VictoriaMetricsOptions.Binary is empty.
const EnvVictoriaMetrics = "COALMINE_VICTORIA_METRICS"

// debianVictoriaMetrics is where Debian's victoria-metrics package installs the binary.
const debianVictoriaMetrics = "/usr/bin/victoria-metrics"

// VictoriaMetricsOptions configures StartVictoriaMetrics. The zero value is usable.
type VictoriaMetricsOptions struct {
	// Binary is the victoria-metrics executable, a path or a name looked up on PATH. Default:
	// $COALMINE_VICTORIA_METRICS, else "victoria-metrics" on PATH, else
	// /usr/bin/victoria-metrics.
	Binary string
	// Dir holds the data (data/) and the log (victoria-metrics.log). It is created if missing.
	// Default: a temporary directory that Stop removes.
	Dir string
	// ReadyTimeout bounds the wait for /health. Default: 30s.
	ReadyTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL. Default: 10s.
	StopTimeout time.Duration
}

// VictoriaMetrics is a running single-node VictoriaMetrics: a second engine that answers
// Prometheus's query API (/api/v1/query, /api/v1/query_range) with its own implementation of
// PromQL. Data comes in through Import. Callers must stop it.
type VictoriaMetrics struct {
	url         string
	dir         string
	removeDir   bool
	stopTimeout time.Duration
	http        *http.Client

	*process

	stopOnce sync.Once
	stopErr  error
}

// StartVictoriaMetrics starts victoria-metrics on a free loopback port and waits until
// /health answers 200. ctx bounds only the start. On error nothing is left running.
func StartVictoriaMetrics(ctx context.Context, o VictoriaMetricsOptions) (*VictoriaMetrics, error) {
	bin, err := findVictoriaMetrics(o.Binary, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("start victoria-metrics: %w", err)
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	dir, removeDir := o.Dir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "coalmine-victoria-metrics-"); err != nil {
			return nil, fmt.Errorf("start victoria-metrics: %w", err)
		}
		removeDir = true
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start victoria-metrics: %w", err)
	}
	for attempt := 1; ; attempt++ {
		v, err := launchVictoriaMetrics(ctx, bin, dir, o)
		if err == nil {
			v.removeDir = removeDir
			return v, nil
		}
		if attempt < portAttempts && strings.Contains(err.Error(), "address already in use") {
			continue
		}
		if removeDir {
			_ = os.RemoveAll(dir) // the start error is the one that matters
		}
		return nil, fmt.Errorf("start victoria-metrics: %w", err)
	}
}

func launchVictoriaMetrics(ctx context.Context, bin, dir string, o VictoriaMetricsOptions) (*VictoriaMetrics, error) {
	addr, err := freeAddr("127.0.0.1")
	if err != nil {
		return nil, err
	}
	args := []string{
		"-httpListenAddr=" + addr,
		"-storageDataPath=" + filepath.Join(dir, DataDir),
		"-retentionPeriod=1d",
		// Samples are visible to queries as soon as they are stored, and answers are not
		// cached: a test imports and reads at once.
		"-search.latencyOffset=0s",
		"-search.disableCache",
	}
	proc, err := startProcess("victoria-metrics", bin, args, dir, nil, nil, filepath.Join(dir, "victoria-metrics.log"))
	if err != nil {
		return nil, err
	}
	v := &VictoriaMetrics{url: "http://" + addr, dir: dir, stopTimeout: o.StopTimeout, http: &http.Client{Timeout: 5 * time.Second}, process: proc}
	if err := v.waitReady(ctx, o.ReadyTimeout); err != nil {
		v.kill()
		return nil, err
	}
	return v, nil
}

// findVictoriaMetrics resolves the executable as findBinary does Prometheus's.
func findVictoriaMetrics(explicit string, getenv func(string) string) (string, error) {
	name := explicit
	if name == "" {
		name = getenv(EnvVictoriaMetrics)
	}
	if name == "" {
		if path, err := exec.LookPath("victoria-metrics"); err == nil {
			return path, nil
		}
		name = debianVictoriaMetrics
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("binary %q: %w: %w", name, err, ErrVictoriaMetricsNotFound)
	}
	return path, nil
}

// waitReady polls /health until it answers 200, the process exits, ctx ends or timeout passes.
func (v *VictoriaMetrics) waitReady(ctx context.Context, timeout time.Duration) error {
	return waitProcessReady(ctx, timeout, v.url+"/health", v.done, v.exited,
		func() string { return v.logs.lastLines(logLines) }, func(ctx context.Context) (bool, string) {
			resp, err := v.get(ctx, "/health")
			if err != nil {
				return false, err.Error()
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, resp.Status
		})
}

func (v *VictoriaMetrics) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.url+path, nil)
	if err != nil {
		return nil, err
	}
	return v.http.Do(req)
}

// URL returns the base URL, e.g. http://127.0.0.1:41234: a Prometheus URL for clients.
func (v *VictoriaMetrics) URL() string { return v.url }

// Import stores samples written in Prometheus's text exposition format, with timestamps in
// milliseconds (or none: now), and makes them visible to queries.
func (v *VictoriaMetrics) Import(ctx context.Context, text string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.url+"/api/v1/import/prometheus", strings.NewReader(text))
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	resp, err := v.http.Do(req)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("import: %s: %s", resp.Status, body)
	}
	// Imported samples are searchable once flushed from memory.
	resp, err = v.get(ctx, "/internal/force_flush")
	if err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	resp.Body.Close()
	return nil
}

// Stop asks VictoriaMetrics to shut down with SIGTERM, sends SIGKILL if it is still running
// after the stop timeout, and removes Dir if StartVictoriaMetrics created it. Later calls
// return the first call's result.
func (v *VictoriaMetrics) Stop() error {
	v.stopOnce.Do(func() {
		var errs []error
		if err := v.terminate(v.stopTimeout); err != nil {
			errs = append(errs, err)
		}
		if v.removeDir {
			if err := os.RemoveAll(v.dir); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", v.dir, err))
			}
		}
		v.stopErr = errors.Join(errs...)
	})
	return v.stopErr
}
