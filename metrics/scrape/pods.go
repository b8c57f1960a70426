package scrape

import (
	"context"
	"errors"
	"fmt"
	"github.com/coalmine/coalmine/metrics"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	klabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/kubernetes"

	"github.com/coalmine/coalmine/policies"
)

// The annotations that say where a pod serves its metrics, as Prometheus's usual
// kubernetes-pods job reads them.
const (
	annotationPort   = "prometheus.io/port"
	annotationPath   = "prometheus.io/path"
	annotationScheme = "prometheus.io/scheme"
)

// acceptHeader asks for protobuf first, then the text format, as Prometheus does.
const acceptHeader = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1`

// maxScrapeBytes bounds one pod's answer: a pod that streams without end is an unreachable one.
const maxScrapeBytes = 64 << 20

// maxPodSeries bounds the series kept of one pod's page, in the families the policy reads: a
// real service has hundreds; a canary writing millions would hold the daemon's memory for
// every team.
const maxPodSeries = 20_000

// Pods is the metrics source that needs no Prometheus: each tick it finds the baseline's and
// the canary's Ready pods through the API server and scrapes them itself, the way Prometheus
// would, with bounded concurrency and a timeout per pod. Both metrics of a tick share one
// scrape of each pod.
type Pods struct {
	client      kubernetes.Interface
	http        *http.Client
	timeout     time.Duration
	concurrency int
	logger      zerolog.Logger
	// OnScrape, when set, is told of every pod scraped: bytes read, time taken, and how it ended.
	// It is called from the concurrent scrapes.
	OnScrape func(pod string, bytes int, took time.Duration, err error)

	mu   sync.Mutex
	last *podScrape
}

// podScrape is every pod of one release scraped at one tick.
type podScrape struct {
	key  string
	pods []scrapedPod
	err  error
	done chan struct{}
}

type scrapedPod struct {
	name, uid string
	canary    bool
	families  map[string]*dto.MetricFamily
}

// NewPods returns a pods source that lists pods with client.
func NewPods(client kubernetes.Interface, cfg policies.PodsSource, logger zerolog.Logger) *Pods {
	timeout := time.Duration(cfg.Timeout)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  false,
	}
	return &Pods{
		client: client,
		// A pod's answer is read where it was asked: a redirect could send coalmine, with its
		// network position, anywhere.
		http: &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		timeout: timeout, concurrency: max(1, cfg.Concurrency), logger: logger,
	}
}

// Observe implements the analyzer's Observer: the pods source has counters only.
func (p *Pods) Observe(_ context.Context, q metrics.Query, at time.Time) (metrics.Observation, error) {
	return metrics.Observation{Metric: q.Metric, Kind: q.Kind, Time: at}, fmt.Errorf("%w: metric %q: the pods source reads counters; value metrics need Prometheus", metrics.ErrQuery, q.Metric)
}

// ErrNoHistory means a past range was asked of a source that keeps none.
var ErrNoHistory = errors.New("the pods source keeps no history: replaying the past needs Prometheus")

// CountersRange implements the analyzer's CounterReader: the pods hold only their present.
func (p *Pods) CountersRange(context.Context, metrics.Query, time.Time, time.Time, time.Duration) ([]metrics.Snapshot, error) {
	return nil, ErrNoHistory
}

// Counters scrapes the release's Ready pods (once per tick for all its metrics) and returns the
// series of q; a series whose value is not a count is left out and counted, as in
// metrics.DecodeCounters. A pod that cannot be scraped makes the reading fail as unavailable: a pod
// that stops answering is never read as one that served nothing.
func (p *Pods) Counters(ctx context.Context, q metrics.Query, at time.Time) (metrics.Snapshot, error) {
	sc := p.scrape(ctx, q, at)
	if sc.err != nil {
		return metrics.Snapshot{Time: at}, sc.err
	}
	snap := metrics.Snapshot{Time: at}
	for _, pod := range sc.pods {
		for _, part := range q.Parts {
			samples, dropped := podSamples(pod, part)
			snap.Samples = append(snap.Samples, samples...)
			snap.Dropped += dropped
			if pod.canary {
				snap.DroppedCanary += dropped
			}
		}
	}
	return snap, nil
}

// scrape returns the scrape of q's release at at, shared by every metric of the tick.
func (p *Pods) scrape(ctx context.Context, q metrics.Query, at time.Time) *podScrape {
	key := fmt.Sprintf("%s\xff%s=%s\xff%s\xff%s\xff%s\xff%s", q.Namespace, q.AppLabel, q.App, q.Baseline, q.Canary, strings.Join(q.Families, ","), at.Truncate(time.Millisecond).Format(time.RFC3339Nano))
	p.mu.Lock()
	if p.last != nil && p.last.key == key {
		sc := p.last
		p.mu.Unlock()
		<-sc.done
		return sc
	}
	sc := &podScrape{key: key, done: make(chan struct{})}
	p.last = sc
	p.mu.Unlock()
	defer close(sc.done)
	sc.pods, sc.err = p.scrapeRelease(ctx, q)
	return sc
}

func (p *Pods) scrapeRelease(ctx context.Context, q metrics.Query) ([]scrapedPod, error) {
	app, err := klabels.NewRequirement(q.AppLabel, selection.Equals, []string{q.App})
	if err != nil {
		return nil, fmt.Errorf("%w: pods of %s=%s: %w", metrics.ErrQuery, q.AppLabel, q.App, err)
	}
	versions, err := klabels.NewRequirement(q.VersionLabel, selection.In, []string{q.Baseline, q.Canary})
	if err != nil {
		return nil, fmt.Errorf("%w: pods of versions %s, %s: %w", metrics.ErrQuery, q.Baseline, q.Canary, err)
	}
	list, err := p.client.CoreV1().Pods(q.Namespace).List(ctx, metav1.ListOptions{LabelSelector: klabels.NewSelector().Add(*app, *versions).String()})
	if err != nil {
		return nil, fmt.Errorf("%w: list the pods of %s/%s: %w", metrics.ErrUnavailable, q.Namespace, q.App, err)
	}
	var targets []corev1.Pod
	for _, pod := range list.Items {
		if ready(&pod) && pod.Status.PodIP != "" && pod.DeletionTimestamp == nil {
			targets = append(targets, pod)
		}
	}
	slices.SortFunc(targets, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	out := make([]scrapedPod, len(targets))
	errs := make([]error, len(targets))
	sem := make(chan struct{}, p.concurrency)
	var wg sync.WaitGroup
	for i, pod := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			canary := pod.Labels[q.VersionLabel] == q.Canary
			fams, err := p.scrapePod(ctx, &pod, q.Families)
			if err != nil {
				side := "baseline"
				if canary {
					side = "canary"
				}
				errs[i] = fmt.Errorf("pod %s (%s %s): %w", pod.Name, side, pod.Labels[q.VersionLabel], err)
				return
			}
			out[i] = scrapedPod{name: pod.Name, uid: string(pod.UID), canary: canary, families: fams}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", metrics.ErrUnavailable, err)
	}
	return out, nil
}

// scrapePod reads one pod's metrics at the address its annotations give.
func (p *Pods) scrapePod(ctx context.Context, pod *corev1.Pod, families []string) (map[string]*dto.MetricFamily, error) {
	target, err := scrapeURL(pod)
	if err != nil {
		return nil, err
	}
	addr := target.String()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	fams, n, err := p.get(ctx, addr, families)
	if p.OnScrape != nil {
		p.OnScrape(pod.Name, n, time.Since(start), err)
	}
	p.logger.Debug().Str("pod", pod.Name).Str("url", addr).Int("bytes", n).Dur("took", time.Since(start)).Err(err).Msg("pod scraped")
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	return fams, nil
}

// scrapeURL is where a pod serves its metrics: always the pod's own IP, at the port, scheme
// and path its annotations give. The annotations are the pod's, and the pod is the code under
// test: a path like "@169.254.169.254/latest/" must not name another host, so the URL is built
// from parts, never from a string.
func scrapeURL(pod *corev1.Pod) (*url.URL, error) {
	port := pod.Annotations[annotationPort]
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("no %s annotation with a port number (got %q): coalmine cannot tell where it serves metrics", annotationPort, port)
	}
	scheme := pod.Annotations[annotationScheme]
	if scheme == "" {
		scheme = "http"
	}
	if scheme != "http" && scheme != "https" {
		return nil, fmt.Errorf("%s annotation %q: the pods source scrapes http or https only", annotationScheme, scheme)
	}
	path := pod.Annotations[annotationPath]
	if path == "" {
		path = "/metrics"
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("%s annotation %q: a path starts with /", annotationPath, path)
	}
	ip := net.ParseIP(pod.Status.PodIP)
	if ip == nil {
		return nil, fmt.Errorf("pod %s has no IP address yet (got %q)", pod.Name, pod.Status.PodIP)
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(ip.String(), port), Path: path}, nil
}

// get reads a pod's page and keeps the families named (all when none are), at most
// maxPodSeries series of them.
func (p *Pods) get(ctx context.Context, url string, families []string) (map[string]*dto.MetricFamily, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", acceptHeader)
	req.Header.Set("User-Agent", "coalmine")
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("HTTP status %s", resp.Status)
	}
	body := &countingReader{r: io.LimitReader(resp.Body, maxScrapeBytes)}
	format := expfmt.ResponseFormat(resp.Header)
	if format.FormatType() == expfmt.TypeUnknown {
		format = expfmt.NewFormat(expfmt.TypeTextPlain)
	}
	var page io.Reader = body
	if format.FormatType() != expfmt.TypeProtoDelim && len(families) > 0 {
		page = newFamilyFilter(body, families)
	}
	dec := expfmt.NewDecoder(page, format)
	fams := map[string]*dto.MetricFamily{}
	series := 0
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, body.n, fmt.Errorf("parse: %w", err)
		}
		if len(families) > 0 && !slices.Contains(families, mf.GetName()) {
			continue
		}
		if series += len(mf.GetMetric()); series > maxPodSeries {
			return nil, body.n, fmt.Errorf("more than %d series in the families the policy reads (%s): coalmine keeps no more of one pod", maxPodSeries, strings.Join(families, ", "))
		}
		fams[mf.GetName()] = &mf
	}
	return fams, body.n, nil
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// podSamples are one pod's series that match one part of a query, and how many were left out
// for a value that is not a count (NaN, infinite, negative) or a NaN le. As in metrics.DecodeCounters,
// a histogram with such a bucket is left out whole.
func podSamples(pod scrapedPod, part metrics.Part) (out []metrics.Sample, dropped int) {
	name := ""
	for _, m := range part.Matchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			name = m.Value
		}
	}
	switch part.Name {
	case "requests", "errors":
		mf := pod.families[name]
		if mf == nil {
			return nil, 0
		}
		for _, m := range mf.GetMetric() {
			if !matches(part.Matchers, m) {
				continue
			}
			var v float64
			switch {
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetUntyped() != nil:
				v = m.GetUntyped().GetValue()
			default:
				continue
			}
			if !metrics.Countable(v) {
				dropped++
				continue
			}
			out = append(out, metrics.Sample{Key: pod.uid + "\xff" + part.Name + "\xff" + labelKey(m), Canary: pod.canary, Part: part.Name, Value: v})
		}
	case "bucket":
		mf := pod.families[strings.TrimSuffix(name, "_bucket")]
		if mf == nil {
			mf = pod.families[name]
		}
		if mf == nil {
			return nil, 0
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			if h == nil || !matches(part.Matchers, m) {
				continue
			}
			hist, n := histogramSamples(pod, labelKey(m), h)
			out = append(out, hist...)
			dropped += n
		}
	}
	return out, dropped
}

// histogramSamples are the bucket series of one histogram of a pod, whose labels are series.
// Its +Inf bucket is the one the text formats write, else its count, as Prometheus reads it:
// one series, never two that metrics.Deltas would read as one counter with two values.
func histogramSamples(pod scrapedPod, series string, h *dto.Histogram) (out []metrics.Sample, dropped int) {
	key := pod.uid + "\xff" + series + "\xff"
	bad, inf := false, false
	for _, b := range h.GetBucket() {
		le := b.GetUpperBound()
		if math.IsNaN(le) {
			dropped++ // a bucket no request can fall in; the others stand
			continue
		}
		inf = inf || math.IsInf(le, 1)
		c := float64(b.GetCumulativeCount())
		if b.CumulativeCountFloat != nil {
			c = b.GetCumulativeCountFloat()
		}
		bad = bad || !metrics.Countable(c)
		out = append(out, metrics.Sample{Key: key + strconv.FormatFloat(le, 'g', -1, 64), Canary: pod.canary, Part: "bucket", LE: le, Value: c})
	}
	if !inf {
		count := float64(h.GetSampleCount())
		if h.SampleCountFloat != nil {
			count = h.GetSampleCountFloat()
		}
		bad = bad || !metrics.Countable(count)
		out = append(out, metrics.Sample{Key: key + "+Inf", Canary: pod.canary, Part: "bucket", LE: math.Inf(1), Value: count})
	}
	if bad {
		return nil, dropped + len(out)
	}
	return out, dropped
}

// matches applies a part's label matchers to a scraped metric; a missing label is "".
func matches(ms []*labels.Matcher, m *dto.Metric) bool {
	for _, mt := range ms {
		if mt.Name == labels.MetricName {
			continue
		}
		v := ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == mt.Name {
				v = lp.GetValue()
			}
		}
		if !mt.Matches(v) {
			return false
		}
	}
	return true
}

func labelKey(m *dto.Metric) string {
	var b strings.Builder
	for _, lp := range m.GetLabel() {
		b.WriteString(lp.GetName())
		b.WriteByte('=')
		b.WriteString(lp.GetValue())
		b.WriteByte(',')
	}
	return b.String()
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
