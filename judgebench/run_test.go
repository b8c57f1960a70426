package judgebench

import (
	"bytes"
	"context"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestGrid(t *testing.T) {
	cells := Grid()
	if want := len(BaseErrorRates)*len(Rates)*len(Ratios) + 7 + 15 + 13; len(cells) != want {
		t.Errorf("%d cells, want %d", len(cells), want)
	}
	names := map[string]bool{}
	for i, c := range cells {
		if c.Index != i {
			t.Errorf("%q: index %d, want %d", c.Name, c.Index, i)
		}
		if names[c.Name] {
			t.Errorf("two cells named %q", c.Name)
		}
		names[c.Name] = true
		if c.Healthy() && RunsFor(c, 10) < MinHealthyRuns {
			t.Errorf("%q: %d runs, want at least %d on a healthy cell", c.Name, RunsFor(c, 10), MinHealthyRuns)
		}
	}
	for _, n := range []string{HeadlineDouble, HeadlineLowBase, HeadlineFive, HealthyHeadline, LatencyWhole, LatencyTail, RareMarginHeadline} {
		if !names[n] {
			t.Errorf("no cell %q for the targets", n)
		}
	}
}

func TestRunDoesNotDependOnParallel(t *testing.T) {
	cfg := Config{Runs: 12, Seed: 3, Cells: regexp.MustCompile(`^err 1%->(5|10)% @10/s$|^lat p99\+20% whole`)}
	var reps []*Report
	for _, workers := range []int{1, 3} {
		cfg.Parallel = workers
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rep)
	}
	if len(reps[0].Cells) != 3 {
		t.Fatalf("%d cells run, want 3", len(reps[0].Cells))
	}
	for i := range reps[0].Cells {
		if a, b := reps[0].Cells[i].Outcomes, reps[1].Cells[i].Outcomes; !reflect.DeepEqual(a, b) {
			t.Errorf("%s: outcomes differ between 1 and 3 workers", reps[0].Cells[i].Cell.Name)
		}
	}
	// Every judge catches a 5x regression at 10 req/s in most runs.
	for _, j := range Judges() {
		if s := reps[0].Cells[0].Summary(j.Name); s.FailRate < 0.9 {
			t.Errorf("%s on %s: detected %v, want >= 90%%", j.Name, reps[0].Cells[0].Cell.Name, s.FailRate)
		}
	}

	var out bytes.Buffer
	if err := Print(&out, reps[0], FormatMarkdown); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| cell | runs | false rollbacks [95% CI] |",
		"| err 1%->5% @10/s | 12 | - | 100.0% |",
		"SKIP | false rollbacks <= 5% in every healthy cell (0 cells) | cell not run |",
		"| lat p99+20% whole @10/s: median time to fail <= 5 min |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("markdown report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "unknown judge", cfg: Config{Runs: 1, Judges: []string{"kayenta"}}, want: `unknown judge "kayenta"`},
		{name: "no cell", cfg: Config{Runs: 1, Cells: regexp.MustCompile("nothing")}, want: "no cell matches"},
		{name: "no runs", cfg: Config{Runs: 0}, want: "runs 0 must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}
