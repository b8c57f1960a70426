package notify

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/coalmine/coalmine/policies"
)

// The results counted by coalmine_notifications_total.
const (
	resultDelivered = "delivered"  // the receiver answered 2xx
	resultFailed    = "failed"     // given up: refused, or out of attempts or time
	resultQueueFull = "queue_full" // not taken: the caller offers it again later
	resultShutdown  = "shutdown"   // the dispatcher stopped before it was delivered
)

// The results counted by coalmine_notification_attempts_total.
const (
	attemptSuccess   = "success"
	attemptRetryable = "retryable_error"
	attemptPermanent = "permanent_error"
)

// dispatchMetrics is what a Dispatcher exports about itself.
type dispatchMetrics struct {
	notifications *prometheus.CounterVec
	attempts      *prometheus.CounterVec
}

func newDispatchMetrics(reg prometheus.Registerer) *dispatchMetrics {
	f := promauto.With(reg)
	m := &dispatchMetrics{
		notifications: f.NewCounterVec(prometheus.CounterOpts{
			Name: "coalmine_notifications_total",
			Help: "Notices offered for sending, by notification type (webhook, slack) and result (delivered, failed, queue_full, shutdown).",
		}, []string{"target_type", "result"}),
		attempts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "coalmine_notification_attempts_total",
			Help: "Attempts to send a notice, by notification type (webhook, slack) and result (success, retryable_error, permanent_error).",
		}, []string{"target_type", "result"}),
	}
	// Every series exists from the start, so rate() and absent() see a 0 before the first notice.
	for _, t := range policies.NotificationTypes() {
		for _, r := range []string{resultDelivered, resultFailed, resultQueueFull, resultShutdown} {
			m.notifications.WithLabelValues(string(t), r)
		}
		for _, r := range []string{attemptSuccess, attemptRetryable, attemptPermanent} {
			m.attempts.WithLabelValues(string(t), r)
		}
	}
	return m
}
