package daemon

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// daemonState is what the daemon's /metrics say of its canaries.
type daemonState struct {
	verdicts   map[string]map[string]float64 // policy -> verdict -> ticks
	inProgress float64
	outcomes   float64
	errors     float64
}

// others is a policy's ticks with a verdict other than pass.
func (s daemonState) others(policy string) float64 {
	n := 0.0
	for v, c := range s.verdicts[policy] {
		if v != "pass" {
			n += c
		}
	}
	return n
}

// gatherDaemon reads the daemon's registry, in process: no HTTP, no API request.
func gatherDaemon(b *testing.B, reg *prometheus.Registry) daemonState {
	b.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	s := daemonState{verdicts: map[string]map[string]float64{}}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "coalmine_verdicts_total":
				if s.verdicts[labels["policy"]] == nil {
					s.verdicts[labels["policy"]] = map[string]float64{}
				}
				s.verdicts[labels["policy"]][labels["verdict"]] += m.GetCounter().GetValue()
			case "coalmine_canaries_in_progress":
				s.inProgress = m.GetGauge().GetValue()
			case "coalmine_canary_outcomes_total":
				s.outcomes += m.GetCounter().GetValue()
			case "coalmine_errors_total":
				s.errors += m.GetCounter().GetValue()
			}
		}
	}
	return s
}

// waitDaemon polls the daemon's metrics until ok says so, and fails on a canary that ended.
func waitDaemon(b *testing.B, reg *prometheus.Registry, n int, timeout time.Duration, done <-chan error, what string, ok func(daemonState) bool) daemonState {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := gatherDaemon(b, reg)
		if s.outcomes > 0 {
			b.Fatalf("waiting for %s: %.0f canaries ended; verdicts %v", what, s.outcomes, summarize(s))
		}
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: not after %s: %d of %d canaries judged, %.0f in progress, %.0f errors; verdicts %v", what, timeout, len(s.verdicts), n, s.inProgress, s.errors, summarize(s))
		}
		select {
		case err := <-done:
			b.Fatalf("waiting for %s: the daemon stopped: %v", what, err)
		case <-time.After(time.Second):
		}
	}
}

// summarize counts canaries by their verdicts so far, e.g. "inconclusive=3 pass=5: 200".
func summarize(s daemonState) map[string]int {
	out := map[string]int{}
	for _, v := range s.verdicts {
		var parts []string
		for verdict, c := range v {
			parts = append(parts, fmt.Sprintf("%s=%.0f", verdict, c))
		}
		sort.Strings(parts)
		out[strings.Join(parts, " ")]++
	}
	return out
}
