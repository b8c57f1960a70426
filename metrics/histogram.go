package metrics

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// Quantile estimates the q-quantile of a cumulative histogram the way PromQL's
// histogram_quantile does: linear interpolation inside the bucket the rank falls in, 0 as the
// lower bound of the first bucket, and the highest finite bound when the rank falls in +Inf.
// It returns NaN when the histogram has no observations or no +Inf bucket.
func Quantile(q float64, buckets []Bucket) float64 {
	if len(buckets) < 2 || math.IsNaN(q) {
		return math.NaN()
	}
	bs := make([]Bucket, len(buckets))
	copy(bs, buckets)
	sort.Slice(bs, func(i, j int) bool { return bs[i].UpperBound < bs[j].UpperBound })
	if !math.IsInf(bs[len(bs)-1].UpperBound, 1) {
		return math.NaN()
	}
	// Counts of a cumulative histogram never fall; scrapes racing with increments can make them
	// seem to. Carry the running maximum forward, as Prometheus does.
	for i := 1; i < len(bs); i++ {
		if bs[i].Count < bs[i-1].Count || math.IsNaN(bs[i].Count) {
			bs[i].Count = bs[i-1].Count
		}
	}
	total := bs[len(bs)-1].Count
	if !(total > 0) || math.IsInf(total, 0) {
		return math.NaN()
	}
	if q <= 0 {
		return math.Min(0, bs[0].UpperBound)
	}
	if q >= 1 {
		return bs[len(bs)-2].UpperBound
	}
	rank := q * total
	b := sort.Search(len(bs)-1, func(i int) bool { return bs[i].Count >= rank })
	if b == len(bs)-1 {
		return bs[len(bs)-2].UpperBound
	}
	if b == 0 && bs[0].UpperBound <= 0 {
		return bs[0].UpperBound
	}
	start, end, count := 0.0, bs[b].UpperBound, bs[b].Count
	if b > 0 {
		start = bs[b-1].UpperBound
		count -= bs[b-1].Count
		rank -= bs[b-1].Count
	}
	if count == 0 {
		return end
	}
	return start + (end-start)*(rank/count)
}

// bucketJSON is a bucket as JSON: the bound as a string, as Prometheus writes it ("+Inf").
type bucketJSON struct {
	UpperBound string  `json:"le"`
	Count      float64 `json:"count"`
}

// MarshalJSON implements json.Marshaler.
func (b Bucket) MarshalJSON() ([]byte, error) {
	return json.Marshal(bucketJSON{UpperBound: strconv.FormatFloat(b.UpperBound, 'g', -1, 64), Count: b.Count})
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *Bucket) UnmarshalJSON(data []byte) error {
	var j bucketJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	le, err := strconv.ParseFloat(j.UpperBound, 64)
	if err != nil {
		return fmt.Errorf("bucket bound %q: %w", j.UpperBound, err)
	}
	*b = Bucket{UpperBound: le, Count: j.Count}
	return nil
}
