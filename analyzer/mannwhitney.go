package analyzer

import (
	"math"
	"slices"
)

// MannWhitneyResult is the two-sample comparison of canary against baseline values.
type MannWhitneyResult struct {
	// N is the sample sizes after outlier removal.
	BaselineN, CanaryN int
	// Estimate is the Hodges-Lehmann estimate of the shift canary - baseline (median of all pairwise
	// differences c_j - b_i). NaN when either sample is empty.
	Estimate float64
	// Lo and Hi bound the shift with the given two-sided confidence: the distribution-free interval
	// [d_(k), d_(mn+1-k)] from the sorted pairwise differences, with k = floor(mn/2 - z*sqrt(mn(m+n+1)/12))
	// taken from the normal approximation of the U distribution. Rounding down makes the interval at
	// least as wide as a continuity-corrected one. When k < 1 (small samples) the interval cannot be
	// formed and Lo=-Inf, Hi=+Inf.
	Lo, Hi float64
	// P is the two-sided p-value of the Mann-Whitney U test (normal approximation with tie correction
	// and continuity correction). 1 when either sample is empty or all values are tied.
	P float64
	// BaselineMean and CanaryMean are the means after outlier removal (NaN if empty).
	BaselineMean, CanaryMean float64
}

// MannWhitney compares two samples the way Kayenta's Mann-Whitney classifier does: NaN values dropped,
// IQR outliers removed from each sample (values outside [Q1 - factor*IQR, Q3 + factor*IQR], factor given;
// 0 or less disables removal), then the U test, the Hodges-Lehmann shift estimate and its confidence
// interval. confidence is two-sided, in (0, 1); outside that range the interval is (-Inf, +Inf).
// Infinite values are kept and rank as the extremes; equal infinities count as ties.
func MannWhitney(baseline, canary []float64, confidence, iqrFactor float64) MannWhitneyResult {
	b := withoutOutliers(sortedWithoutNaN(baseline), iqrFactor)
	c := withoutOutliers(sortedWithoutNaN(canary), iqrFactor)
	r := MannWhitneyResult{
		BaselineN:    len(b),
		CanaryN:      len(c),
		Estimate:     math.NaN(),
		Lo:           math.Inf(-1),
		Hi:           math.Inf(1),
		P:            1,
		BaselineMean: sampleMean(b),
		CanaryMean:   sampleMean(c),
	}
	if len(b) == 0 || len(c) == 0 {
		return r
	}
	r.P = uTestP(b, c)
	r.Estimate = shiftMedian(b, c)
	r.Lo, r.Hi = shiftInterval(b, c, confidence)
	return r
}

// MannWhitneyHigh reports whether r says the canary's values are higher than the baseline's in the way Kayenta
// calls "High": the confidence interval's lower bound is above 0 and the ratio of means reaches allowedIncrease.
// A baseline mean of 0 with a canary mean above 0 counts as an infinite ratio (Kayenta turns it into NaN and
// passes the canary; coalmine does not).
func MannWhitneyHigh(r MannWhitneyResult, allowedIncrease float64) bool {
	if !(r.Lo > 0) {
		return false
	}
	return ratio(r.CanaryMean, r.BaselineMean) >= allowedIncrease
}

// sortedWithoutNaN returns a sorted copy of xs without NaNs, the one value that cannot be ranked.
func sortedWithoutNaN(xs []float64) []float64 {
	out := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// withoutOutliers drops the values of the sorted sample s outside the IQR fences. It keeps s sorted.
func withoutOutliers(s []float64, factor float64) []float64 {
	if factor <= 0 || len(s) == 0 {
		return s
	}
	q1, q3 := quantile7(s, 0.25), quantile7(s, 0.75)
	iqr := q3 - q1
	lower, upper := q1-factor*iqr, q3+factor*iqr
	out := s[:0]
	for _, x := range s {
		// Written as "not outside" so that fences made NaN by infinite quartiles keep everything
		// rather than drop everything.
		if !(x < lower || x > upper) {
			out = append(out, x)
		}
	}
	return out
}

// quantile7 is the p-quantile of the sorted, non-empty sample s, interpolating linearly between order
// statistics (Hyndman-Fan type 7, numpy's and R's default).
func quantile7(s []float64, p float64) float64 {
	h := float64(len(s)-1) * p
	i := int(h)
	frac := h - float64(i)
	// Without this shortcut an infinite order statistic would give Inf-Inf = NaN.
	if frac == 0 || s[i] == s[i+1] {
		return s[i]
	}
	return s[i] + frac*(s[i+1]-s[i])
}

func sampleMean(s []float64) float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, x := range s {
		sum += x
	}
	return sum / float64(len(s))
}

// uTestP is the two-sided p-value of the Mann-Whitney U test for the sorted, non-empty samples b and c.
func uTestP(b, c []float64) float64 {
	m, n := float64(len(b)), float64(len(c))
	total := m + n
	// Walk both sorted samples as one merged sequence, one group of equal values at a time: each group
	// gets the mean of the ranks it spans, and its size feeds the tie correction.
	var rankSumC, tieSum, pos float64
	i, j := 0, 0
	for i < len(b) || j < len(c) {
		v := math.Inf(1)
		if i < len(b) {
			v = b[i]
		}
		if j < len(c) && c[j] < v {
			v = c[j]
		}
		var inB, inC float64
		for ; i < len(b) && b[i] == v; i++ {
			inB++
		}
		for ; j < len(c) && c[j] == v; j++ {
			inC++
		}
		t := inB + inC
		rankSumC += inC * (pos + (t+1)/2)
		tieSum += t*t*t - t
		pos += t
	}
	u := rankSumC - n*(n+1)/2
	mu := m * n / 2
	variance := m * n / 12 * ((total + 1) - tieSum/(total*(total-1)))
	if !(variance > 0) {
		return 1 // all values tied: nothing tells the samples apart
	}
	z := (math.Abs(u-mu) - 0.5) / math.Sqrt(variance)
	if z <= 0 {
		return 1
	}
	return math.Erfc(z / math.Sqrt2)
}

// shiftMedian is the Hodges-Lehmann estimate: the median of the pairwise differences of the sorted,
// non-empty samples b and c.
func shiftMedian(b, c []float64) float64 {
	mn := len(b) * len(c)
	if mn%2 == 1 {
		return kthDifference(b, c, (mn+1)/2)
	}
	lo, hi := kthDifference(b, c, mn/2), kthDifference(b, c, mn/2+1)
	if lo == hi {
		return lo // also keeps equal infinities from averaging into NaN
	}
	return (lo + hi) / 2
}

// shiftInterval is the distribution-free confidence interval for the shift of the sorted, non-empty
// samples b and c.
func shiftInterval(b, c []float64, confidence float64) (lo, hi float64) {
	if !(confidence > 0 && confidence < 1) {
		return math.Inf(-1), math.Inf(1)
	}
	m, n := float64(len(b)), float64(len(c))
	mn := m * n
	z := math.Sqrt2 * math.Erfinv(confidence)
	k := math.Floor(mn/2 - z*math.Sqrt(mn*(m+n+1)/12))
	if k < 1 {
		return math.Inf(-1), math.Inf(1)
	}
	ki := int(k)
	return kthDifference(b, c, ki), kthDifference(b, c, len(b)*len(c)+1-ki)
}

// difference is c - b, except that equal values differ by 0 even when infinite, as they are ties in the
// U test.
func difference(c, b float64) float64 {
	if c == b {
		return 0
	}
	return c - b
}

// kthDifference is the k-th smallest (1-based, 1 <= k <= len(b)*len(c)) of the differences c_j - b_i of
// the sorted samples b and c. It gives the same value as sorting all m*n differences, but in O(m+n)
// memory and O(64(m+n)) time: it bisects over float64 values for the smallest t with at least k
// differences <= t. That t is always one of the differences, as the count only changes at them.
func kthDifference(b, c []float64, k int) float64 {
	lo, hi := orderedKey(math.Inf(-1)), orderedKey(math.Inf(1))
	for lo < hi {
		mid := lo + (hi-lo)/2
		if countDifferencesAtMost(b, c, fromOrderedKey(mid)) >= k {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	d := fromOrderedKey(lo)
	if d == 0 {
		return 0 // -0 sorts before +0 in key order; report the zero difference as plain 0
	}
	return d
}

// countDifferencesAtMost counts the pairs with c_j - b_i <= t. For each c_j the pairs that qualify are
// the b_i from some index on, and that index only moves up as c_j grows.
func countDifferencesAtMost(b, c []float64, t float64) int {
	count, i := 0, 0
	for _, cj := range c {
		for i < len(b) && difference(cj, b[i]) > t {
			i++
		}
		count += len(b) - i
	}
	return count
}

// orderedKey maps a non-NaN float64 to a uint64 whose integer order is the float order, so that
// bisection can run over every representable value.
func orderedKey(x float64) uint64 {
	u := math.Float64bits(x)
	if u>>63 == 1 {
		return ^u
	}
	return u | 1<<63
}

func fromOrderedKey(k uint64) float64 {
	if k>>63 == 1 {
		return math.Float64frombits(k &^ (1 << 63))
	}
	return math.Float64frombits(^k)
}
