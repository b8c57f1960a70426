package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/coalmine/coalmine/policies"
)

// clientKey is what tells two policies' Prometheus clients apart, so that policies with the
// same settings share one (and batch their queries) and no others do. The settings print
// their secrets as "<secret>", so the key also holds a digest of the secrets themselves: two
// tenants with different passwords get two clients, and a rotated password a new one. The key
// holds no secret.
func clientKey(url string, pr policies.Prometheus) (string, error) {
	settings, err := yaml.Marshal(struct {
		HTTP  any `yaml:"http"`
		SigV4 any `yaml:"sigv4"`
	}{pr.HTTP, pr.SigV4})
	if err != nil {
		return "", fmt.Errorf("prometheus http settings: %w", err)
	}
	h := sha256.New()
	h.Write(settings)
	for _, s := range pr.Secrets() {
		h.Write([]byte{0})
		h.Write([]byte(s))
	}
	return fmt.Sprintf("%s|%s|%s", url, pr.Timeout, hex.EncodeToString(h.Sum(nil))), nil
}
