package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// imageRepository is coalmine's image, as `make image` names it.
const imageRepository = "ghcr.io/coalmine/coalmine"

// releaseVersion returns the repository's VERSION file: the release the manifests pin and
// `make image` tags when no git tag names the commit.
func releaseVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimSpace(string(b))
	if !regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(v) {
		t.Fatalf("VERSION holds %q, want a release such as v1.2.3", v)
	}
	return v
}

// TestImagesPinned fails for any image a manifest names, in a container or in kustomize's
// images, without a tag, with latest, or with a tag other than VERSION for coalmine's own: a
// cluster would otherwise run whatever was pushed last, and every node a different one.
func TestImagesPinned(t *testing.T) {
	version := releaseVersion(t)
	found := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
			for _, ref := range images(doc) {
				found++
				if msg := pinned(ref, version); msg != "" {
					t.Errorf("%s: image %s %s", path, ref, msg)
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 2 {
		t.Errorf("found %d images in the manifests, want at least deployment.yaml's and kustomization.yaml's", found)
	}
}

// images lists the images a YAML document names: every container's image, and each entry of
// a kustomization's images as NAME:NEWTAG@DIGEST (the parts it sets).
func images(doc any) []string {
	var out []string
	switch v := doc.(type) {
	case map[string]any:
		if ks, ok := v["images"].([]any); ok && v["kind"] == "Kustomization" {
			for _, k := range ks {
				m, _ := k.(map[string]any)
				ref, _ := m["name"].(string)
				if n, ok := m["newName"].(string); ok {
					ref = n
				}
				if tag, ok := m["newTag"].(string); ok {
					ref += ":" + tag
				}
				if d, ok := m["digest"].(string); ok {
					ref += "@" + d
				}
				out = append(out, ref)
			}
		}
		for k, x := range v {
			if s, ok := x.(string); ok && k == "image" {
				out = append(out, s)
				continue
			}
			if k != "images" {
				out = append(out, images(x)...)
			}
		}
	case []any:
		for _, x := range v {
			out = append(out, images(x)...)
		}
	}
	return out
}

// pinned says what is wrong with ref, or "" if it names one image: a digest, or a tag other
// than latest (for coalmine's own, the release in VERSION).
func pinned(ref, version string) string {
	ref, digest, _ := strings.Cut(ref, "@")
	repo, tag := ref, ""
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	switch {
	case repo == imageRepository && tag != version && digest == "":
		return "is not pinned to VERSION, " + version
	case digest != "":
		return ""
	case tag == "":
		return "has no tag (latest)"
	case tag == "latest":
		return "uses latest"
	}
	return ""
}

// TestPinnedRefusesLatest checks the check: a test that passes whatever the manifests say
// would let latest back in.
func TestPinnedRefusesLatest(t *testing.T) {
	tests := []struct {
		name, ref string
		ok        bool
	}{
		{"release", imageRepository + ":v1.2.3", true},
		{"digest", imageRepository + "@sha256:0123", true},
		{"latest", imageRepository + ":latest", false},
		{"no tag", imageRepository, false},
		{"another version", imageRepository + ":v1.2.2", false},
		{"registry with a port, no tag", "localhost:5000/coalmine", false},
		{"registry with a port, a tag", "localhost:5000/coalmine:v1", true},
		{"another image's latest", "busybox:latest", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if msg := pinned(tt.ref, "v1.2.3"); (msg == "") != tt.ok {
				t.Errorf("pinned(%q) = %q, want ok %v", tt.ref, msg, tt.ok)
			}
		})
	}
	doc := map[string]any{
		"kind":   "Kustomization",
		"images": []any{map[string]any{"name": imageRepository, "newTag": "latest"}},
		"spec":   map[string]any{"containers": []any{map[string]any{"image": "busybox"}}},
	}
	got := strings.Join(images(doc), " ")
	if got != imageRepository+":latest busybox" {
		t.Errorf("images found %q, want the kustomization's and the container's", got)
	}
}
