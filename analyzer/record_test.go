package analyzer

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/policies"
)

// seedBuckets are the seed app's request_duration_seconds bounds (simulator/pod.go).
var seedBuckets = []float64{.25, .5, 1, 2.5, 5, 10}

// recordPolicy is the example policy judged by the sequential test (my-app.yaml): an errors
// metric and a latency metric, 30 s intervals.
func recordPolicy(tb testing.TB) *policies.Policy {
	tb.Helper()
	ps, err := policies.LoadFile("../policies/examples/my-app.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	return ps[0]
}

// manyLatencyPolicy is recordPolicy with ten latency metrics of 25 buckets each instead of
// one: the largest evidence a realistic policy keeps. edges gives each metric's bounds.
func manyLatencyPolicy(tb testing.TB) (p *policies.Policy, edges map[string][]float64) {
	tb.Helper()
	p = recordPolicy(tb)
	lat := p.Spec.Metrics[1]
	p.Spec.Metrics = p.Spec.Metrics[:1]
	edges = map[string][]float64{}
	for i := range 10 {
		m := lat
		m.Name = fmt.Sprintf("latency-%d", i)
		p.Spec.Metrics = append(p.Spec.Metrics, m)
		var es []float64
		for k := range 25 {
			es = append(es, 0.001*math.Pow(1.5, float64(k))*(1+0.1*float64(i)))
		}
		edges[m.Name] = es
	}
	return p, edges
}

// traffic is an app's traffic for the evidence tests: Poisson requests per version, binomial
// errors, log-normal latencies (median 100 ms, p99 1 s) counted in each latency metric's
// buckets.
type traffic struct {
	rps    float64 // per version
	pb, pc float64 // error rates
	// slow multiplies the canary's latencies (0 or 1: as fast as the baseline).
	slow float64
}

// latencyShare is the share of requests at most le seconds, for latencies slow times the
// baseline's.
func latencyShare(le, slow float64) float64 {
	if math.IsInf(le, 1) {
		return 1
	}
	const median, p99, z99 = 0.1, 1.0, 2.3263478740408408
	sigma := math.Log(p99/median) / z99
	return 0.5 * math.Erfc(-math.Log(le/(median*slow))/(sigma*math.Sqrt2))
}

// draw is one version's interval of metric m: n requests, a share rate of them errors.
func draw(rng *rand.Rand, m policies.Metric, edges []float64, n, rate, slow float64) metrics.Counts {
	if m.Kind == policies.KindErrors {
		return metrics.Counts{Series: 1, Requests: n, Errors: binomial(rng, n, rate)}
	}
	c := metrics.Counts{Series: 1, Requests: n}
	left, below, cum := n, 0.0, 0.0
	for _, le := range append(slices.Clone(edges), math.Inf(1)) {
		share := latencyShare(le, slow)
		k := left
		if !math.IsInf(le, 1) && below < 1 {
			k = binomial(rng, left, math.Min(1, math.Max(0, (share-below)/(1-below))))
		}
		left -= k
		below = share
		cum += k
		c.Buckets = append(c.Buckets, metrics.Bucket{UpperBound: le, Count: cum})
	}
	return c
}

// intervals draws n intervals of each streamed metric of p from start, one map per interval;
// edges holds a latency metric's bucket bounds, the seed app's when absent.
func (tr traffic) intervals(rng *rand.Rand, p *policies.Policy, edges map[string][]float64, start time.Time, n int) []map[string]metrics.Interval {
	step := time.Duration(p.Spec.Analysis.Interval)
	slow := tr.slow
	if slow == 0 {
		slow = 1
	}
	var out []map[string]metrics.Interval
	for i := range n {
		from := start.Add(time.Duration(i) * step)
		secs := step.Seconds()
		nb, nc := binomial(rng, 1e9, tr.rps*secs/1e9), binomial(rng, 1e9, tr.rps*secs/1e9)
		ivs := map[string]metrics.Interval{}
		for _, m := range p.Spec.Metrics {
			if !streams(p, m) {
				continue
			}
			es := edges[m.Name]
			if es == nil {
				es = seedBuckets
			}
			ivs[m.Name] = metrics.Interval{Start: from, End: from.Add(step),
				Baseline: draw(rng, m, es, nb, tr.pb, 1), Canary: draw(rng, m, es, nc, tr.pc, slow)}
		}
		out = append(out, ivs)
	}
	return out
}

// addIntervals adds intervals to the evidence as the engine does: each metric in the policy's
// order, then one more interval counted.
func addIntervals(ev *Evidence, p *policies.Policy, ivs []map[string]metrics.Interval) {
	judge := StreamJudgeFor(p)
	for _, iv := range ivs {
		for _, m := range p.Spec.Metrics {
			if x, ok := iv[m.Name]; ok {
				ev.Add(judge, p, m, x)
			}
		}
		ev.Intervals++
	}
}

// keepHistory is what the engine keeps of the history for p's judge.
func keepHistory(p *policies.Policy) int {
	return (&Canary{Policy: p}).keepHistory()
}

// sameJudgement compares what two evidences judge: each metric's verdict and p-values exactly.
func sameJudgement(p *policies.Policy, a, b *Evidence) error {
	judge := StreamJudgeFor(p)
	ra, rb := JudgeStream(p, a, judge), JudgeStream(p, b, judge)
	if len(ra) != len(rb) {
		return fmt.Errorf("%d metrics judged, then %d", len(ra), len(rb))
	}
	// The record rounds the evidence down (never more than was gathered): a p-value read back
	// may be a hair larger, never smaller.
	same := func(x, y Number) bool {
		a, b := float64(x), float64(y)
		return a == b || (math.IsNaN(a) && math.IsNaN(b)) || (b > a && b-a <= 1e-5*a)
	}
	for i := range ra {
		x, y := ra[i], rb[i]
		if x.Verdict != y.Verdict || !same(x.Stats.PValue, y.Stats.PValue) || !same(x.Stats.PromoteP, y.Stats.PromoteP) || x.Stats.Intervals != y.Stats.Intervals {
			return fmt.Errorf("metric %s: %s p %v promote p %v after %d intervals, then %s p %v promote p %v after %d",
				x.Name, x.Verdict, x.Stats.PValue, x.Stats.PromoteP, x.Stats.Intervals, y.Verdict, y.Stats.PValue, y.Stats.PromoteP, y.Stats.Intervals)
		}
	}
	return nil
}

func TestRecordRoundTrip(t *testing.T) {
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		judge policies.Judge
		tr    traffic
		// want is the overall verdict the evidence must reach while it is fed on, so that the
		// comparison covers a decisive verdict too.
		want Verdict
	}{
		{name: "healthy canary, sequential", judge: policies.JudgeSequential, tr: traffic{rps: 20, pb: 0.01, pc: 0.01}, want: Pass},
		{name: "2x errors, sequential", judge: policies.JudgeSequential, tr: traffic{rps: 20, pb: 0.01, pc: 0.02}, want: Fail},
		{name: "2x slower, sequential", judge: policies.JudgeSequential, tr: traffic{rps: 20, pb: 0.01, pc: 0.01, slow: 2}, want: Fail},
		{name: "5x errors, mannwhitney", judge: policies.JudgeMannWhitney, tr: traffic{rps: 20, pb: 0.01, pc: 0.05}, want: Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := recordPolicy(t)
			p.Spec.Analysis.Judge = tt.judge
			err := roundTrip(p, tt.tr, start, tt.want)
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// roundTrip writes and reads back the record of a canary with six intervals of evidence, then
// feeds both the original and the decoded evidence the same intervals until the original
// judges want: they must judge alike all along.
func roundTrip(p *policies.Policy, tr traffic, start time.Time, want Verdict) error {
	ivs := tr.intervals(rand.New(rand.NewPCG(3, 4)), p, nil, start, 120)
	ev := NewEvidence()
	ev.KeepHistory = keepHistory(p)
	addIntervals(ev, p, ivs[:6])

	rec := NewProgress(p, start)
	rec.Release = map[string]string{"base": "10"}
	rec.Done("step=0", rec.StepStarted)
	rec.Evidence = ev
	res := Result{}
	res.Verdict, res.Reason = Overall(JudgeStream(p, ev, StreamJudgeFor(p)))
	at := start.Add(3 * time.Minute)
	rec.Apply(Decide(p, rec, Observed{Ready: true}, &res, at, start.Add(time.Hour)), &res, at)
	raw, err := EncodeProgress(rec)
	if err != nil {
		return err
	}
	back, err := DecodeProgress(raw, p)
	if err != nil {
		return err
	}
	if back.Phase != rec.Phase || back.Step != rec.Step || back.Steps != 3 || back.Release["base"] != "10" || back.Fingerprint != "step=0" ||
		!back.Started.Equal(start) || fmt.Sprint(back.Verdicts) != fmt.Sprint(rec.Verdicts) || back.Sum == "" {
		return fmt.Errorf("record came back as %+v, want %+v", back, rec)
	}
	if back.Evidence == nil || back.Evidence.Intervals != 6 || len(back.Evidence.Metrics) != 2 {
		return fmt.Errorf("evidence came back as %+v", back.Evidence)
	}
	if err := sameJudgement(p, ev, back.Evidence); err != nil {
		return fmt.Errorf("decoded: %w", err)
	}
	// Fed on with the same intervals, both evidences decide alike at every interval.
	decoded := back.Evidence
	for i := 6; i < len(ivs); i++ {
		addIntervals(ev, p, ivs[i:i+1])
		addIntervals(decoded, p, ivs[i:i+1])
		if err := sameJudgement(p, ev, decoded); err != nil {
			return fmt.Errorf("after interval %d: %w", i, err)
		}
		if v, _ := Overall(JudgeStream(p, ev, StreamJudgeFor(p))); v == want {
			return nil
		}
	}
	return fmt.Errorf("the evidence never judged %s: the comparison covered no decision", want)
}

func TestRecordKeepsTheHistoryItsJudgeReadsAcrossRestarts(t *testing.T) {
	// A record read back and written again (a second restart) still holds the history the
	// Mann-Whitney judge reads: a regression seen before two restarts is not forgotten.
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		metrics func(p *policies.Policy) []policies.Metric
	}{
		{name: "latency only", metrics: func(p *policies.Policy) []policies.Metric { return p.Spec.Metrics[1:] }},
		{name: "errors and latency", metrics: func(p *policies.Policy) []policies.Metric { return p.Spec.Metrics }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := recordPolicy(t)
			p.Spec.Analysis.Judge = policies.JudgeMannWhitney
			p.Spec.Metrics = tt.metrics(p)
			err := restartTwice(p, start)
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// restartTwice writes a mannwhitney canary's record, reads it back, and again.
func restartTwice(p *policies.Policy, start time.Time) error {
	ivs := traffic{rps: 20, pb: 0.01, pc: 0.05}.intervals(rand.New(rand.NewPCG(5, 6)), p, nil, start, 20)
	ev := NewEvidence()
	ev.KeepHistory = keepHistory(p)
	addIntervals(ev, p, ivs)
	rec := NewProgress(p, start)
	rec.Done("fp", rec.StepStarted)
	rec.Evidence = ev
	for restart := 1; restart <= 2; restart++ {
		raw, err := EncodeProgress(rec)
		if err != nil {
			return err
		}
		if rec, err = DecodeProgress(raw, p); err != nil {
			return fmt.Errorf("restart %d: %w", restart, err)
		}
		for name, me := range rec.Evidence.Metrics {
			if len(me.History) != keepHistory(p) {
				return fmt.Errorf("after restart %d: metric %s kept %d points of history, want %d", restart, name, len(me.History), keepHistory(p))
			}
		}
	}
	return nil
}

// editTest changes the packed count test of a metric's evidence, as a forger would.
func editTest(t *testing.T, m map[string]any, edit func(tst *countTest)) {
	t.Helper()
	b, err := json.Marshal(m["test"])
	if err != nil {
		t.Fatal(err)
	}
	var tst countTest
	if err := json.Unmarshal(b, &tst); err != nil {
		t.Fatal(err)
	}
	edit(&tst)
	if b, err = json.Marshal(&tst); err != nil {
		t.Fatal(err)
	}
	var back any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	m["test"] = back
}

// reseal gives a record edited by hand the checksum coalmine would have written: what a
// forger does, so that only validation stands between it and the cluster.
func reseal(t *testing.T, raw string, edit func(s *storedProgress)) string {
	t.Helper()
	var s storedProgress
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatal(err)
	}
	edit(&s)
	s.Sum = ""
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	s.Sum = checksum(b)
	if b, err = json.Marshal(s); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// editBlob rewrites a record's evidence as JSON, keeping a valid checksum.
func editBlob(t *testing.T, raw string, edit func(ev map[string]any)) string {
	t.Helper()
	return reseal(t, raw, func(s *storedProgress) {
		z, err := base64.StdEncoding.DecodeString(s.EvidenceBlob)
		if err != nil {
			t.Fatal(err)
		}
		r, err := zlib.NewReader(bytes.NewReader(z))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.NewDecoder(r).Decode(&m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		w := zlib.NewWriter(&buf)
		w.Write(b)
		w.Close()
		s.EvidenceBlob = base64.StdEncoding.EncodeToString(buf.Bytes())
	})
}

// metricJSON is one metric's evidence in an edited blob.
func metricJSON(ev map[string]any, name string) map[string]any {
	return ev["metrics"].(map[string]any)[name].(map[string]any)
}

// forgeable is a record of a canary at its last step whose evidence (twelve intervals of a
// healthy canary: not enough to pass) is encoded with a valid checksum.
func forgeable(t *testing.T, p *policies.Policy, edit func(rec *Progress)) string {
	t.Helper()
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	ev := NewEvidence()
	addIntervals(ev, p, traffic{rps: 20, pb: 0.01, pc: 0.01}.intervals(rand.New(rand.NewPCG(8, 9)), p, nil, start, 12))
	rec := NewProgress(p, start)
	rec.Done("fp", rec.StepStarted)
	rec.Step, rec.Evidence = 2, ev
	if edit != nil {
		edit(rec)
	}
	raw, err := EncodeProgress(rec)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestDecodeProgressRefuses(t *testing.T) {
	p := recordPolicy(t)
	promoting := func(rec *Progress) {
		rec.Phase, rec.InFlight = PhasePromoting, &InFlight{Action: Promote, Cause: CauseVerdict, Since: rec.Started.Add(20 * time.Minute)}
		rec.Verdicts = []StepVerdict{{Step: 2, Verdict: Pass}}
	}
	valid := forgeable(t, p, nil)
	if rec, err := DecodeProgress(valid, p); err != nil || rec == nil {
		t.Fatalf("the record the forgeries start from is refused: %v", err)
	}
	if v, _ := Overall(JudgeStream(p, mustDecode(t, valid, p).Evidence, SequentialJudge{})); v == Pass {
		t.Fatal("the forgeries' evidence passes: they would be genuine")
	}
	tests := []struct {
		name string
		raw  string
		// want is a piece of the error: which check refused the record.
		want string
	}{
		{name: "phase edited by hand to promoting", raw: strings.Replace(valid, `"phase":"progressing"`, `"phase":"promoting"`, 1), want: "checksum"},
		{name: "step edited by hand", raw: strings.Replace(valid, `"step":2`, `"step":1`, 1), want: "checksum"},
		{name: "a field added by hand", raw: strings.Replace(valid, `{"v":2,`, `{"v":2,"owner":"me",`, 1), want: "not a coalmine record"},
		{name: "forged promoting, checksum right, evidence not passing", raw: forgeable(t, p, promoting), want: "recorded evidence says inconclusive"},
		{name: "forged promoted, checksum right, evidence not passing", raw: forgeable(t, p, func(rec *Progress) { promoting(rec); rec.InFlight, rec.Phase = nil, PhasePromoted }), want: "recorded evidence says"},
		{name: "forged promoting without evidence", raw: forgeable(t, p, func(rec *Progress) { promoting(rec); rec.Evidence = nil }), want: "without evidence"},
		{name: "forged promoting without a passing verdict", raw: forgeable(t, p, func(rec *Progress) { promoting(rec); rec.Verdicts = nil }), want: "without a passing verdict"},
		{name: "forged promoting before the last step", raw: forgeable(t, p, func(rec *Progress) { promoting(rec); rec.Step = 1 }), want: "without a passing verdict"},
		{name: "a promotion in flight while progressing", raw: forgeable(t, p, func(rec *Progress) { promoting(rec); rec.Phase = PhaseProgressing }), want: "promote in flight in phase progressing"},
		{name: "an advance skipping steps", raw: forgeable(t, p, func(rec *Progress) { rec.Step, rec.InFlight = 0, &InFlight{Action: Advance, Step: 2} }), want: "advance to step 2 from step 0"},
		{name: "an unknown action in flight", raw: forgeable(t, p, func(rec *Progress) { rec.InFlight = &InFlight{Action: "delete"} }), want: "unknown action"},
		{name: "unknown phase", raw: forgeable(t, p, func(rec *Progress) { rec.Phase = "paused" }), want: "unknown phase"},
		{name: "step out of range", raw: forgeable(t, p, func(rec *Progress) { rec.Step = 3 }), want: "step 3 out of range"},
		{name: "negative step", raw: forgeable(t, p, func(rec *Progress) { rec.Step = -1 }), want: "out of range"},
		{name: "steps not the policy's", raw: forgeable(t, p, func(rec *Progress) { rec.Steps = 4 }), want: "4 steps recorded"},
		{name: "a verdict of a step that does not exist", raw: forgeable(t, p, func(rec *Progress) { rec.Verdicts = []StepVerdict{{Step: 7, Verdict: Pass}} }), want: "verdict"},
		{name: "a verdict that is not one", raw: forgeable(t, p, func(rec *Progress) { rec.Verdicts = []StepVerdict{{Step: 0, Verdict: "great"}} }), want: "verdict"},
		{name: "no start time", raw: forgeable(t, p, func(rec *Progress) { rec.Started = time.Time{} }), want: "start times"},
		{name: "version 3", raw: reseal(t, valid, func(s *storedProgress) { s.Version = 3 }), want: "version 3"},
		{name: "no version", raw: reseal(t, valid, func(s *storedProgress) { s.Version = 0 }), want: "version 0"},
		{name: "oversize", raw: forgeable(t, p, func(rec *Progress) { rec.Reason = strings.Repeat("x", maxRecordBytes) }), want: "bytes"},
		{name: "evidence that is not base64", raw: reseal(t, valid, func(s *storedProgress) { s.EvidenceBlob = "!!!" }), want: "evidence"},
		{name: "evidence that is not zlib", raw: reseal(t, valid, func(s *storedProgress) { s.EvidenceBlob = "aGVsbG8=" }), want: "evidence"},
		{
			name: "evidence inflating past its bound",
			raw: reseal(t, valid, func(s *storedProgress) {
				var err error
				big := NewEvidence()
				big.Metrics["error-rate"] = &MetricEvidence{Kind: policies.KindErrors, History: make([]Point, 80_000)}
				big.KeepHistory = 80_000
				if s.EvidenceBlob, err = encodeEvidence(big); err != nil {
					t.Fatal(err)
				}
			}),
			want: "inflated",
		},
		{name: "edge tests fewer than edges", raw: editBlob(t, valid, func(ev map[string]any) {
			m := metricJSON(ev, "latency-p99")
			m["edgeTests"] = m["edgeTests"].([]any)[1:]
		}), want: "edge tests for"},
		{name: "a missing edge test", raw: editBlob(t, valid, func(ev map[string]any) {
			metricJSON(ev, "latency-p99")["edgeTests"].([]any)[0] = nil
		}), want: "missing test"},
		{name: "promote edge out of range", raw: editBlob(t, valid, func(ev map[string]any) { metricJSON(ev, "latency-p99")["promoteEdge"] = 6 }), want: "promote edge 6"},
		{name: "negative requests", raw: editBlob(t, valid, func(ev map[string]any) {
			metricJSON(ev, "error-rate")["canary"].(map[string]any)["requests"] = -1
		}), want: "out of range"},
		{name: "negative bucket", raw: editBlob(t, valid, func(ev map[string]any) {
			metricJSON(ev, "latency-p99")["baseline"].(map[string]any)["buckets"].([]any)[0].(map[string]any)["count"] = -5
		}), want: "bucket out of range"},
		{name: "a p-value above 1", raw: editBlob(t, valid, func(ev map[string]any) { metricJSON(ev, "error-rate")["pFail"] = 1.5 }), want: "p-values"},
		{name: "a test p-value below 0", raw: editBlob(t, valid, func(ev map[string]any) {
			editTest(t, metricJSON(ev, "error-rate"), func(tst *countTest) { tst.PPromote = -0.1 })
		}), want: "test p-values"},
		{name: "a test of the wrong size", raw: editBlob(t, valid, func(ev map[string]any) {
			m := metricJSON(ev, "error-rate")
			raw, _ := base64.StdEncoding.DecodeString(m["test"].(string))
			m["test"] = base64.StdEncoding.EncodeToString(raw[:len(raw)-3])
		}), want: "wrong size"},
		{name: "a test with no tolerance", raw: editBlob(t, valid, func(ev map[string]any) {
			editTest(t, metricJSON(ev, "error-rate"), func(tst *countTest) { tst.Tol = 0 })
		}), want: "non-finite"},
		{name: "an errors metric without its test", raw: editBlob(t, valid, func(ev map[string]any) { delete(metricJSON(ev, "error-rate"), "test") }), want: "without its test"},
		{name: "evidence of a metric the policy does not have", raw: editBlob(t, valid, func(ev map[string]any) {
			ev["metrics"].(map[string]any)["cpu"] = metricJSON(ev, "error-rate")
		}), want: `metric "cpu"`},
		{name: "evidence of a metric of another kind", raw: editBlob(t, valid, func(ev map[string]any) { metricJSON(ev, "error-rate")["kind"] = "latency" }), want: `metric "error-rate"`},
		{name: "an empty metric", raw: editBlob(t, valid, func(ev map[string]any) { ev["metrics"].(map[string]any)["error-rate"] = nil }), want: "empty metric"},
		{name: "evidence ending before it starts", raw: editBlob(t, valid, func(ev map[string]any) { ev["end"] = "2020-01-01T00:00:00Z" }), want: "out of order"},
		{name: "negative intervals", raw: editBlob(t, valid, func(ev map[string]any) { ev["intervals"] = -3 }), want: "out of order"},
		{name: "an unknown field in the evidence", raw: editBlob(t, valid, func(ev map[string]any) { ev["x"] = 1 }), want: "unknown field"},
		{
			// The judge cannot go on from it: with the baseline's traffic it picks edge 0 of
			// none to pass the metric, and panics.
			name: "a latency metric with an empty list of edges", raw: editBlob(t, valid, func(ev map[string]any) {
				m := metricJSON(ev, "latency-p99")
				m["edges"], m["edgeTests"] = []any{}, []any{}
				delete(m, "promoteEdge")
			}),
		},
		{name: "a record with something after it", raw: valid + "x"},
		{name: "a record twice", raw: valid + valid},
	}
	garbage := []string{
		"garbage", "{", "}", "{}", "null", "[]", `""`, "0", "\x00\xff\xfe", `{"v":1}`, `{"v":1,"sum":""}`,
		strings.Repeat("[", 100_000), strings.Repeat(`{"v":`, 20_000),
		valid[:len(valid)/2], "x" + valid,
	}
	for i, g := range garbage {
		tests = append(tests, struct {
			name string
			raw  string
			want string
		}{name: fmt.Sprintf("garbage %d", i), raw: g})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := DecodeProgress(tt.raw, p)
			if !errors.Is(err, ErrUntrusted) || rec != nil {
				t.Fatalf("got %v, %v; want it refused as untrusted", rec, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("refused with %q; want the reason to say %q", err, tt.want)
			}
		})
	}
}

func mustDecode(t *testing.T, raw string, p *policies.Policy) *Progress {
	t.Helper()
	rec, err := DecodeProgress(raw, p)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestDecodeProgressAccepts(t *testing.T) {
	p := recordPolicy(t)
	tests := []struct {
		name       string
		raw        string
		wantNil    bool
		wantCanary string
		wantPhase  Phase
	}{
		{name: "no record", raw: "", wantNil: true},
		{name: "a record of this canary", raw: forgeable(t, p, nil), wantCanary: "v2.0.0", wantPhase: PhaseProgressing},
		{
			// An earlier canary's record is not validated against this policy (it is never
			// obeyed: the engine starts the new canary), only checked for its checksum.
			name:       "an earlier canary's record, even one this policy would refuse",
			raw:        forgeable(t, p, func(rec *Progress) { rec.Canary, rec.Phase, rec.Step, rec.Steps = "v1.9.0", PhasePromoted, 7, 9 }),
			wantCanary: "v1.9.0", wantPhase: PhasePromoted,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := DecodeProgress(tt.raw, p)
			if err != nil {
				t.Fatal(err)
			}
			if (rec == nil) != tt.wantNil || (rec != nil && (rec.Canary != tt.wantCanary || rec.Phase != tt.wantPhase)) {
				t.Errorf("got %v, want canary %q phase %q", rec, tt.wantCanary, tt.wantPhase)
			}
		})
	}
}

func FuzzDecodeProgress(f *testing.F) {
	p := recordPolicy(f)
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	ev := NewEvidence()
	addIntervals(ev, p, traffic{rps: 20, pb: 0.01, pc: 0.01}.intervals(rand.New(rand.NewPCG(1, 2)), p, nil, start, 4))
	rec := NewProgress(p, start)
	if raw, err := EncodeProgress(rec); err == nil {
		f.Add(raw)
	}
	rec.Done("fp", rec.StepStarted)
	rec.Evidence = ev
	rec.Verdicts = []StepVerdict{{Step: 0, Verdict: Inconclusive, Reason: "not yet"}}
	raw, err := EncodeProgress(rec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(strings.Replace(raw, `"phase":"progressing"`, `"phase":"promoting"`, 1))
	f.Add("garbage")
	f.Add(`{"v":1,"phase":"promoted"}`)
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		rec, err := DecodeProgress(raw, p)
		if err != nil {
			if !errors.Is(err, ErrUntrusted) {
				t.Fatalf("an error that is not ErrUntrusted: %v", err)
			}
			return
		}
		if rec == nil {
			if raw != "" {
				t.Fatal("no record and no error for a record")
			}
			return
		}
		again, err := EncodeProgress(rec)
		if err != nil {
			t.Fatalf("an accepted record does not encode again: %v", err)
		}
		back, err := DecodeProgress(again, p)
		if err != nil {
			t.Fatalf("an accepted record, written again, is refused: %v", err)
		}
		if back.Phase != rec.Phase || back.Step != rec.Step || back.Canary != rec.Canary {
			t.Fatalf("written again: %s, was %s", back, rec)
		}
		// Whatever it accepts, the engine can go on from without panicking.
		if rec.Canary == p.Spec.Target.Canary.Version && rec.Policy == p.Metadata.Name && rec.Evidence != nil {
			addIntervals(rec.Evidence, p, traffic{rps: 20, pb: 0.01, pc: 0.01}.intervals(rand.New(rand.NewPCG(1, 2)), p, nil, start, 2))
			JudgeStream(p, rec.Evidence, StreamJudgeFor(p))
		}
	})
}

// recordSize is the encoded size of the record of a canary after n intervals of realistic
// traffic: 100 requests per second per version, 1% errors; readBack is why the record could not
// be read back, if it could not.
func recordSize(tb testing.TB, p *policies.Policy, edges map[string][]float64, n int) (size int, readBack error) {
	tb.Helper()
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	ev := NewEvidence()
	ev.KeepHistory = keepHistory(p)
	addIntervals(ev, p, traffic{rps: 100, pb: 0.01, pc: 0.01}.intervals(rand.New(rand.NewPCG(21, 22)), p, edges, start, n))
	rec := NewProgress(p, start)
	rec.Release = map[string]string{"baselineReplicas": "10", "service": "my-app"}
	rec.Done("my-app-v1=5 my-app-v2=5", rec.StepStarted)
	rec.Step = 2
	rec.Evidence = ev
	res := Result{}
	res.Verdict, res.Reason = Overall(JudgeStream(p, ev, StreamJudgeFor(p)))
	for i := range 3 {
		rec.setVerdict(i, res.Verdict, res.Reason)
	}
	raw, err := EncodeProgress(rec)
	if err != nil {
		tb.Fatal(err)
	}
	_, readBack = DecodeProgress(raw, p)
	return len(raw), readBack
}

// dayOfIntervals is 24 hours of 30 s intervals.
const dayOfIntervals = 24 * 60 * 2

func BenchmarkRecordSize(b *testing.B) {
	many, edges := manyLatencyPolicy(b)
	mw := recordPolicy(b)
	mw.Spec.Analysis.Judge = policies.JudgeMannWhitney
	mwMany, _ := manyLatencyPolicy(b)
	mwMany.Spec.Analysis.Judge = policies.JudgeMannWhitney
	benches := []struct {
		name  string
		p     *policies.Policy
		edges map[string][]float64
	}{
		{name: "example", p: recordPolicy(b)},
		{name: "10x25-buckets", p: many, edges: edges},
		{name: "example-mannwhitney", p: mw},
		{name: "10x25-buckets-mannwhitney", p: mwMany, edges: edges},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			var size int
			var readBack error
			for b.Loop() {
				size, readBack = recordSize(b, bb.p, bb.edges, dayOfIntervals)
			}
			switch {
			case readBack != nil:
				b.Fatalf("the record does not read back: %v", readBack)
			}
			b.ReportMetric(float64(size), "record-bytes")
			b.ReportMetric(float64(size)/1024, "record-KiB")
			if size > 128<<10 {
				b.Fatalf("the record after 24 hours is %d bytes, more than 128 KiB", size)
			}
		})
	}
}

func TestRecordSize(t *testing.T) {
	// The record grows little with time (the judge keeps sufficient statistics), so a
	// regression shows after two hours as well as after a day (BenchmarkRecordSize).
	many, edges := manyLatencyPolicy(t)
	tests := []struct {
		name  string
		p     *policies.Policy
		edges map[string][]float64
		// max is the most the record may take: at most half of what DecodeProgress reads back.
		max int
		// want is the size the record is meant to keep to.
		want int
	}{
		{name: "example policy", p: recordPolicy(t), max: 16 << 10, want: 16 << 10},
		{
			name: "10 latency metrics of 25 buckets", p: many, edges: edges, max: maxRecordBytes / 2, want: 64 << 10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size, err := recordSize(t, tt.p, tt.edges, 240)
			if err != nil {
				t.Fatalf("the record does not read back: %v", err)
			}
			t.Logf("record after 2 hours: %d bytes", size)
			if size > tt.max {
				t.Fatalf("record is %d bytes, want at most %d", size, tt.max)
			}
			if size > tt.want {
				t.Errorf("record is %d bytes, want at most %d", size, tt.want)
			}
		})
	}
}

// hostileCounters adds to a counter source the series a broken or hostile canary exposes:
// values that are not counts (infinite, NaN, negative), a NaN le, and, when huge is set, a
// counter that jumps between 0 and the largest float64, each jump an increase that is finite
// on its own.
type hostileCounters struct {
	*counterSim
	huge bool
}

func (h hostileCounters) Counters(ctx context.Context, q metrics.Query, at time.Time) (metrics.Snapshot, error) {
	s, err := h.counterSim.Counters(ctx, q, at)
	if err != nil {
		return s, err
	}
	inf, nan := math.Inf(1), math.NaN()
	switch q.Kind {
	case policies.KindErrors:
		s.Samples = append(s.Samples,
			metrics.Sample{Key: "c-junk-req", Canary: true, Part: "requests", Value: inf},
			metrics.Sample{Key: "c-junk-err", Canary: true, Part: "errors", Value: nan},
			metrics.Sample{Key: "b-junk-req", Part: "requests", Value: math.Inf(-1)},
			metrics.Sample{Key: "b-junk-err", Part: "errors", Value: -5})
		if h.huge {
			v := 0.0
			if at.Unix()/int64(10)%2 == 0 {
				v = math.MaxFloat64
			}
			s.Samples = append(s.Samples, metrics.Sample{Key: "c-huge-req", Canary: true, Part: "requests", Value: v},
				metrics.Sample{Key: "c-huge-err", Canary: true, Part: "errors", Value: v})
		}
	case policies.KindLatency:
		s.Samples = append(s.Samples,
			metrics.Sample{Key: "c-junk-b1", Canary: true, Part: "bucket", LE: 0.25, Value: nan},
			metrics.Sample{Key: "c-junk-b2", Canary: true, Part: "bucket", LE: nan, Value: 3},
			metrics.Sample{Key: "c-junk-b3", Canary: true, Part: "bucket", LE: inf, Value: inf})
	}
	return s, nil
}

func (h hostileCounters) CountersRange(ctx context.Context, q metrics.Query, start, end time.Time, step time.Duration) ([]metrics.Snapshot, error) {
	return countersRange(ctx, h, q, start, end, step)
}

// streamCanary is a canary judged by p's counter-reading judge from src, on a fake clock.
func streamCanary(p *policies.Policy, rel *fakeRelease, src Observer, start time.Time) (*Canary, *clock) {
	clk := &clock{t: start}
	return &Canary{Policy: p, Release: rel, Analyzer: New(src, zerolog.Nop()), Logger: zerolog.Nop(), Now: clk.now, Sleep: clk.sleep}, clk
}

func TestCanaryRefusesUntrustedRecords(t *testing.T) {
	p := sequentialPolicy(t)
	promoting := func(rec *Progress) {
		rec.Phase, rec.InFlight = PhasePromoting, &InFlight{Action: Promote, Cause: CauseVerdict, Since: rec.Started.Add(20 * time.Minute)}
		rec.Verdicts = []StepVerdict{{Step: 2, Verdict: Pass}}
	}
	valid := forgeable(t, p, nil)
	tests := []struct {
		name string
		raw  string
	}{
		{name: "a forged promoting record with a right checksum", raw: forgeable(t, p, promoting)},
		{name: "a record edited by hand", raw: strings.Replace(valid, `"step":2`, `"step":0`, 1)},
		{name: "garbage", raw: "{kubectl annotate oops"},
		{name: "a record of version 3", raw: reseal(t, valid, func(s *storedProgress) { s.Version = 3 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
			rel := &fakeRelease{steps: 3, step: 2, progress: tt.raw}
			sim := &counterSim{rng: rand.New(rand.NewPCG(1, 1)), rps: 50, pb: 0.01, pc: 0.01}
			for run := 1; run <= 2; run++ {
				c, _ := streamCanary(p, rel, sim, start)
				rep, err := c.Run(context.Background(), start.Add(time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				if rep.Outcome != OutcomeStopped || !strings.Contains(rep.Reason, "record not trusted") {
					t.Errorf("run %d: outcome %s (%s), want stopped for an untrusted record", run, rep.Outcome, rep.Reason)
				}
			}
			if fmt.Sprint(rel.events) != "[CanaryRecordRefused]" || !strings.Contains(rel.messages[0], "remove the record") {
				t.Errorf("events %v %q, want one CanaryRecordRefused saying what to do", rel.events, rel.messages)
			}
			if rel.promotes+rel.rollbacks+len(rel.setSteps)+rel.prepares+rel.attempts != 0 || rel.progress != tt.raw {
				t.Errorf("the release was acted on: %d promotes, %d rollbacks, steps %v, %d prepares, %d writes", rel.promotes, rel.rollbacks, rel.setSteps, rel.prepares, rel.attempts)
			}
		})
	}
}

func TestCanaryJudgesNonFiniteCounters(t *testing.T) {
	// A canary whose own metrics say +Inf, NaN or negative counts is judged on the series that
	// are counts, and never promoted on them (its junk could hide its errors); the junk never
	// reaches the record, which is written and read back throughout.
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		src        hostileCounters
		want       Outcome
		wantReason string
	}{
		{name: "5x errors and junk series: rolled back", src: hostileCounters{counterSim: &counterSim{rps: 50, pb: 0.01, pc: 0.05}}, want: OutcomeRolledBack, wantReason: "the canary is worse"},
		{
			name: "healthy with junk series: never promoted, held at the deadline", src: hostileCounters{counterSim: &counterSim{rps: 50, pb: 0.01, pc: 0.01}},
			want: OutcomeInconclusive, wantReason: "not counts",
		},
		{
			name: "5x errors and a counter jumping to the largest float64: rolled back",
			src:  hostileCounters{counterSim: &counterSim{rps: 50, pb: 0.01, pc: 0.05}, huge: true}, want: OutcomeRolledBack, wantReason: "the canary is worse",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.src.rng = rand.New(rand.NewPCG(4, 4))
			p := sequentialPolicy(t)
			rel := &fakeRelease{steps: 3, step: -1}
			c, _ := streamCanary(p, rel, tt.src, start)
			rep, err := c.Run(context.Background(), start.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Outcome != tt.want || !strings.Contains(rep.Reason, tt.wantReason) {
				t.Fatalf("outcome %s (%s), want %s (%s)", rep.Outcome, rep.Reason, tt.want, tt.wantReason)
			}
			if rel.promotes != 0 || rel.attempts != len(rel.saves) {
				t.Errorf("%d promotes; %d of %d writes failed", rel.promotes, rel.attempts-len(rel.saves), rel.attempts)
			}
			for i, s := range rel.saves {
				if _, err := DecodeProgress(s, p); err != nil {
					t.Errorf("record %d does not read back: %v", i+1, err)
				}
			}
		})
	}
}

func TestCanaryRollsBackWhenTheRecordCannotBeWritten(t *testing.T) {
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	tooLarge := errors.New("etcdserver: request is too large")
	bad := func(q metrics.Query, _ time.Time) (metrics.Observation, error) { return badObs(q), nil }
	tests := []struct {
		name string
		p    func(t *testing.T) *policies.Policy
		src  Observer
		// saveErr refuses a write: n counts the attempts, the first two start the canary.
		saveErr func(n int, s string) error
	}{
		{
			name: "every write fails once the canary runs",
			p:    gatePolicy, src: timedObserver{bad},
			saveErr: func(n int, _ string) error {
				if n > 2 {
					return tooLarge
				}
				return nil
			},
		},
		{
			name: "a record that grew too large",
			p:    sequentialPolicy, src: &counterSim{rng: rand.New(rand.NewPCG(6, 6)), rps: 50, pb: 0.01, pc: 0.05},
			saveErr: func(_ int, s string) error {
				if len(s) > 1500 {
					return tooLarge
				}
				return nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p(t)
			rel := &fakeRelease{steps: 3, step: -1, saveErr: tt.saveErr}
			c, _ := streamCanary(p, rel, tt.src, start)
			rep, err := c.Run(context.Background(), start.Add(time.Hour))
			t.Logf("run: outcome %q, err %v, %d of %d writes failed", rep.Outcome, err, rel.attempts-len(rel.saves), rel.attempts)
			if rel.attempts == len(rel.saves) {
				t.Fatal("no write failed: the case tests nothing")
			}
			if rel.rollbacks != 1 || rel.promotes != 0 {
				t.Fatalf("%d rollbacks, %d promotes; want the canary rolled back", rel.rollbacks, rel.promotes)
			}
			i := slices.Index(rel.events, "CanaryRolledBack")
			if i < 0 || !strings.Contains(rel.messages[i], "could not be written") {
				t.Fatalf("events %v %q: want CanaryRolledBack saying the record could not be written", rel.events, rel.messages)
			}
			if rep.Progress == nil || rep.Progress.Phase != PhaseRolledBack {
				t.Errorf("report's record %v, want rolled back", rep.Progress)
			}
		})
	}
}

// transition reports whether a record differs from the one before in what the engine writes
// at once: step, phase, action in flight, a step's verdict.
func transition(a, b *Progress) bool {
	if a.Step != b.Step || a.Phase != b.Phase || (a.InFlight == nil) != (b.InFlight == nil) ||
		(a.InFlight != nil && *a.InFlight != *b.InFlight) || len(a.Verdicts) != len(b.Verdicts) {
		return true
	}
	for i := range a.Verdicts {
		if a.Verdicts[i].Verdict != b.Verdicts[i].Verdict {
			return true
		}
	}
	return false
}

func TestCanaryWritesOnlyOnTransitions(t *testing.T) {
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	noCanaryData := func(q metrics.Query, _ time.Time) (metrics.Observation, error) {
		return metrics.Observation{Kind: q.Kind, Baseline: metrics.Arm{Present: true, Requests: 1000}, Canary: metrics.Arm{Version: "v2.0.0"}}, nil
	}
	tests := []struct {
		name string
		p    func(t *testing.T) *policies.Policy
		src  Observer
		want Outcome
		// wantCheckpoints is the least number of checkpoints (writes on quiet ticks).
		wantCheckpoints int
	}{
		{
			name: "threshold judge, no data for 30 minutes: held", p: gatePolicy, src: timedObserver{noCanaryData},
			want: OutcomeInconclusive, wantCheckpoints: 5,
		},
		{
			name: "sequential judge, healthy, 12-minute steps: promoted",
			p: func(t *testing.T) *policies.Policy {
				p := sequentialPolicy(t)
				p.Spec.Strategy.StepDuration = model.Duration(12 * time.Minute)
				p.Spec.Analysis.MaxDuration = model.Duration(time.Hour)
				return p
			},
			src:  &counterSim{rng: rand.New(rand.NewPCG(9, 9)), rps: 50, pb: 0.01, pc: 0.01},
			want: OutcomePromoted, wantCheckpoints: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p(t)
			rel := &fakeRelease{steps: 3, step: -1}
			c, _ := streamCanary(p, rel, tt.src, start)
			var ticks int
			c.OnTick = func(Tick) { ticks++ }
			rep, err := c.Run(context.Background(), start.Add(2*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Outcome != tt.want {
				t.Fatalf("outcome %s (%s), want %s", rep.Outcome, rep.Reason, tt.want)
			}
			var prev *Progress
			checkpoints := 0
			for i, s := range rel.saves {
				rec, err := DecodeProgress(s, p)
				if err != nil {
					t.Fatalf("record %d: %v", i+1, err)
				}
				if prev != nil && !transition(prev, rec) {
					checkpoints++
					if gap := rec.Saved.Sub(prev.Saved); gap < checkpointEvery {
						t.Errorf("record %d written %s after the one before with no transition (%s)", i+1, gap, rec)
					}
					if rec.Evidence != nil && prev.Evidence != nil && rec.Evidence.Intervals <= prev.Evidence.Intervals {
						t.Errorf("checkpoint %d holds no more evidence than the write before", i+1)
					}
				}
				prev = rec
			}
			t.Logf("%d ticks, %d writes, %d of them checkpoints", ticks, len(rel.saves), checkpoints)
			if checkpoints < tt.wantCheckpoints {
				t.Errorf("%d checkpoints, want at least %d: evidence gathered on quiet ticks must reach the record", checkpoints, tt.wantCheckpoints)
			}
			if len(rel.saves) > ticks/4 {
				t.Errorf("%d writes for %d ticks", len(rel.saves), ticks)
			}
		})
	}
}
