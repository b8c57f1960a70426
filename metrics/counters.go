package metrics

import (
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

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
	// Dropped is the number of series left out of Samples because their value was NaN,
	// infinite or negative, or their le was NaN. No counter reads so; the canary writes its
	// own /metrics, and one such number would make every sum it enters unusable. A dropped
	// series is no data at this instant, as if it were absent. A histogram with one such
	// bucket is left out whole, each of its buckets counted here: without one bucket, the
	// others would misplace its requests (without +Inf, its slowest ones would vanish).
	// Callers should warn.
	Dropped int
	// DroppedCanary is how many of Dropped were the canary's.
	DroppedCanary int
}

// Countable reports whether v can be a counter's value: finite and not negative.
func Countable(v float64) bool { return v >= 0 && !math.IsInf(v, 1) }

// drop counts a series left out of the snapshot.
func (s *Snapshot) drop(canary bool) {
	s.Dropped++
	if canary {
		s.DroppedCanary++
	}
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
// version, or without the labels its kind needs, is an error, as in Decode. A series whose
// value is not a counter's (NaN, infinite, negative), or whose le is NaN, is left out and
// counted in Dropped; so is every bucket of a histogram with such a bucket.
func DecodeCounters(q Query, vec model.Vector, at time.Time) (Snapshot, error) {
	snap := Snapshot{Time: at, Samples: make([]Sample, 0, len(vec))}
	// hists[i] names the histogram of Samples[i], a bucket's labels but le; bad holds those
	// with a bucket that is not a count.
	var (
		hists []string
		bad   map[string]bool
	)
	for _, s := range vec {
		canary, err := q.side(s.Metric)
		if err != nil {
			return snap, err
		}
		smp := Sample{Canary: canary, Key: s.Metric.String(), Value: float64(s.Value)}
		hist := ""
		switch q.Kind {
		case policies.KindErrors:
			smp.Part = string(s.Metric[PartLabel])
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
			if math.IsNaN(f) {
				snap.drop(canary) // a bucket no request can fall in; the others stand
				continue
			}
			smp.Part, smp.LE = "bucket", f
			m := s.Metric.Clone()
			delete(m, model.BucketLabel)
			hist = m.String()
		}
		if !Countable(smp.Value) {
			snap.drop(canary)
			if hist != "" {
				if bad == nil {
					bad = map[string]bool{}
				}
				bad[hist] = true
			}
			continue
		}
		snap.Samples = append(snap.Samples, smp)
		hists = append(hists, hist)
	}
	if len(bad) > 0 {
		kept := snap.Samples[:0]
		for i, smp := range snap.Samples {
			if bad[hists[i]] {
				snap.drop(smp.Canary)
				continue
			}
			kept = append(kept, smp)
		}
		snap.Samples = kept
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
	// Dropped is the number of the version's series that were no data for the interval: left
	// out of the snapshot at its end (see Snapshot.Dropped), or whose value or increase was not
	// a finite count that is not negative. A canary's dropped series can hide its errors or its
	// slow requests: callers should warn, and not count its silence as health.
	Dropped int
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
// it comes back, never counted twice. A sample whose value is not a count (NaN, infinite,
// negative) is a vanished series at that instant. The zero value is ready to use.
type Deltas struct {
	last map[string]float64
	prev time.Time
}

// Next adds a snapshot and returns the interval since the previous one; ok is false for the
// first snapshot, which only sets the starting points. Every count of the interval is finite
// and not negative: an increase that would make one otherwise is no data for its series for
// the interval, counted in Dropped. A series twice in one snapshot is read once, the first
// time: a counter is not two numbers at once, and reading both would make up increases.
func (d *Deltas) Next(s Snapshot) (iv Interval, ok bool) {
	first := d.last == nil
	if first {
		d.last = make(map[string]float64, len(s.Samples))
	}
	iv = Interval{Start: d.prev, End: s.Time}
	iv.Canary.Dropped = s.DroppedCanary
	iv.Baseline.Dropped = max(0, s.Dropped-s.DroppedCanary)
	base, canary := map[float64]float64{}, map[float64]float64{}
	read := make(map[string]bool, len(s.Samples))
	for _, smp := range s.Samples {
		if read[smp.Key] {
			continue
		}
		read[smp.Key] = true
		c, buckets := &iv.Baseline, base
		if smp.Canary {
			c, buckets = &iv.Canary, canary
		}
		if !Countable(smp.Value) || math.IsNaN(smp.LE) {
			c.Dropped++ // as if absent: its last value stands
			continue
		}
		prev, seen := d.last[smp.Key]
		// The value is a count, so it is the next starting point even when this increase
		// cannot be added: what it counted then is lost, never counted twice.
		d.last[smp.Key] = smp.Value
		inc := 0.0
		switch {
		case !seen:
		case smp.Value >= prev:
			inc = smp.Value - prev
		default:
			inc = smp.Value // reset
		}
		switch smp.Part {
		case "requests":
			if !add(&c.Requests, inc) {
				c.Dropped++
				continue
			}
			c.Series++
		case "errors":
			if !add(&c.Errors, inc) {
				c.Dropped++
			}
		case "bucket":
			n := buckets[smp.LE]
			if !add(&n, inc) {
				c.Dropped++
				continue
			}
			buckets[smp.LE] = n
			c.Series++
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

// add adds an increase to a sum of increases when both stay finite counts; a sum of many
// huge counters can overflow where none of them does.
func add(sum *float64, inc float64) bool {
	if !Countable(inc) || !Countable(*sum+inc) {
		return false
	}
	*sum += inc
	return true
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
	q.Families = podFamilies(p, vars)
	return q, nil
}

// podFamilies are the metric families every errors and latency metric of p reads, sorted: the
// names their selectors match, and a histogram's family for its _bucket series.
func podFamilies(p *policies.Policy, vars policies.QueryVars) []string {
	seen := map[string]bool{}
	for _, m := range p.Spec.Metrics {
		var tmpls []string
		switch m.Kind {
		case policies.KindErrors:
			tmpls = []string{m.Requests, m.Errors}
		case policies.KindLatency:
			tmpls = []string{m.Buckets}
		}
		for _, tmpl := range tmpls {
			r, err := policies.Render(tmpl, vars)
			if err != nil {
				continue
			}
			ms, err := policies.PodSelector(r)
			if err != nil {
				continue
			}
			for _, mt := range ms {
				if mt.Name == labels.MetricName && mt.Type == labels.MatchEqual {
					seen[mt.Value] = true
					seen[strings.TrimSuffix(mt.Value, "_bucket")] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}
