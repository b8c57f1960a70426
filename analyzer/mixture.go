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
	// Tol is the tolerance the promote side tests, and T[j] the log-likelihood ratio (against
	// 1) of Tol and of Tol divided by each failStep: the promote side's null and alternatives,
	// kept exactly rather than rounded to the grid.
	Tol float64 `json:"tol"`
	T   floats  `json:"t"`
	// Totals over every interval seen.
	BaselineN float64 `json:"baselineN"`
	CanaryN   float64 `json:"canaryN"`
	BaselineY float64 `json:"baselineY"`
	CanaryY   float64 `json:"canaryY"`
	// Sums behind the dispersion estimate: per version, the sum over intervals of y^2/n, and
	// the intervals with traffic.
	BaselineS float64 `json:"baselineS"`
	CanaryS   float64 `json:"canaryS"`
	BaselineK int     `json:"baselineK"`
	CanaryK   int     `json:"canaryK"`
	// RecentN and RecentY are the canary's requests and events in its last intervals with
	// traffic, newest first: the rate a burst is measured against.
	RecentN [recentIntervals]float64 `json:"recentN"`
	RecentY [recentIntervals]float64 `json:"recentY"`
	// PFail and PPromote are the always-valid p-values of "no worse than the baseline" and of
	// "worse by the tolerance or more": running minima, so they only fall.
	PFail    float64 `json:"pFail"`
	PPromote float64 `json:"pPromote"`
	// Power is the tempering applied to the last interval (1: none).
	Power float64 `json:"power"`
}

func newCountTest(tol float64) *countTest {
	return &countTest{L: make(floats, gridLen), Tol: tol, T: make(floats, 1+len(failSteps)), PFail: 1, PPromote: 1, Power: 1}
}

// tolRatio is the ratio of T[j].
func (t *countTest) tolRatio(j int) float64 {
	if j == 0 {
		return t.Tol
	}
	return t.Tol / math.Exp2(float64(failSteps[j-1])/gridPerOctave)
}

// The caps on what one interval can add to a ratio's log-likelihood ratio. An interval adds
// the smaller of its (tempered) log-likelihood ratio x and max(cap, x/capDispersion): at most
// x, so every accumulated ratio stays at or below the true likelihood ratio and the test keeps
// its alpha; at least a share of x, so the evidence still grows with the data. The cap keeps
// errors that come in bursts from passing for a regression: during the first warmUpIntervals
// of the canary, before the dispersion can be seen, the cap is warmUpCap; after that, an
// interval in which the canary has far more events than its recent intervals predict (more
// than 3 standard deviations and one event above the expected count, at the canary's recent
// rate) is capped at burstCap. What passes a cap counts as if the events were capDispersion
// times more dispersed than the binomial's: a burst that size on its own is a regression,
// however briefly it lasts, and a report over one interval holding thousands of requests can
// decide.
const (
	warmUpIntervals = 3
	warmUpCap       = 1.5
	burstCap        = 0.5
	capDispersion   = 20
	recentIntervals = 3
)

// add accumulates one interval, with its likelihood raised to the smaller of power (the
// policy's tempering) and the tempering that the dispersion seen so far calls for (each side
// its own, see dispersion). Both are fixed before the interval is seen, so each ratio's
// accumulated likelihood stays a supermartingale under the null (E[LR^k] <= 1 for k <= 1) and
// the mixtures keep their alpha; the caps only lower what the fail side gathers.
func (t *countTest) add(nc, nb, yc, yb, power float64) {
	if nc < 0 || nb < 0 || yc < 0 || yb < 0 || nc+nb <= 0 {
		return
	}
	low, _ := t.dispersion()
	k := math.Min(power, 1/low)
	kp := t.promotePower(power)
	limit := t.cap(nc, yc, nc+nb, yc+yb)
	t.remember(nc, yc)
	t.Power = k
	t.BaselineN += nb
	t.CanaryN += nc
	t.BaselineY += yb
	t.CanaryY += yc
	if nb > 0 {
		t.BaselineS += yb * yb / nb
		t.BaselineK++
	}
	if nc > 0 {
		t.CanaryS += yc * yc / nc
		t.CanaryK++
	}
	s := yc + yb
	if s <= 0 {
		return // no events: no evidence either way
	}
	rho := nc / (nc + nb)
	llr := func(r float64) float64 { return k * (yc*math.Log(r) - s*math.Log1p(rho*(r-1))) }
	for i := range t.L {
		x := llr(gridRatio(i))
		t.L[i] += math.Min(x, math.Max(limit, x/capDispersion))
	}
	// The promote side takes every interval in full. A cap there would throw away what a
	// burst says against the canary (its null, the tolerance, would gain less than the ratios
	// below it), so that a canary whose errors come in clumps would be promoted on its quiet
	// intervals.
	for j := range t.T {
		t.T[j] += kp / k * llr(t.tolRatio(j))
	}
}

// promotePower is the tempering of the promote side's next interval: the smaller of power and
// the dispersion as seen, not less its allowance for chance, so that errors in clumps do not buy
// a promotion before the allowance is used up. Until the dispersion can be seen at all it is 0:
// the promote side gathers nothing.
func (t *countTest) promotePower(power float64) float64 {
	if _, seen := t.dispersion(); seen > 0 {
		return math.Min(power, 1/seen)
	}
	return 0
}

// cap is the most an interval may add in which the canary served nc requests with yc events.
// A burst is told from a regression by what follows: an interval far above the canary's rate
// (the higher of its last recentIntervals with traffic and the whole run's) is capped, and once
// a regression has lasted that long its rate is the recent one and its evidence counts in full.
func (t *countTest) cap(nc, yc, n, s float64) float64 {
	if t.CanaryK < warmUpIntervals {
		return warmUpCap
	}
	var rn, ry float64
	for i := range t.RecentN {
		rn += t.RecentN[i]
		ry += t.RecentY[i]
	}
	pastN := t.BaselineN + t.CanaryN
	if rn <= 0 || t.CanaryN <= 0 || pastN <= 0 {
		return math.Inf(1)
	}
	far := func(y, mu float64) bool { return y > mu+3*math.Sqrt(mu)+1 }
	// Both the interval's events and the canary's own are far above what came before. For the
	// canary the higher of its recent and whole-run rate: few recent events are a noisy rate.
	rate := math.Max((ry+0.5)/rn, t.CanaryY/t.CanaryN)
	if far(s, n*(t.BaselineY+t.CanaryY+0.5)/pastN) && far(yc, nc*rate) {
		return burstCap
	}
	return math.Inf(1)
}

// remember keeps the canary's last intervals with traffic.
func (t *countTest) remember(nc, yc float64) {
	if nc <= 0 {
		return
	}
	copy(t.RecentN[1:], t.RecentN[:len(t.RecentN)-1])
	copy(t.RecentY[1:], t.RecentY[:len(t.RecentY)-1])
	t.RecentN[0], t.RecentY[0] = nc, yc
}

// dispersion estimates how much more the events vary from interval to interval than the
// binomial model says, from each version's own counts (Pearson's statistic over its intervals,
// pooled): about 1 for independent errors, several times that for errors in bursts.
//
// Each side of the test is protected by its own reading of it. low, for the fail side, takes
// an allowance for chance (two standard deviations of the statistic) off first, so that clean
// traffic is rarely tempered and regressions are caught at full speed. seen, for the promote
// side, adds one standard deviation instead: errors in clumps make a canary's quiet intervals
// look like strong evidence that it is fine, and in the first minutes, while few intervals are
// seen, the estimate itself often comes out low. Both are at least 1; seen is 0 until there are
// enough intervals to see anything.
func (t *countTest) dispersion() (low, seen float64) {
	var x2 float64
	dof := 0
	for _, v := range []struct {
		n, y, s float64
		k       int
	}{{t.BaselineN, t.BaselineY, t.BaselineS, t.BaselineK}, {t.CanaryN, t.CanaryY, t.CanaryS, t.CanaryK}} {
		if v.k < 2 || v.y <= 0 || v.n <= 0 {
			continue
		}
		p := v.y / v.n
		// sum (y - n p)^2 / (n p (1-p)) = (N/Y * S - Y) / (1 - p)
		x2 += (v.n/v.y*v.s - v.y) / math.Max(1-p, 1e-9)
		dof += v.k - 1
	}
	if dof < 4 {
		return 1, 0
	}
	d := x2 / float64(dof)
	return math.Max(1, d-2*math.Sqrt(2/float64(dof))), math.Max(1, d+1*math.Sqrt(2/float64(dof)))
}

// lnFail is the log of the mixture likelihood ratio against "the canary is no worse".
func (t *countTest) lnFail() float64 {
	return mixAbove(t.L, gridHalf)
}

// lnPromote is the log of the mixture likelihood ratio against "the canary is worse by the
// tolerance or more": large when the data favour ratios below it.
func (t *countTest) lnPromote() float64 {
	terms := make([]float64, 0, len(failSteps))
	for j := 1; j < len(t.T); j++ {
		terms = append(terms, lnPromoteWeights[j-1]+t.T[j]-t.T[0])
	}
	return logSumExp(terms)
}

// update refreshes the running p-values after an interval.
func (t *countTest) update() {
	t.PFail = math.Min(t.PFail, math.Exp(-t.lnFail()))
	t.PPromote = math.Min(t.PPromote, math.Exp(-t.lnPromote()))
}

// mixAbove mixes, with equal weights, the likelihood ratios of the alternatives above the null
// at grid index null, each against the null. Alternatives off the grid keep their weight and
// count as no evidence, which only makes the test more cautious.
func mixAbove(l []float64, null int) float64 {
	terms := make([]float64, 0, len(failSteps))
	for k, d := range failSteps {
		if j := null + d; j < len(l) {
			terms = append(terms, lnFailWeights[k]+l[j]-l[null])
		}
	}
	return logSumExp(terms)
}

// mixBelow is mixAbove for alternatives below the null.
func mixBelow(l []float64, null int) float64 {
	terms := make([]float64, 0, len(failSteps))
	for k, d := range failSteps {
		if j := null - d; j >= 0 {
			terms = append(terms, lnFailWeights[k]+l[j]-l[null])
		}
	}
	return logSumExp(terms)
}

// The mixtures' weights on failSteps, a prior on how bad a regression is: most on 1.5-5x,
// which take minutes to see, little on 1.3x, which rarely can be seen in a canary's time, and
// on 10x, which is seen within seconds at any weight. The promote side weighs the ratios just
// below the tolerance most: a healthy canary sits there.
var (
	lnFailWeights    = lnWeights(0.05, 0.18, 0.27, 0.20, 0.22, 0.08)
	lnPromoteWeights = lnWeights(0.25, 0.35, 0.25, 0.10, 0.03, 0.02)
)

func lnWeights(w ...float64) [len(failSteps)]float64 {
	var out [len(failSteps)]float64
	sum := 0.0
	for _, x := range w {
		sum += x
	}
	for i, x := range w {
		out[i] = math.Log(x / sum)
	}
	return out
}

// logSumExp is ln(sum(exp(x))), computed without overflow.
func logSumExp(xs []float64) float64 { return logMeanExp(xs, 1) }

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
	accepted := func(i int) bool {
		// Two-sided: half the weight on each side.
		return logMeanExp([]float64{mixAbove(t.L, i), mixBelow(t.L, i)}, 2) < crit
	}
	// The accepted ratios surround the likelihood's maximum: walk out from it both ways.
	best := 0
	for i := range t.L {
		if t.L[i] > t.L[best] {
			best = i
		}
	}
	if !accepted(best) {
		e := t.estimate()
		return e, e
	}
	first, last := best, best
	for first > 0 && accepted(first-1) {
		first--
	}
	for last < gridLen-1 && accepted(last+1) {
		last++
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
