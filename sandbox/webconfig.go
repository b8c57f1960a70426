package sandbox

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// WebConfigFile is the --web.config.file that StartPrometheus writes in
// PrometheusOptions.Dir when PrometheusOptions.BasicAuth is set.
const WebConfigFile = "web.yml"

// writeWebConfig writes Prometheus's web configuration for basic authentication of a and
// returns the flag that makes Prometheus read it.
func writeWebConfig(dir string, a *BasicAuth) (string, error) {
	// The lowest cost: Prometheus checks the hash at every request, and a test makes many.
	hash, err := bcrypt.GenerateFromPassword([]byte(a.Password), bcrypt.MinCost)
	if err != nil {
		return "", fmt.Errorf("hash the basic auth password: %w", err)
	}
	data, err := yaml.Marshal(map[string]any{"basic_auth_users": map[string]string{a.Username: string(hash)}})
	if err != nil {
		return "", fmt.Errorf("web config: %w", err)
	}
	path := filepath.Join(dir, WebConfigFile)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("write web config: %w", err)
	}
	return "--web.config.file=" + path, nil
}

// basicAuthTransport sends a user and password with every request.
type basicAuthTransport struct {
	auth BasicAuth
	next http.RoundTripper
}

func (t basicAuthTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(t.auth.Username, t.auth.Password)
	return t.next.RoundTrip(r)
}

// transport is the round tripper of the sandbox's own requests to Prometheus.
func transport(a *BasicAuth) http.RoundTripper {
	if a == nil {
		return http.DefaultTransport
	}
	return basicAuthTransport{auth: *a, next: http.DefaultTransport}
}
