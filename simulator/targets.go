package simulator

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Target is one simulated pod as Prometheus sees it.
type Target struct {
	Namespace string `json:"namespace"`
	App       string `json:"app"`
	Version   string `json:"version"`
	// Index is the pod's position within its version, the key PodOverrides use.
	Index int    `json:"index"`
	Pod   string `json:"pod"`
	// PodTemplateHash is the ReplicaSet hash inside the pod name, the pod-template-hash pod label.
	PodTemplateHash string `json:"podTemplateHash"`
	// Address is the host:port Prometheus scrapes for /metrics.
	Address string `json:"address"`
	// RPS is the pod's current request rate. In cluster mode it is 0 for a pod that no Service
	// of its app selects.
	RPS float64 `json:"rps"`
}

func compareTargets(a, b Target) int {
	return cmp.Or(
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.App, b.App),
		cmp.Compare(a.Version, b.Version),
		cmp.Compare(a.Index, b.Index),
	)
}

// targetGroup is one entry of a Prometheus file_sd file.
type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// writeTargetsFile writes targets as a file_sd file, with the labels the usual kubernetes-pods
// relabelling gives: namespace and pod, and the pod labels app, version and pod_template_hash. It writes a temporary file and renames it, so that Prometheus never reads a
// half-written file; the temporary name ends in .tmp to stay out of *.json and *.yml globs.
func writeTargetsFile(path string, targets []Target) error {
	groups := make([]targetGroup, 0, len(targets))
	for _, t := range targets {
		groups = append(groups, targetGroup{
			Targets: []string{t.Address},
			Labels: map[string]string{
				"namespace": t.Namespace,
				"pod":       t.Pod,
				"app":       t.App,
				"version":   t.Version,
				// The labelmap of pod labels turns pod-template-hash into this.
				"pod_template_hash": t.PodTemplateHash,
			},
		})
	}
	data, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return fmt.Errorf("encode targets file %q: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write targets file %q: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		// CreateTemp makes the file private; Prometheus may run as another user.
		err = f.Chmod(0o644)
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp) // best effort: the write already failed
		return fmt.Errorf("write targets file %q: %w", path, err)
	}
	return nil
}
