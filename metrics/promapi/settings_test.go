package promapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/prometheus/common/config"
	"github.com/prometheus/sigv4"
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

// checkSigV4 verifies a request's AWS Signature Version 4 as the service would: it signs the
// same request again with the secret key, at the time the request says it was signed, and
// compares. The body is read and put back.
func checkSigV4(r *http.Request, accessKey, secretKey, region, service string) error {
	auth := r.Header.Get("Authorization")
	m := regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$`).FindStringSubmatch(auth)
	if m == nil {
		return fmt.Errorf("no SigV4 signature in Authorization %q", auth)
	}
	if m[1] != accessKey || m[3] != region || m[4] != service {
		return fmt.Errorf("signed by %s for %s/%s, want %s for %s/%s", m[1], m[3], m[4], accessKey, region, service)
	}
	signedAt, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %w", err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	again, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	again.Header = http.Header{}
	for _, h := range strings.Split(m[5], ";") {
		if h != "host" && h != "content-length" {
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), service, region, signedAt); err != nil {
		return err
	}
	if want := again.Header.Get("Authorization"); want != auth {
		return fmt.Errorf("bad signature:\n got %s\nwant %s", auth, want)
	}
	return nil
}

// TestSigV4SignsQueries shows the sigv4 block signing every query with the keys it names, for
// the region and the aps service of Amazon Managed Service for Prometheus.
func TestSigV4SignsQueries(t *testing.T) {
	var checked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkSigV4(r, "AKIDEXAMPLE", "s3cret", "eu-west-1", "aps"); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		checked.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, vector(sample("0.5", "version", "v1.0.0"), sample("0.7", "version", "v2.0.0")))
	}))
	t.Cleanup(srv.Close)
	q := queryFor(t, policies.KindValue)
	for _, tt := range []struct {
		name, secret string
		wantErr      error
	}{
		{"the right key", "s3cret", nil},
		{"another key", "wrong", metrics.ErrUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := policies.Default().Spec.Prometheus
			cfg.SigV4 = &sigv4.SigV4Config{Region: "eu-west-1", AccessKey: "AKIDEXAMPLE", SecretKey: config.Secret(tt.secret)}
			p, err := New(srv.URL, cfg, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Observe(context.Background(), q, time.Now())
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err %v, want %v", err, tt.wantErr)
			}
		})
	}
	if checked.Load() != 1 {
		t.Errorf("%d queries passed the signature check, want 1", checked.Load())
	}
}

// TestSigV4WithoutCredentials shows a sigv4 block that finds no credentials (none given, none
// in AWS's default chain) refused when the client is built, as a configuration error.
func TestSigV4WithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	cfg := policies.Default().Spec.Prometheus
	cfg.SigV4 = &sigv4.SigV4Config{Region: "eu-west-1"}
	_, err := New("http://127.0.0.1:1", cfg, zerolog.Nop())
	if err == nil || errors.Is(err, metrics.ErrUnavailable) || !strings.Contains(err.Error(), "prometheus sigv4: could not get SigV4 credentials") {
		t.Errorf("err %v, want a configuration error about credentials", err)
	}
}
