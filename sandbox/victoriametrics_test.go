package sandbox

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestVictoriaMetricsImportsAndAnswers starts Debian's VictoriaMetrics, imports a sample and
// reads it back through the Prometheus query API.
func TestVictoriaMetricsImportsAndAnswers(t *testing.T) {
	v := StartVictoriaMetricsT(t, VictoriaMetricsOptions{})
	at := time.Now().Add(-time.Minute).UnixMilli()
	if err := v.Import(t.Context(), fmt.Sprintf("sandbox_up{job=\"x\"} 42 %d\n", at)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(v.URL() + "/api/v1/query?query=" + url.QueryEscape("sandbox_up"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"42"`) {
		t.Errorf("answer %s does not hold the imported 42", body)
	}
}

func TestVictoriaMetricsMissingBinary(t *testing.T) {
	_, err := StartVictoriaMetrics(t.Context(), VictoriaMetricsOptions{Binary: "/nonexistent/victoria-metrics"})
	if !errors.Is(err, ErrVictoriaMetricsNotFound) {
		t.Errorf("err %v, want ErrVictoriaMetricsNotFound", err)
	}
}
