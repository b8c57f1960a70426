package simulator

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// postShare is the share of requests made with POST; the others are GET.
const postShare = 0.1

// Label values as the seed app's promhttp instrumentation writes them: promhttp lowercases
// the method, so the seed app exposes method="get", not "GET".
const (
	codeOK     = "200"
	codeError  = "500"
	methodGet  = "get"
	methodPost = "post"
)

// durationBuckets are the seed app's request_duration_seconds buckets.
func durationBuckets() []float64 { return []float64{.25, .5, 1, 2.5, 5, 10} }

// defaultMetricsPath is where a pod serves its metrics unless prometheus.io/path says otherwise.
const defaultMetricsPath = "/metrics"

// pod is one simulated pod: its counters, its random source and its /metrics server.
type pod struct {
	id           string // key in Simulator.pods: the podKey's id, or the Kubernetes pod UID
	key          podKey // as the pod started; spec.key holds its current index
	name         string
	templateHash string
	port         int
	address      string // host:port written to the targets file
	path         string // metrics path

	// spec, rng and series are guarded by Simulator.mu.
	spec   podSpec
	rng    *rand.Rand
	series [2][2]*series // by error and by POST, made on first use like the seed app's series

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	listener net.Listener
	server   *http.Server
}

// podIdentity is what names a pod and seeds it, apart from its behaviour.
type podIdentity struct {
	id           string
	name         string
	templateHash string
	address      string // host:port Prometheus scrapes
	path         string // metrics path, starting with a slash
	seed, stream uint64 // of the pod's random source
}

// newPod builds a pod serving its own registry on ln; call serve to start answering scrapes.
func newPod(spec podSpec, ident podIdentity, ln net.Listener) (*pod, error) {
	name := ident.name
	constLabels := prometheus.Labels{"version": spec.key.version}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "http_requests_total",
		Help:        "A counter for requests to the wrapped handler.",
		ConstLabels: constLabels,
	}, []string{"code", "method"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "request_duration_seconds",
		Help:        "A histogram of latencies for requests.",
		Buckets:     durationBuckets(),
		ConstLabels: constLabels,
	}, []string{"code", "method"})
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{requests, duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register pod %q metrics: %w", name, err)
		}
	}
	return &pod{
		id:           ident.id,
		key:          spec.key,
		name:         name,
		templateHash: ident.templateHash,
		port:         ln.Addr().(*net.TCPAddr).Port,
		address:      ident.address,
		path:         ident.path,
		spec:         spec,
		rng:          rand.New(rand.NewPCG(ident.seed, ident.stream)),
		requests:     requests,
		duration:     duration,
		listener:     ln,
		server: &http.Server{
			Handler:           metricsHandler(ident.path, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})),
			ReadHeaderTimeout: 5 * time.Second,
		},
	}, nil
}

// metricsHandler serves metrics on GET and HEAD of path alone. It compares the path rather than
// registering it on a ServeMux, whose pattern syntax a prometheus.io/path annotation could break.
func metricsHandler(path string, metrics http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		metrics.ServeHTTP(w, r)
	})
}

// series holds the children of one code and method, to skip the label lookup per request.
type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// comparePods orders pods by namespace, app, version and index, for stable logs.
func comparePods(a, b *pod) int {
	return cmp.Or(
		cmp.Compare(a.key.namespace, b.key.namespace),
		cmp.Compare(a.key.app, b.key.app),
		cmp.Compare(a.key.version, b.key.version),
		cmp.Compare(a.key.index, b.key.index),
	)
}

// advance adds the requests the pod would have served during dt.
func (p *pod) advance(dt time.Duration) {
	n := poisson(p.rng, p.spec.rps*dt.Seconds())
	for range n {
		isError := p.rng.Float64() < p.spec.errorRate
		isPost := p.rng.Float64() < postShare
		c := p.seriesFor(isError, isPost)
		c.requests.Inc()
		c.duration.Observe(p.spec.latency.draw(p.rng))
	}
}

func (p *pod) seriesFor(isError, isPost bool) *series {
	e, m := boolIndex(isError), boolIndex(isPost)
	if c := p.series[e][m]; c != nil {
		return c
	}
	code, method := codeOK, methodGet
	if isError {
		code = codeError
	}
	if isPost {
		method = methodPost
	}
	c := &series{
		requests: p.requests.WithLabelValues(code, method),
		duration: p.duration.WithLabelValues(code, method),
	}
	p.series[e][m] = c
	return c
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}
