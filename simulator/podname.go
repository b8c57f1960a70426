package simulator

import (
	"fmt"
	"hash/fnv"
	"strings"
)

// podSuffixAlphabet is the alphabet Kubernetes uses for generated name suffixes: no vowels, so
// that no words are spelt, and no characters that are easily confused.
const podSuffixAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// podKey identifies a pod across scenario changes: a pod with the same key keeps its counters.
// In cluster mode a pod is identified by its UID instead, and its key's index can change.
type podKey struct {
	namespace, app, version string
	index                   int
}

// id is the static-mode key of the pod in Simulator.pods. It cannot clash with a cluster-mode
// id, a UID, as the two modes never share a simulator.
func (k podKey) id() string {
	return fmt.Sprintf("%s/%s/%s/%d", k.namespace, k.app, k.version, k.index)
}

// podName returns a Kubernetes-like pod name, my-app-v1-<10 hex>-<5 alnum>: a deployment name
// made of the app and the version's major part, a ReplicaSet hash of the seed, namespace, app and
// version, and a pod suffix that also hashes the index. Attempt changes the suffix on a clash.
func podName(seed uint64, k podKey, attempt int) string {
	podHash := hash64(fmt.Sprintf("%d/%s/%s/%s/%d/%d", seed, k.namespace, k.app, k.version, k.index, attempt))
	var suffix [5]byte
	for i := range suffix {
		suffix[i] = podSuffixAlphabet[podHash%uint64(len(podSuffixAlphabet))]
		podHash /= uint64(len(podSuffixAlphabet))
	}
	return fmt.Sprintf("%s-%s-%s", deploymentName(k.app, k.version), podTemplateHash(seed, k), suffix[:])
}

// podTemplateHash is the ReplicaSet part of a pod name, shared by the pods of a version.
func podTemplateHash(seed uint64, k podKey) string {
	h := hash64(fmt.Sprintf("%d/%s/%s/%s", seed, k.namespace, k.app, k.version))
	return fmt.Sprintf("%010x", h&(1<<40-1))
}

// deploymentName joins the app and the version's major part, v1 for v1.0.0, as a DNS label.
func deploymentName(app, version string) string {
	major, _, _ := strings.Cut(version, ".")
	return dnsLabel(app) + "-" + dnsLabel(major)
}

// dnsLabel lowercases s and replaces what a DNS label cannot hold with dashes.
func dnsLabel(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		default:
			return '-'
		}
	}, s)
	if s = strings.Trim(s, "-"); s == "" {
		return "x"
	}
	return s
}

// hash64 is FNV-1a followed by the splitmix64 finaliser, which spreads FNV's weak low bits so
// that names of neighbouring pod indexes look unrelated.
func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s)) // hash.Hash never returns an error
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
