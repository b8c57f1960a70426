package analyzer

import (
	"encoding/json"
	"math"
	"strconv"
)

// The sequential judge's statistics: a conditional-binomial likelihood ratio for the ratio of
// the canary's event rate to the baseline's, accumulated interval by interval and mixed over a
// grid of alternatives, so that the chance of ever failing a healthy canary stays below alpha
// however often it looks (Ville's inequality).
//
// Per interval, with n requests and y events (errors, or requests slower than an edge) per arm
// and rho = n_c/(n_c+n_b), the canary's share of the s = y_c+y_b events is Binomial(s, theta(r))
// with theta(r) = rho*r/(rho*r+1-rho). Against r = 1 its log-likelihood ratio grows by
// y_c*ln(r) - s*ln(1+rho*(r-1)). rho is recomputed every interval, so ramps, load swings and
// incidents that hit both arms cancel out.

// The ratios are kept on one log-uniform grid, r_k = 2^(k/gridPerOctave) for k in
// [-gridHalf, gridHalf]: the failing mixture, the non-inferiority test, the confidence sequence
// and the estimate all read the same accumulated log-likelihoods.
const (
	gridPerOctave = 8
	gridHalf      = 6 * gridPerOctave // 1/64 .. 64
	gridLen       = 2*gridHalf + 1
)

// failSteps are the mixture's alternatives as grid steps above the null: about 1.3, 1.5, 2, 3,
// 5 and 10 times.
var failSteps = [...]int{3, 5, 8, 13, 19, 27}

// gridRatio is the ratio at grid index i.
func gridRatio(i int) float64 { return math.Exp2(float64(i-gridHalf) / gridPerOctave) }

// gridIndex is the grid index nearest to ratio r, clamped to the grid.
func gridIndex(r float64) int {
	i := gridHalf + int(math.Round(math.Log2(r)*gridPerOctave))
	return min(max(i, 0), gridLen-1)
}

// countTest is the evidence of one comparison: one errors metric, or one latency edge.
type countTest struct {
	// L[i] is the log-likelihood ratio of ratio gridRatio(i) against ratio 1.
	L floats `json:"l"`
	// Totals over every interval seen.
	BaselineN float64 `json:"baselineN"`
	CanaryN   float64 `json:"canaryN"`
	BaselineY float64 `json:"baselineY"`
	CanaryY   float64 `json:"canaryY"`
	// PFail and PPromote are the always-valid p-values of "no worse than the baseline" and of
	// "worse by the tolerance or more": running minima, so they only fall.
	PFail    float64 `json:"pFail"`
	PPromote float64 `json:"pPromote"`
}

func newCountTest() *countTest {
	return &countTest{L: make(floats, gridLen), PFail: 1, PPromote: 1}
}

// add accumulates one interval. power < 1 tempers the likelihood (for events that come in
// bursts, which the binomial model would take for more evidence than they are).
func (t *countTest) add(nc, nb, yc, yb, power float64) {
	if nc < 0 || nb < 0 || yc < 0 || yb < 0 || nc+nb <= 0 {
		return
	}
	t.BaselineN += nb
	t.CanaryN += nc
	t.BaselineY += yb
	t.CanaryY += yc
	s := yc + yb
	if s <= 0 {
		return // no events: no evidence either way
	}
	rho := nc / (nc + nb)
	for i := range t.L {
		r := gridRatio(i)
		t.L[i] += power * (yc*math.Log(r) - s*math.Log1p(rho*(r-1)))
	}
}

// lnFail is the log of the mixture likelihood ratio against "the canary is no worse".
func (t *countTest) lnFail() float64 {
	return mixAbove(t.L, gridHalf)
}

// lnPromote is the log of the mixture likelihood ratio against "the canary is worse by tol or
// more": large when the data favour ratios below tol.
func (t *countTest) lnPromote(tol float64) float64 {
	return mixBelow(t.L, gridIndex(tol))
}

// update refreshes the running p-values after an interval.
func (t *countTest) update(tol float64) {
	t.PFail = math.Min(t.PFail, math.Exp(-t.lnFail()))
	t.PPromote = math.Min(t.PPromote, math.Exp(-t.lnPromote(tol)))
}

// mixAbove mixes, with equal weights, the likelihood ratios of the alternatives above the null
// at grid index null, each against the null. Alternatives off the grid keep their weight and
// count as no evidence, which only makes the test more cautious.
func mixAbove(l []float64, null int) float64 {
	terms := make([]float64, 0, len(failSteps))
	for _, d := range failSteps {
		if j := null + d; j < len(l) {
			terms = append(terms, l[j]-l[null])
		}
	}
	return logMeanExp(terms, len(failSteps))
}

// mixBelow is mixAbove for alternatives below the null.
func mixBelow(l []float64, null int) float64 {
	terms := make([]float64, 0, len(failSteps))
	for _, d := range failSteps {
		if j := null - d; j >= 0 {
			terms = append(terms, l[j]-l[null])
		}
	}
	return logMeanExp(terms, len(failSteps))
}

// logMeanExp is ln(sum(exp(x))/n), computed without overflow.
func logMeanExp(xs []float64, n int) float64 {
	if len(xs) == 0 {
		return math.Inf(-1)
	}
	m := math.Inf(-1)
	for _, x := range xs {
		m = math.Max(m, x)
	}
	if math.IsInf(m, -1) {
		return m
	}
	var sum float64
	for _, x := range xs {
		sum += math.Exp(x - m)
	}
	return m + math.Log(sum) - math.Log(float64(n))
}

// interval is the always-valid confidence interval for the ratio at level alpha: the ratios on
// the grid that a two-sided mixture test does not reject. lo is 0 or hi +Inf when the interval
// reaches the end of the grid.
func (t *countTest) interval(alpha float64) (lo, hi float64) {
	crit := math.Log(1 / alpha)
	first, last := -1, -1
	for i := range t.L {
		// Two-sided: half the weight on each side.
		up, down := mixAbove(t.L, i), mixBelow(t.L, i)
		both := logMeanExp([]float64{up, down}, 2)
		if both < crit {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		e := t.estimate()
		return e, e
	}
	lo, hi = gridRatio(first), gridRatio(last)
	if first == 0 {
		lo = 0
	}
	if last == gridLen-1 {
		hi = math.Inf(1)
	}
	return lo, hi
}

// estimate is the ratio that maximises the accumulated likelihood, refined between grid
// points by a parabola in log ratio; NaN before the first event.
func (t *countTest) estimate() float64 {
	best := 0
	for i := range t.L {
		if t.L[i] > t.L[best] {
			best = i
		}
	}
	if t.CanaryY+t.BaselineY == 0 {
		return math.NaN()
	}
	if best == 0 {
		if t.CanaryY == 0 {
			return 0
		}
		return gridRatio(0)
	}
	if best == gridLen-1 {
		if t.BaselineY == 0 {
			return math.Inf(1)
		}
		return gridRatio(best)
	}
	a, b, c := t.L[best-1], t.L[best], t.L[best+1]
	shift := 0.0
	if den := a - 2*b + c; den < 0 {
		shift = 0.5 * (a - c) / den
	}
	return math.Exp2((float64(best-gridHalf) + shift) / gridPerOctave)
}

// floats is a slice of float64 that encodes each number with seven significant digits: the
// evidence rides in an annotation on the Deployment, rewritten every tick.
type floats []float64

// MarshalJSON implements json.Marshaler.
func (f floats) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for i, x := range f {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			b = append(b, "null"...)
			continue
		}
		b = strconv.AppendFloat(b, x, 'g', 7, 64)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *floats) UnmarshalJSON(b []byte) error {
	var xs []*float64
	if err := json.Unmarshal(b, &xs); err != nil {
		return err
	}
	*f = make(floats, len(xs))
	for i, x := range xs {
		if x == nil {
			(*f)[i] = math.NaN()
		} else {
			(*f)[i] = *x
		}
	}
	return nil
}
