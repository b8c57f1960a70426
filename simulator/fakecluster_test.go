package simulator

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeCluster is a fake clientset that reports the watches the informers open.
type fakeCluster struct {
	*fake.Clientset
	watches chan string // namespace/resource
}

func newFakeCluster(objs ...runtime.Object) *fakeCluster {
	c := &fakeCluster{Clientset: fake.NewClientset(objs...), watches: make(chan string, 64)}
	c.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		c.watches <- a.GetNamespace() + "/" + a.GetResource().Resource
		return false, nil, nil // the default reactor opens the watch
	})
	return c
}

// waitForWatches waits until the informers watch Pods and Services in the namespaces: the fake
// does not replay what happens between an informer's list and its watch, so changes made before
// would be lost.
func (c *fakeCluster) waitForWatches(t *testing.T, namespaces ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, ns := range namespaces {
		want[ns+"/pods"], want[ns+"/services"] = true, true
	}
	timeout := time.After(5 * time.Second)
	for len(want) > 0 {
		select {
		case w := <-c.watches:
			delete(want, w)
		case <-timeout:
			t.Fatalf("informers never watched %v", want)
		}
	}
}

// startClusterSim starts a cluster-mode simulator without its ticker, once its informers list and
// watch the default namespace.
func startClusterSim(t *testing.T, c *fakeCluster, s Scenario, logger zerolog.Logger) *Simulator {
	t.Helper()
	sim, err := newSimulator(s, Options{Kube: c.Clientset, Logger: logger})
	if err != nil {
		t.Fatalf("newSimulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sim.waitForCaches(ctx); err != nil {
		t.Fatalf("waitForCaches: %v", err)
	}
	c.waitForWatches(t, "default")
	return sim
}

// podAddresses returns n loopback pod IPs of 127.0.1.0/24, as kwok hands out, and a port that is
// free on all of them. The IPs start at a random offset and the port is an ephemeral one, to keep
// out of the way of other tests on the machine.
func podAddresses(t *testing.T, n int) ([]string, int) {
	t.Helper()
	for range 20 {
		first := 10 + rand.IntN(240-n)
		ips := make([]string, n)
		for i := range ips {
			ips[i] = fmt.Sprintf("127.0.1.%d", first+i)
		}
		ln, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatalf("listen on %s: %v", ips[0], err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		free := true
		lns := []net.Listener{ln}
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				free = false
				break
			}
			lns = append(lns, l)
		}
		for _, l := range lns {
			l.Close()
		}
		if free {
			return ips, port
		}
	}
	t.Fatalf("no port free on %d loopback IPs", n)
	return nil, 0
}

// waitTargets polls the simulator's targets until ok accepts them; the informers and the
// worker apply cluster changes asynchronously.
func waitTargets(t *testing.T, sim *Simulator, what string, ok func([]Target) bool) []Target {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		targets := sim.Targets()
		if ok(targets) {
			return targets
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened; targets %+v", what, targets)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rpsByPod maps pod names to their rates.
func rpsByPod(targets []Target) map[string]float64 {
	out := map[string]float64{}
	for _, tg := range targets {
		out[tg.Pod] = tg.RPS
	}
	return out
}

// hasRates returns a check that the targets are exactly the pods of want, with those rates.
func hasRates(want map[string]float64) func([]Target) bool {
	return func(targets []Target) bool { return approxEqual(rpsByPod(targets), want) }
}

// checkCount checks a Poisson count against its mean within five standard deviations.
func checkCount(t *testing.T, what string, got, mean float64) {
	t.Helper()
	if math.Abs(got-mean) > 5*math.Sqrt(mean)+1e-9 {
		t.Errorf("%s: %v requests, want about %v", what, got, mean)
	}
}

// steps advances the simulator by seconds of simulated time.
func steps(sim *Simulator, seconds int) {
	for range seconds * 10 {
		sim.step(100 * time.Millisecond)
	}
}

func setReady(t *testing.T, c *fakeCluster, p *corev1.Pod, ready bool) *corev1.Pod {
	t.Helper()
	p = p.DeepCopy()
	p.Status.Conditions[0].Status = corev1.ConditionFalse
	if ready {
		p.Status.Conditions[0].Status = corev1.ConditionTrue
	}
	p, err := c.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update pod %s status: %v", p.Name, err)
	}
	return p
}

func createPod(t *testing.T, c *fakeCluster, p *corev1.Pod) {
	t.Helper()
	if _, err := c.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", p.Name, err)
	}
}

func unreachable(address string) bool {
	resp, err := http.Get("http://" + address + "/metrics")
	if err == nil {
		resp.Body.Close()
	}
	return err != nil
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
