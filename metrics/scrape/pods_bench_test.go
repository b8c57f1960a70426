package scrape

import (
	"context"
	"github.com/coalmine/coalmine/metrics"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"k8s.io/client-go/kubernetes/fake"
)

// BenchmarkPodScrape is the pods source's cost per pod per tick: listing the pods, one HTTP
// scrape of a pod serving the seed app's metrics beside the Go client's own (as a real pod
// does), parsing, and turning both metrics of the policy into samples. It reports the bytes read
// per scrape; ns/op is the CPU and wall time of it all on loopback.
func BenchmarkPodScrape(b *testing.B) {
	for _, format := range []struct {
		name  string
		serve int
	}{{"protobuf", serveAsked}, {"text", serveText}} {
		b.Run(format.name, func(b *testing.B) {
			app := newFakeApp(&testing.T{}, format.serve)
			defer app.srv.Close()
			app.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			app.serve(1000, 10, 10)
			app.requests.WithLabelValues("404").Add(3)
			p := podsPolicy(&testing.T{})
			src := NewPods(fake.NewClientset(podFor(&testing.T{}, "cart-v1-a", "1.4.0", app.srv.URL, true)), p.Spec.Pods, zerolog.Nop())
			var (
				mu             sync.Mutex
				bytes, scrapes int
			)
			src.OnScrape = func(_ string, n int, _ time.Duration, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					bytes += n
					scrapes++
				}
			}
			qe, _ := metrics.NewCounterQuery(p, p.Spec.Metrics[0])
			ql, _ := metrics.NewCounterQuery(p, p.Spec.Metrics[1])
			ctx := context.Background()
			at := time.Unix(0, 0)
			b.ReportAllocs()
			for b.Loop() {
				at = at.Add(time.Second)
				if _, err := src.Counters(ctx, qe, at); err != nil {
					b.Fatal(err)
				}
				if _, err := src.Counters(ctx, ql, at); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(bytes)/float64(scrapes), "bytes/scrape")
			b.ReportMetric(float64(scrapes)/float64(b.N), "scrapes/tick")
		})
	}
}
