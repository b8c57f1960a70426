package scrape

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// FuzzPodPage feeds the pods source's reading of a text page (the family filter, then the
// text parser) with pages a canary could write: it must never panic, keep only the families
// asked for, and never keep more than maxPodSamples samples.
func FuzzPodPage(f *testing.F) {
	f.Add([]byte("# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 1\njunk 2\n"))
	f.Add([]byte("request_duration_seconds_bucket{le=\"+Inf\"} NaN\nrequest_duration_seconds_count 3\n# EOF\n"))
	f.Add([]byte("http_requests_total{code=\"200\" 1\n" + strings.Repeat("x", 70000)))
	f.Fuzz(func(t *testing.T, page []byte) {
		families := []string{"http_requests_total", "request_duration_seconds", "request_duration_seconds_bucket"}
		filter := newFamilyFilter(bytes.NewReader(page), families)
		dec := expfmt.NewDecoder(filter, expfmt.NewFormat(expfmt.TypeTextPlain))
		samples := 0
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err != nil {
				if !errors.Is(err, io.EOF) && filter.kept > maxPodSamples+1 {
					t.Fatalf("kept %d samples past the bound", filter.kept)
				}
				return
			}
			name := mf.GetName()
			ok := false
			for _, fam := range families {
				if name == fam || strings.HasPrefix(name, fam) {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("family %q was not asked for", name)
			}
			if samples += len(mf.GetMetric()); samples > maxPodSamples {
				t.Fatalf("%d samples kept, want at most %d", samples, maxPodSamples)
			}
		}
	})
}
