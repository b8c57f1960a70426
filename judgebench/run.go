package judgebench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/coalmine/coalmine/policies"
)

// DefaultRuns is the runs a headline or healthy cell gets by default: the whole grid, 25,400
// runs, takes about two and a half minutes on two cores.
const DefaultRuns = 400

// Config says what to run.
type Config struct {
	// Runs is the runs of a headline or healthy cell; the others get fewer (RunsFor).
	Runs int
	// Seed is the first half of every stream's PCG seed; the cell and the run are the second.
	Seed uint64
	// Judges are the judges to report, by name. The oracle always runs: the others' times are
	// measured against it.
	Judges []string
	// Cells selects cells by name; nil is all of them.
	Cells *regexp.Regexp
	// Parallel is the number of workers; 0 is GOMAXPROCS. The results do not depend on it.
	Parallel int
}

// Report is what a benchmark found.
type Report struct {
	Config Config
	Judges []Judge
	Cells  []CellResult
	// Runs counts the streams simulated, Workers the goroutines that ran them, and Wall is
	// how long it all took.
	Runs    int
	Workers int
	Wall    time.Duration
}

// CellResult is every judge's outcomes on a cell's runs, by judge name.
type CellResult struct {
	Cell     Cell
	Outcomes map[string][]Outcome
}

// Summary is a judge's summary on the cell, against the oracle.
func (r CellResult) Summary(judge string) Summary {
	oracle := Summarize(r.Cell, r.Outcomes[Oracle.Name], 0)
	return Summarize(r.Cell, r.Outcomes[judge], oracle.MedianFail)
}

// Run simulates every selected cell's runs and feeds each stream to every judge.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	began := time.Now()
	judges, err := SelectJudges(cfg.Judges)
	if err != nil {
		return nil, err
	}
	if cfg.Runs <= 0 {
		return nil, fmt.Errorf("runs %d must be > 0", cfg.Runs)
	}
	workers := cfg.Parallel
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	rep := &Report{Config: cfg, Judges: judges, Workers: workers}
	for _, c := range Grid() {
		if cfg.Cells == nil || cfg.Cells.MatchString(c.Name) {
			rep.Cells = append(rep.Cells, CellResult{Cell: c, Outcomes: map[string][]Outcome{}})
		}
	}
	if len(rep.Cells) == 0 {
		return nil, fmt.Errorf("no cell matches %q", cfg.Cells)
	}
	run := judges
	if !slices.ContainsFunc(run, func(j Judge) bool { return j.Name == Oracle.Name }) {
		run = append(slices.Clone(run), Oracle)
	}

	type job struct{ cell, run int }
	var jobs []job
	policiesOf := make([][]*policies.Policy, len(rep.Cells))
	for ci := range rep.Cells {
		cr := &rep.Cells[ci]
		n := RunsFor(cr.Cell, cfg.Runs)
		for _, j := range run {
			cr.Outcomes[j.Name] = make([]Outcome, n)
			policiesOf[ci] = append(policiesOf[ci], NewPolicy(j.judge, cr.Cell))
		}
		for r := range n {
			jobs = append(jobs, job{ci, r})
		}
	}
	rep.Runs = len(jobs)

	ch := make(chan job)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for jb := range ch {
				cr := &rep.Cells[jb.cell]
				c := cr.Cell
				s := Generate(c.Scenario, rand.New(rand.NewPCG(cfg.Seed, streamSeed(c, jb.run))))
				for k, j := range run {
					// Each judge has its own slice, each run its own element: no lock needed.
					cr.Outcomes[j.Name][jb.run] = j.run(policiesOf[jb.cell][k], c, s)
				}
			}
		})
	}
	var cancelled error
feed:
	for _, jb := range jobs {
		select {
		case ch <- jb:
		case <-ctx.Done():
			cancelled = ctx.Err()
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if cancelled != nil {
		return nil, cancelled
	}
	rep.Wall = time.Since(began)
	return rep, nil
}

// streamSeed is the second half of a run's PCG seed: every cell and run its own stream.
func streamSeed(c Cell, run int) uint64 { return uint64(c.Index)*100000 + uint64(run) }

// SelectJudges looks judges up by name, in the order given; none is all of them.
func SelectJudges(names []string) ([]Judge, error) {
	if len(names) == 0 {
		return Judges(), nil
	}
	var out []Judge
	for _, n := range names {
		i := slices.IndexFunc(Judges(), func(j Judge) bool { return j.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("unknown judge %q: want sequential, threshold, mannwhitney or oracle", n)
		}
		out = append(out, Judges()[i])
	}
	return out, nil
}
