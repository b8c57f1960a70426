package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// ErrPrometheusNotFound means no runnable prometheus binary was found.
// Tests fail on it rather than skip: CI must run them.
var ErrPrometheusNotFound = errors.New("prometheus not found; run scripts/install-prometheus.sh or make test")

// EnvPrometheus names the environment variable that selects the prometheus
// binary when PrometheusOptions.Binary is empty.
const EnvPrometheus = "COALMINE_PROMETHEUS"

// debianPrometheus is where Debian's prometheus package installs the binary;
// it is tried last because /usr/bin may be missing from a minimal PATH.
const debianPrometheus = "/usr/bin/prometheus"

// findBinary resolves the prometheus executable. An explicit choice (the
// option, then the environment) must work: falling back to another binary
// would silently test something else.
func findBinary(explicit string, getenv func(string) string) (string, error) {
	if explicit != "" {
		return resolve(explicit)
	}
	if env := getenv(EnvPrometheus); env != "" {
		path, err := resolve(env)
		if err != nil {
			return "", fmt.Errorf("$%s: %w", EnvPrometheus, err)
		}
		return path, nil
	}
	if path, err := exec.LookPath("prometheus"); err == nil {
		return path, nil
	}
	return resolve(debianPrometheus)
}

// resolve returns the executable path for name, which is a path if it
// contains a slash and a command looked up on PATH otherwise.
func resolve(name string) (string, error) {
	if !strings.ContainsRune(name, os.PathSeparator) {
		path, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("binary %q: %w: %w", name, err, ErrPrometheusNotFound)
		}
		return path, nil
	}
	fi, err := os.Stat(name)
	switch {
	case err != nil:
		return "", fmt.Errorf("binary %q: %w: %w", name, err, ErrPrometheusNotFound)
	case fi.IsDir():
		return "", fmt.Errorf("binary %q: is a directory: %w", name, ErrPrometheusNotFound)
	case fi.Mode().Perm()&0o111 == 0:
		return "", fmt.Errorf("binary %q: not executable: %w", name, ErrPrometheusNotFound)
	}
	return name, nil
}
