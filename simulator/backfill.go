package simulator

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"
)

// Phase is a scenario in force from Start: a history is one or more phases.
type Phase struct {
	Start    time.Time
	Scenario Scenario
}

// WriteOpenMetrics writes what Prometheus would have scraped from the phases' pods every step
// between start and end, as OpenMetrics text with timestamps, for `promtool tsdb
// create-blocks-from openmetrics`: hours of history in seconds instead of hours. The series are
// those the live simulator serves, with the labels the kubernetes-pods relabelling adds
// (namespace, pod, app, version): http_requests_total{code} and the request_duration_seconds
// histogram. A pod is identified by its namespace, app, version and index; it keeps its
// counters across phases, and a phase that changes its behaviour changes only what it adds.
func WriteOpenMetrics(w io.Writer, phases []Phase, start, end time.Time, step time.Duration) error {
	if len(phases) == 0 || step <= 0 || !end.After(start) {
		return fmt.Errorf("backfill: need phases, a step > 0 and end after start")
	}
	sort.SliceStable(phases, func(i, j int) bool { return phases[i].Start.Before(phases[j].Start) })
	type podState struct {
		key     podKey
		name    string
		ok, bad float64
		buckets []float64 // cumulative per durationBuckets(), then +Inf
		sum     float64
	}
	type sample struct {
		at    time.Time
		state podState
	}
	bounds := durationBuckets()
	pods := map[podKey]*podState{}
	var order []podKey
	var samples []sample
	rng := rand.New(rand.NewPCG(phases[0].Scenario.Seed, 0x6261636b66696c6c))
	for at := start; !at.After(end); at = at.Add(step) {
		ph := phases[0]
		for _, p := range phases {
			if !p.Start.After(at) {
				ph = p
			}
		}
		for _, spec := range plan(ph.Scenario) {
			st, ok := pods[spec.key]
			if !ok {
				st = &podState{key: spec.key, name: podName(ph.Scenario.Seed, spec.key, 0), buckets: make([]float64, len(bounds)+1)}
				pods[spec.key] = st
				order = append(order, spec.key)
			}
			if at.Equal(start) {
				continue
			}
			for range poisson(rng, spec.rps*step.Seconds()) {
				if rng.Float64() < spec.errorRate {
					st.bad++
				} else {
					st.ok++
				}
				d := spec.latency.draw(rng)
				st.sum += d
				for i, b := range bounds {
					if d <= b {
						st.buckets[i]++
					}
				}
				st.buckets[len(bounds)]++
			}
		}
		for _, k := range order {
			samples = append(samples, sample{at: at, state: *pods[k]})
			samples[len(samples)-1].state.buckets = append([]float64(nil), pods[k].buckets...)
		}
	}
	bw := bufio.NewWriter(w)
	labels := func(s podState) string {
		return fmt.Sprintf(`namespace=%q,app=%q,version=%q,pod=%q`, s.key.namespace, s.key.app, s.key.version, s.name)
	}
	ts := func(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64) }
	num := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	fmt.Fprintln(bw, "# TYPE http_requests counter")
	for _, s := range samples {
		fmt.Fprintf(bw, "http_requests_total{%s,code=%q} %s %s\n", labels(s.state), codeOK, num(s.state.ok), ts(s.at))
		fmt.Fprintf(bw, "http_requests_total{%s,code=%q} %s %s\n", labels(s.state), codeError, num(s.state.bad), ts(s.at))
	}
	fmt.Fprintln(bw, "# TYPE request_duration_seconds histogram")
	for _, s := range samples {
		for i, b := range bounds {
			fmt.Fprintf(bw, "request_duration_seconds_bucket{%s,le=%q} %s %s\n", labels(s.state), num(b), num(s.state.buckets[i]), ts(s.at))
		}
		n := s.state.buckets[len(bounds)]
		fmt.Fprintf(bw, "request_duration_seconds_bucket{%s,le=\"+Inf\"} %s %s\n", labels(s.state), num(n), ts(s.at))
		fmt.Fprintf(bw, "request_duration_seconds_count{%s} %s %s\n", labels(s.state), num(n), ts(s.at))
		fmt.Fprintf(bw, "request_duration_seconds_sum{%s} %s %s\n", labels(s.state), num(math.Round(s.state.sum*1e6)/1e6), ts(s.at))
	}
	fmt.Fprintln(bw, "# EOF")
	return bw.Flush()
}
