package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// These tests run the real Prometheus binary; see scripts/install-prometheus.sh.

func TestPrometheusScrapesFileSDTargets(t *testing.T) {
	t.Parallel()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		// The app's own version label must lose to the target label, as with
		// the kubernetes-pods job.
		fmt.Fprint(w, "# TYPE coalmine_sandbox_requests_total counter\n"+
			`coalmine_sandbox_requests_total{code="200",version="app-says"} 42`+"\n")
	}))
	t.Cleanup(app.Close)

	targetLabels := map[string]string{
		"namespace": "default",
		"app":       "my-app",
		"version":   "v1.0.0",
		"pod":       "p-1",
	}
	sd := filepath.Join(t.TempDir(), "targets.json")
	if err := WriteFileSD(sd, TargetGroup{
		Targets: []string{strings.TrimPrefix(app.URL, "http://")},
		Labels:  targetLabels,
	}); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	p := StartPrometheusT(t, PrometheusOptions{FileSDFiles: []string{sd}})
	t.Logf("prometheus ready at %s after %s", p.URL(), time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if err := p.WaitForTargets(ctx, 1); err != nil {
		t.Fatal(err)
	}
	vec, err := p.WaitForSamples(ctx, "coalmine_sandbox_requests_total", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first sample %s after start", time.Since(start).Round(time.Millisecond))
	if len(vec) != 1 {
		t.Fatalf("got %d series, want 1: %v", len(vec), vec)
	}
	s := vec[0]
	if s.Value != 42 {
		t.Errorf("value = %v, want 42", s.Value)
	}
	want := map[string]string{
		"job":              JobName,
		"instance":         strings.TrimPrefix(app.URL, "http://"),
		"code":             "200",
		"exported_version": "app-says",
	}
	for k, v := range targetLabels {
		want[k] = v
	}
	for name, value := range want {
		t.Run(name, func(t *testing.T) {
			if got := s.Metric[model.LabelName(name)]; string(got) != value {
				t.Errorf("label %s = %q, want %q (series %s)", name, got, value, s.Metric)
			}
		})
	}
}

func TestPrometheusFollowsFileSDChanges(t *testing.T) {
	t.Parallel()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "coalmine_sandbox_up 1")
	}))
	t.Cleanup(app.Close)
	sd := filepath.Join(t.TempDir(), "targets.yaml")
	if err := WriteFileSD(sd); err != nil {
		t.Fatal(err)
	}
	p := StartPrometheusT(t, PrometheusOptions{FileSDFiles: []string{sd}})

	// A pod appearing after Prometheus started, as v2 pods do in a rollout.
	start := time.Now()
	if err := WriteFileSD(sd, TargetGroup{
		Targets: []string{strings.TrimPrefix(app.URL, "http://")},
		Labels:  map[string]string{"version": "v2"},
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if _, err := p.WaitForSamples(ctx, `coalmine_sandbox_up{version="v2"}`, 1); err != nil {
		t.Fatal(err)
	}
	t.Logf("new target scraped %s after the file changed", time.Since(start).Round(time.Millisecond))
}

func TestPrometheusShutdown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		stop func(*testing.T, *Prometheus)
	}{
		{name: "kill", stop: func(_ *testing.T, p *Prometheus) { p.Kill() }},
		{name: "stop", stop: func(t *testing.T, p *Prometheus) {
			if err := p.Stop(); err != nil {
				t.Errorf("stop: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := StartPrometheusT(t, PrometheusOptions{})
			if err := get(p.URL() + "/-/ready"); err != nil {
				t.Fatalf("before %s: %v", tt.name, err)
			}
			tt.stop(t, p)
			if err := get(p.URL() + "/-/ready"); err == nil {
				t.Fatalf("after %s: %s still answers", tt.name, p.URL())
			}
			// Stop stays safe after either, and says nothing went wrong.
			for i := range 2 {
				if err := p.Stop(); err != nil {
					t.Errorf("stop #%d: %v", i+1, err)
				}
			}
		})
	}
}

func TestPrometheusStopReportsCrash(t *testing.T) {
	t.Parallel()
	// Not StartPrometheusT: its cleanup would rightly fail this test too.
	p, err := StartPrometheus(t.Context(), PrometheusOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	// Kill it behind the sandbox's back, as a crash would.
	if err := p.cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	<-p.done
	err = p.Stop()
	if err == nil || !strings.Contains(err.Error(), "exited on its own (signal: killed)") {
		t.Fatalf("stop after crash: got %v, want an error saying it exited on its own", err)
	}
}

func TestStartPrometheusRemovesItsTempDir(t *testing.T) {
	t.Parallel()
	p, err := StartPrometheus(t.Context(), PrometheusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if _, err := os.Stat(filepath.Join(p.Dir(), ConfigFile)); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after stop, %s: got %v, want it removed", p.Dir(), err)
	}
}

func TestStartPrometheusErrors(t *testing.T) {
	t.Parallel()
	notExecutable := filepath.Join(t.TempDir(), "prometheus")
	if err := os.WriteFile(notExecutable, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		opts     PrometheusOptions
		notFound bool
		want     []string
	}{
		{
			name:     "missing binary",
			opts:     PrometheusOptions{Binary: "/nonexistent/prometheus"},
			notFound: true,
			want:     []string{"/nonexistent/prometheus", "no such file", "run scripts/install-prometheus.sh"},
		},
		{
			name:     "binary not on PATH",
			opts:     PrometheusOptions{Binary: "no-such-prometheus"},
			notFound: true,
			want:     []string{"no-such-prometheus", "not found in $PATH"},
		},
		{
			name:     "not executable",
			opts:     PrometheusOptions{Binary: notExecutable},
			notFound: true,
			want:     []string{"not executable"},
		},
		{
			name: "binary exits at once",
			opts: PrometheusOptions{Binary: "false"},
			want: []string{"exited before becoming ready", "exit status 1"},
		},
		{
			// The real binary, so the error must quote its log.
			name: "prometheus rejects a flag",
			opts: PrometheusOptions{Args: []string{"--no-such-flag"}},
			want: []string{"exited before becoming ready", "no-such-flag"},
		},
		{
			name: "bad file_sd extension",
			opts: PrometheusOptions{FileSDFiles: []string{"targets.txt"}},
			want: []string{`file_sd file "targets.txt" must end in .json, .yml or .yaml`},
		},
		{
			name: "negative scrape interval",
			opts: PrometheusOptions{ScrapeInterval: -time.Second},
			want: []string{"scrape interval -1s must be at least 1ms"},
		},
		{
			name: "bad listen address",
			opts: PrometheusOptions{Listen: "localhost"},
			want: []string{`listen address "localhost"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Dir = t.TempDir()
			p, err := StartPrometheus(t.Context(), tt.opts)
			if err == nil {
				p.Stop()
				t.Fatal("started, want an error")
			}
			if got := errors.Is(err, ErrPrometheusNotFound); got != tt.notFound {
				t.Errorf("errors.Is(err, ErrPrometheusNotFound) = %v, want %v", got, tt.notFound)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestStartPrometheusTakenPort(t *testing.T) {
	t.Parallel()
	// An explicitly chosen port is not replaced by another: a clear error.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = StartPrometheus(t.Context(), PrometheusOptions{Dir: t.TempDir(), Listen: l.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("got %v, want an error quoting \"address already in use\"", err)
	}
}

// get fails unless GET url answers 200.
func get(url string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
