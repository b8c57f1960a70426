package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Backfill writes the OpenMetrics file openmetrics (with timestamps) as TSDB blocks into
// dir/data, the data directory of a Prometheus started later with PrometheusOptions{Dir: dir}:
// hours of history in seconds. It runs promtool, found beside the prometheus binary or on PATH
// (Debian's prometheus package ships it).
func Backfill(ctx context.Context, openmetrics, dir string) error {
	promtool, err := findPromtool()
	if err != nil {
		return err
	}
	data := filepath.Join(dir, DataDir)
	if err := os.MkdirAll(data, 0o755); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	out, err := exec.CommandContext(ctx, promtool, "tsdb", "create-blocks-from", "openmetrics", openmetrics, data).CombinedOutput()
	if err != nil {
		return fmt.Errorf("backfill: promtool tsdb create-blocks-from openmetrics: %w\n%s", err, out)
	}
	return nil
}

func findPromtool() (string, error) {
	if prom, err := findBinary("", os.Getenv); err == nil {
		if p := filepath.Join(filepath.Dir(prom), "promtool"); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("backfill: promtool not found beside prometheus nor on PATH: %w", ErrPrometheusNotFound)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode().Perm()&0o111 != 0
}
