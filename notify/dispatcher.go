package notify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// SendFunc makes one attempt to deliver a notice to a target; Sender.Send is one.
type SendFunc func(ctx context.Context, t Target, n Notice) error

// ErrClosed is the error a notice's done gets when the dispatcher stopped before delivering it.
var ErrClosed = errors.New("notify: dispatcher closed")

// Options configure a Dispatcher. A zero duration or count takes its default.
type Options struct {
	// Send makes one attempt; required.
	Send SendFunc
	// Registerer takes the dispatcher's metrics; required (prometheus.NewRegistry() in tests).
	Registerer prometheus.Registerer
	// Logger logs notices given up on (warn) and retried (debug); the zero Logger logs nothing.
	Logger zerolog.Logger

	// QueueSize bounds the notices waiting per target (default 64).
	QueueSize int
	// MaxAttempts bounds the attempts per notice (default 10).
	MaxAttempts int
	// MaxAge is how long after it was enqueued a notice is given up on rather than retried
	// again (default 15m); its first attempt is always made.
	MaxAge time.Duration
	// MinBackoff and MaxBackoff bound the wait before a retry (defaults 1s and 1m): it doubles
	// from MinBackoff each attempt up to MaxBackoff, half of it random, so receivers that
	// failed together are not retried in step.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps how long a receiver's Retry-After may hold its notices (default 5m).
	MaxRetryAfter time.Duration
	// Remember is how many delivered notices are remembered (default 4096) and RememberFor for
	// how long (default 1h): one offered again within that is not sent again.
	Remember    int
	RememberFor time.Duration
	// IdleTimeout is how long a target's worker waits for work before it exits (default 1m).
	IdleTimeout time.Duration
	// PruneInterval is how often Run forgets delivered notices older than RememberFor
	// (default 1m).
	PruneInterval time.Duration
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 64
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.Remember <= 0 {
		o.Remember = 4096
	}
	def(&o.MaxAge, 15*time.Minute)
	def(&o.MinBackoff, time.Second)
	def(&o.MaxBackoff, time.Minute)
	def(&o.MaxRetryAfter, 5*time.Minute)
	def(&o.RememberFor, time.Hour)
	def(&o.IdleTimeout, time.Minute)
	def(&o.PruneInterval, time.Minute)
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	return o
}

// Dispatcher delivers notices in the background and never makes its caller wait: each target
// has a bounded queue and a worker that sends its notices in the order they were enqueued,
// retrying each with backoff before the next. A slow or failing receiver holds up only its
// own notices.
type Dispatcher struct {
	o       Options
	metrics *dispatchMetrics

	mu      sync.Mutex
	queues  map[string]*queue
	pending map[deliveryKey]*item // queued or being sent
	recent  *recent
	ctx     context.Context // Run's; nil before it starts
	cancel  context.CancelFunc
	closed  bool
	// workers counts the goroutines the dispatcher started (workers and done callbacks).
	// Add is called with mu held and closed false, so no Add follows shutdown's Wait.
	workers sync.WaitGroup
	stopped chan struct{} // closed when Run returns
}

type queue struct {
	key   string
	items chan *item
}

// item is one notice to one target, and everyone waiting to hear how it went.
type item struct {
	key      deliveryKey
	target   Target
	notice   Notice
	enqueued time.Time
	dones    []func(error) // guarded by Dispatcher.mu
}

// NewDispatcher returns a dispatcher. Notices may be enqueued at once; they are sent once Run
// has started.
func NewDispatcher(o Options) (*Dispatcher, error) {
	if o.Send == nil {
		return nil, errors.New("notify: Options.Send is required")
	}
	if o.Registerer == nil {
		return nil, errors.New("notify: Options.Registerer is required")
	}
	o = o.withDefaults()
	return &Dispatcher{
		o:       o,
		metrics: newDispatchMetrics(o.Registerer),
		queues:  map[string]*queue{},
		pending: map[deliveryKey]*item{},
		recent:  newRecent(o.Remember, o.RememberFor),
		stopped: make(chan struct{}),
	}, nil
}

// Enqueue offers a notice for a target and returns at once. It returns false when the target's
// queue is full or the dispatcher is closed (or the notice has no ID): the notice was not
// taken, and the caller keeps it and offers it again later. Otherwise done is called once
// (from another goroutine, never within Enqueue; it must not block) with nil when the notice
// was delivered, or with the last error when it was given up on or the dispatcher stopped
// (ErrClosed). done may be nil.
//
// A notice the target's events do not name is not sent: done gets nil. A notice already
// queued or being sent to the target is not queued again: done waits for that delivery. One
// delivered to the target recently is not sent again: done gets nil.
func (d *Dispatcher) Enqueue(t Target, n Notice, done func(error)) bool {
	if done == nil {
		done = func(error) {}
	}
	typ := string(t.Notification.Type)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	if n.ID == "" {
		d.o.Logger.Error().Str("namespace", t.Namespace).Str("policy", t.Policy).Str("kind", string(n.Kind)).Msg("notice without an id refused")
		return false
	}
	if !t.Notification.Wants(string(n.Kind)) {
		d.call(done, nil)
		return true
	}
	k := deliveryKey{target: t.key(), id: n.ID}
	if it := d.pending[k]; it != nil {
		it.dones = append(it.dones, done)
		return true
	}
	if d.recent.has(k, time.Now()) {
		d.call(done, nil)
		return true
	}
	q := d.queues[k.target]
	if q == nil {
		q = &queue{key: k.target, items: make(chan *item, d.o.QueueSize)}
		d.queues[k.target] = q
		if d.ctx != nil {
			d.start(q)
		}
	}
	it := &item{key: k, target: t, notice: n, enqueued: time.Now(), dones: []func(error){done}}
	select {
	case q.items <- it:
	default:
		d.metrics.notifications.WithLabelValues(typ, resultQueueFull).Inc()
		return false
	}
	d.pending[k] = it
	return true
}

// call runs done(err) on its own goroutine. d.mu must be held, and closed false.
func (d *Dispatcher) call(done func(error), err error) {
	d.workers.Add(1)
	go func() {
		defer d.workers.Done()
		done(err)
	}()
}

// start starts q's worker. d.mu must be held, closed false and d.ctx set.
func (d *Dispatcher) start(q *queue) {
	ctx := d.ctx
	d.workers.Add(1)
	go func() {
		defer d.workers.Done()
		d.work(ctx, q)
	}()
}

// Run sends the enqueued notices until ctx is cancelled or Close is called, then stops: the
// attempts in flight are cancelled and every notice not delivered gets ErrClosed. It returns
// once every worker has stopped; it can be called once.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.ctx != nil || d.closed {
		d.mu.Unlock()
		return errors.New("notify: dispatcher already running or closed")
	}
	d.ctx, d.cancel = context.WithCancel(ctx)
	ctx = d.ctx
	for _, q := range d.queues {
		d.start(q)
	}
	d.mu.Unlock()
	defer close(d.stopped)

	ticker := time.NewTicker(d.o.PruneInterval)
	defer ticker.Stop()
	for {
		select {
		case now := <-ticker.C:
			d.mu.Lock()
			d.recent.prune(now)
			d.mu.Unlock()
		case <-ctx.Done():
			d.shutdown()
			return nil
		}
	}
}

// Close stops the dispatcher, as cancelling Run's context does, and waits until it has
// stopped. A dispatcher never run is closed at once, its queued notices given ErrClosed.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	cancel := d.cancel
	d.mu.Unlock()
	if cancel == nil {
		d.shutdown()
		return
	}
	cancel()
	<-d.stopped
}

// shutdown refuses new notices, waits for the workers (whose context is done) and gives what
// is left in the queues ErrClosed.
func (d *Dispatcher) shutdown() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.workers.Wait()
	d.mu.Lock()
	var left []*item
	for _, q := range d.queues {
		for len(q.items) > 0 {
			left = append(left, <-q.items)
		}
	}
	clear(d.queues)
	d.mu.Unlock()
	for _, it := range left {
		d.finish(it, ErrClosed)
	}
}

// work sends q's notices one at a time, and exits when ctx is done or it has been idle for
// IdleTimeout with nothing queued (the next Enqueue starts another).
func (d *Dispatcher) work(ctx context.Context, q *queue) {
	idle := time.NewTimer(d.o.IdleTimeout)
	defer idle.Stop()
	for {
		select {
		case it := <-q.items:
			d.deliver(ctx, it)
			idle.Reset(d.o.IdleTimeout)
		case <-idle.C:
			d.mu.Lock()
			if len(q.items) == 0 {
				// Enqueue pushes with mu held: nothing can arrive between this check and the delete.
				delete(d.queues, q.key)
				d.mu.Unlock()
				return
			}
			d.mu.Unlock()
			idle.Reset(d.o.IdleTimeout)
		case <-ctx.Done():
			return
		}
	}
}

// deliver attempts a notice until it is delivered, refused, out of attempts or time, or the
// dispatcher stops, then tells those waiting.
func (d *Dispatcher) deliver(ctx context.Context, it *item) {
	typ := string(it.target.Notification.Type)
	log := d.o.Logger.With().
		Str("namespace", it.target.Namespace).Str("policy", it.target.Policy).
		Str("notification", it.target.Notification.Name).Str("notice_id", it.notice.ID).
		Str("kind", string(it.notice.Kind)).Logger()
	for attempt := 1; ; attempt++ {
		err := d.o.Send(ctx, it.target, it.notice)
		if err == nil {
			d.metrics.attempts.WithLabelValues(typ, attemptSuccess).Inc()
			log.Debug().Int("attempt", attempt).Msg("notice delivered")
			d.finish(it, nil)
			return
		}
		if ctx.Err() != nil {
			d.finish(it, ErrClosed)
			return
		}
		var ae *AttemptError
		if errors.As(err, &ae) && ae.Permanent {
			d.metrics.attempts.WithLabelValues(typ, attemptPermanent).Inc()
			log.Warn().Err(err).Int("attempt", attempt).Msg("notice refused, not retried")
			d.finish(it, err)
			return
		}
		d.metrics.attempts.WithLabelValues(typ, attemptRetryable).Inc()
		var after time.Duration
		if ae != nil {
			after = ae.RetryAfter
		}
		wait := d.backoff(attempt, after)
		if attempt >= d.o.MaxAttempts || time.Since(it.enqueued)+wait > d.o.MaxAge {
			err = fmt.Errorf("gave up after %d attempts in %s: %w", attempt, time.Since(it.enqueued).Round(time.Millisecond), err)
			log.Warn().Err(err).Int("attempt", attempt).Msg("notice not delivered, given up")
			d.finish(it, err)
			return
		}
		log.Debug().Err(err).Int("attempt", attempt).Dur("retry_in", wait).Msg("notice not delivered, retrying")
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			d.finish(it, ErrClosed)
			return
		}
	}
}

// backoff is the wait before the attempt after attempt: MinBackoff doubled per attempt up to
// MaxBackoff, its second half random; at least the receiver's Retry-After, capped.
func (d *Dispatcher) backoff(attempt int, retryAfter time.Duration) time.Duration {
	b := d.o.MaxBackoff
	if shift := attempt - 1; shift < 32 {
		if x := d.o.MinBackoff << shift; x > 0 && x < b {
			b = x
		}
	}
	wait := b/2 + rand.N(b/2+1)
	return max(wait, min(retryAfter, d.o.MaxRetryAfter))
}

// finish records how a notice went and tells everyone waiting for it.
func (d *Dispatcher) finish(it *item, err error) {
	d.mu.Lock()
	delete(d.pending, it.key)
	if err == nil {
		d.recent.add(it.key, time.Now())
	}
	dones := it.dones
	it.dones = nil
	d.mu.Unlock()

	result := resultDelivered
	switch {
	case errors.Is(err, ErrClosed):
		result = resultShutdown
	case err != nil:
		result = resultFailed
	}
	d.metrics.notifications.WithLabelValues(string(it.target.Notification.Type), result).Inc()
	for _, done := range dones {
		done(err)
	}
}
