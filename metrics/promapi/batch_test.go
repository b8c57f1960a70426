package promapi

import (
	"context"
	"fmt"
	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/metrics/metricstest"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/policies"
)

func queryIn(t testing.TB, ns string, kind policies.MetricKind) metrics.Query {
	t.Helper()
	p := metricstest.Policy(t)
	p.Spec.Target.Namespace = ns
	for _, m := range p.Spec.Metrics {
		if m.Kind == kind {
			q, err := metrics.NewQuery(p, m, 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return q
		}
	}
	t.Fatalf("no %s metric", kind)
	return metrics.Query{}
}

func TestFamily(t *testing.T) {
	a, b := queryIn(t, "team-a", policies.KindErrors), queryIn(t, "team-b", policies.KindErrors)
	fa, err := family(a)
	if err != nil || fa == "" {
		t.Fatalf("family: %q, %v", fa, err)
	}
	if fb, _ := family(b); fb != fa {
		t.Errorf("queries that differ only in namespace have different families:\n%s\n%s", fa, fb)
	}
	if fl, _ := family(queryIn(t, "team-a", policies.KindLatency)); fl == fa {
		t.Error("two metrics share a family")
	}
	other := a
	other.Canary = "v3.0.0"
	other.PromQL = strings.ReplaceAll(a.PromQL, `v2\\.0\\.0`, `v3\\.0\\.0`)
	if fo, _ := family(other); fo == fa {
		t.Error("queries for other versions share a family")
	}
	none := a
	none.PromQL = `sum by (version) (up)`
	if fn, _ := family(none); fn != "" {
		t.Errorf("a query selecting no namespace got family %q", fn)
	}
}

func TestBatchPromQL(t *testing.T) {
	for _, kind := range []policies.MetricKind{policies.KindErrors, policies.KindLatency} {
		t.Run(string(kind), func(t *testing.T) {
			q := queryIn(t, "team-a", kind)
			got, err := batchPromQL(q, []string{"team-b", "team.a|x", "team-a"})
			if err != nil {
				t.Fatal(err)
			}
			expr, err := parser.ParseExpr(got)
			if err != nil {
				t.Fatalf("batched query does not parse: %v\n%s", err, got)
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				switch n := n.(type) {
				case *parser.VectorSelector:
					for _, m := range n.LabelMatchers {
						if m.Name != "namespace" {
							continue
						}
						if m.Type != labels.MatchRegexp {
							t.Errorf("namespace matcher %s", m)
						}
						for ns, want := range map[string]bool{"team-a": true, "team-b": true, "team.a|x": true, "teamXa": false, "team": false, "x": false} {
							if m.Matches(ns) != want {
								t.Errorf("matcher %s matches %q: %t", m, ns, !want)
							}
						}
					}
				case *parser.AggregateExpr:
					if !strings.Contains(strings.Join(n.Grouping, ","), "namespace") {
						t.Errorf("aggregation %s drops the namespace", n)
					}
				}
				return nil
			})
		})
	}
}

func TestBatcherSendsOneQuery(t *testing.T) {
	var calls atomic.Int64
	var got string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_ = r.ParseForm()
		mu.Lock()
		got = r.Form.Get("query")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(vector(
			sample("1000", "namespace", "team-a", "version", "v1.0.0", metrics.PartLabel, "requests"),
			sample("100", "namespace", "team-a", "version", "v2.0.0", metrics.PartLabel, "requests"),
			sample("7", "namespace", "team-a", "version", "v2.0.0", metrics.PartLabel, "errors"),
			sample("2000", "namespace", "team-b", "version", "v1.0.0", metrics.PartLabel, "requests"),
			sample("200", "namespace", "team-b", "version", "v2.0.0", metrics.PartLabel, "requests"),
		)))
	}))
	defer srv.Close()
	cfg := policies.Default().Spec.Prometheus
	prom, err := New(srv.URL, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	b := NewBatcher(prom, 100*time.Millisecond, zerolog.Nop())
	at := time.Unix(1_800_000_000, 0)
	obs := map[string]metrics.Observation{}
	var wg sync.WaitGroup
	for _, ns := range []string{"team-a", "team-b"} {
		q := queryIn(t, ns, policies.KindErrors)
		wg.Go(func() {
			o, err := b.Observe(context.Background(), q, at)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			obs[ns] = o
			mu.Unlock()
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d queries, want 1", n)
	}
	if !strings.Contains(got, `namespace=~"team-a|team-b"`) {
		t.Errorf("batched query does not select both namespaces:\n%s", got)
	}
	a, bb := obs["team-a"], obs["team-b"]
	if a.Canary.Requests != 100 || a.Canary.Errors != 7 || a.Baseline.Requests != 1000 {
		t.Errorf("team-a got %+v", a)
	}
	if bb.Canary.Requests != 200 || bb.Canary.Errors != 0 || bb.Baseline.Requests != 2000 {
		t.Errorf("team-b got %+v", bb)
	}
	if !strings.Contains(a.Query, `namespace="team-a"`) {
		t.Errorf("an observation reports the batched query instead of its own: %s", a.Query)
	}
}

// TestBatcherSplitsLargeBatches shows 450 canaries asking at once: three queries of at most
// maxBatchNamespaces namespaces each, so that no answer nears maxAnswerBytes, and every canary
// answered.
func TestBatcherSplitsLargeBatches(t *testing.T) {
	var calls atomic.Int64
	var mu sync.Mutex
	var sizes []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_ = r.ParseForm()
		mu.Lock()
		sizes = append(sizes, strings.Count(r.Form.Get("query"), "team-")/2) // each namespace in both parts, requests and errors
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(vector()))
	}))
	defer srv.Close()
	prom, err := New(srv.URL, policies.Default().Spec.Prometheus, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	// A full batch goes at once; the last waits its delay, long enough for every straggler of a
	// loaded machine.
	b := NewBatcher(prom, 3*time.Second, zerolog.Nop())
	at := time.Unix(1_800_000_000, 0)
	var wg sync.WaitGroup
	for i := range 450 {
		q := queryIn(t, fmt.Sprintf("team-%d", i), policies.KindErrors)
		wg.Go(func() {
			if _, err := b.Observe(context.Background(), q, at); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	total, full := 0, 0
	for _, n := range sizes {
		total += n
		if n > maxBatchNamespaces {
			t.Errorf("a batch of %d namespaces, want at most %d", n, maxBatchNamespaces)
		}
		if n == maxBatchNamespaces {
			full++
		}
	}
	if full != 2 || total != 450 {
		t.Errorf("%d queries over %d namespaces (%v), want two full batches of %d and every namespace once", calls.Load(), total, sizes, maxBatchNamespaces)
	}
}
