package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// newTestDispatcher runs a dispatcher with fast retries (unless o sets them) that sends for
// real, until the test ends.
func newTestDispatcher(t *testing.T, o Options) *Dispatcher {
	t.Helper()
	if o.Send == nil {
		o.Send = NewSender(FileSecrets{}, "test").Send
	}
	o.Registerer = prometheus.NewRegistry()
	if o.MinBackoff == 0 {
		o.MinBackoff, o.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	}
	d, err := NewDispatcher(o)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.Run(context.Background()) }()
	t.Cleanup(d.Close)
	return d
}

// counterValue reads a counter (testutil would add a module).
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// outcome collects what done is told.
type outcome chan error

func newOutcome() outcome { return make(outcome, 100) }

func (o outcome) done(err error) { o <- err }

// wait returns the next error done was called with.
func (o outcome) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-o:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("done was not called within 10s")
		return nil
	}
}

// none checks done is not called again for a while.
func (o outcome) none(t *testing.T) {
	t.Helper()
	select {
	case err := <-o:
		t.Fatalf("done called again with %v", err)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestDispatcherRetries runs notices against receivers that fail in different ways.
func TestDispatcherRetries(t *testing.T) {
	tests := []struct {
		name        string
		respond     func(n int, w http.ResponseWriter, r *http.Request) (int, string)
		opts        Options
		wantErr     bool
		wantStatus  int           // of the AttemptError, when wantErr
		attempts    [2]int        // at least, at most
		minGap      time.Duration // between the first two attempts
		maxGap      time.Duration
		wantResult  string
		wantAttempt map[string]float64
	}{
		{
			name: "503 twice, then delivered once",
			respond: func(n int, _ http.ResponseWriter, _ *http.Request) (int, string) {
				if n <= 2 {
					return 503, "busy"
				}
				return 200, ""
			},
			attempts:    [2]int{3, 3},
			wantResult:  resultDelivered,
			wantAttempt: map[string]float64{attemptRetryable: 2, attemptSuccess: 1},
		},
		{
			name:        "400 is not retried",
			respond:     func(int, http.ResponseWriter, *http.Request) (int, string) { return 400, "bad payload" },
			wantErr:     true,
			wantStatus:  400,
			attempts:    [2]int{1, 1},
			wantResult:  resultFailed,
			wantAttempt: map[string]float64{attemptPermanent: 1},
		},
		{
			name: "Retry-After honoured",
			respond: func(n int, w http.ResponseWriter, _ *http.Request) (int, string) {
				if n == 1 {
					w.Header().Set("Retry-After", "1")
					return 429, ""
				}
				return 200, ""
			},
			opts:       Options{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond},
			attempts:   [2]int{2, 2},
			minGap:     time.Second,
			wantResult: resultDelivered,
		},
		{
			name: "Retry-After capped",
			respond: func(n int, w http.ResponseWriter, _ *http.Request) (int, string) {
				if n == 1 {
					w.Header().Set("Retry-After", "3600")
					return 503, ""
				}
				return 200, ""
			},
			opts:       Options{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, MaxRetryAfter: 30 * time.Millisecond},
			attempts:   [2]int{2, 2},
			minGap:     30 * time.Millisecond,
			maxGap:     2 * time.Second,
			wantResult: resultDelivered,
		},
		{
			name:        "out of attempts",
			respond:     func(int, http.ResponseWriter, *http.Request) (int, string) { return 500, "" },
			opts:        Options{MaxAttempts: 3},
			wantErr:     true,
			wantStatus:  500,
			attempts:    [2]int{3, 3},
			wantResult:  resultFailed,
			wantAttempt: map[string]float64{attemptRetryable: 3},
		},
		{
			name:       "out of time",
			respond:    func(int, http.ResponseWriter, *http.Request) (int, string) { return 502, "" },
			opts:       Options{MaxAttempts: 1000, MaxAge: 100 * time.Millisecond, MinBackoff: 40 * time.Millisecond, MaxBackoff: 40 * time.Millisecond},
			wantErr:    true,
			wantStatus: 502,
			attempts:   [2]int{2, 8}, // 20-40ms apart within 100ms, and the time each takes
			wantResult: resultFailed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, tt.respond)
			d := newTestDispatcher(t, tt.opts)
			out := newOutcome()
			if !d.Enqueue(webhookTarget("hook", rc.URL), notice("n-1"), out.done) {
				t.Fatal("Enqueue refused the notice")
			}
			err := out.wait(t)
			out.none(t)
			if (err != nil) != tt.wantErr {
				t.Fatalf("done(%v), want an error: %v", err, tt.wantErr)
			}
			if err != nil {
				var ae *AttemptError
				if !errors.As(err, &ae) || ae.StatusCode != tt.wantStatus {
					t.Errorf("done(%v), want the receiver's %d", err, tt.wantStatus)
				}
			}
			reqs := rc.requests()
			if n := len(reqs); n < tt.attempts[0] || n > tt.attempts[1] {
				t.Errorf("%d attempts, want %d to %d", n, tt.attempts[0], tt.attempts[1])
			}
			delivered := 0
			for i, r := range reqs {
				if id := r.header.Get(HeaderDelivery); id != "n-1" {
					t.Errorf("attempt %d has delivery ID %q, want n-1", i+1, id)
				}
				if r.status/100 == 2 {
					delivered++
				}
			}
			if want := map[bool]int{true: 0, false: 1}[tt.wantErr]; delivered != want {
				t.Errorf("%d successful deliveries, want %d", delivered, want)
			}
			if len(reqs) >= 2 {
				gap := reqs[1].at.Sub(reqs[0].at)
				if gap < tt.minGap || (tt.maxGap > 0 && gap > tt.maxGap) {
					t.Errorf("%s between the first two attempts, want %s to %s", gap, tt.minGap, tt.maxGap)
				}
			}
			if got := counterValue(t, d.metrics.notifications.WithLabelValues("webhook", tt.wantResult)); got != 1 {
				t.Errorf("coalmine_notifications_total{result=%q} = %g, want 1", tt.wantResult, got)
			}
			for result, want := range tt.wantAttempt {
				if got := counterValue(t, d.metrics.attempts.WithLabelValues("webhook", result)); got != want {
					t.Errorf("coalmine_notification_attempts_total{result=%q} = %g, want %g", result, got, want)
				}
			}
		})
	}
}

// TestEnqueueNeverBlocks checks that a receiver that hangs holds up no caller: Enqueue returns
// at once while a notice is stuck in flight, and refuses once the target's queue is full.
func TestEnqueueNeverBlocks(t *testing.T) {
	rc := newHangingReceiver(t)
	const queue = 50
	d := newTestDispatcher(t, Options{QueueSize: queue})
	target := webhookTarget("hook", rc.URL)
	if !d.Enqueue(target, notice("n-0"), nil) {
		t.Fatal("Enqueue refused the first notice")
	}
	rc.wait(t) // n-0 is in flight, held by the receiver
	took := make([]time.Duration, 0, queue)
	for i := 1; i <= queue; i++ {
		start := time.Now()
		ok := d.Enqueue(target, notice(fmt.Sprintf("n-%d", i)), nil)
		took = append(took, time.Since(start))
		if !ok {
			t.Fatalf("Enqueue refused notice %d of a queue of %d", i, queue)
		}
	}
	start := time.Now()
	if d.Enqueue(target, notice("one-too-many"), nil) {
		t.Error("Enqueue took a notice beyond the full queue")
	}
	took = append(took, time.Since(start))
	slices.Sort(took)
	// The median is what Enqueue costs; the slowest allows for a busy machine's scheduler, and
	// is still far below the receiver's hang, which lasts until the test ends.
	if median, slowest := took[len(took)/2], took[len(took)-1]; median > time.Millisecond || slowest > 100*time.Millisecond {
		t.Errorf("Enqueue took %s (median), %s (slowest), want under 1ms", median, slowest)
	}
	if got := counterValue(t, d.metrics.notifications.WithLabelValues("webhook", resultQueueFull)); got != 1 {
		t.Errorf("coalmine_notifications_total{result=queue_full} = %g, want 1", got)
	}

	// Another target is not held up by this one.
	other := newReceiver(t, nil)
	out := newOutcome()
	if !d.Enqueue(webhookTarget("other", other.URL), notice("n-0"), out.done) {
		t.Fatal("Enqueue refused a notice for another target")
	}
	if err := out.wait(t); err != nil {
		t.Errorf("the other target's notice: %v", err)
	}
}

// TestDispatcherDedupes checks that a notice offered again, while in flight or once delivered,
// is not sent twice to the same target, and that everyone who offered it hears the outcome.
func TestDispatcherDedupes(t *testing.T) {
	rc := newHangingReceiver(t)
	d := newTestDispatcher(t, Options{})
	target := webhookTarget("hook", rc.URL)
	first, again, later, elsewhere := newOutcome(), newOutcome(), newOutcome(), newOutcome()

	d.Enqueue(target, notice("n-1"), first.done)
	rc.wait(t)
	if !d.Enqueue(target, notice("n-1"), again.done) {
		t.Fatal("Enqueue refused a notice in flight")
	}
	rc.release()
	for name, o := range map[string]outcome{"first": first, "offered again in flight": again} {
		if err := o.wait(t); err != nil {
			t.Errorf("%s: done(%v)", name, err)
		}
	}
	if !d.Enqueue(target, notice("n-1"), later.done) {
		t.Fatal("Enqueue refused a delivered notice")
	}
	if err := later.wait(t); err != nil {
		t.Errorf("offered again once delivered: done(%v)", err)
	}
	if n := len(rc.requests()); n != 1 {
		t.Errorf("the notice was sent %d times, want once", n)
	}
	// The same notice to another target is another delivery.
	d.Enqueue(webhookTarget("audit", rc.URL), notice("n-1"), elsewhere.done)
	if err := elsewhere.wait(t); err != nil {
		t.Errorf("another target: done(%v)", err)
	}
	if n := len(rc.requests()); n != 2 {
		t.Errorf("%d requests, want 2: one per target", n)
	}
}

// TestDispatcherFilters checks that a notification is sent only the kinds its events name.
func TestDispatcherFilters(t *testing.T) {
	rc := newReceiver(t, nil)
	d := newTestDispatcher(t, Options{})
	target := webhookTarget("hook", rc.URL)
	target.Notification.Events = []string{"promoted", "rolledBack"}
	tests := []struct {
		name string
		kind Kind
		sent bool
	}{
		{"a kind not named", KindStep, false},
		{"a kind named", KindPromoted, true},
		{"another kind not named", KindCommand, false},
	}
	sent := 0
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := notice(fmt.Sprintf("n-%d", i))
			n.Kind = tt.kind
			out := newOutcome()
			if !d.Enqueue(target, n, out.done) {
				t.Fatal("Enqueue refused the notice")
			}
			if err := out.wait(t); err != nil {
				t.Fatalf("done(%v)", err)
			}
			if tt.sent {
				sent++
			}
			if got := len(rc.requests()); got != sent {
				t.Errorf("%d requests, want %d", got, sent)
			}
		})
	}
}

// TestDispatcherOrder checks that a target's notices arrive in the order they were enqueued,
// even when one of them needs retries.
func TestDispatcherOrder(t *testing.T) {
	var mu sync.Mutex
	fails := 0
	rc := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get(HeaderDelivery) == "n-2" && fails < 2 {
			fails++
			return 503, ""
		}
		return 200, ""
	})
	d := newTestDispatcher(t, Options{})
	target := webhookTarget("hook", rc.URL)
	out := newOutcome()
	var want []string
	for i := 1; i <= 5; i++ {
		id := fmt.Sprintf("n-%d", i)
		want = append(want, id)
		d.Enqueue(target, notice(id), out.done)
	}
	for range want {
		if err := out.wait(t); err != nil {
			t.Fatalf("done(%v)", err)
		}
	}
	var got []string
	for _, r := range rc.requests() {
		if r.status == 200 {
			got = append(got, r.header.Get(HeaderDelivery))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("delivered in the order %v, want %v", got, want)
	}
	if n := len(rc.requests()); n != 7 {
		t.Errorf("%d requests, want 7: n-2 failed twice", n)
	}
}

// TestDispatcherClose checks that closing cancels the attempt in flight, tells every notice not
// delivered ErrClosed, and refuses more.
func TestDispatcherClose(t *testing.T) {
	rc := newHangingReceiver(t)
	reg := prometheus.NewRegistry()
	d, err := NewDispatcher(Options{Send: NewSender(FileSecrets{}, "test").Send, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error)
	go func() { stopped <- d.Run(context.Background()) }()
	target := webhookTarget("hook", rc.URL)
	target.Notification.Timeout = 0 // the default 5s: Close must not wait for it
	out := newOutcome()
	for i := range 3 {
		if !d.Enqueue(target, notice(fmt.Sprintf("n-%d", i)), out.done) {
			t.Fatalf("Enqueue refused notice %d", i)
		}
	}
	rc.wait(t)
	start := time.Now()
	d.Close()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %s with a receiver hanging", took)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Run = %v", err)
	}
	for i := range 3 {
		if err := out.wait(t); !errors.Is(err, ErrClosed) {
			t.Errorf("notice %d: done(%v), want ErrClosed", i, err)
		}
	}
	if d.Enqueue(target, notice("late"), out.done) {
		t.Error("Enqueue took a notice after Close")
	}
	if got := counterValue(t, d.metrics.notifications.WithLabelValues("webhook", resultShutdown)); got != 3 {
		t.Errorf("coalmine_notifications_total{result=shutdown} = %g, want 3", got)
	}
	if err := d.Run(context.Background()); err == nil {
		t.Error("Run after Close started again")
	}
	d.Close() // twice is fine
}

// TestDispatcherBeforeRun checks that notices enqueued before Run are sent once it starts, and
// that a dispatcher closed without running tells them ErrClosed.
func TestDispatcherBeforeRun(t *testing.T) {
	rc := newReceiver(t, nil)
	newDispatcher := func() *Dispatcher {
		d, err := NewDispatcher(Options{Send: NewSender(FileSecrets{}, "test").Send, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	t.Run("then run", func(t *testing.T) {
		d := newDispatcher()
		out := newOutcome()
		d.Enqueue(webhookTarget("hook", rc.URL), notice("n-1"), out.done)
		go func() { _ = d.Run(context.Background()) }()
		defer d.Close()
		if err := out.wait(t); err != nil {
			t.Errorf("done(%v)", err)
		}
	})
	t.Run("then closed", func(t *testing.T) {
		d := newDispatcher()
		out := newOutcome()
		d.Enqueue(webhookTarget("hook", rc.URL), notice("n-2"), out.done)
		d.Close()
		if err := out.wait(t); !errors.Is(err, ErrClosed) {
			t.Errorf("done(%v), want ErrClosed", err)
		}
	})
}

// TestIdleWorkerExits checks a target's worker goes once idle, and a later notice starts
// another: targets of deleted policies do not keep goroutines.
func TestIdleWorkerExits(t *testing.T) {
	rc := newReceiver(t, nil)
	d := newTestDispatcher(t, Options{IdleTimeout: 10 * time.Millisecond})
	target := webhookTarget("hook", rc.URL)
	for i := range 2 {
		out := newOutcome()
		d.Enqueue(target, notice(fmt.Sprintf("n-%d", i)), out.done)
		if err := out.wait(t); err != nil {
			t.Fatalf("done(%v)", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			d.mu.Lock()
			n := len(d.queues)
			d.mu.Unlock()
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d queues left after the idle timeout", n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func TestNewDispatcherNeeds(t *testing.T) {
	send := NewSender(FileSecrets{}, "test").Send
	tests := []struct {
		name string
		o    Options
	}{
		{"no Send", Options{Registerer: prometheus.NewRegistry()}},
		{"no Registerer", Options{Send: send}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewDispatcher(tt.o); err == nil {
				t.Error("NewDispatcher accepted it")
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	d := &Dispatcher{o: Options{MinBackoff: time.Second, MaxBackoff: time.Minute, MaxRetryAfter: 5 * time.Minute}}
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{"first retry", 1, 0, 500 * time.Millisecond, time.Second},
		{"second", 2, 0, time.Second, 2 * time.Second},
		{"third", 3, 0, 2 * time.Second, 4 * time.Second},
		{"capped", 10, 0, 30 * time.Second, time.Minute},
		{"far past the cap", 200, 0, 30 * time.Second, time.Minute},
		{"Retry-After longer", 1, 10 * time.Second, 10 * time.Second, 10 * time.Second},
		{"Retry-After shorter", 3, time.Second, 2 * time.Second, 4 * time.Second},
		{"Retry-After capped", 1, time.Hour, 5 * time.Minute, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 100 {
				if got := d.backoff(tt.attempt, tt.retryAfter); got < tt.lo || got > tt.hi {
					t.Fatalf("backoff(%d, %s) = %s, want %s to %s", tt.attempt, tt.retryAfter, got, tt.lo, tt.hi)
				}
			}
		})
	}
}

func TestRecent(t *testing.T) {
	now := time.Now()
	r := newRecent(2, time.Minute)
	a, b, c := deliveryKey{"t", "a"}, deliveryKey{"t", "b"}, deliveryKey{"t", "c"}
	r.add(a, now)
	r.add(b, now.Add(time.Second))
	r.add(c, now.Add(2*time.Second)) // a, the oldest, is forgotten
	tests := []struct {
		name string
		key  deliveryKey
		at   time.Time
		want bool
	}{
		{"forgotten beyond the bound", a, now.Add(3 * time.Second), false},
		{"remembered", b, now.Add(3 * time.Second), true},
		{"expired", b, now.Add(time.Minute + time.Second), false},
		{"another target", deliveryKey{"u", "c"}, now, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.has(tt.key, tt.at); got != tt.want {
				t.Errorf("has = %v, want %v", got, tt.want)
			}
		})
	}
	r.prune(now.Add(time.Minute + 1500*time.Millisecond))
	if r.len() != 1 || !r.has(c, now.Add(time.Minute+1500*time.Millisecond)) {
		t.Errorf("after prune: %d remembered, want c alone", r.len())
	}
}
