package analyzer

import (
	"errors"
	"math"
)

// The promote side of an errors metric with an absolute margin. The conditional-binomial test
// compares the versions' rates as a ratio, which needs errors to see: a healthy service at 0.1%
// and 10 req/s makes nine errors per version in fifteen minutes, and a ratio of 1.5 cannot be
// shown from nine. An absolute margin can: nine errors where the margin would allow twenty-seven
// is strong evidence, and the requests without an error are what shows it.
//
// The null is "the canary's rate exceeds tol times the baseline's plus the margin",
// p_c > tol*p_b + m. For one interval with n_c, n_b requests and y_c, y_b errors, and a bet
// u in (0, 1),
//
//	e_u = exp(-a*y_c + b*y_b + m*u*n_c),  a = -ln(1-u),  b = ln(1 + tol*u*n_c/n_b)
//
// has E[e_u] <= 1 under the null whatever the baseline's rate: the binomial's moment generating
// function is at most the Poisson's, so ln E[e_u] <= n_c*p_c*(e^-a - 1) + n_b*p_b*(e^b - 1) +
// m*u*n_c = -u*n_c*(p_c - tol*p_b - m) <= 0. Multiplied over intervals, each bet is a test
// supermartingale; their average over a fixed grid of bets is one too, and Ville's inequality
// bounds the chance that it ever reaches 1/alpha. A healthy canary (p_c = p_b = p) gains
// p*ln((1+tol*u)(1-u)) + m*u per request pair: at p = 0.1%, m = 0.2 points, tol 1.5 and the best
// bet, about 0.00093, 8.4 nats in fifteen minutes at 10 req/s.
//
// The log of e_u is linear in the margin, so the test keeps, per bet, the part without the
// margin (A) and the margin's coefficient (B): one record serves the policy's margin and tells
// the smallest margin the data would have supported.
type marginTest struct {
	Tol float64 `json:"tol"`
	A   floats  `json:"a"`
	B   floats  `json:"b"`
	// PPromote is the always-valid p-value at the policy's margin: a running minimum.
	PPromote float64 `json:"pPromote"`
}

// marginBets is the grid of bets u: the best one is near 1 when the margin dwarfs the
// baseline's rate and near margin/(2*rate) when it is small against it.
var marginBets = [...]float64{0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95, 0.98}

func newMarginTest(tol float64) *marginTest {
	return &marginTest{Tol: tol, A: make(floats, len(marginBets)), B: make(floats, len(marginBets)), PPromote: 1}
}

// add folds one interval in, raised to power k (at most 1, fixed before the interval is seen:
// the tempering that the errors' dispersion calls for; a power of an e-value is one).
func (t *marginTest) add(nc, nb, yc, yb, k float64) {
	if nc <= 0 || nb < 0 || yc < 0 || yb < 0 || k <= 0 {
		return
	}
	for i, u := range marginBets {
		x := yc * math.Log1p(-u) // -a*y_c
		if yb > 0 {
			x += yb * math.Log1p(t.Tol*u*nc/nb)
		}
		t.A[i] += k * x
		t.B[i] += k * u * nc
	}
}

// lnE is the log of the mixture's e-value at margin m.
func (t *marginTest) lnE(m float64) float64 {
	terms := make([]float64, len(marginBets))
	for i := range marginBets {
		terms[i] = t.A[i] + m*t.B[i]
	}
	return logMeanExp(terms, len(terms))
}

// update refreshes the running p-value at margin m.
func (t *marginTest) update(m float64) {
	t.PPromote = math.Min(t.PPromote, math.Exp(-t.lnE(m)))
}

// supportedMargin is the smallest margin (a rate, 0.002 for 0.2 points) at which the data so far
// reach alpha; NaN when not even a margin of 100% would.
func (t *marginTest) supportedMargin(alpha float64) float64 {
	crit := math.Log(1 / alpha)
	if t.lnE(0) >= crit {
		return 0
	}
	lo, hi := 0.0, 1.0
	if t.lnE(hi) < crit {
		return math.NaN()
	}
	for range 60 {
		mid := (lo + hi) / 2
		if t.lnE(mid) >= crit {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

func (t *marginTest) validate() error {
	switch {
	case len(t.A) != len(marginBets) || len(t.B) != len(marginBets):
		return errors.New("margin test of the wrong size")
	case !finite(t.A...) || !finite(t.B...) || !finite(t.Tol) || t.Tol <= 0 || !counts(t.B...):
		return errors.New("margin test with values out of range")
	case !prob(t.PPromote):
		return errors.New("margin test p-value out of range")
	}
	return nil
}
