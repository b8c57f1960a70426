package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/notify"
	"github.com/coalmine/coalmine/policies"
)

// Marks is how far each notification receiver got through one canary attempt's notices: the
// highest notice number delivered (or given up on), by notification name. It is kept in the
// coalmine.dev/notified annotation, written only by the Notifier.
type Marks struct {
	Canary  string         `json:"canary"`
	Attempt time.Time      `json:"attempt"`
	Sent    map[string]int `json:"sent"`
}

// maxMarksBytes bounds the annotation read back.
const maxMarksBytes = 8 << 10

// decodeMarks reads the marks of rec's attempt; marks of another attempt, or none, start at 0.
func decodeMarks(raw string, rec *analyzer.Progress) Marks {
	m := Marks{Canary: rec.Canary, Attempt: rec.Started, Sent: map[string]int{}}
	var got Marks
	if raw == "" || len(raw) > maxMarksBytes || json.Unmarshal([]byte(raw), &got) != nil {
		return m
	}
	if got.Canary != rec.Canary || !got.Attempt.Equal(rec.Started) {
		return m
	}
	for k, v := range got.Sent {
		if v > 0 && v <= rec.Seq {
			m.Sent[k] = v
		}
	}
	return m
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
	marks       map[string]*Marks // by policy key
	outstanding int               // notices handed over and not yet done
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
// marks from the cluster the first time it sees a canary attempt.
func (n *Notifier) Offer(ctx context.Context, p *policies.Policy, rec *analyzer.Progress, out Outbox) {
	if n == nil || rec == nil || len(p.Spec.Notifications) == 0 || len(rec.Notices) == 0 {
		return
	}
	key := p.Spec.Target.Namespace + "/" + p.Metadata.Name
	n.mu.Lock()
	m := n.marks[key]
	n.mu.Unlock()
	if m == nil || m.Canary != rec.Canary || !m.Attempt.Equal(rec.Started) {
		raw, err := out.Notified(ctx)
		if err != nil {
			n.logger.Warn().Err(err).Str("policy", key).Msg("notification marks not read; notices wait")
			return
		}
		fresh := decodeMarks(raw, rec)
		m = &fresh
		n.mu.Lock()
		n.marks[key] = m
		n.mu.Unlock()
	}
	for _, to := range p.Spec.Notifications {
		n.mu.Lock()
		sent := m.Sent[to.Name]
		n.mu.Unlock()
		target := notify.Target{Namespace: p.Spec.Target.Namespace, Policy: p.Metadata.Name, Notification: to}
		for _, notice := range rec.Notices {
			if notice.Seq <= sent {
				continue
			}
			seq, name := notice.Seq, to.Name
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
					n.logger.Warn().Err(err).Str("policy", key).Str("notification", name).Int("seq", seq).Msg("notice given up")
				}
				n.delivered(key, m, name, seq, out)
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

// delivered moves a receiver's mark to seq, in memory and on the cluster.
func (n *Notifier) delivered(key string, m *Marks, name string, seq int, out Outbox) {
	n.mu.Lock()
	if seq <= m.Sent[name] {
		n.mu.Unlock()
		return
	}
	m.Sent[name] = seq
	write := Marks{Canary: m.Canary, Attempt: m.Attempt, Sent: map[string]int{}}
	for k, v := range m.Sent {
		write.Sent[k] = v
	}
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := out.SetNotified(ctx, func(old string) (string, error) {
		var cur Marks
		if json.Unmarshal([]byte(old), &cur) == nil && cur.Canary == write.Canary && cur.Attempt.Equal(write.Attempt) {
			for k, v := range cur.Sent {
				if v > write.Sent[k] {
					write.Sent[k] = v
				}
			}
		}
		b, err := json.Marshal(write)
		return string(b), err
	})
	if err != nil {
		// Sent, not recorded: a restart sends it again, with the same delivery ID.
		n.logger.Warn().Err(err).Str("policy", key).Str("notification", name).Int("seq", seq).Msg("notification mark not written")
	}
}

// noticeOf is the notify package's notice of one of the canary's.
func noticeOf(p *policies.Policy, rec *analyzer.Progress, x analyzer.Notice) notify.Notice {
	return notify.Notice{
		ID:        fmt.Sprintf("%s.%s.%s.%d.%d", p.Spec.Target.Namespace, p.Metadata.Name, rec.Canary, rec.Started.UnixNano(), x.Seq),
		Kind:      notify.Kind(x.Kind),
		Namespace: p.Spec.Target.Namespace, Policy: p.Metadata.Name, App: p.Spec.Target.App,
		Baseline: rec.Baseline, Canary: rec.Canary,
		Step: x.Step, Steps: rec.Steps, Phase: string(rec.Phase),
		Reason: x.Reason, By: x.By, At: x.At,
	}
}
