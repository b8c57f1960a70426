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
	p := examplePolicy(t)
	tests := []struct {
		verdict    Verdict
		want       Action
		wantEffect string
	}{
		{Pass, Promote, "scale Deployment default/my-app-v2 to its next step (steps 1, 50%, 100%); after the last, to the replicas of my-app-v1, then scale to 0 my-app-v1"},
		{Fail, Rollback, "scale Deployment default/my-app-v2 to 0 replicas"},
		{Inconclusive, Hold, "change nothing and analyse again in 30s"},
	}
	for _, tt := range tests {
		t.Run(string(tt.verdict), func(t *testing.T) {
			d := Decide(p, Result{Verdict: tt.verdict, Reason: "because"})
			if d.Action != tt.want || d.Reason != "because" || !contains(d.Effect, tt.wantEffect) {
				t.Errorf("got %+v, want %s with effect %q", d, tt.want, tt.wantEffect)
			}
		})
	}
}
