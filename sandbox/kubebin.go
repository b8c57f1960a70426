package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrKubeNotFound means a binary or file that StartCluster runs was not
// found. Tests fail on it rather than skip: CI must run them.
var ErrKubeNotFound = errors.New("kubernetes binaries not found; run scripts/install-kube.sh or make test")

// EnvKubeBin names the environment variable that selects the directory of
// the cluster's binaries when ClusterOptions.BinDir is empty.
const EnvKubeBin = "COALMINE_KUBE_BIN"

// Versions that scripts/install-kube.sh builds; the cache is keyed by them.
const (
	EtcdVersion       = "3.6.16"
	KubeVersion       = "1.36.3"
	KwokVersion       = "0.8.0"
	PrometheusVersion = "3.7.3"
	// HelmVersion is the helm scripts/install-helm.sh builds.
	HelmVersion = "4.3.2"
)

// kubeBinaries are the paths of everything StartCluster runs.
type kubeBinaries struct {
	etcd, apiserver, controllerManager, scheduler, kubectl, kwok, prometheus string
	// stages holds kwok's stage YAMLs (node-initialize.yaml, ...).
	stages string
}

// DefaultKubeBinDir returns the directory scripts/install-kube.sh installs
// into: ${COALMINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coalmine}/bin.
func DefaultKubeBinDir(getenv func(string) string) (string, error) {
	if c := getenv("COALMINE_CACHE"); c != "" {
		return filepath.Join(c, "bin"), nil
	}
	if x := getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "coalmine", "bin"), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", fmt.Errorf("neither $COALMINE_CACHE, $XDG_CACHE_HOME nor $HOME is set: %w", ErrKubeNotFound)
	}
	return filepath.Join(home, ".cache", "coalmine", "bin"), nil
}

// findKubeBinaries resolves the binaries in dir, or if dir is empty in
// $COALMINE_KUBE_BIN or DefaultKubeBinDir. A binary is looked up in
// dir/<component>-<version>/ (the layout of install-kube.sh), then in dir
// itself, so a flat directory of binaries works too.
func findKubeBinaries(dir string, withPrometheus bool, getenv func(string) string) (kubeBinaries, error) {
	if dir == "" {
		dir = getenv(EnvKubeBin)
	}
	if dir == "" {
		d, err := DefaultKubeBinDir(getenv)
		if err != nil {
			return kubeBinaries{}, err
		}
		dir = d
	}
	var (
		b    kubeBinaries
		errs []error
	)
	find := func(component, version, name string) string {
		for _, p := range []string{filepath.Join(dir, component+"-"+version, name), filepath.Join(dir, name)} {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
				return p
			}
		}
		errs = append(errs, fmt.Errorf("%s not in %s", name, filepath.Join(dir, component+"-"+version)))
		return ""
	}
	b.etcd = find("etcd", EtcdVersion, "etcd")
	b.apiserver = find("kube", KubeVersion, "kube-apiserver")
	b.controllerManager = find("kube", KubeVersion, "kube-controller-manager")
	b.scheduler = find("kube", KubeVersion, "kube-scheduler")
	b.kubectl = find("kube", KubeVersion, "kubectl")
	b.kwok = find("kwok", KwokVersion, "kwok")
	if withPrometheus {
		b.prometheus = find("prometheus", PrometheusVersion, "prometheus")
	}
	if b.kwok != "" {
		b.stages = filepath.Dir(b.kwok)
		for _, f := range kwokStageFiles {
			if _, err := os.Stat(filepath.Join(b.stages, f)); err != nil {
				errs = append(errs, fmt.Errorf("kwok stage %s not next to %s", f, b.kwok))
			}
		}
	}
	if len(errs) > 0 {
		return b, fmt.Errorf("%w: %w", errors.Join(errs...), ErrKubeNotFound)
	}
	return b, nil
}

// KubectlPath returns the kubectl that scripts/install-kube.sh installed (or $COALMINE_KUBE_BIN
// holds), for tests that run kubectl without a cluster.
func KubectlPath() (string, error) {
	b, err := findKubeBinaries("", false, os.Getenv)
	if b.kubectl == "" {
		return "", err
	}
	return b.kubectl, nil
}

// HelmPath returns $COALMINE_HELM, else the helm scripts/install-helm.sh installed.
func HelmPath() (string, error) {
	if p := os.Getenv("COALMINE_HELM"); p != "" {
		return p, nil
	}
	dir, err := DefaultKubeBinDir(os.Getenv)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "helm-"+HelmVersion, "helm")
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("helm %s not found at %s; run scripts/install-helm.sh (make deps)", HelmVersion, p)
	}
	return p, nil
}
