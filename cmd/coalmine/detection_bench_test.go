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
// same sandbox in one run, a gate per namespace ticking every 5 s. Prometheus scrapes every
// 15 s, as clusters commonly do. Two cases: v2 bad from the canary's start (the gates start as
// the regression does), and v2 going bad 30 s into a healthy analysis. Run with -benchtime 1x
// (make bench-pods).
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
	type gate struct {
		ns, source, when string
		pods, late       bool
	}
	gates := []gate{
		{"start-prometheus", "prometheus", "from the start", false, false}, {"start-pods", "pods", "from the start", true, false},
		{"late-prometheus", "prometheus", "after 30 s healthy", false, true}, {"late-pods", "pods", "after 30 s healthy", true, true},
	}
	scenario := func(bad func(gate) bool) simulator.Scenario {
		sc := simulator.Scenario{Seed: 13, Tick: model.Duration(100 * time.Millisecond)}
		for _, g := range gates {
			rate := 0.01
			if bad(g) {
				rate = 0.05
			}
			a := app(g.ns, rate, slow)
			a.RPS = 2200
			sc.Apps = append(sc.Apps, a)
		}
		return sc
	}
	for _, g := range gates {
		if _, err := c.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: g.ns}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	sim, err := simulator.Start(ctx, scenario(func(gate) bool { return false }), simulator.Options{Kube: c.Client(), Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Stop()
	e := &env{cluster: c, client: c.Client(), sim: sim, promURL: c.Prometheus().URL()}
	for _, g := range gates {
		applySeed(b, e.client, g.ns, nil)
	}
	// Let Prometheus hold a few scrapes of every pod, as in a running cluster.
	time.Sleep(3 * scrape)

	dir := b.TempDir()
	example, err := os.ReadFile("../../policies/examples/my-app.yaml")
	if err != nil {
		b.Fatal(err)
	}
	policy := func(g gate) string {
		p := strings.Replace(string(example), "interval: 30s", "interval: 5s", 1)
		p = strings.Replace(p, "namespace: default", "namespace: "+g.ns, 1)
		p = strings.Replace(p, "stepDuration: 5m", "stepDuration: 20m", 1)
		p = strings.Replace(p, "maxDuration: 30m", "maxDuration: 1h", 1) // three 20m steps must fit
		if g.pods {
			p = strings.Replace(p, "  prometheus:\n", "  source: pods\n  prometheus:\n", 1)
			p = strings.Replace(p, "requests: http_requests_total{ {{.Selector}} }", "requests: http_requests_total", 1)
			p = strings.Replace(p, `errors: http_requests_total{ {{.Selector}}, code=~"5.." }`, `errors: http_requests_total{code=~"5.."}`, 1)
			p = strings.Replace(p, "buckets: request_duration_seconds_bucket{ {{.Selector}} }", "buckets: request_duration_seconds_bucket", 1)
		}
		path := filepath.Join(dir, g.ns+".yaml")
		if err := os.WriteFile(path, []byte(p), 0o644); err != nil {
			b.Fatal(err)
		}
		return path
	}
	type ended struct {
		g    gate
		at   time.Time
		code int
		out  string
	}
	done := make(chan ended, len(gates))
	run := func(g gate) {
		go func() {
			r := e.gate(b, policy(g), "--timeout", "10m")
			done <- ended{g: g, at: time.Now(), code: r.code, out: r.stdout + r.stderr}
		}()
	}
	// v2 goes bad in the "start" namespaces as their gates start; the "late" gates first judge
	// a healthy v2 for 30 s.
	began := map[string]time.Time{}
	if err := sim.Apply(scenario(func(g gate) bool { return !g.late })); err != nil {
		b.Fatal(err)
	}
	for _, g := range gates {
		if !g.late {
			began[g.ns] = time.Now()
		}
		run(g)
	}
	time.Sleep(30 * time.Second)
	if err := sim.Apply(scenario(func(gate) bool { return true })); err != nil {
		b.Fatal(err)
	}
	for _, g := range gates {
		if g.late {
			began[g.ns] = time.Now()
		}
	}
	for range gates {
		r := <-done
		if r.code != exitFail {
			b.Fatalf("%s: exit %d, want a rollback:\n%s", r.g.ns, r.code, r.out)
		}
		took := r.at.Sub(began[r.g.ns]).Seconds()
		name := "start"
		if r.g.late {
			name = "late"
		}
		b.ReportMetric(took, "s-"+name+"-"+r.g.source)
		lines := strings.Split(strings.TrimSpace(r.out), "\n")
		b.Logf("%s source, regression %s: rolled back %.1fs after it began: %s", r.g.source, r.g.when, took, lines[len(lines)-1])
	}
	b.ReportMetric(scrape.Seconds(), "s-scrape-interval")
}
