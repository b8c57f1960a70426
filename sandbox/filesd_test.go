package sandbox

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileSD(t *testing.T) {
	tests := []struct {
		name   string
		groups []TargetGroup
		want   string
	}{
		{name: "no targets", want: "[]\n"},
		{
			name: "labelled target",
			groups: []TargetGroup{{
				Targets: []string{"127.0.0.1:8080"},
				Labels:  map[string]string{"pod": "p-1", "app": "my-app"},
			}},
			want: `[
  {
    "targets": [
      "127.0.0.1:8080"
    ],
    "labels": {
      "app": "my-app",
      "pod": "p-1"
    }
  }
]
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "targets.json")
			// Written twice: the second write replaces the first.
			for range 2 {
				if err := WriteFileSD(path, tt.groups...); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Errorf("dir holds %d files, want only targets.json (temporary files left?)", len(entries))
			}
		})
	}
}
