package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFindBinary(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "prometheus-build")
	if err := os.WriteFile(exe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	// Only the lookup is under test here, so PATH holds just dir.
	t.Setenv("PATH", dir)
	onPath := filepath.Join(dir, "prometheus")
	if err := os.WriteFile(onPath, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		explicit string
		env      string
		want     string
		notFound bool
	}{
		{name: "option wins over env", explicit: exe, env: "/nonexistent", want: exe},
		{name: "option looked up on PATH", explicit: "prometheus", want: onPath},
		{name: "env", env: exe, want: exe},
		{name: "broken env does not fall back", env: "/nonexistent/prometheus", notFound: true},
		{name: "PATH", want: onPath},
		{name: "directory", explicit: dir, notFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == EnvPrometheus {
					return tt.env
				}
				return ""
			}
			got, err := findBinary(tt.explicit, getenv)
			if tt.notFound {
				if !errors.Is(err, ErrPrometheusNotFound) {
					t.Fatalf("got %q, %v; want ErrPrometheusNotFound", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
