// Command coalmine-image builds coalmine's container image without a container engine: the
// static binary, CA certificates and a nonroot user, nothing else (no shell, no package
// manager), written as an OCI image layout and a `docker save` tarball. `make image` runs it.
//
// Every timestamp in the image is the -created time (make image passes the commit's date), so
// the same binary and CA bundle always give the same digest.
//
//	coalmine-image -binary linux/amd64=bin/image-build/linux_amd64/coalmine \
//	    -version v0.1.0 -revision $(git rev-parse HEAD) -created $(git log -1 --format=%cI) \
//	    -layout bin/image -tarball bin/coalmine-image.tar
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// binaryFlag is one -binary PLATFORM=PATH.
type binaryFlag struct {
	platform platform
	path     string
}

// binaryFlags collects the repeated -binary flag.
type binaryFlags []binaryFlag

func (b *binaryFlags) String() string {
	var s []string
	for _, f := range *b {
		s = append(s, f.platform.String()+"="+f.path)
	}
	return strings.Join(s, ",")
}

func (b *binaryFlags) Set(v string) error {
	plat, path, ok := strings.Cut(v, "=")
	if !ok || path == "" {
		return fmt.Errorf("%q: want PLATFORM=PATH, e.g. linux/amd64=bin/coalmine", v)
	}
	p, err := parsePlatform(plat)
	if err != nil {
		return err
	}
	for _, f := range *b {
		if f.platform == p {
			return fmt.Errorf("%s given twice", p)
		}
	}
	*b = append(*b, binaryFlag{platform: p, path: path})
	return nil
}

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("coalmine-image", flag.ContinueOnError)
	flags.SetOutput(stderr)
	var binaries binaryFlags
	flags.Var(&binaries, "binary", "the static coalmine binary for a platform, as `PLATFORM=PATH` (linux/amd64=bin/coalmine); repeat for a multi-platform image (the first platform goes in the tarball)")
	repository := flags.String("repository", "ghcr.io/coalmine/coalmine", "the image's name, without the tag")
	version := flags.String("version", "", "the version: the image's tag and its org.opencontainers.image.version label (required)")
	revision := flags.String("revision", "", "the commit the binary was built from: the org.opencontainers.image.revision label (required)")
	created := flags.String("created", "", "RFC 3339 time of every timestamp in the image, e.g. the commit's date (required)")
	source := flags.String("source", "https://github.com/coalmine/coalmine", "the org.opencontainers.image.source label")
	caCerts := flags.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "the CA bundle (PEM) to put at /etc/ssl/certs/ca-certificates.crt")
	layoutDir := flags.String("layout", "", "write an OCI image layout to this directory, replacing a layout there")
	tarballPath := flags.String("tarball", "", "write a tarball of the first platform's image, as docker save does, to this file")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := build(options{
		binaries: binaries, repository: *repository, version: *version, revision: *revision,
		created: *created, source: *source, caCerts: *caCerts, layout: *layoutDir, tarball: *tarballPath,
	}, stdout); err != nil {
		fmt.Fprintf(stderr, "coalmine-image: %v\n", err)
		return 1
	}
	return 0
}

// options are the command's flags.
type options struct {
	binaries                                       binaryFlags
	repository, version, revision, created, source string
	caCerts, layout, tarball                       string
}

func build(o options, stdout io.Writer) error {
	switch {
	case len(o.binaries) == 0:
		return errors.New("-binary is required")
	case o.version == "" || o.revision == "" || o.created == "":
		return errors.New("-version, -revision and -created are required")
	case o.layout == "" && o.tarball == "":
		return errors.New("nothing to write: give -layout, -tarball or both")
	}
	ref, err := name.NewTag(o.repository + ":" + o.version)
	if err != nil {
		return fmt.Errorf("-repository and -version: %w", err)
	}
	created, err := time.Parse(time.RFC3339, o.created)
	if err != nil {
		return fmt.Errorf("-created %q: want an RFC 3339 time such as git log -1 --format=%%cI prints: %w", o.created, err)
	}
	if o.layout != "" {
		if _, err := checkLayoutDir(o.layout); err != nil {
			return err
		}
	}
	ca, err := os.ReadFile(o.caCerts)
	if err != nil {
		return fmt.Errorf("-ca-certs: %w", err)
	}
	s := spec{
		version: o.version, revision: o.revision, created: created.UTC().Truncate(time.Second),
		source: o.source, caCerts: ca,
	}

	var images []built
	for _, b := range o.binaries {
		data, err := os.ReadFile(b.path)
		if err != nil {
			return fmt.Errorf("-binary %s: %w", b.platform, err)
		}
		img, err := buildImage(s, b.platform, data)
		if err != nil {
			return err
		}
		images = append(images, img)
	}

	digest, err := images[0].image.Digest()
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	if len(images) > 1 {
		if digest, err = index(images).Digest(); err != nil {
			return fmt.Errorf("index digest: %w", err)
		}
	}
	fmt.Fprintf(stdout, "image:   %s\ndigest:  %s\n", ref, digest)
	for _, b := range images {
		line, err := describe(b)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, line)
	}

	if o.layout != "" {
		if err := writeLayout(o.layout, ref, images); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "layout:  %s (OCI image layout, %s)\n", o.layout, ref.TagStr())
	}
	if o.tarball != "" {
		size, err := writeTarball(o.tarball, ref, images[0].image)
		if err != nil {
			return err
		}
		id, err := images[0].image.ConfigName()
		if err != nil {
			return fmt.Errorf("image ID: %w", err)
		}
		fmt.Fprintf(stdout, "tarball: %s (docker save, %s, %s, image ID %s)\n", o.tarball, images[0].platform, mib(size), id)
	}
	return nil
}

// describe words one platform's image: its manifest digest, what a pull transfers (manifest,
// config and compressed layers) and the bytes of its files.
func describe(b built) (string, error) {
	digest, err := b.image.Digest()
	if err != nil {
		return "", fmt.Errorf("%s digest: %w", b.platform, err)
	}
	raw, err := b.image.RawManifest()
	if err != nil {
		return "", fmt.Errorf("%s manifest: %w", b.platform, err)
	}
	m, err := b.image.Manifest()
	if err != nil {
		return "", fmt.Errorf("%s manifest: %w", b.platform, err)
	}
	pulled := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		pulled += l.Size
	}
	return fmt.Sprintf("  %s: %s, %s compressed, %s unpacked", b.platform, digest, mib(pulled), mib(b.unpacked)), nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
