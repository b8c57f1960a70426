package report

import (
	"strings"
	"testing"
	"time"

	"github.com/coalmine/coalmine/analyzer"
)

func sampleBacktest() analyzer.Backtest {
	from := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	res := sequentialReport().Result
	bt := analyzer.Backtest{
		Policy: "my-app", Namespace: "default", App: "my-app", Baseline: "v1.0.0", Canary: "v1.0.0", Judge: "sequential",
		From: from, To: from.Add(time.Hour), Every: 20 * time.Minute, AA: "pod", Alpha: 0.05,
		Runs: []analyzer.BacktestRun{
			{Start: from, End: from.Add(4 * time.Minute), After: 4 * time.Minute, Verdict: analyzer.Pass, Reason: "every critical metric passed", Ticks: 8, Result: res},
			{Start: from.Add(20 * time.Minute), End: from.Add(22 * time.Minute), After: 2 * time.Minute, Verdict: analyzer.Fail, Reason: "error-rate: worse", Ticks: 4, Result: res},
			{Start: from.Add(40 * time.Minute), End: from.Add(time.Hour), After: 20 * time.Minute, Verdict: analyzer.Inconclusive, Reason: "not yet shown", Ticks: 40, Result: res},
		},
		Failed: 1, Passed: 1, Inconclusive: 1,
	}
	p, lo, hi := analyzer.Wilson(1, 3)
	bt.FailRate, bt.FailRateLow, bt.FailRateHigh = analyzer.Number(p), analyzer.Number(lo), analyzer.Number(hi)
	return bt
}

func TestBacktestFormatsSayTheSame(t *testing.T) {
	bt := sampleBacktest()
	var text, md strings.Builder
	if err := WriteBacktest(&text, "text", bt); err != nil {
		t.Fatal(err)
	}
	if err := WriteBacktest(&md, "markdown", bt); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"A/A: v1.0.0 against itself", "3 canaries: 1 would have been rolled back, 1 promoted, 1 inconclusive",
		"false-rollback rate 33.3% (1/3)", "2026-11-22T00:20:00Z", "error-rate: worse"} {
		for name, out := range map[string]string{"text": text.String(), "markdown": md.String()} {
			if !strings.Contains(out, want) {
				t.Errorf("%s output lacks %q:\n%s", name, want, out)
			}
		}
	}
	if !strings.Contains(text.String(), "rollback") || !strings.Contains(md.String(), "❌ fail") {
		t.Errorf("outcomes not shown:\n%s\n%s", text.String(), md.String())
	}
}
