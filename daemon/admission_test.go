package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/config"

	"github.com/coalmine/coalmine/policies"
)

// TestAdmission shows the policies a daemon refuses although they are valid: one that targets
// a namespace outside its --namespaces, and one whose Prometheus settings read a file outside
// its --credentials-dir (the ServiceAccount token, sent to a URL of the author's choosing).
func TestAdmission(t *testing.T) {
	creds := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "token"), []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(creds, "link")); err != nil {
		t.Fatal(err)
	}
	headerFile := func(file string) *policies.Policy {
		p := policies.Default()
		p.Spec.Target.Namespace = "shop"
		p.Spec.Prometheus.HTTP.HTTPHeaders = &config.Headers{Headers: map[string]config.Header{"X-Scope-OrgID": {Files: []string{file}}}}
		return &p
	}
	policy := func(ns, credentials string) *policies.Policy {
		p := policies.Default()
		p.Spec.Target.Namespace = ns
		if credentials != "" {
			p.Spec.Prometheus.HTTP.Authorization = &config.Authorization{Type: "Bearer", CredentialsFile: credentials}
		}
		return &p
	}
	tests := []struct {
		name    string
		opts    Options
		p       *policies.Policy
		wantErr string
	}{
		{"no bounds, no files", Options{}, policy("shop", ""), ""},
		{"a namespace it may act in", Options{Namespaces: []string{"shop", "cart"}}, policy("cart", ""), ""},
		{"a namespace outside", Options{Namespaces: []string{"shop"}}, policy("kube-system", ""), `targets namespace "kube-system", outside the daemon's --namespaces shop`},
		{"the ServiceAccount token with no credentials dir", Options{}, policy("shop", "/var/run/secrets/kubernetes.io/serviceaccount/token"), "reads no credentials files unless --credentials-dir"},
		{"a file in the credentials dir", Options{CredentialsDir: creds}, policy("shop", filepath.Join(creds, "token")), ""},
		{"a path that climbs out", Options{CredentialsDir: creds}, policy("shop", filepath.Join(creds, "..", filepath.Base(outside), "secret")), "outside --credentials-dir"},
		{"a link that points out", Options{CredentialsDir: creds}, policy("shop", filepath.Join(creds, "link")), "outside --credentials-dir"},
		{"a relative path", Options{CredentialsDir: creds}, policy("shop", "token"), "outside --credentials-dir"},
		{"a header's file in the credentials dir", Options{CredentialsDir: creds}, headerFile(filepath.Join(creds, "token")), ""},
		{"a header's file outside", Options{CredentialsDir: creds}, headerFile(filepath.Join(outside, "secret")), "outside --credentials-dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := admission(tt.opts)(tt.p)
			if (tt.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}
