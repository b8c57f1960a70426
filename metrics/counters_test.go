package metrics

import (
	"encoding/json"
	"errors"
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

func testPolicy(t testing.TB) *policies.Policy {
	t.Helper()
	ps, err := policies.LoadFile("../policies/examples/my-app-threshold.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

func counterQueryFor(t testing.TB, kind policies.MetricKind) Query {
	t.Helper()
	p := testPolicy(t)
	for _, m := range p.Spec.Metrics {
		if m.Kind == kind {
			q, err := NewCounterQuery(p, m)
			if err != nil {
				t.Fatal(err)
			}
			return q
		}
	}
	t.Fatalf("the test policy has no %s metric", kind)
	return Query{}
}

// series is one sample of a counter query's answer; labels are name, value pairs.
func series(v float64, labels ...string) *model.Sample {
	m := model.Metric{}
	for i := 0; i+1 < len(labels); i += 2 {
		m[model.LabelName(labels[i])] = model.LabelValue(labels[i+1])
	}
	return &model.Sample{Metric: m, Value: model.SampleValue(v)}
}

// requireCounts fails unless every number of the interval is one a counter can count: finite
// and not negative (a bucket's bound may be +Inf, never NaN).
func requireCounts(t *testing.T, iv Interval) {
	t.Helper()
	for _, c := range []Counts{iv.Baseline, iv.Canary} {
		nums := []float64{c.Requests, c.Errors}
		for _, b := range c.Buckets {
			nums = append(nums, b.Count)
			if math.IsNaN(b.UpperBound) {
				t.Fatalf("bucket with a NaN bound: %+v", c.Buckets)
			}
		}
		for _, n := range nums {
			if !Countable(n) {
				t.Fatalf("interval holds %g: %+v", n, c)
			}
		}
		if c.Series < 0 || c.Dropped < 0 {
			t.Fatalf("negative series or dropped: %+v", c)
		}
	}
	if _, err := json.Marshal(iv); err != nil {
		t.Fatalf("the interval cannot be recorded: %v", err)
	}
}

func TestDecodeCountersDropsWhatIsNotACount(t *testing.T) {
	errorsQ, latencyQ := counterQueryFor(t, policies.KindErrors), counterQueryFor(t, policies.KindLatency)
	inf, nan := math.Inf(1), math.NaN()
	// in is one series of the answer and whether the snapshot must keep it.
	type in struct {
		s    *model.Sample
		kept bool
	}
	bucket := func(kept bool, v float64, version, pod, le string) in {
		return in{series(v, "version", version, "pod", pod, "le", le), kept}
	}
	part := func(kept bool, v float64, version, pod, part string) in {
		return in{series(v, "version", version, "pod", pod, PartLabel, part), kept}
	}
	tests := []struct {
		name              string
		q                 Query
		vec               []in
		wantDropped       int
		wantDroppedCanary int
		wantErr           error
	}{
		{
			name: "finite counts are all kept",
			q:    errorsQ,
			vec:  []in{part(true, 100, "v1.0.0", "a", "requests"), part(true, 0, "v2.0.0", "b", "errors")},
		},
		{
			name:        "a +Inf request count is dropped",
			q:           errorsQ,
			vec:         []in{part(false, inf, "v2.0.0", "b", "requests"), part(true, 3, "v2.0.0", "b", "errors"), part(true, 100, "v1.0.0", "a", "requests")},
			wantDropped: 1, wantDroppedCanary: 1,
		},
		{
			name: "NaN, -Inf and negative counts are dropped",
			q:    errorsQ,
			vec: []in{
				part(false, nan, "v1.0.0", "a", "requests"), part(false, math.Inf(-1), "v1.0.0", "a", "errors"),
				part(false, -1, "v2.0.0", "b", "errors"), part(true, 5, "v2.0.0", "b", "requests"),
			},
			wantDropped: 3, wantDroppedCanary: 1,
		},
		{
			name: "an le=+Inf bucket with a finite count is a bucket like any other",
			q:    latencyQ,
			vec:  []in{bucket(true, 4, "v2.0.0", "b", "0.5"), bucket(true, 9, "v2.0.0", "b", "+Inf")},
		},
		{
			name: "a histogram whose count is +Inf is dropped whole; the other pod's stands",
			q:    latencyQ,
			vec: []in{
				bucket(false, 4, "v2.0.0", "b", "0.5"), bucket(false, inf, "v2.0.0", "b", "+Inf"),
				bucket(true, 1, "v2.0.0", "c", "0.5"), bucket(true, 2, "v2.0.0", "c", "+Inf"),
			},
			wantDropped: 2, wantDroppedCanary: 2,
		},
		{
			name: "a NaN bucket drops its histogram whole, the buckets before it too",
			q:    latencyQ,
			vec: []in{
				bucket(false, 4, "v1.0.0", "a", "0.5"), bucket(false, nan, "v1.0.0", "a", "1"), bucket(false, 9, "v1.0.0", "a", "+Inf"),
				bucket(true, 4, "v2.0.0", "a", "0.5"), bucket(true, 9, "v2.0.0", "a", "+Inf"),
			},
			wantDropped: 3,
		},
		{
			name:        "a NaN le is a bucket no request falls in: dropped alone",
			q:           latencyQ,
			vec:         []in{bucket(false, 4, "v2.0.0", "b", "NaN"), bucket(true, 9, "v2.0.0", "b", "+Inf")},
			wantDropped: 1, wantDroppedCanary: 1,
		},
		{
			name:    "a series without le is still an error, whatever its value",
			q:       latencyQ,
			vec:     []in{{s: series(nan, "version", "v2.0.0")}},
			wantErr: ErrUnexpectedSeries,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				vec  model.Vector
				want []string
			)
			for _, x := range tt.vec {
				vec = append(vec, x.s)
				if x.kept {
					want = append(want, x.s.Metric.String())
				}
			}
			snap, err := DecodeCounters(tt.q, vec, time.Unix(1700000000, 0))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range snap.Samples {
				if !Countable(s.Value) || math.IsNaN(s.LE) {
					t.Errorf("kept %+v", s)
				}
				got = append(got, s.Key)
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("kept %v, want %v", got, want)
			}
			if snap.Dropped != tt.wantDropped || snap.DroppedCanary != tt.wantDroppedCanary {
				t.Errorf("dropped %d (canary %d), want %d (%d)", snap.Dropped, snap.DroppedCanary, tt.wantDropped, tt.wantDroppedCanary)
			}
		})
	}
}

func TestDeltasNeverCountWhatIsNotACount(t *testing.T) {
	type want struct {
		requests, errors float64
		series, dropped  int
	}
	inf, huge := math.Inf(1), math.MaxFloat64
	tests := []struct {
		name  string
		snaps []Snapshot
		want  []want // the canary's, one per snapshot after the first
	}{
		{
			name: "a series that reads +Inf is absent then, and not counted twice when it comes back",
			snaps: []Snapshot{
				snap(0, req("c1", true, 100), errs("c1e", true, 1)),
				snap(10, req("c1", true, inf), errs("c1e", true, 2)),
				snap(20, req("c1", true, 130), errs("c1e", true, 3)),
				snap(30, req("c1", true, 140), errs("c1e", true, 3)),
			},
			want: []want{{0, 1, 0, 1}, {30, 1, 1, 0}, {10, 0, 1, 0}},
		},
		{
			name: "NaN, -Inf and negative values are absent too",
			snaps: []Snapshot{
				snap(0, req("c1", true, 100), req("c2", true, 10), req("c3", true, 5)),
				snap(10, req("c1", true, math.NaN()), req("c2", true, math.Inf(-1)), req("c3", true, -7)),
				snap(20, req("c1", true, 110), req("c2", true, 20), req("c3", true, 6)),
			},
			want: []want{{0, 0, 0, 3}, {21, 0, 3, 0}},
		},
		{
			name: "a series first seen as +Inf starts from its first count",
			snaps: []Snapshot{
				snap(0, req("c1", true, inf)),
				snap(10, req("c1", true, 50)),
				snap(20, req("c1", true, 60)),
			},
			want: []want{{0, 0, 1, 0}, {10, 0, 1, 0}},
		},
		{
			name: "increases whose sum overflows: the one that would is no data",
			snaps: []Snapshot{
				snap(0, req("c1", true, 0), req("c2", true, 0), errs("c1e", true, 0), errs("c2e", true, 0)),
				snap(10, req("c1", true, huge), req("c2", true, huge), errs("c1e", true, huge), errs("c2e", true, huge)),
				snap(20, req("c1", true, huge), req("c2", true, huge), errs("c1e", true, huge), errs("c2e", true, huge)),
			},
			want: []want{{huge, huge, 1, 2}, {0, 0, 2, 0}},
		},
		{
			name: "resets to huge values on many pods do not overflow",
			snaps: []Snapshot{
				snap(0, req("c1", true, huge), req("c2", true, huge)),
				snap(10, req("c1", true, huge/2), req("c2", true, huge/2)), // both restarted
			},
			want: []want{{huge, 0, 2, 0}},
		},
		{
			name: "a series twice in one snapshot is read once",
			snaps: []Snapshot{
				snap(0, req("c1", true, 100), req("c1", true, 0)),
				snap(10, req("c1", true, 100), req("c1", true, 0)),
				snap(20, req("c1", true, 110), req("c1", true, 0)),
			},
			want: []want{{0, 0, 1, 0}, {10, 0, 1, 0}},
		},
		{
			name: "what the snapshot dropped is the interval's no data",
			snaps: []Snapshot{
				snap(0, req("c1", true, 100)),
				{Time: time.Unix(10, 0), Samples: []Sample{req("c1", true, 110)}, Dropped: 3, DroppedCanary: 2},
			},
			want: []want{{10, 0, 1, 2}},
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
				requireCounts(t, iv)
				c := iv.Canary
				if got := (want{c.Requests, c.Errors, c.Series, c.Dropped}); got != tt.want[i] {
					t.Errorf("interval %d: got %+v, want %+v", i+1, got, tt.want[i])
				}
			}
		})
	}
}

func TestDeltasBucketsNeverCountWhatIsNotACount(t *testing.T) {
	bucket := func(pod string, le, v float64) Sample {
		return Sample{Key: pod + "/" + model.SampleValue(le).String(), Canary: true, Part: "bucket", LE: le, Value: v}
	}
	inf, huge := math.Inf(1), math.MaxFloat64
	tests := []struct {
		name         string
		snaps        []Snapshot
		wantRequests float64
		wantBuckets  []Bucket
		wantDropped  int
	}{
		{
			name: "an le=+Inf bucket is read like any other",
			snaps: []Snapshot{
				snap(0, bucket("a", 0.5, 1), bucket("a", inf, 2)),
				snap(10, bucket("a", 0.5, 5), bucket("a", inf, 10)),
			},
			wantRequests: 8, wantBuckets: []Bucket{{0.5, 4}, {inf, 8}},
		},
		{
			name: "the +Inf bucket of two pods overflowing: one pod's is no data",
			snaps: []Snapshot{
				snap(0, bucket("a", 0.5, 0), bucket("a", inf, 0), bucket("b", 0.5, 0), bucket("b", inf, 0)),
				snap(10, bucket("a", 0.5, 1), bucket("a", inf, huge), bucket("b", 0.5, 1), bucket("b", inf, huge)),
			},
			wantRequests: huge, wantBuckets: []Bucket{{0.5, 2}, {inf, huge}}, wantDropped: 1,
		},
		{
			name: "a NaN bound is no bucket",
			snaps: []Snapshot{
				snap(0, bucket("a", math.NaN(), 0), bucket("a", inf, 0)),
				snap(10, bucket("a", math.NaN(), 3), bucket("a", inf, 3)),
			},
			wantRequests: 3, wantBuckets: []Bucket{{inf, 3}}, wantDropped: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Deltas
			var iv Interval
			for _, s := range tt.snaps {
				iv, _ = d.Next(s)
			}
			requireCounts(t, iv)
			c := iv.Canary
			if c.Requests != tt.wantRequests || c.Dropped != tt.wantDropped || fmt.Sprint(c.Buckets) != fmt.Sprint(tt.wantBuckets) {
				t.Errorf("requests %g, buckets %v, dropped %d; want %g, %v, %d", c.Requests, c.Buckets, c.Dropped, tt.wantRequests, tt.wantBuckets, tt.wantDropped)
			}
		})
	}
}

// TestHostileCountersEndToEnd reads a Prometheus answer in which the canary's histogram count
// goes +Inf and comes back: its requests are counted once, and every interval can be recorded.
func TestHostileCountersEndToEnd(t *testing.T) {
	q := counterQueryFor(t, policies.KindLatency)
	inf := math.Inf(1)
	answer := func(canaryFast, canaryCount float64) model.Vector {
		return model.Vector{
			series(canaryFast, "version", "v2.0.0", "pod", "b", "le", "0.5"),
			series(canaryCount, "version", "v2.0.0", "pod", "b", "le", "+Inf"),
		}
	}
	steps := []struct {
		fast, count  float64
		wantRequests float64
		wantSlower   float64
		wantSeries   int
		wantDropped  int
	}{
		{fast: 10, count: 10},
		{fast: 20, count: inf, wantDropped: 2},
		{fast: 25, count: 40, wantRequests: 30, wantSlower: 15, wantSeries: 2},
		{fast: 30, count: 50, wantRequests: 10, wantSlower: 5, wantSeries: 2},
	}
	var d Deltas
	for i, st := range steps {
		s, err := DecodeCounters(q, answer(st.fast, st.count), time.Unix(int64(10*i), 0))
		if err != nil {
			t.Fatal(err)
		}
		iv, ok := d.Next(s)
		if !ok {
			continue
		}
		requireCounts(t, iv)
		c := iv.Canary
		slower, _ := c.Slower(0.5)
		if c.Requests != st.wantRequests || slower != st.wantSlower || c.Series != st.wantSeries || c.Dropped != st.wantDropped {
			t.Errorf("step %d: requests %g, slower %g, series %d, dropped %d; want %g, %g, %d, %d", i, c.Requests, slower, c.Series, c.Dropped, st.wantRequests, st.wantSlower, st.wantSeries, st.wantDropped)
		}
	}
}
