package notify

import (
	"container/list"
	"time"
)

// deliveryKey is one notice to one target.
type deliveryKey struct {
	target string
	id     string
}

// recent remembers the notices delivered lately, at most max of them for at most ttl each,
// oldest forgotten first: a notice offered again after it was delivered is not sent again.
// Not safe for concurrent use.
type recent struct {
	max   int
	ttl   time.Duration
	order *list.List // of recentEntry, oldest at the front
	at    map[deliveryKey]*list.Element
}

type recentEntry struct {
	key deliveryKey
	at  time.Time
}

func newRecent(max int, ttl time.Duration) *recent {
	return &recent{max: max, ttl: ttl, order: list.New(), at: map[deliveryKey]*list.Element{}}
}

// add remembers k as delivered at now.
func (r *recent) add(k deliveryKey, now time.Time) {
	if e, ok := r.at[k]; ok {
		r.order.Remove(e)
	}
	r.at[k] = r.order.PushBack(recentEntry{key: k, at: now})
	for r.order.Len() > r.max {
		r.forget(r.order.Front())
	}
}

// has reports whether k was delivered within ttl of now.
func (r *recent) has(k deliveryKey, now time.Time) bool {
	e, ok := r.at[k]
	return ok && now.Sub(e.Value.(recentEntry).at) < r.ttl
}

// prune forgets what was delivered ttl or longer before now.
func (r *recent) prune(now time.Time) {
	for e := r.order.Front(); e != nil && now.Sub(e.Value.(recentEntry).at) >= r.ttl; e = r.order.Front() {
		r.forget(e)
	}
}

func (r *recent) len() int { return r.order.Len() }

func (r *recent) forget(e *list.Element) {
	delete(r.at, e.Value.(recentEntry).key)
	r.order.Remove(e)
}
