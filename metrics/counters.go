package metrics

import (
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/coalmine/coalmine/policies"
)

// Sample is one raw counter series at one instant.
type Sample struct {
	// Key identifies the series across samples: all its labels.
	Key string
	// Canary says which version the series belongs to.
	Canary bool
	// Part is "requests" or "errors" for an errors metric, "bucket" for a latency metric.
	Part string
	// LE is a bucket's upper bound.
	LE    float64
	Value float64
}

// Snapshot is every counter series of a metric at one instant.
type Snapshot struct {
	Time    time.Time
	Samples []Sample
}

// NewCounterQuery renders the query for a metric's raw counters: the selectors inside its
// templates (see policies.CounterSelector), every series of both versions, unaggregated. One
// query returns requests and errors, so both are read at the same instant.
//
// For the pods source the templates are selectors of what the pods expose; the query holds
// their matchers, and its PromQL is only what a report shows.
func NewCounterQuery(p *policies.Policy, m policies.Metric) (Query, error) {
	if p.Spec.Source == policies.SourcePods {
		return newPodQuery(p, m)
	}
	q, err := baseQuery(p, m)
	if err != nil {
		return Query{}, err
	}
	vars := p.Vars(time.Duration(p.Spec.Analysis.Window))
	selector := func(field, tmpl string) (string, error) {
		r, err := policies.Render(tmpl, vars)
		if err == nil {
			r, err = policies.CounterSelector(r)
		}
		if err != nil {
			return "", fmt.Errorf("metric %q: %s: %w", m.Name, field, err)
		}
		return r, nil
	}
	switch m.Kind {
	case policies.KindErrors:
		req, err := selector("requests", m.Requests)
		if err != nil {
			return Query{}, err
		}
		errs, err := selector("errors", m.Errors)
		if err != nil {
			return Query{}, err
		}
		q.PromQL = partsPromQL(req, errs)
	case policies.KindLatency:
		if q.PromQL, err = selector("buckets", m.Buckets); err != nil {
			return Query{}, err
		}
	default:
		return Query{}, fmt.Errorf("metric %q: %s metrics have no counters", m.Name, m.Kind)
	}
	q.Counters = true
	return q, nil
}

// DecodeCounters turns the answer to a counter query into a snapshot. A series of neither
// version, or without the labels its kind needs, is an error, as in Decode.
func DecodeCounters(q Query, vec model.Vector, at time.Time) (Snapshot, error) {
	snap := Snapshot{Time: at, Samples: make([]Sample, 0, len(vec))}
	for _, s := range vec {
		canary, err := q.side(s.Metric)
		if err != nil {
			return snap, err
		}
		smp := Sample{Canary: canary}
		switch q.Kind {
		case policies.KindErrors:
			smp.Part = string(s.Metric[partLabel])
			if smp.Part != "requests" && smp.Part != "errors" {
				return snap, fmt.Errorf("%w: metric %q: series %s is neither requests nor errors", ErrUnexpectedSeries, q.Metric, s.Metric)
			}
		case policies.KindLatency:
			le, ok := s.Metric[model.BucketLabel]
			if !ok {
				return snap, fmt.Errorf("%w: metric %q: series %s has no \"le\" label: select the histogram's _bucket series", ErrUnexpectedSeries, q.Metric, s.Metric)
			}
			f, err := strconv.ParseFloat(string(le), 64)
			if err != nil {
				return snap, fmt.Errorf("%w: metric %q: series %s has a bad le %q", ErrUnexpectedSeries, q.Metric, s.Metric, le)
			}
			smp.Part, smp.LE = "bucket", f
		}
		smp.Key = s.Metric.String()
		smp.Value = float64(s.Value)
		snap.Samples = append(snap.Samples, smp)
	}
	return snap, nil
}

// Interval is what each version served between two snapshots: the increases of its counters.
type Interval struct {
	Start, End time.Time
	Baseline   Counts
	Canary     Counts
}

// Counts are one version's increases over an interval.
type Counts struct {
	// Series is the number of the version's series seen at the interval's end; 0 means the
	// version had no data, which is not the same as no traffic.
	Series int
	// Requests and Errors are an errors metric's increases; for a latency metric Requests is
	// the increase of the +Inf bucket.
	Requests float64
	Errors   float64
	// Buckets are a latency metric's increases per upper bound, cumulative, sorted.
	Buckets []Bucket
}

// Slower is the number of requests slower than the bucket bound le: count - bucket{le}. ok is
// false when the histogram has buckets but none at le; a version that served nothing was slower
// than every bound 0 times.
func (c Counts) Slower(le float64) (n float64, ok bool) {
	if len(c.Buckets) == 0 {
		return 0, c.Requests == 0
	}
	for _, b := range c.Buckets {
		if b.UpperBound == le {
			return math.Max(0, c.Requests-b.Count), true
		}
	}
	return 0, false
}

// Deltas turns successive snapshots of a metric's counters into intervals. It keeps each
// series' last value: a series' first sample is its starting point, not an increase; a value
// below the last one is a counter reset (the process restarted), whose increase is the new
// value; a series that vanishes keeps its last value, so what it counted is never lost and, if
// it comes back, never counted twice. The zero value is ready to use.
type Deltas struct {
	last map[string]float64
	prev time.Time
}

// Next adds a snapshot and returns the interval since the previous one; ok is false for the
// first snapshot, which only sets the starting points.
func (d *Deltas) Next(s Snapshot) (iv Interval, ok bool) {
	first := d.last == nil
	if first {
		d.last = make(map[string]float64, len(s.Samples))
	}
	iv = Interval{Start: d.prev, End: s.Time}
	base, canary := map[float64]float64{}, map[float64]float64{}
	for _, smp := range s.Samples {
		if math.IsNaN(smp.Value) {
			continue
		}
		prev, seen := d.last[smp.Key]
		d.last[smp.Key] = smp.Value
		inc := 0.0
		switch {
		case !seen:
		case smp.Value >= prev:
			inc = smp.Value - prev
		default:
			inc = smp.Value // reset
		}
		c, buckets := &iv.Baseline, base
		if smp.Canary {
			c, buckets = &iv.Canary, canary
		}
		switch smp.Part {
		case "requests":
			c.Series++
			c.Requests += inc
		case "errors":
			c.Errors += inc
		case "bucket":
			c.Series++
			buckets[smp.LE] += inc
		}
	}
	for _, x := range []struct {
		c       *Counts
		buckets map[float64]float64
	}{{&iv.Baseline, base}, {&iv.Canary, canary}} {
		if len(x.buckets) == 0 {
			continue
		}
		for le, n := range x.buckets {
			x.c.Buckets = append(x.c.Buckets, Bucket{UpperBound: le, Count: n})
		}
		sort.Slice(x.c.Buckets, func(i, j int) bool { return x.c.Buckets[i].UpperBound < x.c.Buckets[j].UpperBound })
		// Pods scraped at slightly different moments can make a lower bucket seem to have
		// grown more than a higher one: carry the running maximum, as Prometheus does.
		for i := 1; i < len(x.c.Buckets); i++ {
			x.c.Buckets[i].Count = math.Max(x.c.Buckets[i].Count, x.c.Buckets[i-1].Count)
		}
		if last := x.c.Buckets[len(x.c.Buckets)-1]; math.IsInf(last.UpperBound, 1) {
			x.c.Requests = last.Count
		}
	}
	d.prev = s.Time
	if first {
		return Interval{}, false
	}
	return iv, true
}

// inCanaryHalf puts a label value in one of two halves, the same one every time. FNV's low
// bits follow the bytes' low bits, so the hash is mixed (murmur3's finaliser) before the bit is
// taken.
func inCanaryHalf(v string) bool {
	h := fnv.New64a()
	h.Write([]byte(v))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x&1 == 1
}

// newPodQuery is the query of a pods-source metric.
func newPodQuery(p *policies.Policy, m policies.Metric) (Query, error) {
	t := p.Spec.Target
	q, err := baseQuery(p, m)
	if err != nil {
		return Query{}, err
	}
	q.Counters = true
	vars := p.Vars(time.Duration(p.Spec.Analysis.Window))
	var shown []string
	add := func(part, field, tmpl string) error {
		r, err := policies.Render(tmpl, vars)
		if err != nil {
			return fmt.Errorf("metric %q: %s: %w", m.Name, field, err)
		}
		ms, err := policies.PodSelector(r)
		if err != nil {
			return fmt.Errorf("metric %q: %s: %w", m.Name, field, err)
		}
		q.Parts = append(q.Parts, Part{Name: part, Matchers: ms})
		shown = append(shown, fmt.Sprintf("%s: %s", field, strings.TrimSpace(r)))
		return nil
	}
	switch m.Kind {
	case policies.KindErrors:
		if err = add("requests", "requests", m.Requests); err == nil {
			err = add("errors", "errors", m.Errors)
		}
	case policies.KindLatency:
		err = add("bucket", "buckets", m.Buckets)
	default:
		err = fmt.Errorf("metric %q: the pods source has no %s metrics", m.Name, m.Kind)
	}
	if err != nil {
		return Query{}, err
	}
	q.PromQL = fmt.Sprintf("scrape the Ready pods of %s=%s, %s in (%s, %s): %s", t.Labels.App, t.App, t.Labels.Version, t.Baseline.Version, t.Canary.Version, strings.Join(shown, "; "))
	return q, nil
}
