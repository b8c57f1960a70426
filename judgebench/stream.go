package judgebench

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/coalmine/coalmine/metrics"
)

// The simulated analysis: a scrape every Interval for Horizon.
const (
	Interval = 10 * time.Second
	Horizon  = 30 * time.Minute
	Steps    = int(Horizon / Interval)
)

// z99 is the 99th percentile of the standard normal distribution.
const z99 = 2.3263478740408408

// Edges are Prometheus's default histogram buckets (client_golang's DefBuckets), +Inf last.
var Edges = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, math.Inf(1)}

// start is the simulated analysis's first instant; any fixed time does.
var start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Latency is a log-normal request latency given by its median and 99th percentile, in seconds.
type Latency struct {
	Median, P99 float64
}

// sigma is the log-normal's shape: p99 = median * exp(sigma * z99).
func (l Latency) sigma() float64 { return math.Log(l.P99/l.Median) / z99 }

// CDF is the share of requests that take at most x seconds.
func (l Latency) CDF(x float64) float64 {
	switch {
	case math.IsInf(x, 1):
		return 1
	case x <= 0:
		return 0
	}
	return 0.5 * math.Erfc(-math.Log(x/l.Median)/(l.sigma()*math.Sqrt2))
}

// Slower is the share of requests slower than x seconds.
func (l Latency) Slower(x float64) float64 { return 1 - l.CDF(x) }

// shares are the probabilities of each of Edges' buckets, not cumulative.
func (l Latency) shares() []float64 {
	out := make([]float64, len(Edges))
	prev := 0.0
	for i, le := range Edges {
		c := l.CDF(le)
		out[i] = math.Max(0, c-prev)
		prev = c
	}
	return out
}

// Incident multiplies both versions' error rates by Factor from From to To: a dependency down,
// which is no fault of the canary.
type Incident struct {
	From, To time.Duration
	Factor   float64
}

// Burst makes each interval, for each version independently, have Factor times the error rate
// with probability Prob: one bad pod, retries, the overdispersion the binomial model ignores.
type Burst struct {
	Prob, Factor float64
}

// WarmUp makes the canary's new pods slower for their first For: both its median and its p99
// latency are Factor times its own (JIT, caches, connection pools).
type WarmUp struct {
	For    time.Duration
	Factor float64
}

// Scenario is what the baseline and the canary do over a simulated analysis.
type Scenario struct {
	// Rate is the baseline's requests per second.
	Rate float64
	// Load multiplies both versions' traffic, in equal steps over the horizon (the day's load
	// rising or falling); nil is 1 throughout.
	Load []float64
	// Ramp is the canary's traffic as a share of the baseline's, in equal steps over the
	// horizon; nil is the same traffic as the baseline's throughout.
	Ramp []float64
	// ErrorRate is the baseline's share of requests that fail, and ErrorRatio the canary's
	// error rate over the baseline's.
	ErrorRate, ErrorRatio float64
	Incident              Incident
	Burst                 Burst
	// Dispersion makes each version's errors clumpy: in each interval its error rate is
	// multiplied by its own gamma-distributed factor of mean 1, so that the variance of its
	// errors per interval is about Dispersion times the binomial's. 0 or 1 is none.
	Dispersion float64
	// SharedNoise is Dispersion with one factor for both versions in each interval: noise
	// that is no fault of the canary (a flaky dependency both call).
	SharedNoise float64
	WarmUp      WarmUp
	// Baseline and Canary are the versions' latencies.
	Baseline, Canary Latency
}

// canaryShare is the canary's traffic over the baseline's during the step-th interval.
func (sc Scenario) canaryShare(step int) float64 { return stepped(sc.Ramp, step) }

// load is what the day's load multiplies both versions' traffic by during the step-th interval.
func (sc Scenario) load(step int) float64 { return stepped(sc.Load, step) }

// stepped is the value of equal steps over the horizon at the step-th interval; 1 when none.
func stepped(xs []float64, step int) float64 {
	if len(xs) == 0 {
		return 1
	}
	return xs[min(step*len(xs)/Steps, len(xs)-1)]
}

// canaryLatency is the canary's latency during the step-th interval, warm-up included.
func (sc Scenario) canaryLatency(step int) Latency {
	if time.Duration(step)*Interval < sc.WarmUp.For && sc.WarmUp.Factor > 0 {
		return Latency{Median: sc.Canary.Median * sc.WarmUp.Factor, P99: sc.Canary.P99 * sc.WarmUp.Factor}
	}
	return sc.Canary
}

// clump draws the factor a version's error rate is multiplied by in one interval so that its
// errors vary d times as much as the binomial's: gamma with mean 1 and shape mean/(d-1), for
// an expected mean errors (a gamma-Poisson mixture's variance is mean + mean^2/shape).
func clump(r *rand.Rand, d, mean float64) float64 {
	if d <= 1 || mean <= 0 {
		return 1
	}
	shape := mean / (d - 1)
	return gamma(r, shape) / shape
}

// errorFactor is what the incident multiplies the error rates by during the step-th interval.
func (sc Scenario) errorFactor(step int) float64 {
	at := time.Duration(step) * Interval
	if sc.Incident.Factor > 0 && at >= sc.Incident.From && at < sc.Incident.To {
		return sc.Incident.Factor
	}
	return 1
}

// Stream is one simulated analysis: per interval, each metric's counter increases for both
// versions, as metrics.Deltas would make them from scrapes. The latency histogram counts the
// same requests as the errors metric.
type Stream struct {
	Errors  []metrics.Interval
	Latency []metrics.Interval
}

// Generate simulates a scenario's Steps intervals with r. Every judge is fed the same stream.
func Generate(sc Scenario, r *rand.Rand) Stream {
	s := Stream{Errors: make([]metrics.Interval, Steps), Latency: make([]metrics.Interval, Steps)}
	sharesB, sharesC := sc.Baseline.shares(), sc.Canary.shares()
	warm := sc.canaryLatency(0).shares()
	secs := Interval.Seconds()
	for i := range Steps {
		iv := metrics.Interval{Start: start.Add(time.Duration(i) * Interval), End: start.Add(time.Duration(i+1) * Interval)}
		nb := sc.load(i) * sc.Rate * secs
		nc := sc.canaryShare(i) * nb
		rb, rc := sc.errorFactor(i)*sc.ErrorRate, sc.errorFactor(i)*sc.ErrorRate*sc.ErrorRatio
		if sc.SharedNoise > 1 {
			f := clump(r, sc.SharedNoise, (nb+nc)*rb)
			rb, rc = rb*f, rc*f
		}
		if sc.Dispersion > 1 {
			rb *= clump(r, sc.Dispersion, nb*rb)
			rc *= clump(r, sc.Dispersion, nc*rc)
		}
		shares := sharesC
		if sc.canaryLatency(i) != sc.Canary {
			shares = warm
		}
		eb, lb := simulate(r, nb, rb, sc.Burst, sharesB)
		ec, lc := simulate(r, nc, rc, sc.Burst, shares)
		s.Errors[i], s.Latency[i] = iv, iv
		s.Errors[i].Baseline, s.Errors[i].Canary = eb, ec
		s.Latency[i].Baseline, s.Latency[i].Canary = lb, lc
	}
	return s
}

// simulate draws one version's interval: Poisson requests with mean lambda, each failing with
// probability rate (times the burst factor in a burst), and their latencies bucketed by
// sequential binomial draws over the buckets' shares.
func simulate(r *rand.Rand, lambda, rate float64, b Burst, shares []float64) (errs, lat metrics.Counts) {
	n := poisson(r, lambda)
	if b.Prob > 0 && r.Float64() < b.Prob {
		rate *= b.Factor
	}
	errs = metrics.Counts{Series: 1, Requests: n, Errors: binomial(r, n, math.Min(1, rate))}
	lat = metrics.Counts{Series: 1, Requests: n, Buckets: make([]metrics.Bucket, len(Edges))}
	left, mass, cum := n, 1.0, 0.0
	for i, le := range Edges {
		k := left
		if i < len(Edges)-1 && mass > 0 {
			k = binomial(r, left, math.Min(1, shares[i]/mass))
		}
		left -= k
		mass -= shares[i]
		cum += k
		lat.Buckets[i] = metrics.Bucket{UpperBound: le, Count: cum}
	}
	return errs, lat
}
