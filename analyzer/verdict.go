// Package analyzer judges a canary against its baseline and decides what to do about it. Judges
// are pure: observations in, verdicts with their numbers and reasons out. The analyzer reads
// metrics through an interface it owns and never touches the cluster.
package analyzer

import (
	"encoding/json"
	"math"
	"time"

	"github.com/coalmine/coalmine/policies"
)

// Verdict is the outcome of judging a metric or a whole canary.
type Verdict string

// The verdicts. Inconclusive is never a pass: it means there was not enough data to judge.
const (
	Pass         Verdict = "pass"
	Fail         Verdict = "fail"
	Inconclusive Verdict = "inconclusive"
)

// Number is a float64 that encodes NaN and infinities as JSON null.
type Number float64

// MarshalJSON implements json.Marshaler.
func (n Number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

// UnmarshalJSON implements json.Unmarshaler: null reads back as NaN.
func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Number(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Number(f)
	return nil
}

// MetricResult is the verdict on one metric with the numbers behind it.
type MetricResult struct {
	Name     string              `json:"name"`
	Kind     policies.MetricKind `json:"kind"`
	Critical bool                `json:"critical"`
	Verdict  Verdict             `json:"verdict"`
	// Reason says in one line why.
	Reason string `json:"reason"`
	// Baseline and Canary are the judged values: error ratio, latency quantile in seconds, or
	// the value. NaN when the arm had no data.
	Baseline Number `json:"baseline"`
	Canary   Number `json:"canary"`
	// Ratio is Canary/Baseline and Difference Canary-Baseline; NaN when not computable. A
	// baseline of 0 with a canary above it gives an infinite ratio.
	Ratio      Number `json:"ratio"`
	Difference Number `json:"difference"`
	// BaselineRequests and CanaryRequests are the requests each arm served in the window (errors
	// and latency metrics); NaN for value metrics.
	BaselineRequests Number `json:"baselineRequests"`
	CanaryRequests   Number `json:"canaryRequests"`
	// BaselineErrors and CanaryErrors are the errors each arm served (errors metrics).
	BaselineErrors Number `json:"baselineErrors"`
	CanaryErrors   Number `json:"canaryErrors"`
	// Stats are the numbers of the counter-reading judges; nil for the threshold judge.
	Stats *Stats `json:"stats,omitempty"`
	// History is the metric's value per interval (counter-reading judges), for charts.
	History    []Point             `json:"history,omitempty"`
	Thresholds policies.Thresholds `json:"thresholds"`
	Query      string              `json:"query"`
	Warnings   []string            `json:"warnings,omitempty"`
}

// Stats are a counter-reading judge's numbers behind a metric's verdict.
type Stats struct {
	Judge policies.Judge `json:"judge"`
	// Intervals is how many intervals the judge has seen.
	Intervals int `json:"intervals"`
	// Estimate is the canary/baseline ratio: of error rates, or (latency) of the shares of
	// requests slower than Edge for the sequential judge, of the per-interval means for
	// mannwhitney.
	Estimate Number `json:"estimate"`
	// Low and High bound Estimate: the sequential judge's always-valid confidence interval at
	// level 1-Alpha. For mannwhitney they bound the shift canary-baseline (98%).
	Low  Number `json:"low"`
	High Number `json:"high"`
	// PValue is the p-value of "the canary is no worse": always valid for the sequential judge.
	PValue Number `json:"pValue"`
	// PromoteP is the sequential judge's always-valid p-value of "the canary is worse by the
	// tolerance or more".
	PromoteP Number `json:"promoteP"`
	// Alpha is the metric's share of the policy's alpha; Tolerance the policy's.
	Alpha     Number `json:"alpha"`
	Tolerance Number `json:"tolerance"`
	// Edge is the latency bucket bound the numbers are about.
	Edge Number `json:"edge"`
	// Margin is an errors metric's absolute margin (a rate), and SupportedMargin the smallest
	// margin at which the data so far would pass it, beside the tolerance: NaN when not
	// applicable.
	Margin          Number `json:"margin"`
	SupportedMargin Number `json:"supportedMargin"`
}

func newStats(j policies.Judge) *Stats {
	nan := Number(math.NaN())
	return &Stats{Judge: j, Estimate: nan, Low: nan, High: nan, PValue: nan, PromoteP: nan, Alpha: nan, Tolerance: nan, Edge: nan, Margin: nan, SupportedMargin: nan}
}

// Result is the verdict on a canary at one evaluation.
type Result struct {
	Policy    string         `json:"policy"`
	Namespace string         `json:"namespace"`
	App       string         `json:"app"`
	Baseline  string         `json:"baselineVersion"`
	Canary    string         `json:"canaryVersion"`
	Time      time.Time      `json:"time"`
	Window    string         `json:"window"`
	Verdict   Verdict        `json:"verdict"`
	Reason    string         `json:"reason"`
	Metrics   []MetricResult `json:"metrics"`
}

// Overall combines metric verdicts: fail if a critical metric failed, else inconclusive if a
// critical metric was inconclusive, else pass. Non-critical metrics are reported, not counted.
func Overall(ms []MetricResult) (Verdict, string) {
	var failed, unsure []string
	critical := 0
	for _, m := range ms {
		if !m.Critical {
			continue
		}
		critical++
		switch m.Verdict {
		case Fail:
			failed = append(failed, m.Name+": "+m.Reason)
		case Inconclusive:
			unsure = append(unsure, m.Name+": "+m.Reason)
		}
	}
	switch {
	case len(failed) > 0:
		return Fail, join(failed)
	case len(unsure) > 0:
		return Inconclusive, join(unsure)
	case critical == 0:
		return Inconclusive, "no critical metric was judged"
	}
	return Pass, "every critical metric passed"
}

func join(xs []string) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += "; "
		}
		s += x
	}
	return s
}
