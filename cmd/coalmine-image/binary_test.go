package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestRefusedInputs checks that the builder refuses what would make an image that cannot start
// or would destroy what is not its own: a binary that is dynamic, for another architecture, or
// no executable at all, and an output directory that holds something other than a layout.
func TestRefusedInputs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("builds a Linux binary")
	}
	dir := t.TempDir()
	stub := filepath.Join(dir, "stub")
	goBuild(t, "./testdata/stub", runtime.GOARCH, "-X main.version="+testVersion, stub)
	text := filepath.Join(dir, "text")
	ca := filepath.Join(dir, "ca.crt")
	for _, f := range []string{text, ca} {
		if err := os.WriteFile(f, []byte("not a binary\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	notLayout := filepath.Join(dir, "not-a-layout")
	if err := os.MkdirAll(filepath.Join(notLayout, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	host := "linux/" + runtime.GOARCH

	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for success
	}{
		{"static binary", []string{"-binary", host + "=" + stub}, ""},
		{"not an executable", []string{"-binary", host + "=" + text}, "not an ELF executable"},
		{"another architecture", []string{"-binary", "linux/" + other + "=" + stub}, "binary for linux/" + other + ": built for"},
		{"dynamic binary", []string{"-binary", host + "=/bin/true"}, "dynamically linked"},
		{"no platform", []string{"-binary", stub}, "want PLATFORM=PATH"},
		{"not linux", []string{"-binary", "windows/amd64=" + stub}, "want linux/ARCH"},
		{"platform twice", []string{"-binary", host + "=" + stub, "-binary", host + "=" + stub}, "given twice"},
		{"no version", []string{"-binary", host + "=" + stub, "-version", ""}, "-version, -revision and -created are required"},
		{"bad tag", []string{"-binary", host + "=" + stub, "-version", "v1+build"}, "-repository and -version"},
		{"bad time", []string{"-binary", host + "=" + stub, "-created", "yesterday"}, "-created \"yesterday\""},
		{"no output", []string{"-binary", host + "=" + stub, "-layout", ""}, "nothing to write"},
		{"layout over other files", []string{"-binary", host + "=" + stub, "-layout", notLayout}, "is not an OCI layout; not replacing it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(strings.Join(tt.args, " "), "/bin/true") {
				if b, err := os.ReadFile("/bin/true"); err != nil || checkBinary(b, platform{"linux", runtime.GOARCH}) == nil {
					t.Skip("no dynamically linked /bin/true here")
				}
			}
			args := append([]string{
				"-version", testVersion, "-revision", testRevision, "-created", testCreated, "-ca-certs", ca,
				"-layout", filepath.Join(t.TempDir(), "image"),
			}, tt.args...)
			var stdout, stderr bytes.Buffer
			code := run(args, &stdout, &stderr)
			switch {
			case tt.wantErr == "" && code != 0:
				t.Errorf("exit %d: %s", code, stderr.String())
			case tt.wantErr != "" && (code == 0 || !strings.Contains(stderr.String(), tt.wantErr)):
				t.Errorf("exit %d, stderr %q; want an error containing %q", code, stderr.String(), tt.wantErr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(notLayout, "keep")); err != nil {
		t.Errorf("the directory that was not a layout lost its contents: %v", err)
	}
}
