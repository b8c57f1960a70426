package analyzer

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestWilson(t *testing.T) {
	// 1 of 20: the 95% Wilson interval is [0.0089, 0.2361] (computed by hand from the formula).
	p, lo, hi := Wilson(1, 20)
	if p != 0.05 || math.Abs(lo-0.0089) > 1e-4 || math.Abs(hi-0.2361) > 1e-4 {
		t.Errorf("Wilson(1, 20) = %.4f [%.4f, %.4f]", p, lo, hi)
	}
	if _, lo, hi := Wilson(0, 10); lo != 0 || math.Abs(hi-0.2775) > 1e-4 {
		t.Errorf("Wilson(0, 10) = [%.4f, %.4f]", lo, hi)
	}
	if p, _, _ := Wilson(0, 0); !math.IsNaN(p) {
		t.Error("no runs must be no rate")
	}
}

func TestBacktest(t *testing.T) {
	from := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		pc         float64
		wantFailed int
		wantPassed int
	}{
		{name: "5x errors: every canary would have been rolled back", pc: 0.05, wantFailed: 6},
		{name: "healthy: every canary would have been promoted", pc: 0.02, wantPassed: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := sequentialPolicy(t)
			sim := &counterSim{rng: rand.New(rand.NewPCG(7, 7)), rps: 100, pb: 0.02, pc: tt.pc}
			var calls int
			bt, err := New(sim, zerolog.Nop()).Backtest(context.Background(), p, from, from.Add(3*time.Hour), 30*time.Minute,
				func(done, total int, _ BacktestRun) {
					calls++
					if total != 6 || done != calls {
						t.Errorf("progress %d/%d at call %d", done, total, calls)
					}
				})
			if err != nil {
				t.Fatal(err)
			}
			if len(bt.Runs) != 6 || bt.Failed != tt.wantFailed || bt.Passed != tt.wantPassed || calls != 6 {
				t.Fatalf("%d runs: %d failed, %d passed (want %d, %d)", len(bt.Runs), bt.Failed, bt.Passed, tt.wantFailed, tt.wantPassed)
			}
			for _, r := range bt.Runs {
				if r.After <= 0 || r.After > 30*time.Minute || r.End.Sub(r.Start) != r.After {
					t.Errorf("run from %s ended after %s", r.Start, r.After)
				}
			}
		})
	}
}
