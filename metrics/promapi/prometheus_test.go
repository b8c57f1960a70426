package promapi

import (
	"context"
	"errors"
	"fmt"
	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/metrics/metricstest"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/policies"
)

func queryFor(t testing.TB, kind policies.MetricKind) metrics.Query {
	t.Helper()
	p := metricstest.Policy(t)
	for _, m := range p.Spec.Metrics {
		if m.Kind == kind {
			q, err := metrics.NewQuery(p, m, 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return q
		}
	}
	m := policies.Metric{Name: "cpu", Kind: policies.KindValue, Query: `sum by (version) (rate(cpu{ {{.Selector}} }[{{.Window}}]))`}
	q, err := metrics.NewQuery(p, m, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// vector builds a Prometheus instant-query answer.
func vector(samples ...string) string {
	return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(samples, ",") + `]}}`
}

func sample(value string, labels ...string) string {
	var ls []string
	for i := 0; i+1 < len(labels); i += 2 {
		ls = append(ls, fmt.Sprintf("%q:%q", labels[i], labels[i+1]))
	}
	return fmt.Sprintf(`{"metric":{%s},"value":[1700000000,%q]}`, strings.Join(ls, ","), value)
}

// server answers every query with status and body, and records the last query it got.
func server(t testing.TB, status int, body string, delay time.Duration) (*httptest.Server, *string) {
	t.Helper()
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		got = r.Form.Get("query")
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &got
}

func observe(t testing.TB, url string, q metrics.Query, timeout time.Duration) (metrics.Observation, error) {
	t.Helper()
	cfg := policies.Default().Spec.Prometheus
	cfg.Timeout = model.Duration(timeout)
	p, err := New(url, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return p.Observe(context.Background(), q, time.Unix(1700000000, 0))
}

func TestObserveErrors(t *testing.T) {
	q := queryFor(t, policies.KindErrors)
	tests := []struct {
		name             string
		body             string
		wantErr          error
		baseline, canary metrics.Arm
	}{
		{
			name: "both versions",
			body: vector(
				sample("1000", "version", "v1.0.0", metrics.PartLabel, "requests"),
				sample("10", "version", "v1.0.0", metrics.PartLabel, "errors"),
				sample("100", "version", "v2.0.0", metrics.PartLabel, "requests"),
				sample("5", "version", "v2.0.0", metrics.PartLabel, "errors")),
			baseline: metrics.Arm{Version: "v1.0.0", Present: true, Requests: 1000, Errors: 10},
			canary:   metrics.Arm{Version: "v2.0.0", Present: true, Requests: 100, Errors: 5},
		},
		{
			name: "no error series means no errors",
			body: vector(
				sample("1000", "version", "v1.0.0", metrics.PartLabel, "requests"),
				sample("100", "version", "v2.0.0", metrics.PartLabel, "requests")),
			baseline: metrics.Arm{Version: "v1.0.0", Present: true, Requests: 1000},
			canary:   metrics.Arm{Version: "v2.0.0", Present: true, Requests: 100},
		},
		{
			name:     "canary without series is no data",
			body:     vector(sample("1000", "version", "v1.0.0", metrics.PartLabel, "requests")),
			baseline: metrics.Arm{Version: "v1.0.0", Present: true, Requests: 1000},
			canary:   metrics.Arm{Version: "v2.0.0"},
		},
		{
			name:     "errors without requests are no data",
			body:     vector(sample("3", "version", "v2.0.0", metrics.PartLabel, "errors")),
			baseline: metrics.Arm{Version: "v1.0.0"},
			canary:   metrics.Arm{Version: "v2.0.0"},
		},
		{
			name:     "empty answer",
			body:     vector(),
			baseline: metrics.Arm{Version: "v1.0.0"},
			canary:   metrics.Arm{Version: "v2.0.0"},
		},
		{
			name: "two series for one version is an error, not last-wins",
			body: vector(
				sample("1000", "version", "v1.0.0", metrics.PartLabel, "requests", "pod", "a"),
				sample("900", "version", "v1.0.0", metrics.PartLabel, "requests", "pod", "b")),
			wantErr: metrics.ErrMultipleSeries,
		},
		{
			name:    "series without the version label",
			body:    vector(sample("1000", metrics.PartLabel, "requests")),
			wantErr: metrics.ErrUnexpectedSeries,
		},
		{
			name:    "series of another version",
			body:    vector(sample("1000", "version", "v0.9.0", metrics.PartLabel, "requests")),
			wantErr: metrics.ErrUnexpectedSeries,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, got := server(t, http.StatusOK, tt.body, 0)
			obs, err := observe(t, srv.URL, q, time.Second)
			if *got != q.PromQL {
				t.Errorf("server got query %q, want %q", *got, q.PromQL)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !armEqual(obs.Baseline, tt.baseline) || !armEqual(obs.Canary, tt.canary) {
				t.Errorf("got baseline %+v canary %+v, want %+v %+v", obs.Baseline, obs.Canary, tt.baseline, tt.canary)
			}
		})
	}
}

func armEqual(a, b metrics.Arm) bool {
	if a.Version != b.Version || a.Present != b.Present || a.Requests != b.Requests || a.Errors != b.Errors || len(a.Buckets) != len(b.Buckets) {
		return false
	}
	if !(a.Value == b.Value || (math.IsNaN(a.Value) && math.IsNaN(b.Value))) {
		return false
	}
	for i := range a.Buckets {
		if a.Buckets[i] != b.Buckets[i] {
			return false
		}
	}
	return true
}

func TestObserveLatencyAndValue(t *testing.T) {
	lat := queryFor(t, policies.KindLatency)
	val := queryFor(t, policies.KindValue)
	inf := math.Inf(1)
	tests := []struct {
		name             string
		q                metrics.Query
		body             string
		wantErr          error
		baseline, canary metrics.Arm
	}{
		{
			name: "buckets sorted, count from +Inf",
			q:    lat,
			body: vector(
				sample("100", "version", "v1.0.0", "le", "+Inf"),
				sample("90", "version", "v1.0.0", "le", "0.5"),
				sample("50", "version", "v1.0.0", "le", "0.25"),
				sample("10", "version", "v2.0.0", "le", "+Inf"),
				sample("2", "version", "v2.0.0", "le", "0.25")),
			baseline: metrics.Arm{Version: "v1.0.0", Present: true, Requests: 100, Buckets: []metrics.Bucket{{UpperBound: 0.25, Count: 50}, {UpperBound: 0.5, Count: 90}, {UpperBound: inf, Count: 100}}},
			canary:   metrics.Arm{Version: "v2.0.0", Present: true, Requests: 10, Buckets: []metrics.Bucket{{UpperBound: 0.25, Count: 2}, {UpperBound: inf, Count: 10}}},
		},
		{
			name:    "histogram without +Inf",
			q:       lat,
			body:    vector(sample("90", "version", "v1.0.0", "le", "0.5")),
			wantErr: metrics.ErrUnexpectedSeries,
		},
		{
			name:    "bucket without le",
			q:       lat,
			body:    vector(sample("90", "version", "v1.0.0")),
			wantErr: metrics.ErrUnexpectedSeries,
		},
		{
			name:    "duplicate bucket",
			q:       lat,
			body:    vector(sample("90", "version", "v1.0.0", "le", "0.5"), sample("91", "version", "v1.0.0", "le", "0.50")),
			wantErr: metrics.ErrMultipleSeries,
		},
		{
			name:     "NaN and Inf values are passed on for the judge",
			q:        val,
			body:     vector(sample("NaN", "version", "v1.0.0"), sample("+Inf", "version", "v2.0.0")),
			baseline: metrics.Arm{Version: "v1.0.0", Present: true, Value: math.NaN()},
			canary:   metrics.Arm{Version: "v2.0.0", Present: true, Value: inf},
		},
		{
			name:    "scalar answer",
			q:       val,
			body:    `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"1"]}}`,
			wantErr: metrics.ErrUnexpectedSeries,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := server(t, http.StatusOK, tt.body, 0)
			obs, err := observe(t, srv.URL, tt.q, time.Second)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !armEqual(obs.Baseline, tt.baseline) || !armEqual(obs.Canary, tt.canary) {
				t.Errorf("got baseline %+v canary %+v, want %+v %+v", obs.Baseline, obs.Canary, tt.baseline, tt.canary)
			}
		})
	}
}

func TestObserveFailures(t *testing.T) {
	q := queryFor(t, policies.KindErrors)
	tests := []struct {
		name    string
		status  int
		body    string
		delay   time.Duration
		wantErr error
	}{
		{"server error", http.StatusInternalServerError, "oops", 0, metrics.ErrUnavailable},
		{"bad gateway", http.StatusBadGateway, "<html>proxy</html>", 0, metrics.ErrUnavailable},
		{"not found: not a Prometheus", http.StatusNotFound, "404 page not found", 0, metrics.ErrUnavailable},
		{"an HTML page", http.StatusOK, "<html><body>hello</body></html>", 0, metrics.ErrUnavailable},
		{"JSON that is not Prometheus's", http.StatusOK, `{"hello":"world"}`, 0, metrics.ErrUnavailable},
		{"truncated answer", http.StatusOK, `{"status":"success","data":{"resultType":"vec`, 0, metrics.ErrUnavailable},
		{"timeout", http.StatusOK, vector(), 2 * time.Second, metrics.ErrUnavailable},
		{"bad query", http.StatusBadRequest, `{"status":"error","errorType":"bad_data","error":"parse error"}`, 0, metrics.ErrQuery},
		{"execution error", http.StatusUnprocessableEntity, `{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}`, 0, metrics.ErrQuery},
		{"partial answer: a store down", http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[]},"warnings":["store 10.0.0.7:10901 unavailable"]}`, 0, metrics.ErrUnavailable},
		{"an informational annotation is no warning", http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[]},"warnings":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"x\""]}`, 0, nil},
		{"prometheus overloaded", http.StatusServiceUnavailable, `{"status":"error","errorType":"unavailable","error":"too many queries"}`, 0, metrics.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := server(t, tt.status, tt.body, tt.delay)
			start := time.Now()
			_, err := observe(t, srv.URL, q, 300*time.Millisecond)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.delay > 0 && time.Since(start) >= tt.delay {
				t.Errorf("the policy's timeout was not applied: took %v", time.Since(start))
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		if _, err := observe(t, url, q, time.Second); !errors.Is(err, metrics.ErrUnavailable) {
			t.Fatalf("err = %v, want metrics.ErrUnavailable", err)
		}
	})
}

func TestNewQueryErrorsIsOneQuery(t *testing.T) {
	q := queryFor(t, policies.KindErrors)
	want := `label_replace(sum by (version) (increase(http_requests_total{ namespace="default",app="my-app",version=~"v1\\.0\\.0|v2\\.0\\.0" }[5m])), "coalmine_part", "requests", "", "")
or
label_replace(sum by (version) (increase(http_requests_total{ namespace="default",app="my-app",version=~"v1\\.0\\.0|v2\\.0\\.0", code=~"5.." }[5m])), "coalmine_part", "errors", "", "")`
	if q.PromQL != want {
		t.Errorf("query:\n%s\nwant:\n%s", q.PromQL, want)
	}
	if err := policies.CheckPromQL(q.PromQL); err != nil {
		t.Error(err)
	}
	p := metricstest.Policy(t)
	p.Spec.Target.Canary.Version = ""
	if _, err := metrics.NewQuery(p, p.Spec.Metrics[0], time.Minute); err == nil {
		t.Error("NewQuery without a canary version: want an error")
	}
}

// FuzzDecode sends arbitrary bytes as Prometheus's answer: Observe and Counters must never
// panic, and what they accept must be consistent; a snapshot holds only counts, finite and not
// negative, and so does every interval made of it.
func FuzzDecode(f *testing.F) {
	f.Add(vector(sample("1000", "version", "v1.0.0", metrics.PartLabel, "requests"), sample("5", "version", "v2.0.0", metrics.PartLabel, "errors")))
	f.Add(vector(sample("NaN", "version", "v1.0.0", metrics.PartLabel, "requests")))
	f.Add(vector(sample("+Inf", "version", "v2.0.0", metrics.PartLabel, "requests"), sample("-1", "version", "v2.0.0", metrics.PartLabel, "errors")))
	f.Add(vector(sample("3", "version", "v2.0.0", "le", "0.5"), sample("+Inf", "version", "v2.0.0", "le", "+Inf"), sample("1", "version", "v1.0.0", "le", "NaN")))
	f.Add(`{"status":"success","data":{"resultType":"matrix","result":[]}}`)
	f.Add(`{"status":"error","errorType":"bad_data","error":"x"}`)
	f.Add(`<html>`)
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	cfg := policies.Default().Spec.Prometheus
	prom, err := New(srv.URL, cfg, zerolog.Nop())
	if err != nil {
		f.Fatal(err)
	}
	queries := []metrics.Query{queryFor(f, policies.KindErrors), queryFor(f, policies.KindLatency), queryFor(f, policies.KindValue)}
	counterQueries := []metrics.Query{metricstest.CounterQuery(f, policies.KindErrors), metricstest.CounterQuery(f, policies.KindLatency)}
	f.Fuzz(func(t *testing.T, answer string) {
		body = answer
		for _, q := range counterQueries {
			snap, err := prom.Counters(context.Background(), q, time.Unix(1700000000, 0))
			if err != nil {
				continue
			}
			for _, s := range snap.Samples {
				if !metrics.Countable(s.Value) || math.IsNaN(s.LE) {
					t.Fatalf("snapshot holds %+v", s)
				}
			}
			if snap.Dropped < snap.DroppedCanary || snap.DroppedCanary < 0 {
				t.Fatalf("dropped %d, of which the canary's %d", snap.Dropped, snap.DroppedCanary)
			}
			// From zero, every value is an increase: sums of huge ones must not overflow.
			zero := metrics.Snapshot{Samples: slices.Clone(snap.Samples)}
			for i := range zero.Samples {
				zero.Samples[i].Value = 0
			}
			var d metrics.Deltas
			d.Next(zero)
			iv, _ := d.Next(snap)
			metricstest.RequireCounts(t, iv)
		}
		for _, q := range queries {
			obs, err := prom.Observe(context.Background(), q, time.Unix(1700000000, 0))
			if err != nil {
				continue
			}
			if obs.Baseline.Version != q.Baseline || obs.Canary.Version != q.Canary {
				t.Fatalf("arms mixed up: %+v", obs)
			}
			for _, a := range []metrics.Arm{obs.Baseline, obs.Canary} {
				if q.Kind == policies.KindLatency && a.Present && !math.IsInf(a.Buckets[len(a.Buckets)-1].UpperBound, 1) {
					t.Fatalf("latency arm without +Inf accepted: %+v", a)
				}
				if !a.Present && (a.Requests != 0 || a.Errors != 0) {
					t.Fatalf("absent arm with counts: %+v", a)
				}
			}
		}
	})
}

// TestPartialAnswersAreUnavailable shows that an answer with warnings (a Thanos or Cortex store
// down) is no answer for the counter reads either, instant and range: the canary holds.
func TestPartialAnswersAreUnavailable(t *testing.T) {
	q := queryFor(t, policies.KindErrors)
	body := `{"status":"success","data":{"resultType":"%s","result":[]},"warnings":["store down: ` + strings.Repeat("x", 2000) + `"]}`
	for _, kind := range []string{"vector", "matrix"} {
		srv, _ := server(t, http.StatusOK, fmt.Sprintf(body, kind), 0)
		p, err := New(srv.URL, policies.Default().Spec.Prometheus, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		at := time.Unix(1700000000, 0)
		if kind == "vector" {
			_, err = p.Counters(context.Background(), q, at)
		} else {
			_, err = p.CountersRange(context.Background(), q, at.Add(-time.Minute), at, 10*time.Second)
		}
		if !errors.Is(err, metrics.ErrUnavailable) || !strings.Contains(err.Error(), "partial") {
			t.Errorf("%s answer with a warning: err = %v, want unavailable, saying why", kind, err)
		}
		if err != nil && len(err.Error()) > 1000 {
			t.Errorf("the error carries %d bytes of the answer's warnings, want them bounded", len(err.Error()))
		}
	}
}

// TestCountersRangeSteps replays a minute against servers that place a range's steps as real
// engines do: Prometheus at start + k*step with start rounded to the millisecond (asked with a
// sub-millisecond part of .4 or .9 ms), VictoriaMetrics with start moved down to a multiple of
// the step. Every replay is one snapshot per step asked, each holding both versions' series.
func TestCountersRangeSteps(t *testing.T) {
	q := queryFor(t, policies.KindErrors)
	const step = 3 * time.Second
	engines := []struct {
		name  string
		place func(start time.Time) time.Time // where the engine puts its first step
	}{
		{"prometheus", func(start time.Time) time.Time {
			// Prometheus's parseTime: seconds and a fraction rounded to the millisecond.
			f := float64(start.UnixNano()) / 1e9
			sec, frac := math.Modf(f)
			return time.Unix(int64(sec), int64(math.Round(frac*1000)/1000*1e9))
		}},
		{"victoriametrics", func(start time.Time) time.Time { return start.Truncate(step) }},
	}
	for _, engine := range engines {
		for _, sub := range []time.Duration{0, 400 * time.Microsecond, 900 * time.Microsecond} {
			t.Run(fmt.Sprintf("%s, start +%s", engine.name, sub), func(t *testing.T) {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					parse := func(name string) time.Time {
						f, err := strconv.ParseFloat(r.FormValue(name), 64)
						if err != nil {
							t.Errorf("%s: %v", name, err)
						}
						return time.Unix(0, int64(f*1e9))
					}
					start, end := engine.place(parse("start")), parse("end")
					var values []string
					for at := start; !at.After(end.Add(step / 2)); at = at.Add(step) {
						values = append(values, fmt.Sprintf(`[%s,"100"]`, strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', -1, 64)))
					}
					var series []string
					for _, v := range []string{q.Baseline, q.Canary} {
						series = append(series, fmt.Sprintf(`{"metric":{%q:%q,%q:"requests"},"values":[%s]}`, q.VersionLabel, v, metrics.PartLabel, strings.Join(values, ",")))
					}
					fmt.Fprintf(w, `{"status":"success","data":{"resultType":"matrix","result":[%s]}}`, strings.Join(series, ","))
				}))
				defer srv.Close()
				p, err := New(srv.URL, policies.Default().Spec.Prometheus, zerolog.Nop())
				if err != nil {
					t.Fatal(err)
				}
				end := time.Unix(1700000000, 0).Add(1234 * time.Millisecond).Add(sub)
				snaps, err := p.CountersRange(context.Background(), q, end.Add(-time.Minute), end, step)
				if err != nil {
					t.Fatal(err)
				}
				if len(snaps) != 21 {
					t.Fatalf("%d snapshots, want 21 (a minute by 3 s, both ends)", len(snaps))
				}
				for i, s := range snaps {
					if len(s.Samples) != 2 {
						t.Errorf("step %d at %s: %d series, want both versions'", i, s.Time.Format(time.RFC3339Nano), len(s.Samples))
					}
				}
			})
		}
	}
}

// TestCountersRangeRefusesTooManySteps: a day by the second is more than Prometheus answers; it
// is refused before anything is asked or allocated for it.
func TestCountersRangeRefusesTooManySteps(t *testing.T) {
	p, err := New("http://127.0.0.1:1", policies.Default().Spec.Prometheus, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	end := time.Unix(1700000000, 0)
	_, err = p.CountersRange(context.Background(), queryFor(t, policies.KindErrors), end.Add(-24*time.Hour), end, time.Second)
	if err == nil || !strings.Contains(err.Error(), "86401 steps") || errors.Is(err, metrics.ErrUnavailable) {
		t.Errorf("err = %v, want the range refused for its 86401 steps", err)
	}
}
