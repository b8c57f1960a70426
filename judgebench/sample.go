package judgebench

import (
	"math"
	"math/rand/v2"
)

// tinyMass is the probability below which the search for a draw gives up: what is left in both
// tails then weighs far less than one draw in a benchmark's lifetime.
const tinyMass = 1e-20

// poisson draws from a Poisson distribution with mean lambda.
func poisson(r *rand.Rand, lambda float64) float64 {
	if !(lambda > 0) {
		return 0
	}
	mode := math.Floor(lambda)
	lg, _ := math.Lgamma(mode + 1)
	pmode := math.Exp(mode*math.Log(lambda) - lambda - lg)
	return fromMode(r.Float64(), mode, pmode, math.Inf(1),
		func(k float64) float64 { return lambda / (k + 1) },
		func(k float64) float64 { return k / lambda })
}

// gamma draws from a gamma distribution with the given shape and scale 1 (Marsaglia and
// Tsang's method; a shape below 1 is boosted by one and scaled back by U^(1/shape)).
func gamma(r *rand.Rand, shape float64) float64 {
	if !(shape > 0) {
		return 0
	}
	if shape < 1 {
		return gamma(r, shape+1) * math.Pow(r.Float64(), 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}

// binomial draws from a binomial distribution: successes in n trials of probability p.
func binomial(r *rand.Rand, n, p float64) float64 {
	switch {
	case n <= 0 || !(p > 0):
		return 0
	case p >= 1:
		return n
	}
	mode := math.Min(n, math.Floor((n+1)*p))
	ln, _ := math.Lgamma(n + 1)
	lk, _ := math.Lgamma(mode + 1)
	lnk, _ := math.Lgamma(n - mode + 1)
	pmode := math.Exp(ln - lk - lnk + mode*math.Log(p) + (n-mode)*math.Log1p(-p))
	odds := p / (1 - p)
	return fromMode(r.Float64(), mode, pmode, n,
		func(k float64) float64 { return (n - k) / (k + 1) * odds },
		func(k float64) float64 { return k / (n - k + 1) / odds })
}

// fromMode turns the uniform u into a draw of a discrete distribution on 0..max by inversion,
// taking the outcomes in order of distance from the mode rather than from 0: any order gives
// the exact distribution, and this one needs O(standard deviation) steps where a search from 0
// needs O(mean) and P(0) underflows for large means. up(k) is P(k+1)/P(k), down(k) is
// P(k-1)/P(k).
func fromMode(u, mode, pmode, max float64, up, down func(float64) float64) float64 {
	u -= pmode
	if u <= 0 {
		return mode
	}
	lo, hi := mode, mode
	plo, phi := pmode, pmode
	for {
		if hi < max && phi > tinyMass {
			phi *= up(hi)
			hi++
			if u -= phi; u <= 0 {
				return hi
			}
		}
		if lo > 0 && plo > tinyMass {
			plo *= down(lo)
			lo--
			if u -= plo; u <= 0 {
				return lo
			}
		}
		if (hi >= max || phi <= tinyMass) && (lo <= 0 || plo <= tinyMass) {
			return mode // rounding left u a hair above the total mass
		}
	}
}
