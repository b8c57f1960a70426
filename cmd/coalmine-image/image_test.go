package main

import (
	"bytes"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

var realBinary = flag.Bool("coalmine", false,
	"build the image from ./cmd/coalmine, as make image does, instead of testdata/stub "+
		"(a static build of coalmine takes minutes on 2 cores with a cold build cache; make image-test)")

// What TestImage stamps and expects back.
const (
	testVersion  = "v9.8.7-test.1"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	testCreated  = "2025-06-07T08:09:10Z"
)

// TestImage builds the image twice from two fresh builds of the binary, as make image does,
// then reads it back as a runtime would and runs its entrypoint: the digest repeats, the
// image holds the binary, CA bundle and nonroot user and nothing else, and the binary in it
// prints the stamped version.
func TestImage(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the image's binary runs on Linux only")
	}
	pkg, ldflags := "./testdata/stub", "-s -w -X main.version="+testVersion
	if *realBinary {
		const bi = "github.com/coalmine/coalmine/buildinfo"
		pkg = "../coalmine"
		ldflags = fmt.Sprintf("-s -w -X %s.version=%s -X %s.commit=%s -X %s.date=%s",
			bi, testVersion, bi, testRevision, bi, testCreated)
	}
	caPEM, leafPEM := testCA(t)
	caFile := filepath.Join(t.TempDir(), "ca-certificates.crt")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}

	var outs [2]string
	var digests [2]string
	for i := range outs {
		bin := filepath.Join(t.TempDir(), "coalmine")
		goBuild(t, pkg, runtime.GOARCH, ldflags, bin)
		outs[i] = t.TempDir()
		var stdout, stderr bytes.Buffer
		code := run([]string{
			"-binary", "linux/" + runtime.GOARCH + "=" + bin,
			"-version", testVersion, "-revision", testRevision, "-created", testCreated,
			"-ca-certs", caFile,
			"-layout", filepath.Join(outs[i], "image"), "-tarball", filepath.Join(outs[i], "coalmine-image.tar"),
		}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("coalmine-image exited %d: %s", code, stderr.String())
		}
		t.Logf("build %d:\n%s", i+1, stdout.String())
		for line := range strings.Lines(stdout.String()) {
			if d, ok := strings.CutPrefix(line, "digest:"); ok {
				digests[i] = strings.TrimSpace(d)
			}
		}
	}
	if digests[0] == "" || digests[0] != digests[1] {
		t.Errorf("two builds printed digests %q and %q, want one", digests[0], digests[1])
	}

	ref, err := name.NewTag("ghcr.io/coalmine/coalmine:" + testVersion)
	if err != nil {
		t.Fatal(err)
	}
	img := fromLayout(t, filepath.Join(outs[0], "image"), testVersion)
	if d, err := img.Digest(); err != nil || d.String() != digests[0] {
		t.Errorf("layout's image: digest %v (%v), printed %s", d, err, digests[0])
	}
	fromTar, err := tarball.ImageFromPath(filepath.Join(outs[0], "coalmine-image.tar"), &ref)
	if err != nil {
		t.Fatalf("read the tarball: %v", err)
	}
	if got, want := blobs(t, fromTar), blobs(t, img); !slices.Equal(got, want) {
		t.Errorf("tarball's config and layers %q, layout's %q", got, want)
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	for _, tt := range []struct {
		name, got, want string
	}{
		{"platform", cf.OS + "/" + cf.Architecture, "linux/" + runtime.GOARCH},
		{"created", cf.Created.UTC().Format("2006-01-02T15:04:05Z"), testCreated},
		{"entrypoint", fmt.Sprint(cfg.Entrypoint), "[/coalmine]"},
		{"cmd", fmt.Sprint(cfg.Cmd), "[]"},
		{"user", cfg.User, "65532:65532"},
		{"working dir", cfg.WorkingDir, "/home/nonroot"},
		{"exposed ports", fmt.Sprint(cfg.ExposedPorts), "map[8080/tcp:{}]"},
		{"label title", cfg.Labels["org.opencontainers.image.title"], "coalmine"},
		{"label version", cfg.Labels["org.opencontainers.image.version"], testVersion},
		{"label revision", cfg.Labels["org.opencontainers.image.revision"], testRevision},
		{"label created", cfg.Labels["org.opencontainers.image.created"], testCreated},
		{"label source", cfg.Labels["org.opencontainers.image.source"], "https://github.com/coalmine/coalmine"},
		{"labels", fmt.Sprint(len(cfg.Labels)), "5"},
	} {
		if tt.got != tt.want {
			t.Errorf("config %s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}

	root, listing := unpack(t, img)
	want := []string{
		"coalmine -rwxr-xr-x 0:0",
		"etc drwxr-xr-x 0:0",
		"etc/group -rw-r--r-- 0:0",
		"etc/passwd -rw-r--r-- 0:0",
		"etc/ssl drwxr-xr-x 0:0",
		"etc/ssl/certs drwxr-xr-x 0:0",
		"etc/ssl/certs/ca-certificates.crt -rw-r--r-- 0:0",
		"home drwxr-xr-x 0:0",
		"home/nonroot drwx------ 65532:65532",
	}
	if !slices.Equal(listing, want) {
		t.Errorf("the image holds\n  %s\nwant exactly\n  %s", strings.Join(listing, "\n  "), strings.Join(want, "\n  "))
	}
	for _, sh := range []string{"bin/sh", "usr/bin/sh", "bin/busybox"} {
		if _, err := os.Lstat(filepath.Join(root, sh)); err == nil {
			t.Errorf("the image has /%s", sh)
		}
	}
	checkUser(t, root, cfg.User)
	bundle, err := os.ReadFile(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))
	if err != nil {
		t.Fatalf("CA bundle: %v", err)
	}
	if !bytes.Equal(bundle, caPEM) || !x509.NewCertPool().AppendCertsFromPEM(bundle) {
		t.Errorf("/etc/ssl/certs/ca-certificates.crt is not the bundle given (%d bytes, want %d)", len(bundle), len(caPEM))
	}

	out, sandboxed, err := runInRootfs(t, root, cfg, nil, "version")
	if err != nil {
		t.Fatalf("the image's entrypoint: %v", err)
	}
	t.Logf("/coalmine version (in a chroot as %s: %v): %s", cfg.User, sandboxed, out)
	wantOut := "coalmine " + testVersion + " "
	if *realBinary {
		wantOut += "(commit " + testRevision + ", built " + testCreated + ", "
	} else if sandboxed {
		wantOut += "(stub, uid 65532, gid 65532)"
	}
	if !strings.HasPrefix(out, wantOut) {
		t.Errorf("/coalmine version printed %q, want it to start %q", out, wantOut)
	}

	if *realBinary || !sandboxed {
		return // only the stub has verify; only in the chroot is the image's bundle the system's
	}
	out, _, err = runInRootfs(t, root, cfg, leafPEM, "verify")
	if err != nil || out != "verified\n" {
		t.Errorf("a certificate signed by the bundle's CA, checked against the system roots in the image: %q, %v", out, err)
	}
}

// fromLayout returns the image index.json names tag.
func fromLayout(t *testing.T, dir, tag string) v1.Image {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("read the layout: %v", err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(m.Manifests))
	}
	d := m.Manifests[0]
	if got := d.Annotations["org.opencontainers.image.ref.name"]; got != tag {
		t.Errorf("index.json's ref.name is %q, want %q", got, tag)
	}
	if d.ArtifactType != "" {
		t.Errorf("index.json's descriptor has artifactType %q, want none (an image, not an artifact)", d.ArtifactType)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// blobs lists an image's config and compressed layers by digest.
func blobs(t *testing.T, img v1.Image) []string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"config " + m.Config.Digest.String()}
	for _, l := range m.Layers {
		out = append(out, "layer "+l.Digest.String())
	}
	return out
}

// checkUser asserts that the config's user is not root and is the nonroot user of the image's
// /etc/passwd and /etc/group.
func checkUser(t *testing.T, root, user string) {
	t.Helper()
	uid, gid, ok := strings.Cut(user, ":")
	if !ok || uid == "0" || gid == "0" || uid == "" {
		t.Errorf("config user %q: want a numeric UID:GID, not root", user)
	}
	for _, f := range []struct{ path, line string }{
		{"etc/passwd", "nonroot:x:" + uid + ":" + gid + ":nonroot:/home/nonroot:/sbin/nologin"},
		{"etc/group", "nonroot:x:" + gid + ":"},
	} {
		b, err := os.ReadFile(filepath.Join(root, f.path))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(strings.Split(string(b), "\n"), f.line) {
			t.Errorf("/%s lacks %q:\n%s", f.path, f.line, b)
		}
	}
}
