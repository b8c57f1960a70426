package report

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromiumPath finds the browser the screenshot test drives: $COALMINE_CHROMIUM, else the first
// of chromium, chromium-browser and google-chrome on PATH.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COALMINE_CHROMIUM"); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("COALMINE_CHROMIUM=%s: %v; fix or unset it, or run bash scripts/install-chromium.sh", p, err)
		}
		return path
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatal("no chromium, chromium-browser or google-chrome on PATH and COALMINE_CHROMIUM unset: run bash scripts/install-chromium.sh")
	return ""
}

// headless runs the browser once on a page with its own profile and returns what it printed.
func headless(t *testing.T, ctx context.Context, bin, profile string, args ...string) []byte {
	t.Helper()
	args = append([]string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--user-data-dir=" + profile}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	// A renderer that outlives a killed browser may hold the pipes open: stop waiting for it.
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v (context: %v)\n%s", bin, strings.Join(args, " "), err, ctx.Err(), tail(stderr.String(), 2000))
	}
	return stdout.Bytes()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// TestScreenshot renders the sequential report in a real browser: the page must draw (not a
// blank or broken page), and the charts' SVG must survive into the DOM Chromium built.
func TestScreenshot(t *testing.T) {
	bin := chromiumPath(t)
	rep := withHistory(sequentialReport())
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	var buf bytes.Buffer
	if err := Write(&buf, "html", rep); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file://" + page

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const width, height = 1000, 1400
	shot := filepath.Join(dir, "report.png")
	start := time.Now()
	headless(t, ctx, bin, filepath.Join(dir, "profile-screenshot"), "--hide-scrollbars", "--force-device-scale-factor=1",
		"--window-size=1000,1400", "--screenshot="+shot, url)
	took := time.Since(start)

	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		t.Fatalf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), width, height)
	}
	colours, nonWhite, baseline, canary := measure(img)
	share := float64(nonWhite) / float64(width*height)
	t.Logf("screenshot %dx%d in %s: %d distinct colours, %.1f%% non-white, %d baseline-blue and %d canary-orange pixels",
		width, height, took.Round(time.Millisecond), colours, 100*share, baseline, canary)
	if colours < 3 {
		t.Errorf("%d distinct colours: the page looks blank", colours)
	}
	if share < 0.02 {
		t.Errorf("%.2f%% of pixels non-white, want at least 2%%: the page looks blank", 100*share)
	}
	// The first chart is in the screenshot: its lines must show in the legend's colours.
	if baseline < 200 || canary < 200 {
		t.Errorf("%d baseline-blue and %d canary-orange pixels, want at least 200 each: the chart lines did not draw", baseline, canary)
	}

	dom := string(headless(t, ctx, bin, filepath.Join(dir, "profile-dom"), "--dump-dom", url))
	charts := regexp.MustCompile(`<svg\b[^>]*class="coalmine-chart"[^>]*>(?s:.*?)</svg>`).FindAllString(dom, -1)
	if len(charts) != len(rep.Metrics) {
		t.Fatalf("the rendered DOM has %d coalmine-chart <svg> elements, want %d (one per metric):\n%s", len(charts), len(rep.Metrics), tail(dom, 2000))
	}
	line := regexp.MustCompile(`<(path|polyline)\b[^>]*class="line (baseline|canary)"[^>]*\b(d|points)="[M0-9]`)
	for i, c := range charts {
		found := map[string]bool{}
		for _, m := range line.FindAllStringSubmatch(c, -1) {
			found[m[2]] = true
		}
		if !found["baseline"] || !found["canary"] {
			t.Errorf("chart %d in the rendered DOM lacks a baseline or canary line (found %v)", i, found)
		}
	}
}

// measure counts an image's distinct colours and its non-white pixels, and the pixels close to
// the light theme's baseline blue (#0969da) and canary orange (#e16f24).
func measure(img image.Image) (colours, nonWhite, baseline, canary int) {
	seen := map[[3]uint32]bool{}
	near := func(r, g, b uint32, want [3]uint32) bool {
		d := func(a, b uint32) uint32 {
			if a > b {
				return a - b
			}
			return b - a
		}
		return d(r, want[0])+d(g, want[1])+d(b, want[2]) < 60
	}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			r, g, b = r>>8, g>>8, b>>8
			seen[[3]uint32{r, g, b}] = true
			if r < 245 || g < 245 || b < 245 {
				nonWhite++
			}
			if near(r, g, b, [3]uint32{0x09, 0x69, 0xda}) {
				baseline++
			}
			if near(r, g, b, [3]uint32{0xe1, 0x6f, 0x24}) {
				canary++
			}
		}
	}
	return len(seen), nonWhite, baseline, canary
}
