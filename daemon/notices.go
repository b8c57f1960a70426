package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/notify"
	"github.com/coalmine/coalmine/policies"
)

// Marks are the notices each notification receiver has had (delivered, or given up on): their
// IDs, by notification name, the newest last and at most maxMarks each. They are kept in the
// coalmine.dev/notified annotation, written only by the Notifier.
type Marks struct {
	Sent map[string][]string `json:"sent"`
}

// maxMarks is how many notices a receiver's marks remember: more than an outbox holds.
const maxMarks = 64

// maxMarksBytes bounds the annotation read back.
const maxMarksBytes = 64 << 10

// decodeMarks reads the marks; none when raw does not decode.
func decodeMarks(raw string) Marks {
	m := Marks{Sent: map[string][]string{}}
	var got Marks
	if raw == "" || len(raw) > maxMarksBytes || json.Unmarshal([]byte(raw), &got) != nil {
		return m
	}
	for k, ids := range got.Sent {
		m.Sent[k] = trimMarks(ids)
	}
	return m
}

func trimMarks(ids []string) []string {
	if len(ids) > maxMarks {
		ids = ids[len(ids)-maxMarks:]
	}
	return slices.Clone(ids)
}

// Outbox is where a canary's notices come from and its marks go: the actuator's Release.
type Outbox interface {
	Notified(ctx context.Context) (string, error)
	SetNotified(ctx context.Context, change func(old string) (string, error)) error
}

// Notifier sends each canary's notices (the outbox in its record) to the policy's receivers,
// never holding up the canary: Offer hands what a receiver has not had to the dispatcher and
// returns. Each delivery moves the receiver's mark on the cluster, so that a restarted coalmine
// sends what is left and nothing twice, except a notice delivered just before a crash, which is
// sent again with the same delivery ID for the receiver to drop.
type Notifier struct {
	disp   *notify.Dispatcher
	logger zerolog.Logger

	mu          sync.Mutex
	marks       map[string]*Marks // by policy key, as read from the cluster and since sent
	outstanding int               // notices handed over and not yet done
}

// Reset forgets the marks read: a replica that leads again reads them from the cluster, where
// the last leader left them.
func (n *Notifier) Reset() {
	n.mu.Lock()
	n.marks = map[string]*Marks{}
	n.mu.Unlock()
}

// Wait waits until every notice handed over is delivered or given up, or ctx is done: a gate
// that ends tells people how before it exits.
func (n *Notifier) Wait(ctx context.Context) error {
	if n == nil {
		return nil
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		n.mu.Lock()
		left := n.outstanding
		n.mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d notices not delivered: %w", left, ctx.Err())
		case <-t.C:
		}
	}
}

// NewNotifier sends through disp.
func NewNotifier(disp *notify.Dispatcher, logger zerolog.Logger) *Notifier {
	return &Notifier{disp: disp, logger: logger, marks: map[string]*Marks{}}
}

// Offer hands the notices of rec that p's receivers have not had to the dispatcher. It reads the
// marks from the cluster the first time it sees the policy.
func (n *Notifier) Offer(ctx context.Context, p *policies.Policy, rec *analyzer.Progress, out Outbox) {
	if n == nil || rec == nil || len(p.Spec.Notifications) == 0 || len(rec.Notices) == 0 {
		return
	}
	key := p.Spec.Target.Namespace + "/" + p.Metadata.Name
	n.mu.Lock()
	m := n.marks[key]
	n.mu.Unlock()
	if m == nil {
		raw, err := out.Notified(ctx)
		if err != nil {
			n.logger.Warn().Err(err).Str("policy", key).Msg("notification marks not read; notices wait")
			return
		}
		fresh := decodeMarks(raw)
		m = &fresh
		n.mu.Lock()
		n.marks[key] = m
		n.mu.Unlock()
	}
	for _, to := range p.Spec.Notifications {
		n.mu.Lock()
		had := slices.Clone(m.Sent[to.Name])
		n.mu.Unlock()
		target := notify.Target{Namespace: p.Spec.Target.Namespace, Policy: p.Metadata.Name, Notification: to}
		for _, notice := range rec.Notices {
			if slices.Contains(had, notice.ID) {
				continue
			}
			n.logger.Debug().Str("policy", key).Str("notification", to.Name).Str("notice", notice.ID).Msg("notice offered")
			id, name := notice.ID, to.Name
			done := func(err error) {
				defer func() {
					n.mu.Lock()
					n.outstanding--
					n.mu.Unlock()
				}()
				if errors.Is(err, notify.ErrClosed) {
					return // coalmine is stopping: the next one sends it
				}
				if err != nil {
					n.logger.Warn().Err(err).Str("policy", key).Str("notification", name).Str("notice", id).Msg("notice given up")
				}
				n.delivered(key, m, name, id, out)
			}
			n.mu.Lock()
			n.outstanding++
			n.mu.Unlock()
			if !n.disp.Enqueue(target, noticeOf(p, rec, notice), done) {
				n.mu.Lock()
				n.outstanding--
				n.mu.Unlock()
				break // the receiver's queue is full: the rest is offered again next tick
			}
		}
	}
}

// delivered marks a notice as had by a receiver, in memory and on the cluster.
func (n *Notifier) delivered(key string, m *Marks, name, id string, out Outbox) {
	n.mu.Lock()
	if slices.Contains(m.Sent[name], id) {
		n.mu.Unlock()
		return
	}
	m.Sent[name] = trimMarks(append(m.Sent[name], id))
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := out.SetNotified(ctx, func(old string) (string, error) {
		cur := decodeMarks(old)
		n.mu.Lock()
		for k, ids := range m.Sent {
			for _, x := range ids {
				if !slices.Contains(cur.Sent[k], x) {
					cur.Sent[k] = append(cur.Sent[k], x)
				}
			}
			cur.Sent[k] = trimMarks(cur.Sent[k])
		}
		n.mu.Unlock()
		b, err := json.Marshal(cur)
		return string(b), err
	})
	if err != nil {
		// Sent, not recorded: a restart sends it again, with the same delivery ID.
		n.logger.Warn().Err(err).Str("policy", key).Str("notification", name).Str("notice", id).Msg("notification mark not written")
	}
}

// noticeOf is the notify package's notice of one of the canary's.
func noticeOf(p *policies.Policy, rec *analyzer.Progress, x analyzer.Notice) notify.Notice {
	phase, steps := string(rec.Phase), rec.Steps
	if x.Canary != rec.Canary {
		phase = "" // an earlier canary's, carried: where it ended is in the notice's kind
	}
	return notify.Notice{
		ID:        p.Spec.Target.Namespace + "." + x.ID,
		Kind:      notify.Kind(x.Kind),
		Namespace: p.Spec.Target.Namespace, Policy: p.Metadata.Name, App: p.Spec.Target.App,
		Baseline: x.Baseline, Canary: x.Canary,
		Step: x.Step, Steps: steps, Phase: phase,
		Reason: x.Reason, By: x.By, At: x.At,
	}
}
