package simulator

import (
	"regexp"
	"testing"
)

func TestPodName(t *testing.T) {
	key := podKey{namespace: "default", app: "my-app", version: "v1.0.0", index: 0}
	tests := []struct {
		name      string
		seed      uint64
		key       podKey
		wantMatch string
		same      bool // whether the name must equal that of seed 1 and key
	}{
		{name: "shape", seed: 1, key: key, wantMatch: `^my-app-v1-[0-9a-f]{10}-[bcdfghjklmnpqrstvwxz2456789]{5}$`, same: true},
		{name: "other index", seed: 1, key: podKey{"default", "my-app", "v1.0.0", 1}, wantMatch: `^my-app-v1-`},
		{name: "other seed", seed: 2, key: key, wantMatch: `^my-app-v1-`},
		{name: "other version", seed: 1, key: podKey{"default", "my-app", "v2.0.0", 0}, wantMatch: `^my-app-v2-`},
		{name: "odd characters", seed: 1, key: podKey{"default", "My_App", "Canary+1", 0}, wantMatch: `^my-app-canary-1-[0-9a-f]{10}-[a-z0-9]{5}$`},
	}
	ref := podName(1, key, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := podName(tt.seed, tt.key, 0)
			if !regexp.MustCompile(tt.wantMatch).MatchString(got) {
				t.Errorf("podName = %q, want match for %s", got, tt.wantMatch)
			}
			if got != podName(tt.seed, tt.key, 0) {
				t.Errorf("podName is not deterministic")
			}
			if (got == ref) != tt.same {
				t.Errorf("podName = %q, reference %q: want same %v", got, ref, tt.same)
			}
			if podName(tt.seed, tt.key, 1) == got {
				t.Errorf("another attempt gives the same name %q", got)
			}
		})
	}
}

// TestPodNameReplicaSetHash checks that pods of one version share the ReplicaSet hash, as pods of
// one Deployment revision do.
func TestPodNameReplicaSetHash(t *testing.T) {
	re := regexp.MustCompile(`^(.*-[0-9a-f]{10})-[a-z0-9]{5}$`)
	rs := func(k podKey) string { return re.FindStringSubmatch(podName(1, k, 0))[1] }
	a := rs(podKey{"default", "my-app", "v1.0.0", 0})
	if b := rs(podKey{"default", "my-app", "v1.0.0", 7}); a != b {
		t.Errorf("pods of one version have ReplicaSets %q and %q", a, b)
	}
	if c := rs(podKey{"default", "my-app", "v1.1.0", 0}); a == c {
		t.Errorf("versions v1.0.0 and v1.1.0 share ReplicaSet %q", a)
	}
}
