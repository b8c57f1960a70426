package sandbox

import (
	"errors"
	"testing"
)

// StartClusterT starts a cluster for a test, in t.TempDir() unless o.Dir is
// set, and stops it in t.Cleanup, so that a failing test still stops it. If
// the test failed, the cleanup also logs the tail of every component's log.
// Missing binaries fail the test: it does not skip, since CI must run the
// integration tests.
func StartClusterT(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	c, err := StartCluster(t.Context(), o)
	if errors.Is(err, ErrKubeNotFound) {
		t.Fatalf("kubernetes binaries not found; run scripts/install-kube.sh or make test (%v)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster ready in %s (%s)", c.StartupTime().Round(10e6), c.Dir())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cluster in %s, last log lines:\n%s", c.Dir(), c.logTails(20))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	return c
}
