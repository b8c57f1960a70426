package analyzer

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
)

// A count test in a record: its decision state packed in binary, about 140 bytes where its JSON
// took 790. The fail side reads the likelihoods of the failing alternatives against ratio 1 (the
// null's own is 0 by construction); the promote side reads each alternative's likelihood against
// the tolerance's. Both are stored as float32 rounded down, so a stored test never holds more
// evidence than it gathered (a likelihood of 10^5 nats moves by less than 0.01). The rest of the
// grid serves only the interval and estimate a report shows: it is rebuilt from the totals
// (the pooled binomial likelihood, scaled to the stored points).

// testCodecVersion is the first byte of a packed test.
const testCodecVersion = 1

// MarshalJSON packs the test.
func (t *countTest) MarshalJSON() ([]byte, error) {
	if len(t.L) != gridLen || len(t.T) != 1+len(failSteps) {
		return nil, errors.New("test of the wrong size")
	}
	if !finite(t.L...) || !finite(t.T...) || !finite(t.Tol, t.BaselineN, t.CanaryN, t.BaselineY, t.CanaryY, t.BaselineS, t.CanaryS, t.PFail, t.PPromote, t.Power) {
		return nil, errors.New("test with non-finite values")
	}
	b := []byte{testCodecVersion}
	b = appendF64(b, t.Tol)
	for _, d := range failSteps {
		b = appendF32Down(b, t.L[gridHalf+d]-t.L[gridHalf])
	}
	b = appendF64(b, t.T[0])
	for j := 1; j < len(t.T); j++ {
		b = appendF32Down(b, t.T[j]-t.T[0])
	}
	for _, x := range []float64{t.BaselineN, t.CanaryN, t.BaselineY, t.CanaryY} {
		b = appendCount(b, x)
	}
	b = appendF64(b, t.BaselineS)
	b = appendF64(b, t.CanaryS)
	b = binary.AppendUvarint(b, uint64(max(0, t.BaselineK)))
	b = binary.AppendUvarint(b, uint64(max(0, t.CanaryK)))
	for i := range t.RecentN {
		b = appendCount(b, t.RecentN[i])
		b = appendCount(b, t.RecentY[i])
	}
	b = appendF64(b, t.PFail)
	b = appendF64(b, t.PPromote)
	b = appendF64(b, t.Power)
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

// UnmarshalJSON unpacks a test and rebuilds its grid.
func (t *countTest) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	r := &packed{b: raw}
	if r.byte() != testCodecVersion {
		return errors.New("unknown test encoding")
	}
	*t = countTest{L: make(floats, gridLen), T: make(floats, 1+len(failSteps))}
	t.Tol = r.f64()
	exact := map[int]float64{gridHalf: 0}
	for _, d := range failSteps {
		exact[gridHalf+d] = r.f32()
	}
	t.T[0] = r.f64()
	for j := 1; j < len(t.T); j++ {
		t.T[j] = t.T[0] + r.f32()
	}
	t.BaselineN, t.CanaryN, t.BaselineY, t.CanaryY = r.count(), r.count(), r.count(), r.count()
	t.BaselineS, t.CanaryS = r.f64(), r.f64()
	t.BaselineK, t.CanaryK = r.int(), r.int()
	for i := range t.RecentN {
		t.RecentN[i], t.RecentY[i] = r.count(), r.count()
	}
	t.PFail, t.PPromote, t.Power = r.f64(), r.f64(), r.f64()
	if r.err != nil || len(r.b) != 0 {
		return errors.New("test of the wrong size")
	}
	if !finite(t.Tol) || t.Tol <= 0 || !finite(t.T...) {
		return errors.New("test with non-finite values")
	}
	t.rebuild(exact)
	return nil
}

// rebuild fills the likelihood grid from the totals: the pooled binomial log-likelihood ratio
// (exact when the canary's share was constant and nothing was capped or tempered), scaled by
// least squares to the stored points, which are then set exactly.
func (t *countTest) rebuild(exact map[int]float64) {
	pooled := func(int) float64 { return 0 }
	if n := t.CanaryN + t.BaselineN; n > 0 {
		rho, s := t.CanaryN/n, t.CanaryY+t.BaselineY
		pooled = func(i int) float64 {
			r := gridRatio(i)
			return t.CanaryY*math.Log(r) - s*math.Log1p(rho*(r-1))
		}
	}
	var num, den float64
	for i, v := range exact {
		p := pooled(i)
		num += v * p
		den += p * p
	}
	scale := 0.0
	if den > 0 {
		scale = math.Max(0, math.Min(1, num/den))
	}
	for i := range t.L {
		t.L[i] = scale * pooled(i)
	}
	for i, v := range exact {
		t.L[i] = v
	}
}

func appendF64(b []byte, x float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
}

// appendF32Down appends x as the largest float32 not above it.
func appendF32Down(b []byte, x float64) []byte {
	f := float32(x)
	if float64(f) > x {
		f = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	return binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
}

// appendCount appends a count: a whole number as a varint, anything else as a float64.
func appendCount(b []byte, x float64) []byte {
	if x >= 0 && x < 1<<53 && x == math.Trunc(x) {
		return binary.AppendUvarint(b, uint64(x)<<1)
	}
	return appendF64(append(b, 1), x)
}

// packed reads a packed test; the first error sticks.
type packed struct {
	b   []byte
	err error
}

func (r *packed) take(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = errors.New("short")
		return make([]byte, n)
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *packed) byte() byte   { return r.take(1)[0] }
func (r *packed) f64() float64 { return math.Float64frombits(binary.LittleEndian.Uint64(r.take(8))) }
func (r *packed) f32() float64 {
	return float64(math.Float32frombits(binary.LittleEndian.Uint32(r.take(4))))
}

func (r *packed) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *packed) int() int {
	v := r.uvarint()
	if v > math.MaxInt32 {
		r.err = errors.New("count out of range")
	}
	return int(v)
}

func (r *packed) count() float64 {
	v := r.uvarint()
	switch {
	case v == 1:
		return r.f64()
	case v&1 == 0:
		return float64(v >> 1)
	}
	r.err = errors.New("bad count")
	return 0
}
