package policies

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the .err golden files of testdata/*.bad.yaml")

// TestBadPolicies loads every testdata/*.bad.yaml and compares its errors with the .err file
// beside it.
func TestBadPolicies(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, err := LoadFile(file)
			if err == nil {
				t.Fatalf("LoadFile(%s) = nil error, want one", file)
			}
			var fe Errors
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not Errors", err)
			}
			for _, e := range fe {
				if e.File != file || e.Line == 0 {
					t.Errorf("error %q does not name the file and a line", e)
				}
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".err"
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run go test ./policies -update): %v", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestGoodPolicies(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.good.yaml")
	examples, _ := filepath.Glob("examples/*.yaml")
	for _, file := range append(files, examples...) {
		t.Run(file, func(t *testing.T) {
			ps, err := LoadFile(file)
			if err != nil {
				t.Fatalf("LoadFile: %v", err)
			}
			if len(ps) == 0 {
				t.Fatal("no policy loaded")
			}
		})
	}
}

func TestDefaultsAndDecoding(t *testing.T) {
	ps, err := LoadFile("testdata/value-and-latency.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Fatalf("got %d policies, want 2", len(ps))
	}
	api, web := ps[0], ps[1]
	ms, err := LoadFile("testdata/minimal.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	minimal := ms[0]
	tests := []struct {
		name      string
		got, want any
	}{
		{"label names from the file", api.Spec.Target.Labels.Version, "release"},
		{"quantile from the file", api.Spec.Metrics[0].Quantile, 0.95},
		{"anchor shared thresholds", *api.Spec.Metrics[1].Thresholds.MaxDifference, 0.05},
		{"critical false", api.Spec.Metrics[1].IsCritical(), false},
		{"critical by default", api.Spec.Metrics[0].IsCritical(), true},
		{"basic auth decoded", api.Spec.Prometheus.HTTP.BasicAuth.Username, "coalmine"},
		{"timeout from the file", time.Duration(api.Spec.Prometheus.Timeout), 5 * time.Second},
		{"default timeout", time.Duration(web.Spec.Prometheus.Timeout), 10 * time.Second},
		{"default interval", time.Duration(web.Spec.Analysis.Interval), 30 * time.Second},
		{"default window", time.Duration(web.Spec.Analysis.Window), 5 * time.Minute},
		{"default min requests", web.Spec.Analysis.MinRequests, 50},
		{"min requests 0 kept", api.Spec.Analysis.MinRequests, 0},
		{"default judge of a bluegreen policy", web.Spec.Analysis.Judge, JudgeThreshold},
		{"default judge", minimal.Spec.Analysis.Judge, JudgeSequential},
		{"judge from the file", api.Spec.Analysis.Judge, JudgeThreshold},
		{"default alpha", web.Spec.Analysis.Alpha, 0.05},
		{"default tolerance", web.Spec.Analysis.Tolerance, 1.5},
		{"default labels", web.Spec.Target.Labels, LabelNames{Namespace: "namespace", App: "app", Version: "version"}},
		{"default steps", strings.Join(minimal.Spec.Strategy.Steps, ","), "10%,50%,100%"},
		{"default steps of a bluegreen policy: one switch", strings.Join(web.Spec.Strategy.Steps, ","), "100%"},
		{"default step duration", time.Duration(minimal.Spec.Strategy.StepDuration), 5 * time.Minute},
		{"default max duration", time.Duration(minimal.Spec.Analysis.MaxDuration), 30 * time.Minute},
		{"source file", web.Origin.File, "testdata/value-and-latency.good.yaml"},
		{"line of a field in the second document", web.Origin.Line("spec.metrics[0].query"), 46},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestLoadEmptyAndMissing(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"empty", "", "x.yaml: holds no policy"},
		{"only comments", "# nothing\n", "x.yaml: holds no policy"},
		{"not a mapping", "- a\n- b\n", "x.yaml:1: must be a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("x.yaml", []byte(tt.data))
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
	_, err := LoadFile("testdata/does-not-exist.yaml")
	if err == nil || !strings.Contains(err.Error(), "testdata/does-not-exist.yaml: cannot read: no such file or directory") {
		t.Errorf("missing file: got %v", err)
	}
}

func readFile(name string) ([]byte, error) { return os.ReadFile(name) }

// TestFilesInAConfigMapMount lays a directory out as the kubelet mounts a ConfigMap: each file a
// link to ..data/<file>, ..data a link to a timestamped directory.
func TestFilesInAConfigMapMount(t *testing.T) {
	dir := t.TempDir()
	stamp := filepath.Join(dir, "..2026_11_22_04_20_00.123456789")
	if err := os.Mkdir(stamp, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("examples/my-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"my-app.yaml", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(stamp, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Base(stamp), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"my-app.yaml", "notes.txt"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || filepath.Base(files[0]) != "my-app.yaml" {
		t.Fatalf("Files = %v, want the one policy file", files)
	}
	if _, err := LoadFiles(files...); err != nil {
		t.Fatal(err)
	}
}
