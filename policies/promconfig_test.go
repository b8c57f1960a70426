package policies

import (
	"strings"
	"testing"

	"github.com/prometheus/common/config"
)

// withPrometheus is a valid policy whose spec.prometheus block is body, indented under it;
// spec.prometheus is on line 12, body starts on line 13.
func withPrometheus(body string) string {
	var b strings.Builder
	b.WriteString(`apiVersion: coalmine.dev/v1alpha1
kind: CanaryPolicy
metadata:
  name: shop
  labels: {tenant: &tenant acme}
spec:
  target:
    namespace: shop
    app: cart
    baseline: {deployment: cart-v1, version: "1.4.0"}
    canary: {deployment: cart-v2, version: "1.5.0"}
  prometheus:
`)
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	b.WriteString(`  metrics:
    - name: errors
      kind: errors
      requests: http_requests_total{ {{.Selector}} }
      errors: http_requests_total{ {{.Selector}}, code=~"5.." }
`)
	return b.String()
}

// TestHTTPBlockLoadsAsPrometheusDoes loads every kind of setting of Prometheus's http_config
// from a policy: the inline header map, the proxy settings, each kind of auth and TLS.
func TestHTTPBlockLoadsAsPrometheusDoes(t *testing.T) {
	doc := withPrometheus(`url: https://mimir.example:8080/prometheus
http:
  http_headers:
    X-Scope-OrgID:
      values: [*tenant]
    X-Extra:
      secrets: [s3cret]
      files: [/etc/extra]
  proxy_url: http://user:pw@proxy.example:3128
  no_proxy: localhost,.svc
  proxy_connect_header:
    Proxy-Authorization: [Basic abc]
  follow_redirects: false
  enable_http2: false
  basic_auth:
    username: coalmine
    password_file: /etc/pw
  tls_config:
    ca_file: /etc/ca.pem
    cert_file: /etc/cert.pem
    key_file: /etc/key.pem
    server_name: mimir
    min_version: TLS12
`)
	ps, err := Load("x.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	h := ps[0].Spec.Prometheus.HTTP
	tests := []struct {
		name      string
		got, want any
	}{
		{"tenant header through an alias", strings.Join(h.HTTPHeaders.Headers["X-Scope-OrgID"].Values, ","), "acme"},
		{"header secret", h.HTTPHeaders.Headers["X-Extra"].Secrets[0], config.Secret("s3cret")},
		{"header file", h.HTTPHeaders.Headers["X-Extra"].Files[0], "/etc/extra"},
		{"proxy url", h.ProxyURL.String(), "http://user:pw@proxy.example:3128"},
		{"no proxy", h.NoProxy, "localhost,.svc"},
		{"proxy connect header", string(h.ProxyConnectHeader["Proxy-Authorization"][0]), "Basic abc"},
		{"follow redirects", h.FollowRedirects, false},
		{"http2", h.EnableHTTP2, false},
		{"basic auth", h.BasicAuth.Username + " " + h.BasicAuth.PasswordFile, "coalmine /etc/pw"},
		{"tls", h.TLSConfig.CAFile + " " + h.TLSConfig.ServerName + " " + h.TLSConfig.MinVersion.String(), "/etc/ca.pem mimir TLS12"},
		{"line of a header inside the block", ps[0].Origin.Line("spec.prometheus.http.http_headers.X-Extra.files"), 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}

	t.Run("defaults when the block is left out", func(t *testing.T) {
		ps, err := Load("x.yaml", []byte(withPrometheus("url: http://prometheus:9090\n")))
		if err != nil {
			t.Fatal(err)
		}
		if h := ps[0].Spec.Prometheus.HTTP; !h.FollowRedirects || !h.EnableHTTP2 {
			t.Errorf("follow_redirects %v, enable_http2 %v, want Prometheus's defaults (true, true)", h.FollowRedirects, h.EnableHTTP2)
		}
	})
	t.Run("a deprecated bearer_token_file becomes authorization, as in Prometheus", func(t *testing.T) {
		ps, err := Load("x.yaml", []byte(withPrometheus("http:\n  bearer_token_file: /var/run/token\n")))
		if err != nil {
			t.Fatal(err)
		}
		if a := ps[0].Spec.Prometheus.HTTP.Authorization; a == nil || a.CredentialsFile != "/var/run/token" || a.Type != "Bearer" {
			t.Errorf("authorization %+v", a)
		}
	})
	t.Run("oauth2", func(t *testing.T) {
		ps, err := Load("x.yaml", []byte(withPrometheus(`http:
  oauth2:
    client_id: coalmine
    client_secret_file: /etc/oauth
    token_url: https://idp.example/token
    scopes: [read]
    endpoint_params: {audience: mimir}
`)))
		if err != nil {
			t.Fatal(err)
		}
		if o := ps[0].Spec.Prometheus.HTTP.OAuth2; o == nil || o.ClientSecretFile != "/etc/oauth" || o.EndpointParams["audience"] != "mimir" {
			t.Errorf("oauth2 %+v", o)
		}
	})
}

// TestHTTPBlockErrors shows that a mistake inside the http block is reported at its own line
// and field path, whether yaml v2 or one of prometheus/common's validations finds it.
func TestHTTPBlockErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"unknown field in a header", "http:\n  http_headers:\n    X-Scope-OrgID:\n      valuez: [acme]\n",
			"x.yaml:16: spec.prometheus.http.http_headers.X-Scope-OrgID.valuez is not a known field"},
		{"unknown field at the top", "http:\n  follow_redirects: true\n  headers: {a: b}\n",
			"x.yaml:15: spec.prometheus.http.headers is not a known field"},
		{"a header that is not a mapping", "http:\n  http_headers:\n    X-Scope-OrgID: acme\n",
			`x.yaml:15: spec.prometheus.http.http_headers.X-Scope-OrgID must be a mapping, got "acme"`},
		{"a bad proxy url", "http:\n  proxy_url: \"http://[::1\"\n",
			`x.yaml:14: spec.prometheus.http.proxy_url has a bad value: parse "http://[::1": missing ']' in host`},
		{"a bad TLS version", "http:\n  tls_config:\n    server_name: x\n    min_version: TLS9\n",
			"x.yaml:16: spec.prometheus.http.tls_config.min_version has a bad value: unknown TLS version: TLS9"},
		{"ca and ca_file", "http:\n  tls_config:\n    ca: x\n    ca_file: /etc/ca\n",
			"x.yaml:14: spec.prometheus.http.tls_config has a bad value: at most one of ca, ca_file & ca_ref must be configured"},
		{"a reserved header", "http:\n  http_headers:\n    Authorization: {values: [x]}\n",
			`x.yaml:13: spec.prometheus.http has a bad value: setting header "Authorization" is not allowed`},
		{"no_proxy without proxy_url", "http:\n  no_proxy: localhost\n",
			"x.yaml:13: spec.prometheus.http has a bad value: if no_proxy is configured, proxy_url must also be configured"},
		{"not a boolean", "http:\n  follow_redirects: maybe\n",
			`x.yaml:14: spec.prometheus.http.follow_redirects must be true or false, got "maybe"`},
		{"not a mapping", "http: [a]\n", "x.yaml:13: spec.prometheus.http must be a mapping"},
		{"a list for a string", "http:\n  proxy_url:\n    - http://a\n    - http://b\n",
			"x.yaml:14: spec.prometheus.http.proxy_url must be a string, got a list"},
		{"a mapping for a string in a list", "http:\n  http_headers:\n    X-A:\n      values:\n        - a: b\n",
			"x.yaml:17: spec.prometheus.http.http_headers.X-A.values[0] must be a string, got a mapping"},
		{"a key set twice", "http:\n  basic_auth: {username: a}\n  basic_auth: {username: b}\n",
			"x.yaml:15: spec.prometheus.http.basic_auth is set twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("x.yaml", []byte(withPrometheus(tt.body)))
			if err == nil || err.Error() != tt.want {
				t.Errorf("got  %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestSigV4Block loads the sigv4 block as Prometheus's remote_write does, and refuses what
// Prometheus refuses.
func TestSigV4Block(t *testing.T) {
	ps, err := Load("x.yaml", []byte(withPrometheus(`url: https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1
sigv4:
  region: eu-west-1
  access_key: AKIDEXAMPLE
  secret_key: s3cret
  role_arn: arn:aws:iam::123456789012:role/coalmine
`)))
	if err != nil {
		t.Fatal(err)
	}
	s := ps[0].Spec.Prometheus.SigV4
	if s == nil || s.Region != "eu-west-1" || s.AccessKey != "AKIDEXAMPLE" || s.SecretKey != "s3cret" || s.RoleARN != "arn:aws:iam::123456789012:role/coalmine" {
		t.Errorf("sigv4 %+v", s)
	}
	if got := ps[0].Spec.Prometheus.Secrets(); !strings.Contains(strings.Join(got, " "), "s3cret") {
		t.Errorf("secrets %q do not hold the secret key", got)
	}
	ps, err = Load("x.yaml", []byte(withPrometheus("url: http://prometheus:9090\n")))
	if err != nil || ps[0].Spec.Prometheus.SigV4 != nil {
		t.Errorf("without the block: err %v, sigv4 %+v, want none", err, ps[0].Spec.Prometheus.SigV4)
	}

	tests := []struct{ name, body, want string }{
		{"unknown field", "sigv4:\n  region: eu-west-1\n  secret: x\n", "x.yaml:15: spec.prometheus.sigv4.secret is not a known field"},
		{"a key without its secret", "sigv4:\n  access_key: AKID\n",
			"x.yaml:13: spec.prometheus.sigv4 has a bad value: must provide a AWS SigV4 Access key and Secret Key if credentials are specified in the SigV4 config"},
		{"with basic_auth", "http:\n  basic_auth: {username: u, password: p}\nsigv4: {region: eu-west-1}\n",
			"x.yaml:15: spec.prometheus.sigv4 cannot be used with basic_auth, authorization or oauth2 in spec.prometheus.http: each sets the Authorization header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("x.yaml", []byte(withPrometheus(tt.body)))
			if err == nil || err.Error() != tt.want {
				t.Errorf("got  %v\nwant %s", err, tt.want)
			}
		})
	}
}
