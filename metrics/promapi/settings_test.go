package promapi

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/config"
	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// TestNewRefusesUnreadableFiles shows that a credentials file that is not there stops the
// client from being built, as a mistake in the policy (exit 2), rather than making every
// query fail as if Prometheus were down (exit 4, and a gate that holds until its deadline).
func TestNewRefusesUnreadableFiles(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "passwrod")
	tests := []struct {
		name  string
		set   func(*config.HTTPClientConfig)
		field string
	}{
		{"basic_auth password_file", func(c *config.HTTPClientConfig) {
			c.BasicAuth = &config.BasicAuth{Username: "u", PasswordFile: missing}
		}, "spec.prometheus.http.basic_auth.password_file"},
		{"authorization credentials_file", func(c *config.HTTPClientConfig) {
			c.Authorization = &config.Authorization{Type: "Bearer", CredentialsFile: missing}
		}, "spec.prometheus.http.authorization.credentials_file"},
		{"tls_config ca_file", func(c *config.HTTPClientConfig) { c.TLSConfig.CAFile = missing }, "spec.prometheus.http.tls_config.ca_file"},
		{"a header's file", func(c *config.HTTPClientConfig) {
			c.HTTPHeaders = &config.Headers{Headers: map[string]config.Header{"X-Scope-OrgID": {Files: []string{missing}}}}
		}, "spec.prometheus.http.http_headers.X-Scope-OrgID.files[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := policies.Default().Spec.Prometheus
			tt.set(&cfg.HTTP)
			_, err := New("http://127.0.0.1:1", cfg, zerolog.Nop())
			if err == nil {
				t.Fatal("New built a client whose credentials file is missing")
			}
			if errors.Is(err, metrics.ErrUnavailable) {
				t.Errorf("error %v wraps ErrUnavailable: a typo would read as Prometheus being down", err)
			}
			if want := tt.field + ` cannot read "` + missing + `": no such file or directory`; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		})
	}
}
