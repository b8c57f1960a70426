package main

import (
	"embed"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// rootfs holds the files the image takes from this repository: /etc/passwd and /etc/group
// with root and nonroot (65532). The Dockerfile copies the same files.
//
//go:embed rootfs/etc/passwd rootfs/etc/group
var rootfs embed.FS

// Where things are in the image. The Deployment runs the entrypoint with `run ...` as its
// arguments, as the user below (runAsNonRoot checks the numeric user, not /etc/passwd).
const (
	entrypoint  = "/coalmine"
	workingDir  = "/home/nonroot"
	user        = "65532:65532"
	nonrootID   = 65532
	caCertsPath = "etc/ssl/certs/ca-certificates.crt"
	metricsPort = "8080/tcp"
)

// spec is what every platform's image holds and says about itself.
type spec struct {
	version  string    // the tag, and the version label
	revision string    // the commit
	created  time.Time // every timestamp in the image: the commit's date, so builds repeat
	source   string    // the repository's URL
	caCerts  []byte    // the CA bundle, PEM
}

// labels are the image's OCI annotations (the pre-defined keys of the image spec), set as
// labels in its config.
func (s spec) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":    "coalmine",
		"org.opencontainers.image.version":  s.version,
		"org.opencontainers.image.revision": s.revision,
		"org.opencontainers.image.created":  s.created.Format(time.RFC3339),
		"org.opencontainers.image.source":   s.source,
	}
}

// built is one platform's image, and the bytes of the files it unpacks to.
type built struct {
	platform platform
	image    v1.Image
	unpacked int64
}

// buildImage makes the image of one platform: a base layer (passwd, group, the CA bundle, the
// nonroot user's home) and a layer with the binary alone, so a new binary leaves the base
// layer's digest, and a registry's copy of it, as they were.
func buildImage(s spec, p platform, binary []byte) (built, error) {
	if err := checkBinary(binary, p); err != nil {
		return built{}, fmt.Errorf("binary for %s: %w", p, err)
	}
	passwd, err := rootfs.ReadFile("rootfs/etc/passwd")
	if err != nil {
		return built{}, err
	}
	group, err := rootfs.ReadFile("rootfs/etc/group")
	if err != nil {
		return built{}, err
	}
	base := []entry{
		{path: "etc", dir: true, mode: 0o755},
		{path: "etc/group", mode: 0o644, data: group},
		{path: "etc/passwd", mode: 0o644, data: passwd},
		{path: "etc/ssl", dir: true, mode: 0o755},
		{path: "etc/ssl/certs", dir: true, mode: 0o755},
		{path: caCertsPath, mode: 0o644, data: s.caCerts},
		{path: "home", dir: true, mode: 0o755},
		{path: "home/nonroot", dir: true, mode: 0o700, uid: nonrootID, gid: nonrootID},
	}
	bin := []entry{{path: entrypoint[1:], mode: 0o755, data: binary}}

	var adds []mutate.Addendum
	var unpacked int64
	for _, l := range []struct {
		entries []entry
		by      string
	}{
		{base, "coalmine-image: /etc/passwd, /etc/group, /" + caCertsPath + ", " + workingDir},
		{bin, "coalmine-image: " + entrypoint},
	} {
		layer, err := newLayer(l.entries, s.created)
		if err != nil {
			return built{}, fmt.Errorf("layer %q: %w", l.by, err)
		}
		adds = append(adds, mutate.Addendum{
			Layer:   layer,
			History: v1.History{Created: v1.Time{Time: s.created}, CreatedBy: l.by},
		})
		for _, e := range l.entries {
			unpacked += int64(len(e.data))
		}
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: p.arch,
		OS:           p.os,
		Created:      v1.Time{Time: s.created},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint:   []string{entrypoint},
			User:         user,
			WorkingDir:   workingDir,
			Labels:       s.labels(),
			ExposedPorts: map[string]struct{}{metricsPort: {}},
		},
	})
	if err != nil {
		return built{}, fmt.Errorf("config: %w", err)
	}
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return built{}, fmt.Errorf("append layers: %w", err)
	}
	return built{platform: p, image: plainImage{img}, unpacked: unpacked}, nil
}

// plainImage is an image whose descriptors (in index.json, in an index) carry no artifactType:
// go-containerregistry would fill it with the config's media type, a field the image spec
// keeps for artifacts other than images.
type plainImage struct{ v1.Image }

// ArtifactType says the image is no artifact.
func (plainImage) ArtifactType() (string, error) { return "", nil }

// index puts several platforms' images in one OCI image index, in the order given.
func index(images []built) v1.ImageIndex {
	adds := make([]mutate.IndexAddendum, 0, len(images))
	for _, b := range images {
		adds = append(adds, mutate.IndexAddendum{
			Add:        b.image,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: b.platform.os, Architecture: b.platform.arch}},
		})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}
