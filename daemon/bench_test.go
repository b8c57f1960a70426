package daemon

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/coalmine/coalmine/actuator"
	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/metrics/promapi"
	"github.com/coalmine/coalmine/policies"
)

// stubPrometheus answers every query with healthy data for both versions in every namespace
// the query selects (one, or a batch of them), and counts queries.
func stubPrometheus(b *testing.B) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	nsRE := regexp.MustCompile(`namespace=~?"([^"]*)"`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_ = r.ParseForm()
		q := r.Form.Get("query")
		m := nsRE.FindStringSubmatch(q)
		if m == nil {
			http.Error(w, "no namespace", http.StatusBadRequest)
			return
		}
		var samples []string
		add := func(labels string, v string) {
			samples = append(samples, fmt.Sprintf(`{"metric":{%s},"value":[1,%q]}`, labels, v))
		}
		for _, ns := range strings.Split(m[1], "|") {
			for _, arm := range []struct{ version, requests, errors string }{{"v1.0.0", "10000", "100"}, {"v2.0.0", "1000", "10"}} {
				if strings.Contains(q, "coalmine_part") {
					add(fmt.Sprintf(`"namespace":%q,"version":%q,"coalmine_part":"requests"`, ns, arm.version), arm.requests)
					add(fmt.Sprintf(`"namespace":%q,"version":%q,"coalmine_part":"errors"`, ns, arm.version), arm.errors)
					continue
				}
				for _, le := range []string{"0.25", "0.5", "1", "2.5", "5", "10", "+Inf"} {
					add(fmt.Sprintf(`"namespace":%q,"version":%q,"le":%q`, ns, arm.version, le), arm.requests)
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(samples, ",") + `]}}`))
	}))
	b.Cleanup(srv.Close)
	return srv, &n
}

// benchRelease makes the seed's release in namespace ns: v1 x10 Ready, v2 x1 Ready.
func benchRelease(ns string) []k8sruntime.Object {
	dep := func(name, version string, n int32) *appsv1.Deployment {
		labels := map[string]string{"app": "my-app", "version": version}
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: appsv1.DeploymentSpec{Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}}},
			Status: appsv1.DeploymentStatus{Replicas: n, ReadyReplicas: n, UpdatedReplicas: n, AvailableReplicas: n},
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "my-app-v2-0", Namespace: ns, Labels: map[string]string{"app": "my-app", "version": "v2.0.0"}},
		Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	return []k8sruntime.Object{dep("my-app-v1", "v1.0.0", 10), dep("my-app-v2", "v2.0.0", 1), pod}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDaemonTick drives 10, 100 and 1,000 canaries at once, each a policy of its own, for
// b.N ticks each: the real engine and actuator over a fake clientset, against a stub
// Prometheus. It reports CPU per tick (all canaries; the stub Prometheus and the fake API server
// run in the same process, so this overstates the daemon's own), peak heap per canary while
// they tick (the fake API server's objects included), and Prometheus queries per tick.
func BenchmarkDaemonTick(b *testing.B) {
	base, err := policies.LoadFile("../policies/examples/my-app-threshold.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("canaries=%d", n), func(b *testing.B) {
			srv, queries := stubPrometheus(b)
			var objs []k8sruntime.Object
			for i := range n {
				objs = append(objs, benchRelease(fmt.Sprintf("team-%d", i))...)
			}
			client := fake.NewClientset(objs...)
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			interval := time.Duration(base[0].Spec.Analysis.Interval)
			// One batching client, as the daemon shares one per Prometheus configuration.
			prom, err := promapi.New(srv.URL, base[0].Spec.Prometheus, zerolog.Nop())
			if err != nil {
				b.Fatal(err)
			}
			batcher := promapi.NewBatcher(prom, batchDelay, zerolog.Nop())
			canaries := make([]*analyzer.Canary, n)
			tick := newBarrier(n)
			for i := range n {
				p := *base[0]
				p.Spec.Target.Namespace = fmt.Sprintf("team-%d", i)
				p.Spec.Strategy.StepDuration = model.Duration(24 * time.Hour) // hold at step 1: every tick judges
				p.Spec.Analysis.MaxDuration = model.Duration(24 * time.Hour)
				rel, err := actuator.NewRelease(client, &p, zerolog.Nop())
				if err != nil {
					b.Fatal(err)
				}
				start := time.Unix(1_800_000_000, 0)
				now := start
				var mu sync.Mutex
				canaries[i] = &analyzer.Canary{
					Policy: &p, Release: rel, Analyzer: analyzer.New(batcher, zerolog.Nop()), Logger: zerolog.Nop(),
					Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
					// The daemon's canaries wake on the same interval grid; here they meet at a barrier.
					Sleep: func(_ context.Context, d time.Duration) error {
						tick.wait()
						mu.Lock()
						now = now.Add(d)
						mu.Unlock()
						return nil
					},
				}
			}
			queries.Store(0)
			// Peak heap while the canaries tick, sampled, over the heap before any existed.
			var peak atomic.Uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				t := time.NewTicker(20 * time.Millisecond)
				defer t.Stop()
				for {
					var m runtime.MemStats
					runtime.ReadMemStats(&m)
					if m.HeapAlloc > peak.Load() {
						peak.Store(m.HeapAlloc)
					}
					select {
					case <-stop:
						return
					case <-t.C:
					}
				}
			}()
			cpu0 := cpuTime()
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, c := range canaries {
				wg.Go(func() {
					deadline := time.Unix(1_800_000_000, 0).Add(time.Duration(b.N) * interval)
					rep, err := c.Run(context.Background(), deadline)
					if err != nil {
						b.Error(err)
						return
					}
					for _, t := range rep.Ticks {
						if t.Result == nil || t.Result.Verdict != analyzer.Pass {
							b.Errorf("a tick did not judge a pass: %+v", t)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			close(stop)
			<-sampled
			ticks := float64(b.N)
			// Live heap: what the canaries (and the fake API server's objects) retain, after GC.
			runtime.GC()
			var live runtime.MemStats
			runtime.ReadMemStats(&live)
			b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/ticks, "cpu-ms/tick")
			b.ReportMetric(float64(int64(peak.Load())-int64(before.HeapAlloc))/float64(n)/1024, "peak-KiB/canary")
			b.ReportMetric(float64(int64(live.HeapAlloc)-int64(before.HeapAlloc))/float64(n)/1024, "live-KiB/canary")
			runtime.KeepAlive(canaries)
			runtime.KeepAlive(client)
			b.ReportMetric(float64(queries.Load())/ticks, "queries/tick")
		})
	}
}

// barrier lets n goroutines through together, again and again.
type barrier struct {
	mu               sync.Mutex
	cond             *sync.Cond
	n, arrived, gens int
}

func newBarrier(n int) *barrier {
	b := &barrier{n: n}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *barrier) wait() {
	b.mu.Lock()
	defer b.mu.Unlock()
	gen := b.gens
	b.arrived++
	if b.arrived == b.n {
		b.arrived, b.gens = 0, b.gens+1
		b.cond.Broadcast()
		return
	}
	for gen == b.gens {
		b.cond.Wait()
	}
}
