package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestMultiPlatform builds an image for linux/amd64 and linux/arm64: the layout holds one
// index naming each platform's image, each image's config names its own platform, and the
// tarball (which holds one image) holds the first platform's.
func TestMultiPlatform(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("builds Linux binaries")
	}
	dir := t.TempDir()
	args := []string{
		"-version", testVersion, "-revision", testRevision, "-created", testCreated,
		"-ca-certs", "testdata/stub/main.go", // any file: this test does not read it back
		"-layout", filepath.Join(dir, "image"), "-tarball", filepath.Join(dir, "coalmine-image.tar"),
	}
	// The arm64 binary is the amd64 stub with its ELF header's machine changed: this test reads
	// the index and runs nothing, and a real cross-build costs half a minute of CPU when the
	// build cache is cold.
	amd64 := filepath.Join(dir, "amd64", "coalmine")
	goBuild(t, "./testdata/stub", "amd64", "-s -w -X main.version="+testVersion, amd64)
	b, err := os.ReadFile(amd64)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(b[18:20], uint16(elf.EM_AARCH64)) // e_machine
	arm64 := filepath.Join(dir, "arm64-coalmine")
	if err := os.WriteFile(arm64, b, 0o755); err != nil {
		t.Fatal(err)
	}
	platforms := []string{"linux/amd64", "linux/arm64"}
	args = append(args, "-binary", "linux/amd64="+amd64, "-binary", "linux/arm64="+arm64)
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("coalmine-image exited %d: %s", code, stderr.String())
	}
	t.Logf("\n%s", stdout.String())

	lp, err := layout.FromPath(filepath.Join(dir, "image"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || !tm.Manifests[0].MediaType.IsIndex() {
		t.Fatalf("index.json: want one image index, got %+v", tm.Manifests)
	}
	if !bytes.Contains(stdout.Bytes(), []byte("digest:  "+tm.Manifests[0].Digest.String()+"\n")) {
		t.Errorf("printed digest is not the index's %s", tm.Manifests[0].Digest)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Platform.String()+" config "+cf.OS+"/"+cf.Architecture)
		if d.ArtifactType != "" {
			t.Errorf("%s: artifactType %q, want none", d.Platform, d.ArtifactType)
		}
	}
	want := []string{"linux/amd64 config linux/amd64", "linux/arm64 config linux/arm64"}
	if !slices.Equal(got, want) {
		t.Errorf("the index lists %q, want %q", got, want)
	}

	ref, err := name.NewTag("ghcr.io/coalmine/coalmine:" + testVersion)
	if err != nil {
		t.Fatal(err)
	}
	fromTar, err := tarball.ImageFromPath(filepath.Join(dir, "coalmine-image.tar"), &ref)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := fromTar.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if p := cf.OS + "/" + cf.Architecture; p != platforms[0] {
		t.Errorf("the tarball holds %s, want the first platform, %s", p, platforms[0])
	}
}
