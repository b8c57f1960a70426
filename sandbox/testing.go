package sandbox

import (
	"errors"
	"testing"
)

// StartPrometheusT starts a Prometheus for a test, in t.TempDir() unless
// o.Dir is set, and stops it in t.Cleanup, so that a failing test still
// stops it. If the test failed, the cleanup also logs the tail of
// Prometheus' log. A missing binary fails the test: it does not skip, since
// CI must run the integration tests.
func StartPrometheusT(t testing.TB, o PrometheusOptions) *Prometheus {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	p, err := StartPrometheus(t.Context(), o)
	if errors.Is(err, ErrPrometheusNotFound) {
		t.Fatalf("prometheus not found; run scripts/install-prometheus.sh or make test (%v)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prometheus at %s, last log lines:\n%s", p.URL(), p.logs.lastLines(40))
		}
		if err := p.Stop(); err != nil {
			t.Errorf("stop prometheus: %v", err)
		}
	})
	return p
}

// StartVictoriaMetricsT starts a VictoriaMetrics for a test, in t.TempDir() unless o.Dir is
// set, and stops it in t.Cleanup. A missing binary fails the test: it does not skip.
func StartVictoriaMetricsT(t testing.TB, o VictoriaMetricsOptions) *VictoriaMetrics {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	v, err := StartVictoriaMetrics(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("victoria-metrics at %s, last log lines:\n%s", v.URL(), v.logs.lastLines(40))
		}
		if err := v.Stop(); err != nil {
			t.Errorf("stop victoria-metrics: %v", err)
		}
	})
	return v
}
