package policies

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPrometheusFiles(t *testing.T) {
	doc := withPrometheus(`url: https://prometheus:9090
http:
  authorization: {credentials_file: /var/run/secrets/kubernetes.io/serviceaccount/token}
  tls_config: {ca_file: /etc/ca.pem, cert_file: /etc/cert.pem, key_file: /etc/key.pem}
  http_headers:
    X-Scope-OrgID: {files: [/etc/tenant]}
`)
	ps, err := Load("x.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	pr := ps[0].Spec.Prometheus
	got := pr.Files()
	slices.Sort(got)
	want := []string{"/etc/ca.pem", "/etc/cert.pem", "/etc/key.pem", "/etc/tenant", "/var/run/secrets/kubernetes.io/serviceaccount/token"}
	if !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	var fields []string
	for _, f := range pr.FileSettings() {
		fields = append(fields, f.Field)
	}
	wantFields := "spec.prometheus.http.authorization.credentials_file spec.prometheus.http.tls_config.ca_file spec.prometheus.http.tls_config.cert_file spec.prometheus.http.tls_config.key_file spec.prometheus.http.http_headers.X-Scope-OrgID.files[0]"
	if strings.Join(fields, " ") != wantFields {
		t.Errorf("fields %v, want %s", fields, wantFields)
	}
}

// TestPrometheusSecrets shows what tells apart two settings that print alike: the secrets, the
// header names, and a proxy URL's password, which prints as "xxxxx".
func TestPrometheusSecrets(t *testing.T) {
	load := func(http string) []string {
		t.Helper()
		ps, err := Load("x.yaml", []byte(withPrometheus("http:\n"+http)))
		if err != nil {
			t.Fatal(err)
		}
		return ps[0].Spec.Prometheus.Secrets()
	}
	tests := []struct{ name, a, b string }{
		{"passwords", "  basic_auth: {username: u, password: a}\n", "  basic_auth: {username: u, password: b}\n"},
		{"header secrets", "  http_headers: {X-Key: {secrets: [a]}}\n", "  http_headers: {X-Key: {secrets: [b]}}\n"},
		{"proxy passwords", "  proxy_url: http://u:a@proxy:3128\n", "  proxy_url: http://u:b@proxy:3128\n"},
		{"proxy connect headers", "  proxy_url: http://proxy:3128\n  proxy_connect_header: {X-A: [a]}\n", "  proxy_url: http://proxy:3128\n  proxy_connect_header: {X-A: [b]}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a, b := load(tt.a), load(tt.b); slices.Equal(a, b) {
				t.Errorf("secrets of both settings are %q", a)
			}
		})
	}
}

func TestSecretRefsAreRefused(t *testing.T) {
	_, err := Load("x.yaml", []byte(withPrometheus("http:\n  basic_auth:\n    username: u\n    password_ref: vault-pw\n")))
	want := "x.yaml:16: spec.prometheus.http.basic_auth.password_ref needs a secret manager, which coalmine does not have: use password_file"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestCheckFiles shows a file that cannot be read reported at the field that names it.
func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, http, want string
	}{
		{"readable", "  basic_auth: {username: u, password_file: " + pw + "}\n", ""},
		{"missing", "  basic_auth:\n    username: u\n    password_file: " + pw + "x\n",
			"x.yaml:16: spec.prometheus.http.basic_auth.password_file cannot read \"" + pw + "x\": no such file or directory"},
		{"a directory", "  authorization: {credentials_file: " + dir + "}\n",
			"x.yaml:14: spec.prometheus.http.authorization.credentials_file cannot read \"" + dir + "\": is a directory"},
		{"a header's file", "  http_headers:\n    X-Scope-OrgID: {files: [/nonexistent/tenant]}\n",
			"x.yaml:15: spec.prometheus.http.http_headers.X-Scope-OrgID.files[0] cannot read \"/nonexistent/tenant\": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := Load("x.yaml", []byte(withPrometheus("http:\n"+tt.http)))
			if err != nil {
				t.Fatal(err)
			}
			errs := ps[0].CheckFiles()
			if got := errs.Error(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
