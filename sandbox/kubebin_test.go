package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultKubeBinDir(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "COALMINE_CACHE wins", env: map[string]string{"COALMINE_CACHE": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h"}, want: "/c/bin"},
		{name: "XDG_CACHE_HOME", env: map[string]string{"XDG_CACHE_HOME": "/x", "HOME": "/h"}, want: "/x/coalmine/bin"},
		{name: "HOME", env: map[string]string{"HOME": "/h"}, want: "/h/.cache/coalmine/bin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DefaultKubeBinDir(func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := DefaultKubeBinDir(func(string) string { return "" }); !errors.Is(err, ErrKubeNotFound) {
		t.Errorf("no environment: got %v, want ErrKubeNotFound", err)
	}
}

// fakeBinDir lays out every binary and stage file, as install-kube.sh does
// when versioned, or all in dir when flat.
func fakeBinDir(t *testing.T, versioned bool) string {
	t.Helper()
	dir := t.TempDir()
	sub := func(component, version string) string {
		if !versioned {
			return dir
		}
		d := filepath.Join(dir, component+"-"+version)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	write := func(d, name string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(d, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(sub("etcd", EtcdVersion), "etcd", 0o755)
	for _, b := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"} {
		write(sub("kube", KubeVersion), b, 0o755)
	}
	write(sub("kwok", KwokVersion), "kwok", 0o755)
	for _, f := range kwokStageFiles {
		write(sub("kwok", KwokVersion), f, 0o644)
	}
	write(sub("prometheus", PrometheusVersion), "prometheus", 0o755)
	return dir
}

func TestFindKubeBinaries(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, versioned := range []bool{true, false} {
		dir := fakeBinDir(t, versioned)
		b, err := findKubeBinaries(dir, true, noEnv)
		if err != nil {
			t.Fatalf("versioned=%v: %v", versioned, err)
		}
		want := filepath.Join(dir, "kube-"+KubeVersion, "kube-apiserver")
		if !versioned {
			want = filepath.Join(dir, "kube-apiserver")
		}
		if b.apiserver != want || b.prometheus == "" || b.stages != filepath.Dir(b.kwok) {
			t.Errorf("versioned=%v: got %+v", versioned, b)
		}
		// The environment is only a default.
		if _, err := findKubeBinaries("", true, func(k string) string { return map[string]string{EnvKubeBin: dir}[k] }); err != nil {
			t.Errorf("versioned=%v via $%s: %v", versioned, EnvKubeBin, err)
		}
	}

	dir := fakeBinDir(t, true)
	if err := os.Remove(filepath.Join(dir, "kube-"+KubeVersion, "kube-scheduler")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "etcd-"+EtcdVersion, "etcd"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := findKubeBinaries(dir, false, noEnv)
	if !errors.Is(err, ErrKubeNotFound) {
		t.Fatalf("got %v, want ErrKubeNotFound", err)
	}
	for _, name := range []string{"kube-scheduler", "etcd"} {
		if !strings.Contains(err.Error(), name+" not in") {
			t.Errorf("error %q does not name the missing %s", err, name)
		}
	}
}
