package scrape

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/coalmine/coalmine/metrics"
	"github.com/coalmine/coalmine/metrics/metricstest"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/coalmine/coalmine/policies"
)

// fakeApp is one pod's metrics, served like the seed app's.
type fakeApp struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	srv      *httptest.Server
}

// The formats a fake pod serves whatever it is asked.
const (
	serveAsked = iota
	serveText
	serveOpenMetrics
)

func newFakeApp(t *testing.T, format int) *fakeApp {
	t.Helper()
	a := &fakeApp{reg: prometheus.NewRegistry()}
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total"}, []string{"code"})
	a.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "request_duration_seconds", Buckets: []float64{.25, .5, 1}}, []string{"code"})
	a.reg.MustRegister(a.requests, a.duration)
	inner := promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch format {
		case serveText:
			r.Header.Set("Accept", "text/plain")
		case serveOpenMetrics:
			r.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
		}
		inner.ServeHTTP(w, r)
	})
	a.srv = httptest.NewServer(h)
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeApp) serve(ok, bad int, slow int) {
	a.requests.WithLabelValues("200").Add(float64(ok))
	a.requests.WithLabelValues("500").Add(float64(bad))
	for i := range ok + bad {
		d := 0.1
		if i < slow {
			d = 0.7
		}
		a.duration.WithLabelValues("200").Observe(d)
	}
}

func podFor(t testing.TB, name, version string, addr string, ready bool) *corev1.Pod {
	t.Helper()
	host, port, err := net.SplitHostPort(strings.TrimPrefix(addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	status := corev1.ConditionTrue
	if !ready {
		status = corev1.ConditionFalse
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: types.UID("uid-" + name),
			Labels:      map[string]string{"app": "cart", "version": version},
			Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": port}},
		Status: corev1.PodStatus{PodIP: host, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

func podsPolicy(t testing.TB) *policies.Policy {
	t.Helper()
	ps, err := policies.LoadFile("../../policies/testdata/pods.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

func TestPodsSource(t *testing.T) {
	// Protobuf, the text format and OpenMetrics: whatever the pod speaks.
	base, canary, text := newFakeApp(t, serveAsked), newFakeApp(t, serveOpenMetrics), newFakeApp(t, serveText)
	notReady := newFakeApp(t, serveAsked)
	client := fake.NewClientset(
		podFor(t, "cart-v1-a", "1.4.0", base.srv.URL, true),
		podFor(t, "cart-v1-b", "1.4.0", text.srv.URL, true),
		podFor(t, "cart-v2-a", "1.5.0", canary.srv.URL, true),
		podFor(t, "cart-v2-starting", "1.5.0", notReady.srv.URL, false),
	)
	p := podsPolicy(t)
	src := NewPods(client, p.Spec.Pods, zerolog.Nop())
	var (
		mu      sync.Mutex
		scraped []string
	)
	src.OnScrape = func(pod string, n int, _ time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil && n > 0 {
			scraped = append(scraped, pod)
		}
	}
	errorsQ, err := metrics.NewCounterQuery(p, p.Spec.Metrics[0])
	if err != nil {
		t.Fatal(err)
	}
	latencyQ, err := metrics.NewCounterQuery(p, p.Spec.Metrics[1])
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var de, dl metrics.Deltas
	read := func(at time.Time) (metrics.Interval, metrics.Interval, bool) {
		se, err := src.Counters(ctx, errorsQ, at)
		if err != nil {
			t.Fatal(err)
		}
		sl, err := src.Counters(ctx, latencyQ, at)
		if err != nil {
			t.Fatal(err)
		}
		ie, ok := de.Next(se)
		il, _ := dl.Next(sl)
		return ie, il, ok
	}
	base.serve(100, 1, 0)
	text.serve(100, 1, 0)
	canary.serve(50, 5, 0)
	t0 := time.Unix(1000, 0)
	if _, _, ok := read(t0); ok {
		t.Fatal("the first reading must be the starting point")
	}
	if len(scraped) != 3 {
		t.Errorf("scraped %v: want the three Ready pods, once for both metrics", scraped)
	}
	base.serve(200, 2, 10)
	text.serve(100, 3, 0)
	canary.serve(100, 10, 30)
	notReady.serve(1000, 1000, 0) // not Ready: never read
	ie, il, ok := read(t0.Add(10 * time.Second))
	if !ok {
		t.Fatal("no interval")
	}
	if ie.Baseline.Requests != 305 || ie.Baseline.Errors != 5 || ie.Canary.Requests != 110 || ie.Canary.Errors != 10 {
		t.Errorf("errors interval: baseline %+v canary %+v", ie.Baseline, ie.Canary)
	}
	if il.Canary.Requests != 110 {
		t.Errorf("latency interval: canary %+v", il.Canary)
	}
	if n, ok := il.Canary.Slower(0.5); !ok || n != 30 {
		t.Errorf("canary slower than 0.5s: %g %v, want 30", n, ok)
	}
	if n, ok := il.Baseline.Slower(0.5); !ok || n != 10 {
		t.Errorf("baseline slower than 0.5s: %g %v, want 10", n, ok)
	}

	// A pod that stops answering makes the reading unavailable; it is never read as no traffic.
	canary.srv.Close()
	_, err = src.Counters(ctx, errorsQ, t0.Add(20*time.Second))
	if !errors.Is(err, metrics.ErrUnavailable) || !strings.Contains(err.Error(), "cart-v2-a (canary 1.5.0)") {
		t.Errorf("err = %v, want unavailable naming the canary pod", err)
	}
	if _, err := src.CountersRange(ctx, errorsQ, t0, t0, time.Second); !errors.Is(err, ErrNoHistory) {
		t.Errorf("range: %v, want ErrNoHistory", err)
	}
}

func TestPodsSourceNeedsThePortAnnotation(t *testing.T) {
	app := newFakeApp(t, serveAsked)
	pod := podFor(t, "cart-v1-a", "1.4.0", app.srv.URL, true)
	delete(pod.Annotations, "prometheus.io/port")
	p := podsPolicy(t)
	src := NewPods(fake.NewClientset(pod), p.Spec.Pods, zerolog.Nop())
	q, _ := metrics.NewCounterQuery(p, p.Spec.Metrics[0])
	_, err := src.Counters(context.Background(), q, time.Now())
	if err == nil || !strings.Contains(err.Error(), "prometheus.io/port") {
		t.Errorf("err = %v", err)
	}
}

// podStep is what a hand-written pod serves at one scrape: http_requests_total for codes 200
// and 500, and request_duration_seconds's buckets (bounds le, cumulative counts cum) and count.
type podStep struct {
	ok, bad float64
	le, cum []float64
	count   float64
}

func ptr[T any](v T) *T { return &v }

func (s podStep) families() []*dto.MetricFamily {
	counter := func(code string, v float64) *dto.Metric {
		return &dto.Metric{Label: []*dto.LabelPair{{Name: ptr("code"), Value: ptr(code)}}, Counter: &dto.Counter{Value: ptr(v)}}
	}
	h := &dto.Histogram{SampleCountFloat: ptr(s.count), SampleSum: ptr(1.0)}
	for i, le := range s.le {
		h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: ptr(le), CumulativeCountFloat: ptr(s.cum[i])})
	}
	return []*dto.MetricFamily{
		{Name: ptr("http_requests_total"), Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{counter("200", s.ok), counter("500", s.bad)}},
		{Name: ptr("request_duration_seconds"), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{
			Label: []*dto.LabelPair{{Name: ptr("code"), Value: ptr("200")}}, Histogram: h,
		}}},
	}
}

func TestPodsSourceDropsWhatIsNotACount(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	le := []float64{.25, .5, 1}
	start := podStep{ok: 100, bad: 10, le: le, cum: []float64{50, 80, 90}, count: 100}
	back := podStep{ok: 120, bad: 12, le: le, cum: []float64{60, 90, 100}, count: 120}
	// want is the canary's interval: an errors metric's requests and errors, a latency
	// metric's requests and those slower than 0.5s, and the series dropped of each.
	type want struct {
		requests, errors       float64
		errDropped             int
		latRequests, latSlower float64
		latSeries, latDropped  int
	}
	tests := []struct {
		name   string
		format expfmt.Format
		steps  []podStep
		want   []want // one per step after the first
	}{
		{
			name:   "text: an error counter and the histogram's count read +Inf, then come back",
			format: expfmt.NewFormat(expfmt.TypeTextPlain),
			steps: []podStep{
				start,
				{ok: 110, bad: inf, le: le, cum: []float64{55, 85, 95}, count: inf},
				back,
			},
			want: []want{
				// code 500 is in both parts: dropped twice. The histogram (3 buckets and
				// le="+Inf", which the text format writes from the count) is dropped whole.
				{requests: 10, errDropped: 2, latDropped: 4},
				// Counted from the last counts before +Inf: once, not twice.
				{requests: 12, errors: 2, latRequests: 20, latSlower: 10, latSeries: 4},
			},
		},
		{
			name:   "protobuf: NaN and negative counts",
			format: expfmt.NewFormat(expfmt.TypeProtoDelim),
			steps: []podStep{
				start,
				{ok: -1, bad: nan, le: le, cum: []float64{55, nan, 95}, count: 105},
				back,
			},
			want: []want{
				{errDropped: 3, latDropped: 4},
				{requests: 22, errors: 2, latRequests: 20, latSlower: 10, latSeries: 4},
			},
		},
		{
			name:   "protobuf: a bucket with a NaN bound is dropped alone; +Inf comes from the count",
			format: expfmt.NewFormat(expfmt.TypeProtoDelim),
			steps: []podStep{
				start,
				{ok: 110, bad: 11, le: []float64{.25, .5, nan, 1}, cum: []float64{55, 85, 86, 95}, count: 110},
			},
			want: []want{{requests: 11, errors: 1, latRequests: 10, latSlower: 5, latSeries: 4, latDropped: 1}},
		},
		{
			name:   "text: an le=+Inf bucket is read, and a +Inf count beside it is not",
			format: expfmt.NewFormat(expfmt.TypeTextPlain),
			steps: []podStep{
				{ok: 100, bad: 10, le: []float64{.5, inf}, cum: []float64{80, 100}, count: inf},
				{ok: 100, bad: 10, le: []float64{.5, inf}, cum: []float64{85, 110}, count: inf},
			},
			want: []want{{latRequests: 10, latSlower: 5, latSeries: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu   sync.Mutex
				step podStep
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				w.Header().Set("Content-Type", string(tt.format))
				enc := expfmt.NewEncoder(w, tt.format)
				for _, mf := range step.families() {
					if err := enc.Encode(mf); err != nil {
						t.Errorf("encode: %v", err)
					}
				}
			}))
			defer srv.Close()
			p := podsPolicy(t)
			src := NewPods(fake.NewClientset(podFor(t, "cart-v2-a", "1.5.0", srv.URL, true)), p.Spec.Pods, zerolog.Nop())
			errorsQ, err := metrics.NewCounterQuery(p, p.Spec.Metrics[0])
			if err != nil {
				t.Fatal(err)
			}
			latencyQ, err := metrics.NewCounterQuery(p, p.Spec.Metrics[1])
			if err != nil {
				t.Fatal(err)
			}
			var de, dl metrics.Deltas
			for i, st := range tt.steps {
				mu.Lock()
				step = st
				mu.Unlock()
				at := time.Unix(int64(1000+10*i), 0)
				se, err := src.Counters(context.Background(), errorsQ, at)
				if err != nil {
					t.Fatal(err)
				}
				sl, err := src.Counters(context.Background(), latencyQ, at)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range append(se.Samples, sl.Samples...) {
					if !metrics.Countable(s.Value) || math.IsNaN(s.LE) {
						t.Fatalf("step %d: sample %+v kept", i, s)
					}
				}
				if se.Dropped != se.DroppedCanary || sl.Dropped != sl.DroppedCanary {
					t.Errorf("step %d: the canary's drops counted as the baseline's: %d/%d, %d/%d", i, se.DroppedCanary, se.Dropped, sl.DroppedCanary, sl.Dropped)
				}
				ie, ok := de.Next(se)
				il, _ := dl.Next(sl)
				if !ok {
					continue
				}
				metricstest.RequireCounts(t, ie)
				metricstest.RequireCounts(t, il)
				slower, _ := il.Canary.Slower(0.5)
				got := want{ie.Canary.Requests, ie.Canary.Errors, ie.Canary.Dropped, il.Canary.Requests, slower, il.Canary.Series, il.Canary.Dropped}
				if got != tt.want[i-1] {
					t.Errorf("interval %d: got %+v, want %+v", i, got, tt.want[i-1])
				}
			}
		})
	}
}

// TestPodsSourceScrapesOnlyThePod shows annotations written to send coalmine elsewhere: a
// path that names another host, a redirect, a scheme that is not http. Each is an error for
// that pod, and the other host (standing for a cloud metadata server) is never asked.
func TestPodsSourceScrapesOnlyThePod(t *testing.T) {
	var asked atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		asked.Add(1)
		_, _ = w.Write([]byte("http_requests_total{code=\"200\"} 1\n"))
	}))
	t.Cleanup(other.Close)
	otherHost := strings.TrimPrefix(other.URL, "http://")
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/latest/meta-data/", http.StatusFound)
	}))
	t.Cleanup(redirecting.Close)
	app := newFakeApp(t, serveAsked)
	tests := []struct {
		name        string
		addr        string
		annotations map[string]string
		want        string
	}{
		{"a path naming another host", app.srv.URL, map[string]string{"prometheus.io/path": "@" + otherHost + "/latest/meta-data/"}, "a path starts with /"},
		{"a redirect to another host", redirecting.URL, nil, "HTTP status 302"},
		{"a scheme that is not http", app.srv.URL, map[string]string{"prometheus.io/scheme": "file"}, "http or https only"},
		{"a port out of range", app.srv.URL, map[string]string{"prometheus.io/port": "70000"}, "port number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := podFor(t, "cart-v1-a", "1.4.0", tt.addr, true)
			for k, v := range tt.annotations {
				pod.Annotations[k] = v
			}
			p := podsPolicy(t)
			src := NewPods(fake.NewClientset(pod), p.Spec.Pods, zerolog.Nop())
			q, _ := metrics.NewCounterQuery(p, p.Spec.Metrics[0])
			_, err := src.Counters(context.Background(), q, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
			if n := asked.Load(); n != 0 {
				t.Errorf("the other host was asked %d times", n)
			}
		})
	}
}

// pageServer serves a text page: the families the policy reads, then junk lines of another
// family, or the policy's own counter repeated with ever new labels.
func pageServer(t testing.TB, junkBytes int, junkOwnFamily bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 100\nhttp_requests_total{code=\"500\"} 1\n")
		fmt.Fprint(w, "# TYPE request_duration_seconds histogram\n")
		for _, le := range []string{"0.25", "1", "+Inf"} {
			fmt.Fprintf(w, "request_duration_seconds_bucket{code=\"200\",le=%q} 100\n", le)
		}
		fmt.Fprint(w, "request_duration_seconds_sum{code=\"200\"} 10\nrequest_duration_seconds_count{code=\"200\"} 100\n")
		name := "junk_total"
		if junkOwnFamily {
			name = "http_requests_total"
		}
		buf := bufio.NewWriterSize(w, 1<<16)
		for i, written := 0, 0; written < junkBytes; i++ {
			n, err := fmt.Fprintf(buf, "%s{code=\"200\",id=\"%d\",pad=\"%s\"} 1\n", name, i, strings.Repeat("x", 100))
			if err != nil {
				return
			}
			written += n
		}
		_ = buf.Flush()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestPodsSourceBoundsWhatItKeeps shows a canary's page written to exhaust coalmine's memory:
// megabytes of families the policy does not read are dropped as they stream in, and more than
// maxPodSamples samples of one it reads are an error for that pod, never held.
func TestPodsSourceBoundsWhatItKeeps(t *testing.T) {
	p := podsPolicy(t)
	// A generous timeout: the test reads megabytes under the race detector on a busy machine.
	p.Spec.Pods.Timeout = model.Duration(time.Minute)
	q, err := metrics.NewCounterQuery(p, p.Spec.Metrics[0])
	if err != nil {
		t.Fatal(err)
	}
	read := func(srv *httptest.Server) (metrics.Snapshot, error) {
		src := NewPods(fake.NewClientset(podFor(t, "cart-v2-a", "1.5.0", srv.URL, true)), p.Spec.Pods, zerolog.Nop())
		return src.Counters(context.Background(), q, time.Now())
	}
	snap, err := read(pageServer(t, 8<<20, false))
	if err != nil || len(snap.Samples) != 3 {
		t.Errorf("8 MiB of another family: %d samples, err %v; want the 3 of http_requests_total (2 requests, 1 error)", len(snap.Samples), err)
	}
	if _, err := read(pageServer(t, 5<<20, true)); err == nil || !strings.Contains(err.Error(), "samples in the families the policy reads") {
		t.Errorf("50,000 series of the policy's own counter: err %v, want the pod refused", err)
	}
}

// BenchmarkHostilePage scrapes a 64 MiB page of a family the policy does not read, and one of
// its own counter, and reports the heap's peak while it does.
func BenchmarkHostilePage(b *testing.B) {
	p := podsPolicy(b)
	q, err := metrics.NewCounterQuery(p, p.Spec.Metrics[0])
	if err != nil {
		b.Fatal(err)
	}
	for _, own := range []bool{false, true} {
		name := "other family"
		if own {
			name = "its own counter"
		}
		b.Run(name, func(b *testing.B) {
			srv := pageServer(b, 64<<20-4096, own)
			src := NewPods(fake.NewClientset(podFor(b, "cart-v2-a", "1.5.0", srv.URL, true)), p.Spec.Pods, zerolog.Nop())
			peak := metricstest.PeakHeap(b, func() {
				_, _ = src.Counters(context.Background(), q, time.Now())
			})
			b.ReportMetric(peak, "peak-heap-MiB")
		})
	}
}
