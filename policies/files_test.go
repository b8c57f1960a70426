package policies

import (
	"slices"
	"testing"

	"github.com/prometheus/common/config"
)

func TestPrometheusFiles(t *testing.T) {
	doc := `apiVersion: coalmine.dev/v1alpha1
kind: CanaryPolicy
metadata: {name: shop}
spec:
  target:
    namespace: shop
    app: cart
    baseline: {deployment: cart-v1, version: "1.4.0"}
    canary: {deployment: cart-v2, version: "1.5.0"}
  prometheus:
    url: https://prometheus:9090
    http:
      authorization: {credentials_file: /var/run/secrets/kubernetes.io/serviceaccount/token}
      tls_config: {ca_file: /etc/ca.pem, cert_file: /etc/cert.pem, key_file: /etc/key.pem}
  metrics:
    - name: errors
      kind: errors
      requests: http_requests_total{ {{.Selector}} }
      errors: http_requests_total{ {{.Selector}}, code=~"5.." }
`
	ps, err := Load("x.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	// Headers from files (http_headers, not yet loadable from YAML here) count too.
	pr := ps[0].Spec.Prometheus
	pr.HTTP.HTTPHeaders = &config.Headers{Headers: map[string]config.Header{"X-Scope-OrgID": {Files: []string{"/etc/tenant"}}}}
	got := pr.Files()
	slices.Sort(got)
	want := []string{"/etc/ca.pem", "/etc/cert.pem", "/etc/key.pem", "/etc/tenant", "/var/run/secrets/kubernetes.io/serviceaccount/token"}
	if !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
}
