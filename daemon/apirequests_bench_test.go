package daemon

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// apiRequests counts requests by "VERB resource[/subresource]", with the API server's verbs:
// GET, LIST, WATCH, POST (create), PUT (update), PATCH, APPLY, DELETE, DELETECOLLECTION.
type apiRequests map[string]float64

// releaseResources are the resources a canary's tick may read or write.
var releaseResources = []string{"deployments", "replicasets", "pods", "services", "events"}

var (
	readVerbs  = []string{"GET", "LIST"}
	writeVerbs = []string{"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}
)

// sum adds the counts of verbs on the release's resources and their subresources.
func (a apiRequests) sum(verbs []string) float64 {
	n := 0.0
	for k, v := range a {
		verb, res, _ := strings.Cut(k, " ")
		res, _, _ = strings.Cut(res, "/")
		if slices.Contains(verbs, verb) && slices.Contains(releaseResources, res) {
			n += v
		}
	}
	return n
}

// minus is a - b, key by key.
func (a apiRequests) minus(b apiRequests) apiRequests {
	out := apiRequests{}
	for k, v := range a {
		out[k] = v - b[k]
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			out[k] = -v
		}
	}
	return out
}

// scaled is a with every count multiplied by f.
func (a apiRequests) scaled(f float64) apiRequests {
	out := apiRequests{}
	for k, v := range a {
		out[k] = v * f
	}
	return out
}

// scrapeAPIServer reads apiserver_request_total from the API server's own /metrics, summed by
// verb and resource.
func scrapeAPIServer(b *testing.B, client kubernetes.Interface) apiRequests {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		b.Fatalf("GET /metrics of the API server: %v", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		b.Fatalf("parse the API server's /metrics: %v", err)
	}
	mf, ok := families["apiserver_request_total"]
	if !ok {
		b.Fatal("the API server's /metrics has no apiserver_request_total")
	}
	out := apiRequests{}
	for _, m := range mf.GetMetric() {
		var verb, resource, sub string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "verb":
				verb = l.GetValue()
			case "resource":
				resource = l.GetValue()
			case "subresource":
				sub = l.GetValue()
			}
		}
		out[requestKey(verb, resource, sub)] += m.GetCounter().GetValue()
	}
	return out
}

func requestKey(verb, resource, sub string) string {
	k := verb + " " + resource
	if sub != "" {
		k += "/" + sub
	}
	return k
}

// clientRequests counts the requests one client sends, on its transport, named as the API
// server names them: it sees the daemon's requests alone, where the API server's counters hold
// every client's.
type clientRequests struct {
	mu sync.Mutex
	n  apiRequests
}

// countRequests makes cfg's clients count their requests in the returned counter.
func countRequests(cfg *rest.Config) *clientRequests {
	c := &clientRequests{n: apiRequests{}}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			c.mu.Lock()
			c.n[requestKeyOf(r)]++
			c.mu.Unlock()
			return rt.RoundTrip(r)
		})
	})
	return c
}

func (c *clientRequests) snapshot() apiRequests {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := apiRequests{}
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// requestKeyOf names a request as apiserver_request_total does: /api/v1/namespaces/ns/pods is
// "LIST pods", with ?watch=true "WATCH pods"; .../deployments/x/scale is "PUT deployments/scale".
func requestKeyOf(r *http.Request) string {
	seg := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var rest []string
	switch {
	case len(seg) >= 2 && seg[0] == "api":
		rest = seg[2:]
	case len(seg) >= 3 && seg[0] == "apis":
		rest = seg[3:]
	default:
		return r.Method + " " + r.URL.Path // not a resource
	}
	if len(rest) >= 3 && rest[0] == "namespaces" {
		rest = rest[2:]
	}
	if len(rest) == 0 {
		return r.Method + " " + r.URL.Path // discovery
	}
	resource, name, sub := rest[0], "", ""
	if len(rest) > 1 {
		name = rest[1]
	}
	if len(rest) > 2 {
		sub = rest[2]
	}
	verb := r.Method
	switch {
	case r.Method == http.MethodGet && r.URL.Query().Get("watch") == "true":
		verb = "WATCH"
	case r.Method == http.MethodGet && name == "":
		verb = "LIST"
	case r.Method == http.MethodDelete && name == "":
		verb = "DELETECOLLECTION"
	case r.Method == http.MethodPatch && r.Header.Get("Content-Type") == "application/apply-patch+yaml":
		verb = "APPLY"
	}
	return requestKey(verb, resource, sub)
}

// requestTable shows, per "VERB resource" on the release's resources, what the API server counted
// in the window, its background before the daemon started and after it stopped (each scaled to
// the window), the daemon's share, what the daemon's own client sent, and that per canary per
// tick. Rows that are all zero are left out.
func requestTable(window, before, after, daemon, client apiRequests, canaryTicks float64) string {
	keys := map[string]bool{}
	for _, m := range []apiRequests{window, before, after, client} {
		for k, v := range m {
			_, res, _ := strings.Cut(k, " ")
			res, _, _ = strings.Cut(res, "/")
			if v != 0 && slices.Contains(releaseResources, res) {
				keys[k] = true
			}
		}
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var b strings.Builder
	fmt.Fprintf(&b, "  %-28s %10s %10s %10s %10s %10s %14s %14s\n", "verb resource", "apiserver", "before", "after", "daemon", "client", "daemon/c/tick", "client/c/tick")
	for _, k := range sorted {
		fmt.Fprintf(&b, "  %-28s %10.0f %10.1f %10.1f %10.1f %10.0f %14.4f %14.4f\n", k, window[k], before[k], after[k], daemon[k], client[k], daemon[k]/canaryTicks, client[k]/canaryTicks)
	}
	if len(sorted) == 0 {
		fmt.Fprintf(&b, "  (no request on %s)\n", strings.Join(releaseResources, ", "))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// perCanary lists requests by verb and resource, divided by n canaries; release, when set,
// keeps only the release's resources.
func perCanary(a apiRequests, n int, release bool) string {
	keys := make([]string, 0, len(a))
	for k, v := range a {
		_, res, _ := strings.Cut(k, " ")
		res, _, _ = strings.Cut(res, "/")
		if v != 0 && (!release || slices.Contains(releaseResources, res)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-28s %8.0f %10.2f per canary\n", k, a[k], a[k]/float64(n))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sum(a apiRequests) float64 {
	n := 0.0
	for _, v := range a {
		n += v
	}
	return n
}
