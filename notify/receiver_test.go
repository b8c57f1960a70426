package notify

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/coalmine/coalmine/policies"
)

// received is one request a test receiver got.
type received struct {
	header http.Header
	body   []byte
	at     time.Time
	status int
}

// receiver is a real HTTP server in the test process that records what it is sent and answers
// as respond says, a status and a body (200 when respond is nil). n is the 1-based number of
// the request. A hanging
// receiver holds every request until release is called, the client gives up or the test ends.
type receiver struct {
	*httptest.Server
	respond func(n int, w http.ResponseWriter, r *http.Request) (int, string)
	held    chan struct{} // nil: answer at once
	once    sync.Once

	mu   sync.Mutex
	reqs []received
	got  chan struct{} // a value per request, as it arrives
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request) (int, string)) *receiver {
	t.Helper()
	return startReceiver(t, &receiver{respond: respond})
}

func newHangingReceiver(t *testing.T) *receiver {
	t.Helper()
	return startReceiver(t, &receiver{held: make(chan struct{})})
}

func startReceiver(t *testing.T, rc *receiver) *receiver {
	rc.got = make(chan struct{}, 1000)
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(func() {
		rc.release() // Close waits for the handlers
		rc.Close()
	})
	return rc
}

// release lets a hanging receiver's requests, held and to come, be answered.
func (rc *receiver) release() {
	if rc.held != nil {
		rc.once.Do(func() { close(rc.held) })
	}
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, received{header: r.Header.Clone(), body: body, at: time.Now()})
	n := len(rc.reqs)
	rc.mu.Unlock()
	rc.got <- struct{}{}
	if rc.held != nil {
		select {
		case <-rc.held:
		case <-r.Context().Done():
		}
	}
	status, answer := http.StatusOK, ""
	if rc.respond != nil {
		status, answer = rc.respond(n, w, r)
	}
	rc.mu.Lock()
	rc.reqs[n-1].status = status
	rc.mu.Unlock()
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

// requests returns what the receiver got so far.
func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// wait waits for the next request to arrive.
func (rc *receiver) wait(t *testing.T) {
	t.Helper()
	select {
	case <-rc.got:
	case <-time.After(5 * time.Second):
		t.Fatal("no request arrived within 5s")
	}
}

// webhookTarget is a webhook notification of policy shop/cart to url, unsigned.
func webhookTarget(name, url string) Target {
	return Target{Namespace: "shop", Policy: "cart", Notification: policies.Notification{
		Name: name, Type: policies.NotificationWebhook, URL: url, Timeout: model.Duration(2 * time.Second),
	}}
}

// notice is a rolledBack notice with the given ID.
func notice(id string) Notice {
	return Notice{
		ID: id, Kind: KindRolledBack, Namespace: "shop", Policy: "cart", App: "cart",
		Baseline: "1.4.0", Canary: "1.5.0", Step: 2, Steps: 3, Phase: "RolledBack",
		Reason: "error-rate: canary 4.1% vs baseline 0.3%", At: time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC),
	}
}
