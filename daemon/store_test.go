package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func example(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../policies/examples/my-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStoreReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "my-app.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := example(t)
	write(good)
	s := NewStore(dir, zerolog.Nop())

	changed, err := s.Reload()
	if err != nil || strings.Join(changed, ",") != "default/my-app" {
		t.Fatalf("first load: changed %v, err %v", changed, err)
	}
	if changed, err = s.Reload(); err != nil || len(changed) != 0 {
		t.Fatalf("unchanged directory: changed %v, err %v", changed, err)
	}

	// A change that still validates replaces the policy.
	write(strings.Replace(good, "tolerance: 1.5 ", "tolerance: 2 ", 1))
	if changed, err = s.Reload(); err != nil || len(changed) != 1 {
		t.Fatalf("edited: changed %v, err %v", changed, err)
	}
	p, _ := s.Get("default/my-app")
	if p.Spec.Analysis.Tolerance != 2 {
		t.Errorf("edited policy not in force: tolerance %v", p.Spec.Analysis.Tolerance)
	}

	// An invalid version is reported, and the last good one stays in force.
	write(strings.Replace(good, "interval: 30s", "interval: -30s", 1))
	changed, err = s.Reload()
	if err == nil || !strings.Contains(err.Error(), "spec.analysis.interval must be a positive duration") {
		t.Fatalf("invalid file: err %v", err)
	}
	if len(changed) != 0 {
		t.Errorf("an invalid file changed policies %v", changed)
	}
	if p, ok := s.Get("default/my-app"); !ok || p.Spec.Analysis.Tolerance != 2 {
		t.Error("the last good policy was dropped")
	}
	// Still reported on the next reload, until fixed.
	if _, err := s.Reload(); err == nil {
		t.Error("the invalid file is no longer reported")
	}

	// A second file adds a policy; removing a file removes its policies.
	other := filepath.Join(dir, "other.yml")
	if err := os.WriteFile(other, []byte(strings.Replace(good, "name: my-app\n", "name: other\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, _ = s.Reload(); strings.Join(changed, ",") != "default/other" {
		t.Errorf("added file: changed %v", changed)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if changed, _ = s.Reload(); strings.Join(changed, ",") != "default/my-app" {
		t.Errorf("removed file: changed %v", changed)
	}
	if len(s.All()) != 1 {
		t.Errorf("policies after removal: %d", len(s.All()))
	}
	if got := s.For("default", "my-app-v2"); strings.Join(got, ",") != "default/other" {
		t.Errorf("policies naming default/my-app-v2: %v", got)
	}
	if got := s.For("default", "nope"); len(got) != 0 {
		t.Errorf("policies naming an unknown Deployment: %v", got)
	}
}

// TestStoreDuplicatePolicies shows two files defining one namespace/name: the one in force keeps
// it on every reload (it once changed at random, restarting the canary), the other is refused
// with an error naming both, and it takes over only when the first goes away.
func TestStoreDuplicatePolicies(t *testing.T) {
	dir := t.TempDir()
	good := example(t)
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tolerance := func(s *Store) float64 {
		p, ok := s.Get("default/my-app")
		if !ok {
			t.Fatal("no policy default/my-app")
		}
		return p.Spec.Analysis.Tolerance
	}
	write("b.yaml", good)
	s := NewStore(dir, zerolog.Nop())
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	write("a.yaml", strings.Replace(good, "tolerance: 1.5 ", "tolerance: 2 ", 1))
	for i := range 50 {
		changed, err := s.Reload()
		if err == nil || !strings.Contains(err.Error(), "a.yaml: policy default/my-app is already defined in "+filepath.Join(dir, "b.yaml")) {
			t.Fatalf("reload %d: err %v, want the duplicate named", i, err)
		}
		if len(changed) != 0 || tolerance(s) != 1.5 || len(s.All()) != 1 {
			t.Fatalf("reload %d: changed %v, tolerance %v, %d policies: want b.yaml's alone, unchanged", i, changed, tolerance(s), len(s.All()))
		}
	}
	if err := os.Remove(filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	if changed, err := s.Reload(); err != nil || strings.Join(changed, ",") != "default/my-app" || tolerance(s) != 2 {
		t.Fatalf("b.yaml gone: changed %v, err %v, tolerance %v; want a.yaml's in force", changed, err, tolerance(s))
	}
	write("c.yaml", good)
	fresh := NewStore(dir, zerolog.Nop())
	if _, err := fresh.Reload(); err == nil || tolerance(fresh) != 2 {
		t.Errorf("a new store: err %v, tolerance %v; want the first file by name in force and the other refused", err, tolerance(fresh))
	}
}
