package simulator

import (
	"math"
	"math/rand/v2"
)

// z99 is the 99th percentile of the standard normal distribution.
const z99 = 2.3263478740408408

// logNormal is a log-normal distribution: exp(mu + sigma*Z) with Z standard normal.
type logNormal struct {
	mu, sigma float64
}

// fitLogNormal returns the log-normal whose median and 99th percentile are those of l.
// The median of exp(mu + sigma*Z) is exp(mu) and its p99 is exp(mu + sigma*z99).
func fitLogNormal(l Latency) logNormal {
	return logNormal{mu: math.Log(l.Median), sigma: math.Log(l.P99/l.Median) / z99}
}

func (d logNormal) draw(r *rand.Rand) float64 {
	return math.Exp(d.mu + d.sigma*r.NormFloat64())
}
