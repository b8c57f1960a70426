package analyzer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

func TestDecodeCommands(t *testing.T) {
	at := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	ok := Command{ID: "c1", Verb: VerbAbort, Canary: "v2", Attempt: at, By: "alice", At: at}
	raw, err := AppendCommand("", ok)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, raw, want string
	}{
		{name: "valid", raw: raw},
		{name: "empty", raw: ""},
		{name: "not JSON", raw: "abort please", want: "commands"},
		{name: "an unknown field", raw: strings.Replace(raw, `"by"`, `"as":"root","by"`, 1), want: "unknown field"},
		{name: "an unknown verb", raw: strings.Replace(raw, `"abort"`, `"delete"`, 1), want: "unknown command"},
		{name: "no attempt", raw: strings.Replace(raw, at.Format(time.RFC3339), "0001-01-01T00:00:00Z", 1), want: "names its canary"},
		{name: "a bad id", raw: strings.Replace(raw, `"c1"`, `"../x"`, 1), want: "not a command id"},
		{name: "oversize", raw: `[` + strings.Repeat(" ", maxCommandBytes) + `]`, want: "bytes"},
		{name: "skipAnalysis on abort", raw: strings.Replace(raw, `"by"`, `"skipAnalysis":true,"by"`, 1), want: "promote only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeCommands(tt.raw)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
	t.Run("the newest are kept", func(t *testing.T) {
		raw := "garbage"
		for i := range 20 {
			c := ok
			c.ID = fmt.Sprintf("c%d", i)
			if raw, err = AppendCommand(raw, c); err != nil {
				t.Fatal(err)
			}
		}
		cmds, err := DecodeCommands(raw)
		if err != nil || len(cmds) != maxCommands || cmds[0].ID != "c12" || cmds[maxCommands-1].ID != "c19" {
			t.Fatalf("got %d commands (%v), want c12..c19", len(cmds), err)
		}
	})
}

// command leaves a command for the canary whose record rel holds.
func command(t *testing.T, rel *fakeRelease, p *policies.Policy, verb Verb, mod func(*Command)) {
	t.Helper()
	rec, err := DecodeProgress(rel.progress, p)
	if err != nil || rec == nil {
		t.Fatalf("no record to command: %v", err)
	}
	c := Command{ID: fmt.Sprintf("%s-%d", verb, len(rel.commands)), Verb: verb, Canary: rec.Canary, Attempt: rec.Started, By: "alice", At: rec.Started}
	if mod != nil {
		mod(&c)
	}
	if rel.commands, err = AppendCommand(rel.commands, c); err != nil {
		t.Fatal(err)
	}
}

// stepUntil steps the canary until cond holds of its record, at most n times.
func stepUntil(t *testing.T, c *Canary, clk *clock, n int, cond func(*Progress, StepResult) bool) StepResult {
	t.Helper()
	var st StepResult
	for range n {
		var err error
		if st, err = c.Step(context.Background(), clk.t.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if cond(c.rec, st) {
			return st
		}
		clk.t = clk.t.Add(max(st.Next, time.Second))
	}
	t.Fatalf("not reached in %d steps: %s", n, c.rec)
	return st
}

func TestPeopleInTheLoop(t *testing.T) {
	healthy := func(q metrics.Query, _ time.Time) (metrics.Observation, error) { return healthyObs(q), nil }
	atStep := func(i int) func(*Progress, StepResult) bool {
		return func(r *Progress, _ StepResult) bool { return r.Step == i && r.InFlight == nil }
	}
	ended := func(_ *Progress, st StepResult) bool { return st.Outcome != "" }

	t.Run("abort rolls back at the next tick, naming who asked", func(t *testing.T) {
		p := gatePolicy(t)
		rel := &fakeRelease{steps: 3}
		c, clk := newCanary(t, p, rel, healthy)
		stepUntil(t, c, clk, 50, atStep(1))
		command(t, rel, p, VerbAbort, func(c *Command) { c.Reason = "dashboards look odd" })
		st := stepUntil(t, c, clk, 1, ended)
		if st.Outcome != OutcomeRolledBack || rel.rollbacks == 0 || !strings.Contains(st.Reason, "aborted by alice (dashboards look odd)") {
			t.Fatalf("outcome %s (%s), %d rollbacks; want rolled back at once by alice", st.Outcome, st.Reason, rel.rollbacks)
		}
		if !slices.Contains(rel.events, "CanaryCommand") || !strings.Contains(strings.Join(rel.messages, "\n"), "abort requested by alice") {
			t.Fatalf("events %v %q, want a CanaryCommand naming alice", rel.events, rel.messages)
		}
	})

	t.Run("pause holds a passing canary past its deadline; resume lets it go on", func(t *testing.T) {
		p := gatePolicy(t)
		rel := &fakeRelease{steps: 3}
		c, clk := newCanary(t, p, rel, healthy)
		stepUntil(t, c, clk, 50, atStep(0))
		command(t, rel, p, VerbPause, nil)
		for range 100 { // 50 minutes: past maxDuration (30m)
			st, err := c.Step(context.Background(), clk.t.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if st.Outcome != "" && st.Outcome != OutcomeWaiting || c.rec.Step != 0 {
				t.Fatalf("paused canary moved: %s at step %d (%s)", st.Outcome, c.rec.Step+1, st.Reason)
			}
			clk.t = clk.t.Add(30 * time.Second)
		}
		if st, _ := c.Step(context.Background(), clk.t.Add(time.Hour)); !strings.Contains(st.Tick.Reason, "paused by alice") {
			t.Fatalf("reason %q, want it to say who paused", st.Tick.Reason)
		}
		command(t, rel, p, VerbResume, nil)
		stepUntil(t, c, clk, 50, atStep(1))
	})

	t.Run("a failing canary is rolled back even when paused", func(t *testing.T) {
		p := gatePolicy(t)
		rel := &fakeRelease{steps: 3}
		bad := false
		c, clk := newCanary(t, p, rel, func(q metrics.Query, _ time.Time) (metrics.Observation, error) {
			if bad {
				return badObs(q), nil
			}
			return healthyObs(q), nil
		})
		stepUntil(t, c, clk, 50, atStep(0))
		command(t, rel, p, VerbPause, nil)
		bad = true
		if st := stepUntil(t, c, clk, 20, ended); st.Outcome != OutcomeRolledBack {
			t.Fatalf("outcome %s, want rolled back", st.Outcome)
		}
	})

	t.Run("an approval gate waits, asks once, and goes on when approved", func(t *testing.T) {
		p := gatePolicy(t)
		p.Spec.Strategy.ApproveBefore = []int{4} // the promotion
		rel := &fakeRelease{steps: 3}
		c, clk := newCanary(t, p, rel, healthy)
		stepUntil(t, c, clk, 100, atStep(2))
		for range 60 {
			st, err := c.Step(context.Background(), clk.t.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if st.Outcome != "" && st.Outcome != OutcomeWaiting || rel.promotes > 0 {
				t.Fatalf("promoted without approval: %s", st.Reason)
			}
			clk.t = clk.t.Add(30 * time.Second)
		}
		if n := len(slices.DeleteFunc(slices.Clone(rel.events), func(e string) bool { return e != "CanaryApprovalNeeded" })); n != 1 {
			t.Fatalf("%d CanaryApprovalNeeded events, want 1", n)
		}
		command(t, rel, p, VerbApprove, nil)
		if st := stepUntil(t, c, clk, 3, ended); st.Outcome != OutcomePromoted {
			t.Fatalf("outcome %s (%s), want promoted once approved", st.Outcome, st.Reason)
		}
		kinds := noticeKinds(c.rec)
		want := "started step step approvalNeeded command promoted"
		if kinds != want {
			t.Fatalf("notices %q, want %q", kinds, want)
		}
	})

	t.Run("promote after analysis skips the steps once the current one passes", func(t *testing.T) {
		p := gatePolicy(t)
		rel := &fakeRelease{steps: 3}
		c, clk := newCanary(t, p, rel, healthy)
		stepUntil(t, c, clk, 50, atStep(0))
		command(t, rel, p, VerbPromote, nil)
		st := stepUntil(t, c, clk, 20, ended)
		if st.Outcome != OutcomePromoted || slices.Contains(rel.setSteps, 2) {
			t.Fatalf("outcome %s, steps %v; want promoted from step 1", st.Outcome, rel.setSteps)
		}
		if rec, err := DecodeProgress(rel.progress, p); err != nil || rec.Phase != PhasePromoted {
			t.Fatalf("the record of a promotion people asked for does not read back: %v", err)
		}
	})

	t.Run("promote without analysis promotes a canary that has not passed", func(t *testing.T) {
		p := gatePolicy(t)
		rel := &fakeRelease{steps: 3}
		c, clk := newCanary(t, p, rel, func(metrics.Query, time.Time) (metrics.Observation, error) {
			return metrics.Observation{}, metrics.ErrUnavailable
		})
		stepUntil(t, c, clk, 50, atStep(0))
		command(t, rel, p, VerbPromote, func(c *Command) { c.SkipAnalysis = true })
		if st := stepUntil(t, c, clk, 2, ended); st.Outcome != OutcomePromoted {
			t.Fatalf("outcome %s, want promoted", st.Outcome)
		}
	})

	t.Run("retry starts an ended canary again; old commands are not taken twice", func(t *testing.T) {
		p := gatePolicy(t)
		rel := &fakeRelease{steps: 3}
		c, clk := newCanary(t, p, rel, healthy)
		stepUntil(t, c, clk, 50, atStep(0))
		command(t, rel, p, VerbAbort, nil)
		stepUntil(t, c, clk, 2, ended)
		first, _ := DecodeProgress(rel.progress, p)
		clk.t = clk.t.Add(time.Minute)
		// A new process finds it ended.
		c, _ = newCanary(t, p, rel, healthy)
		c.Now = clk.now
		if st, _ := c.Step(context.Background(), clk.t.Add(time.Hour)); st.Outcome != OutcomeRolledBack {
			t.Fatalf("outcome %s, want the ended canary left as it is", st.Outcome)
		}
		command(t, rel, p, VerbRetry, nil)
		c, _ = newCanary(t, p, rel, healthy)
		c.Now, c.Sleep = clk.now, clk.sleep
		st := stepUntil(t, c, clk, 100, ended)
		if st.Outcome != OutcomePromoted || !c.rec.Started.After(first.Started) {
			t.Fatalf("outcome %s (%s), want a new attempt promoted", st.Outcome, st.Reason)
		}
	})

	t.Run("commands for another canary or attempt are not taken", func(t *testing.T) {
		p := gatePolicy(t)
		rel := &fakeRelease{steps: 3}
		c, clk := newCanary(t, p, rel, healthy)
		stepUntil(t, c, clk, 50, atStep(0))
		command(t, rel, p, VerbAbort, func(c *Command) { c.Canary = "v9" })
		command(t, rel, p, VerbAbort, func(c *Command) { c.Attempt = c.Attempt.Add(-time.Hour) })
		if st := stepUntil(t, c, clk, 200, ended); st.Outcome != OutcomePromoted {
			t.Fatalf("outcome %s (%s), want promoted", st.Outcome, st.Reason)
		}
	})

	t.Run("a new pod template of the same version is a new canary", func(t *testing.T) {
		p := gatePolicy(t)
		p.Spec.Target.Baseline.Version, p.Spec.Target.Canary.Version = "", "" // read from the Deployments
		rel := &fakeRelease{steps: 3}
		c, clk := newCanary(t, p, rel, healthy)
		stepUntil(t, c, clk, 200, ended)
		c, _ = newCanary(t, p, rel, healthy)
		c.Now, c.Sleep = clk.now, clk.sleep
		if st, _ := c.Step(context.Background(), clk.t.Add(time.Hour)); st.Outcome != OutcomePromoted {
			t.Fatalf("outcome %s, want the same template left promoted", st.Outcome)
		}
		rel.template = "t2"
		c, _ = newCanary(t, p, rel, healthy)
		c.Now, c.Sleep = clk.now, clk.sleep
		if st := stepUntil(t, c, clk, 200, ended); st.Outcome != OutcomePromoted || c.rec.Template != "t2" || rel.prepares != 2 || c.rec.Canary != "v2" || c.rec.Baseline != "v1" {
			t.Fatalf("outcome %s, template %q, %d prepares; want a second canary", st.Outcome, c.rec.Template, rel.prepares)
		}
		// The first canary's notices ride on in the second's record, for a sender that has not
		// sent them yet; each keeps its own ID.
		if got, want := noticeKinds(c.rec), "started step step promoted started step step promoted"; got != want {
			t.Fatalf("notices %q, want %q", got, want)
		}
		if c.rec.Notices[0].ID == c.rec.Notices[4].ID {
			t.Fatalf("two canaries' notices share the ID %s", c.rec.Notices[0].ID)
		}
	})
}

func noticeKinds(rec *Progress) string {
	var out []string
	for _, n := range rec.Notices {
		out = append(out, string(n.Kind))
	}
	return strings.Join(out, " ")
}
