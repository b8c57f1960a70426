package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfileMatches keeps the repository's Dockerfile, which no test builds, in step with
// the image this command builds: the same files, user, working directory, port, entrypoint and
// labels.
func TestDockerfileMatches(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// One instruction per line: continuations joined, comments dropped.
	df := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(b), " ")
	var final []string // the last stage's instructions: what the image holds
	for line := range strings.Lines(df) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "FROM "):
			final = []string{line}
		default:
			final = append(final, line)
		}
	}
	labels := spec{version: "${VERSION}", revision: "${COMMIT}", source: "https://github.com/coalmine/coalmine"}.labels()
	want := []string{
		"FROM scratch",
		"COPY cmd/coalmine-image/rootfs/etc/passwd cmd/coalmine-image/rootfs/etc/group /etc/",
		"COPY --from=build /" + caCertsPath + " /" + caCertsPath,
		"COPY --from=build --chown=" + user + " /nonroot-home " + workingDir,
		"COPY --from=build /coalmine " + entrypoint,
		"USER " + user,
		"WORKDIR " + workingDir,
		"EXPOSE " + strings.TrimSuffix(metricsPort, "/tcp"),
		`ENTRYPOINT ["` + entrypoint + `"]`,
	}
	for _, w := range want {
		found := false
		for _, f := range final {
			found = found || f == w
		}
		if !found {
			t.Errorf("the Dockerfile's final stage lacks %q; it has\n  %s", w, strings.Join(final, "\n  "))
		}
	}
	var labelLine string
	for _, f := range final {
		if strings.HasPrefix(f, "LABEL ") {
			labelLine = f
		}
	}
	for k, v := range labels {
		if k == "org.opencontainers.image.created" {
			v = "${DATE}"
		}
		if kv := k + `="` + v + `"`; !strings.Contains(labelLine, kv) {
			t.Errorf("the Dockerfile's LABEL lacks %s", kv)
		}
	}
	if n := strings.Count(labelLine, "org.opencontainers.image."); n != len(labels) {
		t.Errorf("the Dockerfile sets %d labels, the image %d", n, len(labels))
	}
	if !strings.Contains(df, "-ldflags=\"-s -w -X github.com/coalmine/coalmine/buildinfo.version=${VERSION}") ||
		!strings.Contains(df, "CGO_ENABLED=0") || !strings.Contains(df, "-trimpath") {
		t.Error("the Dockerfile does not build as make image does: CGO_ENABLED=0, -trimpath, -s -w and the version stamped")
	}
}
