package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/coalmine/coalmine/sandbox"
	"github.com/coalmine/coalmine/simulator"
)

// BenchmarkRegressionToRollback is the time from the start of an injected regression (v2 goes
// from v1's 1% errors to 5%) to the rollback, judged from Prometheus and from the pods, on the
// same sandbox in one run: two namespaces with the same traffic, a gate each, ticking every
// 5 s, the regression injected in both at once. Prometheus scrapes every 15 s, as clusters
// commonly do. Run with -benchtime 1x (make bench-pods).
func BenchmarkRegressionToRollback(b *testing.B) {
	coalmineBinary(b)
	scrape := 15 * time.Second
	c, err := sandbox.StartCluster(context.Background(), sandbox.ClusterOptions{WithPrometheus: true, PodCIDR: "127.0.3.0/24",
		Prometheus: sandbox.PrometheusOptions{ScrapeInterval: scrape}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	healthy := simulator.Scenario{Seed: 13, Tick: model.Duration(100 * time.Millisecond), Apps: []simulator.App{
		app("detect-prometheus", 0.01, slow), app("detect-pods", 0.01, slow),
	}}
	for _, a := range healthy.Apps {
		if _, err := c.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.Namespace}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	sim, err := simulator.Start(ctx, healthy, simulator.Options{Kube: c.Client(), Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Stop()
	e := &env{cluster: c, client: c.Client(), sim: sim, promURL: c.Prometheus().URL()}
	for _, a := range healthy.Apps {
		applySeed(b, e.client, a.Namespace, nil)
	}
	// Let Prometheus hold a few scrapes of every pod, as in a running cluster.
	time.Sleep(3 * scrape)

	dir := b.TempDir()
	example, err := os.ReadFile("../../policies/examples/my-app.yaml")
	if err != nil {
		b.Fatal(err)
	}
	policy := func(ns string, pods bool) string {
		p := strings.Replace(string(example), "interval: 30s", "interval: 5s", 1)
		p = strings.Replace(p, "namespace: default", "namespace: "+ns, 1)
		p = strings.Replace(p, "stepDuration: 5m", "stepDuration: 20m", 1)
		if pods {
			p = strings.Replace(p, "  prometheus:\n", "  source: pods\n  prometheus:\n", 1)
			p = strings.Replace(p, "requests: http_requests_total{ {{.Selector}} }", "requests: http_requests_total", 1)
			p = strings.Replace(p, `errors: http_requests_total{ {{.Selector}}, code=~"5.." }`, `errors: http_requests_total{code=~"5.."}`, 1)
			p = strings.Replace(p, "buckets: request_duration_seconds_bucket{ {{.Selector}} }", "buckets: request_duration_seconds_bucket", 1)
		}
		path := filepath.Join(dir, ns+".yaml")
		if err := os.WriteFile(path, []byte(p), 0o644); err != nil {
			b.Fatal(err)
		}
		return path
	}
	type ended struct {
		source string
		at     time.Time
		code   int
		out    string
	}
	done := make(chan ended, 2)
	for _, g := range []struct {
		ns, source string
		pods       bool
	}{{"detect-prometheus", "prometheus", false}, {"detect-pods", "pods", true}} {
		go func() {
			r := e.gate(b, policy(g.ns, g.pods), "--timeout", "10m")
			done <- ended{source: g.source, at: time.Now(), code: r.code, out: r.stdout + r.stderr}
		}()
	}
	time.Sleep(30 * time.Second) // both gates judging a healthy v2
	regressed := healthy
	regressed.Apps = []simulator.App{app("detect-prometheus", 0.05, slow), app("detect-pods", 0.05, slow)}
	start := time.Now()
	if err := sim.Apply(regressed); err != nil {
		b.Fatal(err)
	}
	for range 2 {
		r := <-done
		if r.code != exitFail {
			b.Fatalf("%s source: exit %d, want a rollback:\n%s", r.source, r.code, r.out)
		}
		b.ReportMetric(r.at.Sub(start).Seconds(), "s-to-rollback-"+r.source)
		lines := strings.Split(strings.TrimSpace(r.out), "\n")
		b.Logf("%s source: rolled back %.1fs after the regression began: %s", r.source, r.at.Sub(start).Seconds(), lines[len(lines)-1])
	}
	b.ReportMetric(scrape.Seconds(), "s-scrape-interval")
}
