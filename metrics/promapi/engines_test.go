package promapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
	"github.com/coalmine/coalmine/sandbox"
)

// The tests in this file query real engines of the Prometheus API (Debian's Prometheus and
// VictoriaMetrics, started by the sandbox) through the policy settings a user writes.

// versionsQuery is a value metric's PromQL that any engine answers without data: 0.5 for the
// baseline, 0.7 for the canary.
const versionsQuery = `label_replace(vector(0.5), "{{.VersionLabel}}", {{.Baseline}}, "", "") or label_replace(vector(0.7), "{{.VersionLabel}}", {{.Canary}}, "", "")`

// enginePolicy is a policy that reads url with the given spec.prometheus lines (indented by
// four spaces) and one value metric of query.
func enginePolicy(url, prometheus, query string) string {
	return fmt.Sprintf(`apiVersion: coalmine.dev/v1alpha1
kind: CanaryPolicy
metadata: {name: shop}
spec:
  target:
    namespace: shop
    app: cart
    baseline: {deployment: cart-v1, version: "1.4.0"}
    canary: {deployment: cart-v2, version: "1.5.0"}
  analysis: {judge: threshold}
  prometheus:
    url: %s
%s
  metrics:
    - name: ratio
      kind: value
      query: '%s'
      thresholds: {max: 1}
`, url, prometheus, query)
}

// loadEngine loads a policy as coalmine validate does, builds its client as gate does and
// returns both.
func loadEngine(t *testing.T, doc string) (*policies.Policy, *Prometheus, error) {
	t.Helper()
	ps, err := policies.Load("policy.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("the policy does not validate: %v", err)
	}
	p := ps[0]
	prom, err := New(p.Spec.Prometheus.URL, p.Spec.Prometheus, zerolog.Nop())
	return p, prom, err
}

// observeVersions runs the policy's metric and checks that each version got its number.
func observeVersions(t *testing.T, p *policies.Policy, prom *Prometheus, baseline, canary float64) error {
	t.Helper()
	q, err := metrics.NewQuery(p, p.Spec.Metrics[0], time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := prom.Observe(context.Background(), q, time.Now())
	if err != nil {
		return err
	}
	if obs.Baseline.Value != baseline || obs.Canary.Value != canary {
		t.Errorf("baseline %g, canary %g; want %g, %g", obs.Baseline.Value, obs.Canary.Value, baseline, canary)
	}
	t.Logf("%s answered baseline %g, canary %g", p.Spec.Prometheus.URL, obs.Baseline.Value, obs.Canary.Value)
	return nil
}

// forwardProxy is an HTTP forward proxy that records what it forwarded.
type forwardProxy struct {
	mu      sync.Mutex
	tenants []string // the X-Scope-OrgID of each request
	hosts   []string
}

func startForwardProxy(t *testing.T) (*forwardProxy, *httptest.Server) {
	fp := &forwardProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		fp.mu.Lock()
		fp.tenants = append(fp.tenants, r.Header.Get("X-Scope-OrgID"))
		fp.hosts = append(fp.hosts, r.URL.Host)
		fp.mu.Unlock()
		out := r.Clone(r.Context())
		out.RequestURI = ""
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return fp, srv
}

// TestTenantHeaderThroughProxy shows a policy with a tenant header (Mimir's and Cortex's
// X-Scope-OrgID, read from a file) and a proxy_url validate and query a real Prometheus,
// every query going through the proxy with the header.
func TestTenantHeaderThroughProxy(t *testing.T) {
	prom := sandbox.StartPrometheusT(t, sandbox.PrometheusOptions{})
	fp, proxy := startForwardProxy(t)
	tenant := filepath.Join(t.TempDir(), "tenant")
	if err := os.WriteFile(tenant, []byte("acme\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, client, err := loadEngine(t, enginePolicy(prom.URL(), fmt.Sprintf(`    http:
      http_headers:
        X-Scope-OrgID:
          files: [%s]
      proxy_url: %s`, tenant, proxy.URL), versionsQuery))
	if err != nil {
		t.Fatal(err)
	}
	if err := observeVersions(t, p, client, 0.5, 0.7); err != nil {
		t.Fatal(err)
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	promHost := strings.TrimPrefix(prom.URL(), "http://")
	if len(fp.tenants) == 0 || fp.tenants[0] != "acme" || fp.hosts[0] != promHost {
		t.Fatalf("the proxy forwarded %d requests, tenants %q to %q; want X-Scope-OrgID acme to %s", len(fp.tenants), fp.tenants, fp.hosts, promHost)
	}
	t.Logf("the proxy forwarded %d request(s) to %s with X-Scope-OrgID %q", len(fp.tenants), fp.hosts[0], fp.tenants[0])
}

// TestBasicAuthAgainstRealPrometheus puts a real Prometheus behind basic auth (its
// --web.config.file, a bcrypt hash): the right password_file reads it, a wrong password is an
// unavailable (denied) Prometheus, and a password_file that is not there is a mistake in the
// policy, refused before any query, which validation reports at its line.
func TestBasicAuthAgainstRealPrometheus(t *testing.T) {
	prom := sandbox.StartPrometheusT(t, sandbox.PrometheusOptions{BasicAuth: &sandbox.BasicAuth{Username: "coalmine", Password: "s3cret"}})
	dir := t.TempDir()
	for name, pw := range map[string]string{"right": "s3cret\n", "wrong": "guess\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	policy := func(file string) string {
		return enginePolicy(prom.URL(), fmt.Sprintf(`    http:
      basic_auth:
        username: coalmine
        password_file: %s`, filepath.Join(dir, file)), versionsQuery)
	}

	t.Run("the right password", func(t *testing.T) {
		p, client, err := loadEngine(t, policy("right"))
		if err != nil {
			t.Fatal(err)
		}
		if err := observeVersions(t, p, client, 0.5, 0.7); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a wrong password is denied", func(t *testing.T) {
		p, client, err := loadEngine(t, policy("wrong"))
		if err != nil {
			t.Fatal(err)
		}
		err = observeVersions(t, p, client, 0.5, 0.7)
		if !errors.Is(err, metrics.ErrUnavailable) || !strings.Contains(err.Error(), "401") {
			t.Fatalf("err %v, want ErrUnavailable with a 401", err)
		}
		t.Logf("wrong password: %v", err)
	})
	t.Run("a missing password file is a configuration error", func(t *testing.T) {
		p, _, err := loadEngine(t, policy("rigth"))
		if err == nil || errors.Is(err, metrics.ErrUnavailable) || !strings.Contains(err.Error(), "spec.prometheus.http.basic_auth.password_file cannot read") {
			t.Fatalf("err %v, want a configuration error naming the field", err)
		}
		t.Logf("missing password file, client build: %v", err)
		errs := p.CheckFiles()
		if want := `policy.yaml:16: spec.prometheus.http.basic_auth.password_file cannot read "` + filepath.Join(dir, "rigth") + `": no such file or directory`; errs.Error() != want {
			t.Fatalf("CheckFiles: %v\nwant %s", errs, want)
		}
		t.Logf("missing password file, validation: %v", errs)
	})
}

// TestSigV4AgainstRealPrometheus sends signed queries to a real Prometheus through a gateway
// that checks each signature as AWS would before passing the query on, as Amazon Managed
// Service for Prometheus does.
func TestSigV4AgainstRealPrometheus(t *testing.T) {
	prom := sandbox.StartPrometheusT(t, sandbox.PrometheusOptions{})
	target, err := url.Parse(prom.URL())
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	verified := 0
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkSigV4(r, "AKIDEXAMPLE", "s3cret", "eu-west-1", "aps"); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		mu.Lock()
		verified++
		mu.Unlock()
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(gateway.Close)
	for _, tt := range []struct {
		name, secret string
		wantErr      error
	}{
		{"the right key", "s3cret", nil},
		{"another key", "other", metrics.ErrUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, client, err := loadEngine(t, enginePolicy(gateway.URL, fmt.Sprintf(`    sigv4:
      region: eu-west-1
      access_key: AKIDEXAMPLE
      secret_key: %s`, tt.secret), versionsQuery))
			if err != nil {
				t.Fatal(err)
			}
			if err := observeVersions(t, p, client, 0.5, 0.7); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if verified == 0 {
		t.Error("no query passed the signature check")
	}
}

// TestVictoriaMetrics queries a second engine of the Prometheus API, Debian's VictoriaMetrics,
// with its own PromQL implementation: a value metric and an errors metric over imported
// series, with a tenant header that it ignores.
func TestVictoriaMetrics(t *testing.T) {
	vm := sandbox.StartVictoriaMetricsT(t, sandbox.VictoriaMetricsOptions{})
	at := time.Now().Add(-30 * time.Second).UnixMilli()
	var b strings.Builder
	for _, s := range []struct {
		version                string
		ratio, requests, fails float64
	}{{"1.4.0", 0.25, 1000, 10}, {"1.5.0", 0.75, 200, 8}} {
		sel := fmt.Sprintf(`namespace="shop",app="cart",version=%q`, s.version)
		fmt.Fprintf(&b, "cart_ratio{%s} %g %d\n", sel, s.ratio, at)
		fmt.Fprintf(&b, "http_requests_total{%s,code=\"200\"} %g %d\n", sel, s.requests-s.fails, at)
		fmt.Fprintf(&b, "http_requests_total{%s,code=\"500\"} %g %d\n", sel, s.fails, at)
	}
	if err := vm.Import(t.Context(), b.String()); err != nil {
		t.Fatal(err)
	}
	doc := enginePolicy(vm.URL(), `    http:
      http_headers: {X-Scope-OrgID: {values: [acme]}}`, `sum by ({{.VersionLabel}}) (cart_ratio{ {{.Selector}} })`)
	doc = strings.Replace(doc, "  metrics:\n", `  metrics:
    - name: errors
      kind: errors
      requests: sum by ({{.VersionLabel}}) (last_over_time(http_requests_total{ {{.Selector}} }[{{.Window}}]))
      errors: sum by ({{.VersionLabel}}) (last_over_time(http_requests_total{ {{.Selector}}, code=~"5.." }[{{.Window}}]))
      thresholds: {maxRatio: 10}
`, 1)
	p, client, err := loadEngine(t, doc)
	if err != nil {
		t.Fatal(err)
	}
	// Imported samples show once VictoriaMetrics has indexed them: ask again for a moment.
	var (
		errs metrics.Observation
		qerr error
	)
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := metrics.NewQuery(p, p.Spec.Metrics[0], time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		errs, qerr = client.Observe(context.Background(), q, time.Now())
		if qerr == nil && errs.Baseline.Present && errs.Canary.Present || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if qerr != nil {
		t.Fatal(qerr)
	}
	if errs.Baseline.Requests != 1000 || errs.Baseline.Errors != 10 || errs.Canary.Requests != 200 || errs.Canary.Errors != 8 {
		t.Errorf("errors metric: baseline %+v, canary %+v", errs.Baseline, errs.Canary)
	}
	t.Logf("victoria-metrics errors metric: baseline %g/%g, canary %g/%g", errs.Baseline.Errors, errs.Baseline.Requests, errs.Canary.Errors, errs.Canary.Requests)
	value := *p
	value.Spec.Metrics = p.Spec.Metrics[1:]
	if err := observeVersions(t, &value, client, 0.25, 0.75); err != nil {
		t.Fatal(err)
	}
}
