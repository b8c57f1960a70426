package daemon

import (
	neturl "net/url"
	"strings"
	"testing"

	"github.com/prometheus/common/config"
	"github.com/prometheus/sigv4"

	"github.com/coalmine/coalmine/policies"
)

// TestClientKeySeesSecrets checks that policies share a Prometheus client only when their
// settings, secrets included, are the same: the settings print secrets as "<secret>", so two
// tenants' passwords once shared one client, and a rotated password was ignored.
func TestClientKeySeesSecrets(t *testing.T) {
	with := func(user, password, header string) policies.Prometheus {
		pr := policies.Default().Spec.Prometheus
		pr.HTTP.BasicAuth = &config.BasicAuth{Username: user, Password: config.Secret(password)}
		pr.HTTP.HTTPHeaders = &config.Headers{Headers: map[string]config.Header{"X-Scope-OrgID": {Secrets: []config.Secret{config.Secret(header)}}}}
		return pr
	}
	key := func(pr policies.Prometheus) string {
		k, err := clientKey("http://prometheus:9090", pr)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a := key(with("team-a", "s3cret-a", "tenant-a"))
	if again := key(with("team-a", "s3cret-a", "tenant-a")); again != a {
		t.Errorf("the same settings give two keys:\n%s\n%s", a, again)
	}
	proxied := func(url string) policies.Prometheus {
		pr := with("team-a", "s3cret-a", "tenant-a")
		u, err := neturl.Parse(url)
		if err != nil {
			t.Fatal(err)
		}
		pr.HTTP.ProxyURL = config.URL{URL: u}
		return pr
	}
	signed := func(region, secret string) policies.Prometheus {
		pr := policies.Default().Spec.Prometheus
		pr.SigV4 = &sigv4.SigV4Config{Region: region, AccessKey: "AKID", SecretKey: config.Secret(secret)}
		return pr
	}
	if key(proxied("http://u:pw-a@proxy:3128")) == key(proxied("http://u:pw-b@proxy:3128")) {
		t.Error("two proxy passwords share a client: the settings print them as xxxxx")
	}
	for name, other := range map[string]policies.Prometheus{
		"another password":      with("team-a", "s3cret-b", "tenant-a"),
		"another secret header": with("team-a", "s3cret-a", "tenant-b"),
		"signed requests":       signed("eu-west-1", "s3cret-a"),
	} {
		if key(other) == a {
			t.Errorf("%s shares the client of the first settings", name)
		}
	}
	if key(signed("eu-west-1", "k1")) == key(signed("eu-west-1", "k2")) || key(signed("eu-west-1", "k1")) == key(signed("us-east-1", "k1")) {
		t.Error("two sigv4 settings share a client")
	}
	for _, secret := range []string{"s3cret-a", "tenant-a"} {
		if strings.Contains(a, secret) {
			t.Errorf("the key %q holds the secret %q", a, secret)
		}
	}
}
