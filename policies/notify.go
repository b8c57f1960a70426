package policies

import (
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/util/validation"
)

// NotificationType names where a notification is sent.
// +kubebuilder:validation:Enum=webhook;slack
type NotificationType string

// The notification types.
const (
	// NotificationWebhook POSTs a versioned JSON document (kind CanaryNotification), signed with
	// HMAC-SHA256 when a secret is set.
	NotificationWebhook NotificationType = "webhook"
	// NotificationSlack POSTs a message to a Slack incoming webhook, or to anything that takes
	// Slack's message format (Mattermost, Rocket.Chat, Discord's /slack endpoint).
	NotificationSlack NotificationType = "slack"
)

// NotificationTypes lists the notification types a policy may name.
func NotificationTypes() []NotificationType {
	return []NotificationType{NotificationWebhook, NotificationSlack}
}

// NotificationEvents lists the kinds of notice a notification's events may name: the canary
// started, advanced a step, needs an approval, was promoted, rolled back, ended inconclusive
// or was stopped, and a command someone gave was received.
func NotificationEvents() []string {
	return []string{"started", "step", "approvalNeeded", "promoted", "rolledBack", "inconclusive", "stopped", "command"}
}

// DefaultNotificationTimeout bounds one attempt to send a notice when a notification sets no
// timeout; MaxNotificationTimeout is the longest a notification may set.
const (
	DefaultNotificationTimeout = 5 * time.Second
	MaxNotificationTimeout     = time.Minute
)

// maxNotifications bounds a policy's notifications: each is a queue and a worker in the daemon.
const maxNotifications = 16

// Notification is one place coalmine tells people about a canary.
type Notification struct {
	// Name names the notification in logs and Events; unique in the policy.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9]([-_.a-zA-Z0-9]*[a-zA-Z0-9])?$`
	Name string `yaml:"name" json:"name"`
	// Type is webhook (coalmine's signed JSON) or slack (a Slack-compatible incoming webhook).
	// +required
	Type NotificationType `yaml:"type" json:"type"`
	// URL is where notices are POSTed, http or https. Set it or urlFrom, not both.
	// +kubebuilder:validation:Pattern=`^[hH][tT][tT][pP][sS]?://`
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// URLFrom reads the URL from a file or a Secret's key when sending, for URLs that are
	// themselves secrets (a Slack incoming webhook's is).
	URLFrom *SecretSource `yaml:"urlFrom,omitempty" json:"urlFrom,omitempty"`
	// Secret is the HMAC-SHA256 key a webhook's notices are signed with (the
	// X-Coalmine-Signature header). Webhook only; unset, notices are not signed.
	Secret *SecretSource `yaml:"secret,omitempty" json:"secret,omitempty"`
	// Events are the kinds of notice sent (started, step, approvalNeeded, promoted, rolledBack,
	// inconclusive, stopped, command); unset, every kind.
	// +listType=atomic
	// +kubebuilder:validation:items:Enum=started;step;approvalNeeded;promoted;rolledBack;inconclusive;stopped;command
	Events []string `yaml:"events,omitempty" json:"events,omitempty"`
	// Timeout bounds one attempt to send a notice (default 5s, at most 1m); failed attempts are
	// retried with backoff.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$`
	Timeout model.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// SecretSource is where a secret is read when a notice is sent, so a rotated secret is picked
// up: a file (a mounted Secret) or a key of a Secret in the policy's own namespace. Set one.
type SecretSource struct {
	// File is the path of a file holding the secret; a trailing newline is not part of it.
	File string `yaml:"file,omitempty" json:"file,omitempty"`
	// SecretKeyRef is a key of a Secret in the policy's own namespace.
	SecretKeyRef *SecretKeyRef `yaml:"secretKeyRef,omitempty" json:"secretKeyRef,omitempty"`
}

// SecretKeyRef names a key of a Secret in the policy's own namespace.
type SecretKeyRef struct {
	// Name is the Secret's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `yaml:"name" json:"name"`
	// Key is the key in the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `yaml:"key" json:"key"`
}

// Wants reports whether the notification sends notices of kind event: its events name it, or
// it names none.
func (n Notification) Wants(event string) bool {
	if len(n.Events) == 0 {
		return true
	}
	return slices.Contains(n.Events, event)
}

// AttemptTimeout is the timeout of one attempt in force: Timeout, or the default when unset.
func (n Notification) AttemptTimeout() time.Duration {
	if n.Timeout <= 0 {
		return DefaultNotificationTimeout
	}
	return time.Duration(n.Timeout)
}

// Files lists the files the notification reads (its URL's and its secret's), so a daemon can
// bound where they may be, as it does for the Prometheus settings' files.
func (n Notification) Files() []string {
	var out []string
	for _, s := range []*SecretSource{n.URLFrom, n.Secret} {
		if s != nil && s.File != "" {
			out = append(out, s.File)
		}
	}
	return out
}

// applyNotificationDefaults fills each notification's timeout when the document does not write
// one: a timeout written as 0 is refused, not replaced.
func (p *Policy) applyNotificationDefaults() {
	for i := range p.Spec.Notifications {
		n := &p.Spec.Notifications[i]
		if n.Timeout == 0 && !p.Origin.written(fmt.Sprintf("spec.notifications[%d].timeout", i)) {
			n.Timeout = model.Duration(DefaultNotificationTimeout)
		}
	}
}

// validateNotifications checks where notices go. Secrets are not read here: a daemon's files
// and Secrets are where it runs, not where the policy is validated.
func (p *Policy) validateNotifications(v *validator) {
	ns := p.Spec.Notifications
	if len(ns) > maxNotifications {
		v.errorf("spec.notifications", "must be at most %d notifications, got %d", maxNotifications, len(ns))
	}
	seen := map[string]int{}
	for i, n := range ns {
		f := fmt.Sprintf("spec.notifications[%d]", i)
		switch {
		case n.Name == "":
			v.errorf(f+".name", "is required")
		case !metricNameRE.MatchString(n.Name) || len(n.Name) > 63:
			v.errorf(f+".name", "must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, got %q", n.Name)
		default:
			if j, dup := seen[n.Name]; dup {
				v.errorf(f+".name", "%q is already the name of spec.notifications[%d]", n.Name, j)
			}
			seen[n.Name] = i
		}
		if !slices.Contains(NotificationTypes(), n.Type) {
			v.errorf(f+".type", "must be one of %v, got %q", NotificationTypes(), n.Type)
		}
		switch {
		case n.URL != "" && n.URLFrom != nil:
			v.errorf(f+".urlFrom", "cannot be used with url: set one")
		case n.URL == "" && n.URLFrom == nil:
			v.errorf(f, "needs url or urlFrom")
		case n.URL != "":
			// The URL is not repeated: a Slack webhook's URL is its secret.
			if u, err := url.Parse(n.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.errorf(f+".url", "must be an absolute http or https URL with a host")
			}
		default:
			validateSecretSource(v, f+".urlFrom", *n.URLFrom)
		}
		if n.Secret != nil {
			if n.Type == NotificationWebhook {
				validateSecretSource(v, f+".secret", *n.Secret)
			} else {
				v.errorf(f+".secret", "is only used by webhook notifications (a %s notification's URL is its secret)", n.Type)
			}
		}
		for j, e := range n.Events {
			if !slices.Contains(NotificationEvents(), e) {
				v.errorf(fmt.Sprintf("%s.events[%d]", f, j), "must be one of %v, got %q", NotificationEvents(), e)
			}
		}
		// A negative duration is refused as it is read.
		if n.Timeout <= 0 || time.Duration(n.Timeout) > MaxNotificationTimeout {
			v.errorf(f+".timeout", "must be > 0 and at most %s, got %s", model.Duration(MaxNotificationTimeout), n.Timeout)
		}
	}
}

func validateSecretSource(v *validator, f string, s SecretSource) {
	switch {
	case s.File != "" && s.SecretKeyRef != nil:
		v.errorf(f+".secretKeyRef", "cannot be used with file: set one")
	case s.File == "" && s.SecretKeyRef == nil:
		v.errorf(f, "needs file or secretKeyRef")
	case s.SecretKeyRef != nil:
		r := s.SecretKeyRef
		if r.Name == "" {
			v.errorf(f+".secretKeyRef.name", "is required")
		} else if len(validation.IsDNS1123Subdomain(r.Name)) > 0 {
			v.errorf(f+".secretKeyRef.name", "must be a Secret name (a DNS-1123 subdomain), got %q", r.Name)
		}
		if r.Key == "" {
			v.errorf(f+".secretKeyRef.key", "is required")
		} else if len(validation.IsConfigMapKey(r.Key)) > 0 {
			v.errorf(f+".secretKeyRef.key", "must be a Secret key (letters, digits, '-', '_' or '.'), got %q", r.Key)
		}
	}
}
