package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"

	"github.com/coalmine/coalmine/policies"
)

// clientKey is what tells two policies' Prometheus clients apart, so that policies with the
// same settings share one (and batch their queries) and no others do. The settings print
// their secrets as "<secret>", so the key also holds a digest of the secrets themselves: two
// tenants with different passwords get two clients, and a rotated password a new one. The key
// holds no secret.
func clientKey(url string, pr policies.Prometheus) (string, error) {
	settings, err := yaml.Marshal(pr.HTTP)
	if err != nil {
		return "", fmt.Errorf("prometheus http settings: %w", err)
	}
	h := sha256.New()
	h.Write(settings)
	var found []string
	secrets(reflect.ValueOf(pr.HTTP), &found)
	for _, s := range found {
		h.Write([]byte{0})
		h.Write([]byte(s))
	}
	return fmt.Sprintf("%s|%s|%s", url, pr.Timeout, hex.EncodeToString(h.Sum(nil))), nil
}

var secretType = reflect.TypeOf(config.Secret(""))

// secrets appends every config.Secret under v, in a fixed order: fields in order, map entries
// by key.
func secrets(v reflect.Value, out *[]string) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			secrets(v.Elem(), out)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				secrets(v.Field(i), out)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			secrets(v.Index(i), out)
		}
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int {
			return strings.Compare(fmt.Sprint(a.Interface()), fmt.Sprint(b.Interface()))
		})
		for _, k := range keys {
			*out = append(*out, fmt.Sprint(k.Interface()))
			secrets(v.MapIndex(k), out)
		}
	case reflect.String:
		if v.Type() == secretType {
			*out = append(*out, v.String())
		}
	}
}
