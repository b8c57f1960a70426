package promapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/metrics/metricstest"
	"github.com/coalmine/coalmine/policies"
)

// hugeAnswer serves a Prometheus answer of size bytes, written as it goes (no Content-Length
// unless withLength): a vector of identical samples, cut where size ends.
func hugeAnswer(t testing.TB, size int64, withLength bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if withLength {
			w.Header().Set("Content-Length", fmt.Sprint(size))
		}
		head := `{"status":"success","data":{"resultType":"vector","result":[`
		sample := `{"metric":{"version":"v2","le":"0.5","pod":"` + strings.Repeat("p", 64) + `"},"value":[1700000000,"1"]},`
		chunk := []byte(strings.Repeat(sample, 4096))
		written, _ := w.Write([]byte(head))
		left := size - int64(written)
		for left > 0 {
			b := chunk
			if int64(len(b)) > left {
				b = b[:left]
			}
			n, err := w.Write(b)
			if err != nil {
				return
			}
			left -= int64(n)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestAnswersAreBounded shows a Prometheus (or a proxy before it) answering more than any
// canary needs: an error that makes the canary hold, never the whole answer in memory.
func TestAnswersAreBounded(t *testing.T) {
	q := queryFor(t, policies.KindErrors)
	for _, withLength := range []bool{false, true} {
		srv := hugeAnswer(t, maxAnswerBytes+1, withLength)
		_, err := observe(t, srv.URL, q, 30*time.Second)
		if !errors.Is(err, metrics.ErrUnavailable) || !strings.Contains(err.Error(), "larger than 32 MiB") {
			t.Errorf("content length given %t: err %v, want unavailable, too large", withLength, err)
		}
	}
}

// BenchmarkHostileAnswer reads a 300 MB answer and reports the heap's peak while it does, above
// where it began.
func BenchmarkHostileAnswer(b *testing.B) {
	q := queryFor(b, policies.KindErrors)
	srv := hugeAnswer(b, 300_000_000, false)
	peak := metricstest.PeakHeap(b, func() {
		if _, err := observe(b, srv.URL, q, time.Minute); err == nil {
			b.Fatal("a 300 MB answer was read")
		}
	})
	b.ReportMetric(peak, "peak-heap-MiB")
}
