package judgebench

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Status is how a measured number stands against its target.
type Status string

// The statuses.
const (
	Met     Status = "PASS"
	Missed  Status = "MISS"
	Info    Status = "INFO" // reported beside a target, not checked
	Skipped Status = "SKIP" // its cell was not run
)

// Check is one target of the sequential judge and what the benchmark measured.
type Check struct {
	Status   Status
	Target   string
	Measured string
}

// Targets checks the sequential judge against the goals of the issue.
func Targets(rep *Report) []Check {
	byName := map[string]CellResult{}
	for _, cr := range rep.Cells {
		byName[cr.Cell.Name] = cr
	}
	summary := func(cell string) (Summary, bool) {
		cr, ok := byName[cell]
		if !ok {
			return Summary{}, false
		}
		return cr.Summary(Sequential.Name), true
	}
	var out []Check
	atMost := func(target string, got, limit float64, ok bool, detail string) {
		c := Check{Target: target, Status: Skipped, Measured: "cell not run"}
		if ok {
			c.Status = Missed
			if got <= limit {
				c.Status = Met
			}
			c.Measured = detail
		}
		out = append(out, c)
	}

	// False rollbacks: the worst healthy cell, and every one over the target.
	worst, worstName, healthy := -1.0, "", 0
	var over []string
	for _, cr := range rep.Cells {
		if !cr.Cell.Healthy() {
			continue
		}
		healthy++
		s := cr.Summary(Sequential.Name)
		if s.FailRate > worst {
			worst, worstName = s.FailRate, fmt.Sprintf("%s: %s", cr.Cell.Name, rateWithCI(s))
		}
		if s.FailRate > 0.05 {
			over = append(over, fmt.Sprintf("%s %s", cr.Cell.Name, percentage(s.FailRate)))
		}
	}
	detail := "worst " + worstName
	if len(over) > 0 {
		detail += "; over 5%: " + strings.Join(over, ", ")
	}
	atMost(fmt.Sprintf("false rollbacks <= 5%% in every healthy cell (%d cells)", healthy), worst, 0.05, healthy > 0, detail)

	// Wrong promotions: the worst errors cell regressed by 1.5x or more, and every one over.
	worst, worstName, regressed := -1.0, "", 0
	over = nil
	for _, cr := range rep.Cells {
		c := cr.Cell
		if !c.RegressedBeyond(Tolerance) {
			continue
		}
		regressed++
		s := cr.Summary(Sequential.Name)
		if s.PromoteRate > worst {
			lo, hi := Wilson(s.Promotes, s.Runs, Z95)
			worst, worstName = s.PromoteRate, fmt.Sprintf("%s: %s [%.1f, %.1f]", c.Name, percentage(s.PromoteRate), 100*lo, 100*hi)
		}
		if s.PromoteRate > 0.025 {
			over = append(over, fmt.Sprintf("%s %s", c.Name, percentage(s.PromoteRate)))
		}
	}
	detail = "worst " + worstName
	if len(over) > 0 {
		detail += "; over 2.5%: " + strings.Join(over, ", ")
	}
	atMost(fmt.Sprintf("wrong promotions <= 2.5%% in every errors cell regressed 1.5x or more, beyond its margin (%d cells)", regressed), worst, 0.025, regressed > 0, detail)

	timed := func(cell, what string, pick func(Summary) float64, limit float64) {
		s, ok := summary(cell)
		got := pick(s)
		atMost(fmt.Sprintf("%s: %s <= %g min", cell, what, limit), got, limit, ok,
			fmt.Sprintf("%s min (detected %s)", minutesText(got), percentage(s.FailRate)))
	}
	median := func(s Summary) float64 { return s.MedianFail }
	p80 := func(s Summary) float64 { return s.P80Fail }
	timed(HeadlineDouble, "median time to fail", median, 4)
	timed(HeadlineDouble, "p80 time to fail", p80, 6.5)
	timed(HeadlineLowBase, "median time to fail", median, 4.5)
	timed(HeadlineFive, "median time to fail", median, 1)
	timed(LatencyWhole, "median time to fail", median, 5)
	if s, ok := summary(LatencyTail); ok {
		out = append(out, Check{Status: Info, Target: LatencyTail + ": median time to fail (the 5 min target is on the whole-distribution cell)",
			Measured: fmt.Sprintf("%s min (detected %s)", minutesText(s.MedianFail), percentage(s.FailRate))})
	}

	s, ok := summary(HealthyHeadline)
	atMost(fmt.Sprintf("%s: healthy canary promoted in a median <= 15 min", HealthyHeadline), s.MedianPromote, 15, ok,
		fmt.Sprintf("%s min (promoted %s)", minutesText(s.MedianPromote), percentage(s.PromoteRate)))
	s, ok = summary(RareMarginHeadline)
	atMost(fmt.Sprintf("%s: promoted in a median <= 15 min", RareMarginHeadline), s.MedianPromote, 15, ok,
		fmt.Sprintf("%s min (promoted %s)", minutesText(s.MedianPromote), percentage(s.PromoteRate)))
	atMost(fmt.Sprintf("%s: >= 80%% promoted within 30 min", RareMarginHeadline), 1-s.PromoteRate, 0.2, ok,
		fmt.Sprintf("promoted %s", percentage(s.PromoteRate)))
	var slow []string
	for _, cr := range rep.Cells {
		if cr.Cell.Healthy() {
			if s := cr.Summary(Sequential.Name); !(s.MedianPromote <= 15) {
				slow = append(slow, fmt.Sprintf("%s (%s)", cr.Cell.Name, minutesText(s.MedianPromote)))
			}
		}
	}
	slices.Sort(slow)
	if healthy > 0 {
		m := "none"
		if len(slow) > 0 {
			m = strings.Join(slow, ", ")
		}
		out = append(out, Check{Status: Info, Target: "healthy cells whose median promotion takes over 15 min", Measured: m})
	}
	return out
}

// percentage words a share: "2.5%".
func percentage(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*x)
}

// rateWithCI words a false-rollback rate with its 95% Wilson interval: "2.5% [1.2, 5.1]".
func rateWithCI(s Summary) string {
	return fmt.Sprintf("%s [%.1f, %.1f]", percentage(s.FailRate), 100*s.FailLo, 100*s.FailHi)
}

// minutesText words a time in minutes: ">30" past the horizon, "-" when not applicable.
func minutesText(x float64) string {
	switch {
	case math.IsNaN(x):
		return "-"
	case math.IsInf(x, 1):
		return fmt.Sprintf(">%g", Horizon.Minutes())
	}
	return fmt.Sprintf("%.1f", x)
}
