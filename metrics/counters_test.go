package metrics

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/coalmine/coalmine/policies"
)

func snap(sec int, samples ...Sample) Snapshot {
	return Snapshot{Time: time.Unix(int64(sec), 0), Samples: samples}
}

func req(key string, canary bool, v float64) Sample {
	return Sample{Key: key, Canary: canary, Part: "requests", Value: v}
}

func errs(key string, canary bool, v float64) Sample {
	return Sample{Key: key, Canary: canary, Part: "errors", Value: v}
}

func TestDeltas(t *testing.T) {
	type want struct{ br, be, cr, ce float64 }
	tests := []struct {
		name  string
		snaps []Snapshot
		want  []want // one per snapshot after the first
	}{
		{
			name: "the first snapshot is the starting point, then increases",
			snaps: []Snapshot{
				snap(0, req("b1", false, 1000), errs("b1e", false, 10), req("c1", true, 50), errs("c1e", true, 1)),
				snap(10, req("b1", false, 1100), errs("b1e", false, 11), req("c1", true, 60), errs("c1e", true, 3)),
			},
			want: []want{{100, 1, 10, 2}},
		},
		{
			name: "a counter reset counts the new value, never a negative increase",
			snaps: []Snapshot{
				snap(0, req("c1", true, 500), errs("c1e", true, 5)),
				snap(10, req("c1", true, 20), errs("c1e", true, 1)), // restarted
				snap(20, req("c1", true, 30), errs("c1e", true, 1)),
			},
			want: []want{{0, 0, 20, 1}, {0, 0, 10, 0}},
		},
		{
			name: "a new pod starts from its first sample; a vanished pod's counts are kept",
			snaps: []Snapshot{
				snap(0, req("c1", true, 100)),
				snap(10, req("c1", true, 110), req("c2", true, 40)),
				snap(20, req("c2", true, 50)),                       // c1 gone
				snap(30, req("c1", true, 115), req("c2", true, 55)), // c1 back: only its new requests
			},
			want: []want{{0, 0, 10, 0}, {0, 0, 10, 0}, {0, 0, 10, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Deltas
			if _, ok := d.Next(tt.snaps[0]); ok {
				t.Fatal("the first snapshot gave an interval")
			}
			for i, s := range tt.snaps[1:] {
				iv, ok := d.Next(s)
				if !ok {
					t.Fatalf("snapshot %d gave no interval", i+1)
				}
				got := want{iv.Baseline.Requests, iv.Baseline.Errors, iv.Canary.Requests, iv.Canary.Errors}
				if got != tt.want[i] {
					t.Errorf("interval %d: got %+v, want %+v", i+1, got, tt.want[i])
				}
				if !iv.End.Equal(s.Time) || !iv.Start.Equal(tt.snaps[i].Time) {
					t.Errorf("interval %d spans %v..%v", i+1, iv.Start, iv.End)
				}
			}
		})
	}
}

func TestDeltasBuckets(t *testing.T) {
	bucket := func(pod string, le, v float64) Sample {
		return Sample{Key: pod + "/" + model.SampleValue(le).String(), Canary: true, Part: "bucket", LE: le, Value: v}
	}
	var d Deltas
	inf := math.Inf(1)
	d.Next(snap(0, bucket("a", 0.1, 10), bucket("a", 1, 20), bucket("a", inf, 20), bucket("b", 0.1, 5), bucket("b", 1, 5), bucket("b", inf, 5)))
	iv, _ := d.Next(snap(10, bucket("a", 0.1, 18), bucket("a", 1, 30), bucket("a", inf, 31), bucket("b", 0.1, 9), bucket("b", 1, 9), bucket("b", inf, 9)))
	c := iv.Canary
	if c.Requests != 15 || len(c.Buckets) != 3 || c.Buckets[0].Count != 12 || c.Buckets[1].Count != 14 {
		t.Fatalf("buckets %+v, requests %g", c.Buckets, c.Requests)
	}
	if n, ok := c.Slower(0.1); !ok || n != 3 {
		t.Errorf("slower than 0.1: %g %v, want 3", n, ok)
	}
	if _, ok := c.Slower(0.5); ok {
		t.Error("an edge the histogram lacks must not read as 0 slow requests")
	}
	if n, ok := (Counts{}).Slower(0.1); !ok || n != 0 {
		t.Error("a version without traffic was slower 0 times")
	}
}

func TestNewCounterQuery(t *testing.T) {
	p := testPolicy(t)
	for _, m := range p.Spec.Metrics {
		q, err := NewCounterQuery(p, m)
		if err != nil {
			t.Fatal(err)
		}
		if !q.Counters {
			t.Error("not marked as a counter query")
		}
		if err := policies.CheckPromQL(q.PromQL); err != nil {
			t.Errorf("%s: %v\n%s", m.Name, err, q.PromQL)
		}
		for _, banned := range []string{"increase(", "sum by"} {
			if strings.Contains(q.PromQL, banned) {
				t.Errorf("%s: a counter query must read the raw series, got %s", m.Name, q.PromQL)
			}
		}
	}
}

func TestInCanaryHalfSplitsEvenly(t *testing.T) {
	// Pod names of one ReplicaSet differ only in their last characters; the split must still
	// put about half of them on each side, and the same pod always on the same side.
	canary := 0
	for i := range 200 {
		name := fmt.Sprintf("my-app-v1-79c76f5d97-%05d", i)
		if inCanaryHalf(name) {
			canary++
		}
		if inCanaryHalf(name) != inCanaryHalf(name) {
			t.Fatal("not deterministic")
		}
	}
	if canary < 70 || canary > 130 {
		t.Errorf("%d of 200 pods in the canary half", canary)
	}
}
