package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/policies"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func f(x float64) *float64 { return &x }

func sampleReport() Report {
	nan := analyzer.Number(math.NaN())
	res := analyzer.Result{
		Policy: "my-app", Namespace: "default", App: "my-app", Baseline: "v1.0.0", Canary: "v2.0.0",
		Time: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC), Window: "5m",
		Metrics: []analyzer.MetricResult{
			{
				Name: "error-rate", Kind: policies.KindErrors, Critical: true, Verdict: analyzer.Fail,
				Reason:   "error rate 5.00% is 5.00x the baseline's 1.00%, above maxRatio 2",
				Baseline: 0.01, Canary: 0.05, Ratio: 5, Difference: 0.04,
				BaselineRequests: 10000, CanaryRequests: 1000, BaselineErrors: 100, CanaryErrors: 50,
				Thresholds: policies.Thresholds{Max: f(0.1), MaxRatio: f(2)},
				Query:      `sum by (version) (increase(http_requests_total{code=~"5.."}[5m]))`,
			},
			{
				Name: "latency-p99", Kind: policies.KindLatency, Critical: true, Verdict: analyzer.Inconclusive,
				Reason:   `no data for the canary (version "v2.0.0")`,
				Baseline: 0.48, Canary: nan, Ratio: nan, Difference: nan,
				BaselineRequests: 10000, CanaryRequests: nan, BaselineErrors: nan, CanaryErrors: nan,
				Thresholds: policies.Thresholds{MaxRatio: f(1.5)},
				Query:      `sum by (version, le) (increase(request_duration_seconds_bucket[5m]))`,
			},
			{
				Name: "cpu", Kind: policies.KindValue, Critical: false, Verdict: analyzer.Pass,
				Reason:   "value 0.3 is within bounds | really",
				Baseline: 0.2, Canary: 0.3, Ratio: 1.5, Difference: 0.1,
				BaselineRequests: nan, CanaryRequests: nan, BaselineErrors: nan, CanaryErrors: nan,
				Thresholds: policies.Thresholds{Min: f(0)},
				Query:      `sum by (version) (rate(cpu[5m]))`,
			},
		},
	}
	res.Verdict, res.Reason = analyzer.Overall(res.Metrics)
	d := analyzer.Decision{Action: analyzer.Rollback, Reason: res.Reason, Effect: "scale Deployment default/my-app-v2 to 0 replicas"}
	return New("my-app.yaml", res, d, true)
}

// sequentialReport is a report of the sequential judge: ratios with their always-valid
// intervals and p-values.
func sequentialReport() Report {
	nan := analyzer.Number(math.NaN())
	res := analyzer.Result{
		Policy: "my-app", Namespace: "default", App: "my-app", Baseline: "v1.0.0", Canary: "v2.0.0",
		Time: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC), Window: "5m",
		Metrics: []analyzer.MetricResult{
			{
				Name: "error-rate", Kind: policies.KindErrors, Critical: true, Verdict: analyzer.Fail,
				Reason:   "error rate 2.10% (840/40000) vs baseline 1.00% (4000/400000): ratio 2.08, 97.5% always-valid interval [1.54, 2.83]; p < 0.0001 <= alpha 0.025: the canary is worse",
				Baseline: 0.01, Canary: 0.021, Ratio: 2.1, Difference: 0.011,
				BaselineRequests: 400000, CanaryRequests: 40000, BaselineErrors: 4000, CanaryErrors: 840,
				Stats: &analyzer.Stats{Judge: policies.JudgeSequential, Intervals: 24, Estimate: 2.08, Low: 1.54, High: 2.83,
					PValue: 0.00002, PromoteP: 1, Alpha: 0.025, Tolerance: 1.5, Edge: nan},
				Query: `label_replace(http_requests_total{}, "coalmine_part", "requests", "", "")`,
			},
			{
				Name: "latency-p99", Kind: policies.KindLatency, Critical: true, Verdict: analyzer.Inconclusive,
				Reason:   "share slower than 0.5s 1.02% (408/40000) vs baseline 1.00% (4000/400000): ratio 1.02, 97.5% always-valid interval [0.72, 1.62]; not yet shown worse (p = 1.0000) nor below tolerance 1.5 (p = 0.0900)",
				Baseline: 0.41, Canary: 0.42, Ratio: 1.02, Difference: 0.01,
				BaselineRequests: 400000, CanaryRequests: 40000, BaselineErrors: nan, CanaryErrors: nan,
				Stats: &analyzer.Stats{Judge: policies.JudgeSequential, Intervals: 24, Estimate: 1.02, Low: 0.72, High: 1.62,
					PValue: 1, PromoteP: 0.09, Alpha: 0.025, Tolerance: 1.5, Edge: 0.5},
				Query: `request_duration_seconds_bucket{}`,
			},
		},
	}
	res.Verdict, res.Reason = analyzer.Overall(res.Metrics)
	d := analyzer.Decision{Action: analyzer.Rollback, Reason: res.Reason, Effect: "scale Deployment default/my-app-v2 to 0 replicas"}
	return New("my-app.yaml", res, d, true)
}

func TestGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		rep  Report
	}{{"report", sampleReport()}, {"report-sequential", sequentialReport()}} {
		for _, format := range []string{"text", "markdown", "json"} {
			t.Run(tt.name+"."+format, func(t *testing.T) {
				golden(t, format, tt.rep, filepath.Join("testdata", tt.name+"."+format))
			})
		}
	}
}

func golden(t *testing.T, format string, rep Report, file string) {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, format, rep); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update)", err)
	}
	if buf.String() != string(want) {
		t.Errorf("%s output differs from %s:\n%s", format, file, buf.String())
	}
}

func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, "json", sampleReport()); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Schema   string `json:"schema"`
		Verdict  string `json:"verdict"`
		DryRun   bool   `json:"dryRun"`
		Decision struct {
			Action string `json:"action"`
		} `json:"decision"`
		Metrics []struct {
			Name     string   `json:"name"`
			Verdict  string   `json:"verdict"`
			Baseline *float64 `json:"baseline"`
			Canary   *float64 `json:"canary"`
			Reason   string   `json:"reason"`
			Query    string   `json:"query"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Schema != SchemaVersion || got.Verdict != "fail" || !got.DryRun || got.Decision.Action != "rollback" || len(got.Metrics) != 3 {
		t.Fatalf("unexpected report: %+v", got)
	}
	m := got.Metrics[0]
	if m.Name != "error-rate" || m.Verdict != "fail" || *m.Baseline != 0.01 || *m.Canary != 0.05 || m.Reason == "" || m.Query == "" {
		t.Errorf("metric 0: %+v", m)
	}
	if got.Metrics[1].Canary != nil {
		t.Errorf("a canary without data must be null, got %v", *got.Metrics[1].Canary)
	}
}

func TestUnknownFormat(t *testing.T) {
	if err := Write(&bytes.Buffer{}, "yaml", sampleReport()); err == nil {
		t.Error("want an error for an unknown format")
	}
}
