package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coalmine/coalmine/sandbox"
	"github.com/coalmine/coalmine/simulator"
)

// TestBacktestAgainstBackfilledPrometheus replays the example policy over three hours of
// simulated history written into a real Prometheus with promtool: the canary window with an
// injected regression is the one found, and an A/A replay of the baseline against itself fails
// about as often as the policy's alpha allows.
func TestBacktestAgainstBackfilledPrometheus(t *testing.T) {
	coalmineBinary(t)
	dir := t.TempDir()
	end := time.Now().Add(-2 * time.Minute).Truncate(time.Minute)
	start := end.Add(-3 * time.Hour)
	lat := simulator.Latency{Median: 0.1, P99: 0.4}
	scenario := func(v2 float64) simulator.Scenario {
		return simulator.Scenario{Seed: 5, Apps: []simulator.App{{Namespace: "shop", Name: "my-app", RPS: 200, Versions: []simulator.Version{
			{Version: "v1.0.0", Pods: 6, ErrorRate: 0.01, Latency: lat},
			{Version: "v2.0.0", Pods: 4, ErrorRate: v2, Latency: lat},
		}}}}
	}
	// v2 is as good as v1, except from 1h40m to 2h in, when it answers 4% with errors.
	badFrom, badTo := start.Add(100*time.Minute), start.Add(120*time.Minute)
	phases := []simulator.Phase{{Start: start, Scenario: scenario(0.01)}, {Start: badFrom, Scenario: scenario(0.04)}, {Start: badTo, Scenario: scenario(0.01)}}
	om := filepath.Join(dir, "history.om")
	f, err := os.Create(om)
	if err != nil {
		t.Fatal(err)
	}
	if err := simulator.WriteOpenMetrics(f, phases, start, end, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	promDir := filepath.Join(dir, "prometheus")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := sandbox.Backfill(ctx, om, promDir); err != nil {
		t.Fatal(err)
	}
	prom := sandbox.StartPrometheusT(t, sandbox.PrometheusOptions{Dir: promDir})

	example, err := os.ReadFile("../../policies/examples/my-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Canaries of at most 20 minutes, judged every 30 s as the example says.
	policy := filepath.Join(dir, "my-app.yaml")
	if err := os.WriteFile(policy, []byte(strings.Replace(string(example), "maxDuration: 30m", "maxDuration: 20m", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	var bt struct {
		Schema string `json:"schema"`
		Runs   []struct {
			Start   time.Time `json:"start"`
			End     time.Time `json:"end"`
			Verdict string    `json:"verdict"`
			Reason  string    `json:"reason"`
		} `json:"runs"`
		Failed       int      `json:"failed"`
		Passed       int      `json:"passed"`
		FailRate     *float64 `json:"failRate"`
		FailRateLow  *float64 `json:"failRateLow"`
		FailRateHigh *float64 `json:"failRateHigh"`
		Alpha        float64  `json:"alpha"`
	}

	t.Run("the injected regression is found", func(t *testing.T) {
		r := runCLI(t, "backtest", "-f", policy, "-n", "shop", "--prometheus-url", prom.URL(),
			"--from", start.Format(time.RFC3339), "--to", end.Format(time.RFC3339), "--every", "20m", "--format", "json")
		if r.code != exitFail {
			t.Fatalf("exit code %d, want %d (a canary would have been rolled back)\n%s\n%s", r.code, exitFail, r.stdout, r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), &bt); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, r.stdout)
		}
		if len(bt.Runs) != 9 || bt.Schema != "coalmine.dev/backtest/v1alpha1" {
			t.Fatalf("%d runs (want 9), schema %q", len(bt.Runs), bt.Schema)
		}
		for _, run := range bt.Runs {
			bad := run.Start.Before(badTo) && run.End.After(badFrom)
			switch {
			case bad && run.Verdict != "fail":
				t.Errorf("the canary from %s overlapping the regression: %s (%s)", run.Start, run.Verdict, run.Reason)
			case !bad && run.Verdict != "pass":
				t.Errorf("the healthy canary from %s: %s (%s)", run.Start, run.Verdict, run.Reason)
			case bad && run.End.Before(badFrom):
				t.Errorf("rolled back at %s, before the regression began at %s", run.End, badFrom)
			}
		}
		if !strings.Contains(r.stderr, "backtest 9/9") {
			t.Errorf("no progress lines on stderr:\n%s", r.stderr)
		}
	})

	t.Run("an A/A replay fails about alpha of the time", func(t *testing.T) {
		r := runCLI(t, "backtest", "-f", policy, "-n", "shop", "--prometheus-url", prom.URL(), "--aa",
			"--from", start.Format(time.RFC3339), "--to", end.Format(time.RFC3339), "--every", "5m", "--format", "json")
		if r.code != exitPass && r.code != exitFail {
			t.Fatalf("exit code %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), &bt); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, r.stdout)
		}
		if len(bt.Runs) != 36 || bt.FailRate == nil {
			t.Fatalf("%d runs, want 36", len(bt.Runs))
		}
		// Consistent with alpha: the Wilson interval of the measured rate reaches alpha.
		if *bt.FailRateLow > bt.Alpha || bt.Failed > 5 {
			t.Errorf("A/A: %d of %d windows failed (%.1f%%, interval [%.1f%%, %.1f%%]), not consistent with alpha %g",
				bt.Failed, len(bt.Runs), 100**bt.FailRate, 100**bt.FailRateLow, 100**bt.FailRateHigh, bt.Alpha)
		}
		if bt.Passed < len(bt.Runs)/2 {
			t.Errorf("A/A: only %d of %d windows passed: the replay is not judging; first: %+v", bt.Passed, len(bt.Runs), bt.Runs[0])
		}
		text := runCLI(t, "backtest", "-f", policy, "-n", "shop", "--prometheus-url", prom.URL(), "--aa",
			"--from", start.Format(time.RFC3339), "--to", start.Add(time.Hour).Format(time.RFC3339), "--every", "10m")
		t.Logf("coalmine backtest --aa:\n%s", text.stdout)
		if !strings.Contains(text.stdout, "A/A false-rollback rate") || !strings.Contains(text.stdout, "6 canaries") {
			t.Errorf("text output:\n%s", text.stdout)
		}
	})
}
