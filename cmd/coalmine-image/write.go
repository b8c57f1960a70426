package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// writeLayout writes an OCI image layout at dir, replacing the one a previous build left
// there: index.json names one image (ref.name is the tag, as `skopeo copy oci:DIR:TAG` reads
// it), or, for several platforms, one index of them.
func writeLayout(dir string, ref name.Tag, images []built) error {
	if err := clearLayout(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	annotations := layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref.TagStr(),
		"io.containerd.image.name":          ref.Name(),
	})
	if len(images) == 1 {
		err = p.AppendImage(images[0].image, annotations)
	} else {
		err = p.AppendIndex(index(images), annotations)
	}
	if err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	return nil
}

// checkLayoutDir refuses a dir that holds something other than an OCI layout, before the build
// spends its time; it says whether there is a layout to replace.
func checkLayoutDir(dir string) (found bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("layout %s: %w", dir, err)
	case len(entries) == 0:
		return false, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return false, fmt.Errorf("layout %s: exists and is not an OCI layout; not replacing it", dir)
	}
	return true, nil
}

// clearLayout removes the OCI layout at dir, if there is one; a directory holding anything
// else is left alone and refused.
func clearLayout(dir string) error {
	found, err := checkLayoutDir(dir)
	if err != nil || !found {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("layout %s: remove the previous build: %w", dir, err)
	}
	return nil
}

// writeTarball writes img as `docker save` would, for `docker load`, `crane push` or
// `skopeo copy docker-archive:`. Such a tarball holds one platform's image, not an index.
// It is written beside path and renamed, so an interrupted build leaves no half tarball.
func writeTarball(path string, ref name.Tag, img v1.Image) (size int64, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, fmt.Errorf("tarball %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := tarball.Write(ref, img, f); err != nil {
		return 0, fmt.Errorf("tarball %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("tarball %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return 0, fmt.Errorf("tarball %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("tarball %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return 0, fmt.Errorf("tarball %s: %w", path, err)
	}
	return fi.Size(), nil
}
