package daemon

import (
	"strings"
	"testing"

	"github.com/prometheus/common/config"

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
	for name, other := range map[string]policies.Prometheus{
		"another password":      with("team-a", "s3cret-b", "tenant-a"),
		"another secret header": with("team-a", "s3cret-a", "tenant-b"),
	} {
		if key(other) == a {
			t.Errorf("%s shares the client of the first settings", name)
		}
	}
	for _, secret := range []string{"s3cret-a", "tenant-a"} {
		if strings.Contains(a, secret) {
			t.Errorf("the key %q holds the secret %q", a, secret)
		}
	}
}
