package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// goBuild builds pkg as make image builds coalmine: static, for linux/arch, with -trimpath,
// and ldflags stamping the version.
func goBuild(t *testing.T, pkg, arch, ldflags, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// unpack flattens img's layers as a runtime does (mutate.Extract applies them in order,
// whiteouts included) into a new directory, owners and modes as the layers say when the test
// runs as root. It returns the directory and the listing, one "path mode uid:gid" per entry.
func unpack(t *testing.T, img v1.Image) (root string, listing []string) {
	t.Helper()
	root = t.TempDir()
	// A runtime's rootfs is world-readable; TempDir's is not, and the nonroot user could not
	// reach the entrypoint.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read the flattened image: %v", err)
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			t.Fatalf("entry %q escapes the root", h.Name)
		}
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(path, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				t.Fatal(err)
			}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, path); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("entry %q: unexpected type %q", h.Name, h.Typeflag)
		}
		if h.Typeflag != tar.TypeSymlink {
			if err := os.Chmod(path, h.FileInfo().Mode().Perm()); err != nil {
				t.Fatal(err)
			}
		}
		if os.Geteuid() == 0 {
			if err := os.Lchown(path, h.Uid, h.Gid); err != nil {
				t.Fatal(err)
			}
		}
		listing = append(listing, fmt.Sprintf("%s %s %d:%d", name, h.FileInfo().Mode(), h.Uid, h.Gid))
	}
	slices.Sort(listing)
	return root, listing
}

// runInRootfs runs the image's entrypoint with args as a runtime would: inside root (chroot),
// as the config's user, in its working directory, with only its environment. Only root may
// chroot; otherwise the entrypoint runs from outside, as the current user, which still shows
// the binary needs nothing from the build machine's filesystem to start, and sandboxed says
// so.
func runInRootfs(t *testing.T, root string, cfg v1.Config, stdin []byte, args ...string) (stdout string, sandboxed bool, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	argv := append(slices.Clone(cfg.Entrypoint), args...)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		var uid, gid uint32
		if _, err := fmt.Sscanf(cfg.User, "%d:%d", &uid, &gid); err != nil {
			t.Fatalf("user %q: want UID:GID: %v", cfg.User, err)
		}
		cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = cfg.WorkingDir
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Chroot:     root,
			Credential: &syscall.Credential{Uid: uid, Gid: gid},
		}
		sandboxed = true
	} else {
		cmd = exec.CommandContext(ctx, filepath.Join(root, argv[0]), argv[1:]...)
		cmd.Dir = filepath.Join(root, cfg.WorkingDir)
	}
	cmd.Env = slices.Concat([]string{}, cfg.Env)
	cmd.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		return o.String(), sandboxed, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, e.String())
	}
	return o.String(), sandboxed, nil
}
