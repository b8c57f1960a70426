package analyzer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// observerFunc adapts a function to Observer.
type observerFunc func(q metrics.Query) (metrics.Observation, error)

func (o observerFunc) Observe(_ context.Context, q metrics.Query, at time.Time) (metrics.Observation, error) {
	obs, err := o(q)
	obs.Time = at
	return obs, err
}

func examplePolicy(t *testing.T) *policies.Policy {
	t.Helper()
	ps, err := policies.LoadFile("../policies/examples/my-app-threshold.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

func TestEvaluate(t *testing.T) {
	healthyLatency := []metrics.Bucket{{UpperBound: 0.25, Count: 900}, {UpperBound: 1, Count: 1000}, {UpperBound: posInf(), Count: 1000}}
	tests := []struct {
		name    string
		obs     func(q metrics.Query) (metrics.Observation, error)
		want    Verdict
		wantErr error
	}{
		{
			name: "healthy",
			obs: func(q metrics.Query) (metrics.Observation, error) {
				if q.Kind == policies.KindErrors {
					return errorsObs(1000, 10, 100, 1), nil
				}
				return latencyObs(healthyLatency, healthyLatency), nil
			},
			want: Pass,
		},
		{
			name: "errors fail, latency fine",
			obs: func(q metrics.Query) (metrics.Observation, error) {
				if q.Kind == policies.KindErrors {
					return errorsObs(1000, 10, 100, 5), nil
				}
				return latencyObs(healthyLatency, healthyLatency), nil
			},
			want: Fail,
		},
		{
			name: "prometheus down is an error, never a verdict",
			obs: func(q metrics.Query) (metrics.Observation, error) {
				return metrics.Observation{}, fmt.Errorf("%w: connection refused", metrics.ErrUnavailable)
			},
			wantErr: metrics.ErrUnavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := examplePolicy(t)
			res, err := New(observerFunc(tt.obs), zerolog.Nop()).Evaluate(context.Background(), p, time.Unix(1700000000, 0), 5*time.Minute)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if res.Verdict != "" {
					t.Errorf("an error came with verdict %q", res.Verdict)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != tt.want || len(res.Metrics) != len(p.Spec.Metrics) {
				t.Errorf("got %s with %d metrics (%s), want %s", res.Verdict, len(res.Metrics), res.Reason, tt.want)
			}
			if res.Window != "5m" || res.Canary != "v2.0.0" {
				t.Errorf("result header: %+v", res)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	deadline := t0.Add(30 * time.Minute)
	// rec is a canary at step (0-based) of three, decided at stepStarted.
	rec := func(step int, stepStarted time.Time) *Progress {
		r := NewProgress(gatePolicy(t), t0)
		r.Done("fp", r.StepStarted)
		r.Step, r.StepStarted = step, stepStarted
		return r
	}
	ready := Observed{Ready: true}
	result := func(v Verdict) *Result { return &Result{Verdict: v, Reason: "because"} }
	tests := []struct {
		name     string
		rec      *Progress
		obs      Observed
		res      *Result
		now      time.Time
		onInconc policies.InconclusiveAction
		want     Decision // Action, Step, Cause and Final are compared
		// wantReason and wantEffect are substrings of the decision's reason and effect.
		wantReason string
		wantEffect string
	}{
		{
			name: "fail rolls back", rec: rec(0, t0), obs: ready, res: result(Fail), now: t0.Add(time.Minute),
			want: Decision{Action: Rollback, Cause: CauseVerdict}, wantReason: "because",
			wantEffect: "scale Deployment default/my-app-v2 to 0 replicas",
		},
		{
			name: "a fail during the step's time still rolls back at once", rec: rec(1, t0), obs: ready, res: result(Fail), now: t0.Add(10 * time.Second),
			want: Decision{Action: Rollback, Cause: CauseVerdict},
		},
		{
			name: "inconclusive holds", rec: rec(0, t0), obs: ready, res: result(Inconclusive), now: t0.Add(5 * time.Minute),
			want: Decision{Action: Hold}, wantReason: "because", wantEffect: "change nothing and analyse again in 30s",
		},
		{
			name: "pass before stepDuration holds", rec: rec(0, t0), obs: ready, res: result(Pass), now: t0.Add(119 * time.Second),
			want: Decision{Action: Hold}, wantReason: "step 1/3 runs for 2m",
		},
		{
			name: "pass after stepDuration advances to the next step", rec: rec(0, t0), obs: ready, res: result(Pass), now: t0.Add(2 * time.Minute),
			want: Decision{Action: Advance, Step: 1, Cause: CauseVerdict}, wantReason: "now step 2/3 (50%)",
			wantEffect: "scale Deployment default/my-app-v2 to step 2 (50%)",
		},
		{
			name: "pass after the second step's duration advances to step 3", rec: rec(1, t0.Add(2*time.Minute)), obs: ready, res: result(Pass), now: t0.Add(4 * time.Minute),
			want: Decision{Action: Advance, Step: 2, Cause: CauseVerdict}, wantEffect: "to step 3 (100%)",
		},
		{
			name: "pass at the last step promotes", rec: rec(2, t0.Add(4*time.Minute)), obs: ready, res: result(Pass), now: t0.Add(6 * time.Minute),
			want: Decision{Action: Promote, Cause: CauseVerdict}, wantReason: "passed every step",
			wantEffect: "scale Deployment default/my-app-v2 to the replicas of my-app-v1, then scale to 0 my-app-v1",
		},
		{
			name: "not ready waits, whatever the result", rec: rec(0, t0), obs: Observed{}, res: nil, now: t0.Add(time.Minute),
			want: Decision{Action: Wait}, wantEffect: "change nothing",
		},
		{
			name: "not ready past readyTimeout rolls back", rec: rec(1, t0), obs: Observed{}, now: t0.Add(5*time.Minute + time.Second),
			want: Decision{Action: Rollback, Cause: CauseReadyTimeout}, wantReason: "step 2 not Ready within readyTimeout 5m",
		},
		{
			name: "a health problem rolls back even with passing metrics", rec: rec(0, t0), obs: Observed{Ready: true, Problem: "CrashLoopBackOff"}, res: result(Pass), now: t0.Add(3 * time.Minute),
			want: Decision{Action: Rollback, Cause: CauseHealth}, wantReason: "CrashLoopBackOff",
		},
		{
			name: "a release changed by someone else stops, without a rollback", rec: rec(1, t0), obs: Observed{Changed: "my-app-v2=7", Ready: true}, res: result(Fail), now: t0.Add(time.Minute),
			want: Decision{Action: Stop, Cause: CauseChanged, Final: PhaseStopped}, wantReason: "my-app-v2=7",
			wantEffect: "change nothing; coalmine stops acting on this canary",
		},
		{
			name: "metrics unavailable holds", rec: rec(0, t0), obs: Observed{Ready: true, Unavailable: "connection refused"}, now: t0.Add(time.Minute),
			want: Decision{Action: Hold}, wantReason: "connection refused",
		},
		{
			name: "deadline with onInconclusive rollback rolls back, caused by the deadline", rec: rec(0, t0), obs: ready, res: result(Inconclusive), now: deadline,
			onInconc: policies.InconclusiveRollback,
			want:     Decision{Action: Rollback, Cause: CauseDeadline}, wantReason: "deadline passed",
		},
		{
			name: "deadline with onInconclusive hold stops, held", rec: rec(0, t0), obs: ready, res: result(Inconclusive), now: deadline.Add(time.Second),
			want: Decision{Action: Stop, Cause: CauseDeadline, Final: PhaseHeld}, wantReason: "deadline passed",
		},
		{
			name: "a pass at the last step at the deadline still promotes", rec: rec(2, t0.Add(4*time.Minute)), obs: ready, res: result(Pass), now: deadline,
			want: Decision{Action: Promote, Cause: CauseVerdict},
		},
		{
			// Advancing at the deadline grows the canary just before it is held or rolled back.
			name: "a pass before the last step at the deadline is held, not advanced", rec: rec(0, t0), obs: ready, res: result(Pass), now: deadline,
			want: Decision{Action: Stop, Cause: CauseDeadline, Final: PhaseHeld},
		},
		{
			name: "a fail at the deadline is a rollback by verdict", rec: rec(0, t0), obs: ready, res: result(Fail), now: deadline,
			want: Decision{Action: Rollback, Cause: CauseVerdict},
		},
		{
			name: "deadline while metrics are unavailable holds, resumable", rec: rec(0, t0), obs: Observed{Ready: true, Unavailable: "connection refused"}, now: deadline,
			onInconc: policies.InconclusiveRollback,
			want:     Decision{Action: Hold}, wantReason: "deadline passed while metrics were unavailable",
		},
		{
			name: "an advance in flight is finished",
			rec: func() *Progress {
				r := rec(0, t0)
				r.InFlight = &InFlight{Action: Advance, Step: 1, Cause: CauseVerdict, Since: t0}
				return r
			}(),
			obs: ready, res: result(Fail), now: t0.Add(time.Minute),
			want: Decision{Action: Advance, Step: 1, Cause: CauseVerdict},
		},
		{
			name: "an advance not in place within readyTimeout becomes a rollback",
			rec: func() *Progress {
				r := rec(0, t0)
				r.InFlight = &InFlight{Action: Advance, Step: 1, Cause: CauseVerdict, Since: t0}
				return r
			}(),
			obs: ready, res: result(Pass), now: t0.Add(time.Hour),
			want: Decision{Action: Rollback, Cause: CauseReadyTimeout}, wantReason: "step 2/3 not in place within readyTimeout",
		},
		{
			name: "a promotion in flight within actionTimeout is carried on",
			rec: func() *Progress {
				r := rec(2, t0)
				r.Phase, r.InFlight = PhasePromoting, &InFlight{Action: Promote, Cause: CauseVerdict, Since: t0}
				return r
			}(),
			obs: ready, now: t0.Add(10 * time.Minute),
			want: Decision{Action: Promote, Cause: CauseVerdict},
		},
		{
			name: "a promotion in flight past actionTimeout stops",
			rec: func() *Progress {
				r := rec(2, t0)
				r.Phase, r.InFlight = PhasePromoting, &InFlight{Action: Promote, Cause: CauseVerdict, Since: t0}
				return r
			}(),
			obs: ready, now: t0.Add(10*time.Minute + time.Second),
			want: Decision{Action: Stop, Cause: CauseActionTimeout, Final: PhaseStopped}, wantReason: "did not complete within 10m",
		},
		{
			name: "a final phase stops, whatever is seen",
			rec: func() *Progress {
				r := rec(2, t0)
				r.Phase, r.Reason = PhaseRolledBack, "errors"
				return r
			}(),
			obs: ready, res: result(Pass), now: t0.Add(10 * time.Minute),
			want: Decision{Action: Stop, Final: PhaseRolledBack}, wantReason: "already rolledBack",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := gatePolicy(t)
			if tt.onInconc != "" {
				p.Spec.Analysis.OnInconclusive = tt.onInconc
			}
			d := Decide(p, tt.rec, tt.obs, tt.res, tt.now, deadline)
			got := Decision{Action: d.Action, Step: d.Step, Cause: d.Cause, Final: d.Final}
			if got != tt.want {
				t.Errorf("got %+v (%s), want %+v", got, d.Reason, tt.want)
			}
			if !contains(d.Reason, tt.wantReason) || !contains(d.Effect, tt.wantEffect) || d.Effect == "" {
				t.Errorf("reason %q, effect %q; want them to contain %q and %q", d.Reason, d.Effect, tt.wantReason, tt.wantEffect)
			}
		})
	}
}
