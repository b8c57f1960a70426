package metrics

import (
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/prometheus/common/model"

	"github.com/coalmine/coalmine/policies"
)

// Decode turns a Prometheus query answer into an observation of both versions. Any series it
// cannot place (no version label, another version, a second series for the same thing) is an
// error: a misconfigured query must never pass silently.
func Decode(q Query, v model.Value) (Observation, error) {
	obs := Observation{
		Metric:   q.Metric,
		Kind:     q.Kind,
		Query:    q.PromQL,
		Baseline: Arm{Version: q.Baseline},
		Canary:   Arm{Version: q.Canary},
	}
	vec, ok := v.(model.Vector)
	if !ok {
		typ := "nothing"
		if v != nil {
			typ = v.Type().String()
		}
		return obs, fmt.Errorf("%w: metric %q: the query returned %s, want an instant vector", ErrUnexpectedSeries, q.Metric, typ)
	}
	seen := map[string]bool{}
	for _, s := range vec {
		arm, err := q.arm(&obs, s.Metric)
		if err != nil {
			return obs, err
		}
		val := float64(s.Value)
		key, err := q.key(s.Metric)
		if err != nil {
			return obs, err
		}
		if seen[arm.Version+"\xff"+key] {
			return obs, fmt.Errorf("%w: metric %q: version %q has several series %s; aggregate by %s", ErrMultipleSeries, q.Metric, arm.Version, s.Metric, q.groupingHint())
		}
		seen[arm.Version+"\xff"+key] = true
		switch q.Kind {
		case policies.KindErrors:
			if key == "requests" {
				arm.Present = true
				arm.Requests = val
			} else {
				arm.Errors = val
			}
		case policies.KindLatency:
			le, _ := strconv.ParseFloat(key, 64)
			arm.Buckets = append(arm.Buckets, Bucket{UpperBound: le, Count: val})
		default:
			arm.Present = true
			arm.Value = val
		}
	}
	for _, arm := range []*Arm{&obs.Baseline, &obs.Canary} {
		if q.Kind == policies.KindErrors && !arm.Present {
			arm.Errors = 0 // errors without requests are no data
		}
		if q.Kind == policies.KindLatency && len(arm.Buckets) > 0 {
			sort.Slice(arm.Buckets, func(i, j int) bool { return arm.Buckets[i].UpperBound < arm.Buckets[j].UpperBound })
			last := arm.Buckets[len(arm.Buckets)-1]
			if !math.IsInf(last.UpperBound, 1) {
				return obs, fmt.Errorf("%w: metric %q: version %q has no le=\"+Inf\" bucket; the query must return every bucket of the histogram", ErrUnexpectedSeries, q.Metric, arm.Version)
			}
			arm.Present = true
			arm.Requests = last.Count
		}
	}
	return obs, nil
}

// arm returns the arm a series belongs to.
func (q Query) arm(obs *Observation, m model.Metric) (*Arm, error) {
	canary, err := q.side(m)
	if err != nil {
		return nil, err
	}
	if canary {
		return &obs.Canary, nil
	}
	return &obs.Baseline, nil
}

// side says whether a series is the canary's: by its version label, or, in an A/A comparison
// (SplitLabel), by the half its split label's value falls in.
func (q Query) side(m model.Metric) (canary bool, err error) {
	v, ok := m[model.LabelName(q.VersionLabel)]
	switch {
	case !ok && q.Counters:
		return false, fmt.Errorf("%w: metric %q: series %s has no %q label", ErrUnexpectedSeries, q.Metric, m, q.VersionLabel)
	case !ok:
		return false, fmt.Errorf("%w: metric %q: series %s has no %q label; aggregate by it, e.g. sum by (%s) (...)", ErrUnexpectedSeries, q.Metric, m, q.VersionLabel, q.groupingHint())
	case q.SplitLabel != "" && string(v) == q.Baseline:
		return inCanaryHalf(string(m[model.LabelName(q.SplitLabel)])), nil
	case string(v) == q.Canary:
		return true, nil
	case string(v) == q.Baseline:
		return false, nil
	}
	return false, fmt.Errorf("%w: metric %q: series %s is neither version %q nor %q", ErrUnexpectedSeries, q.Metric, m, q.Baseline, q.Canary)
}

// key is what tells a version's series apart: the part of an errors query, the le of a bucket.
func (q Query) key(m model.Metric) (string, error) {
	switch q.Kind {
	case policies.KindErrors:
		part := string(m[PartLabel])
		if part != "requests" && part != "errors" {
			return "", fmt.Errorf("%w: metric %q: series %s is neither requests nor errors", ErrUnexpectedSeries, q.Metric, m)
		}
		return part, nil
	case policies.KindLatency:
		le, ok := m[model.BucketLabel]
		if !ok {
			return "", fmt.Errorf("%w: metric %q: series %s has no \"le\" label; aggregate by (%s, le)", ErrUnexpectedSeries, q.Metric, m, q.VersionLabel)
		}
		f, err := strconv.ParseFloat(string(le), 64)
		if err != nil {
			return "", fmt.Errorf("%w: metric %q: series %s has a bad le %q", ErrUnexpectedSeries, q.Metric, m, le)
		}
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	}
	return "", nil
}

func (q Query) groupingHint() string {
	if q.Kind == policies.KindLatency {
		return q.VersionLabel + ", le"
	}
	return q.VersionLabel
}
