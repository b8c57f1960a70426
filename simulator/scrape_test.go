package simulator

import (
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches a pod's /metrics as Prometheus's text format and parses it.
func scrape(t *testing.T, address string) map[string]*dto.MetricFamily {
	t.Helper()
	return scrapeURL(t, "http://"+address+"/metrics")
}

// scrapeURL fetches and parses metrics in Prometheus's text format.
func scrapeURL(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: status %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape of %s: %v", url, err)
	}
	return mfs
}

// podStats sums a pod's scraped series.
type podStats struct {
	requests float64 // http_requests_total, all codes and methods
	errors   float64 // http_requests_total{code="500"}
	posts    float64 // http_requests_total{method="post"}
	observed uint64  // request_duration_seconds_count
	fast     uint64  // request_duration_seconds_bucket{le="0.25"}
}

func statsOf(mfs map[string]*dto.MetricFamily) podStats {
	var s podStats
	for _, m := range mfs["http_requests_total"].GetMetric() {
		v := m.GetCounter().GetValue()
		s.requests += v
		for _, l := range m.GetLabel() {
			switch {
			case l.GetName() == "code" && l.GetValue() == codeError:
				s.errors += v
			case l.GetName() == "method" && l.GetValue() == methodPost:
				s.posts += v
			}
		}
	}
	for _, m := range mfs["request_duration_seconds"].GetMetric() {
		h := m.GetHistogram()
		s.observed += h.GetSampleCount()
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == 0.25 {
				s.fast += b.GetCumulativeCount()
			}
		}
	}
	return s
}

// scrapeAll returns the stats of every running pod, by pod name.
func scrapeAll(t *testing.T, sim *Simulator) map[string]podStats {
	t.Helper()
	out := map[string]podStats{}
	for _, tg := range sim.Targets() {
		out[tg.Pod] = statsOf(scrape(t, tg.Address))
	}
	return out
}
