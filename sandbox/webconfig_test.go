package sandbox

import (
	"net/http"
	"testing"
)

// TestPrometheusBehindBasicAuth starts a Prometheus that asks for a password: a request
// without it is refused, the sandbox's own client (readiness, queries) sends it.
func TestPrometheusBehindBasicAuth(t *testing.T) {
	p := StartPrometheusT(t, PrometheusOptions{BasicAuth: &BasicAuth{Username: "coalmine", Password: "s3cret"}})
	resp, err := http.Get(p.URL() + "/api/v1/query?query=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a query without the password answered %s, want 401", resp.Status)
	}
	if _, err := p.Query(t.Context(), "vector(1)"); err != nil {
		t.Errorf("the sandbox's own query: %v", err)
	}
}
