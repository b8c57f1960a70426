package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/notify"
	"github.com/coalmine/coalmine/policies"
)

// outbox is the marks annotation in memory.
type outbox struct {
	mu  sync.Mutex
	raw string
}

func (o *outbox) Notified(context.Context) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.raw, nil
}

func (o *outbox) SetNotified(_ context.Context, change func(string) (string, error)) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	v, err := change(o.raw)
	if err == nil {
		o.raw = v
	}
	return err
}

type hits struct {
	mu  sync.Mutex
	ids []string
}

func (h *hits) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.ids = append(h.ids, r.Header.Get(notify.HeaderDelivery))
	h.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (h *hits) n() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ids)
}

func newTestNotifier(t *testing.T) (*Notifier, context.CancelFunc) {
	t.Helper()
	sender := notify.NewSender(notify.FileSecrets{}, "test")
	disp, err := notify.NewDispatcher(notify.Options{Send: sender.Send, Registerer: prometheus.NewRegistry(), Logger: zerolog.Nop(), MinBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = disp.Run(ctx) }()
	return NewNotifier(disp, zerolog.Nop()), cancel
}

// TestNotifierSendsEachNoticeOnce: notices are sent once, the marks on the cluster say so, and
// a restarted coalmine (a new Notifier, the same marks) sends only what was left.
func TestNotifierSendsEachNoticeOnce(t *testing.T) {
	h := &hits{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	p := &policies.Policy{Metadata: policies.Metadata{Name: "my-app"}}
	p.Spec.Target.Namespace, p.Spec.Target.App = "shop", "my-app"
	p.Spec.Notifications = []policies.Notification{{Name: "hooks", Type: policies.NotificationWebhook, URL: srv.URL}}
	start := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	rec := &analyzer.Progress{Policy: "my-app", Canary: "v2", Baseline: "v1", Started: start, Steps: 2, Phase: analyzer.PhaseProgressing}
	add := func(seq int, kind analyzer.NoticeKind) {
		id := "my-app.v2." + itoa(start.UnixNano()) + "." + itoa(int64(seq))
		rec.Notices = append(rec.Notices, analyzer.Notice{ID: id, Seq: seq, Kind: kind, Canary: rec.Canary, Step: 1, At: start})
		rec.Seq = seq
	}
	out := &outbox{}
	wait := func(n *Notifier) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}

	n, stop := newTestNotifier(t)
	add(1, analyzer.NoticeStarted)
	add(2, analyzer.NoticeStep)
	for range 3 { // every tick offers them again: still once each
		n.Offer(context.Background(), p, rec, out)
	}
	wait(n)
	if h.n() != 2 {
		t.Fatalf("%d deliveries %v, want 2", h.n(), h.ids)
	}
	if m := decodeMarks(out.raw); len(m.Sent["hooks"]) != 2 {
		t.Fatalf("marks %q, want the two notices", out.raw)
	}
	stop()

	// A restart: the new process reads the marks and sends only the notice after them.
	n, stop = newTestNotifier(t)
	defer stop()
	add(3, analyzer.NoticePromoted)
	n.Offer(context.Background(), p, rec, out)
	wait(n)
	if h.n() != 3 || h.ids[2] != "shop.my-app.v2."+itoa(start.UnixNano())+".3" {
		t.Fatalf("deliveries %v, want the third notice only, once", h.ids)
	}

	// The next canary's record carries this one's notices: none is sent again, its own are.
	next := &analyzer.Progress{Policy: "my-app", Canary: "v3", Baseline: "v2", Started: start.Add(time.Hour), Steps: 2, Phase: analyzer.PhaseProgressing}
	next.Notices = append(slices.Clone(rec.Notices), analyzer.Notice{ID: "my-app.v3.x.1", Seq: 1, Kind: analyzer.NoticeStarted, Canary: "v3", At: start})
	n.Offer(context.Background(), p, next, out)
	wait(n)
	if h.n() != 4 || h.ids[3] != "shop.my-app.v3.x.1" {
		t.Fatalf("deliveries %v, want v3's notice only", h.ids)
	}
	// Marks that do not decode are no marks (everything is sent again, rather than nothing).
	if m := decodeMarks("{oops"); len(m.Sent) != 0 {
		t.Fatalf("marks from garbage: %v", m.Sent)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
