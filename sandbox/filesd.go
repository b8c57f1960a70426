package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// TargetGroup is one entry of a file_sd file: addresses to scrape and the
// target labels they all get, e.g. namespace, app, version and pod.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// WriteFileSD replaces the file_sd file at path with groups. It writes a
// temporary file and renames it so that Prometheus, which watches the file,
// never reads half of it. An empty groups removes every target.
func WriteFileSD(path string, groups ...TargetGroup) error {
	if groups == nil {
		groups = []TargetGroup{}
	}
	b, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return fmt.Errorf("write file_sd %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write file_sd %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write file_sd %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write file_sd %s: %w", path, err)
	}
	// CreateTemp makes the file 0600; Prometheus may run as another user.
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write file_sd %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write file_sd %s: %w", path, err)
	}
	return nil
}
