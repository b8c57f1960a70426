package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coalmine/coalmine/policies"
)

// Target is one notification of one policy: where its notices go.
type Target struct {
	// Namespace is the policy's namespace: the notification's Secrets are read there.
	Namespace string
	// Policy is the policy's name.
	Policy string
	// Notification is the policy's notification, as loaded (its timeout defaulted).
	Notification policies.Notification
}

// key identifies the target in a dispatcher: one queue, one order of delivery.
func (t Target) key() string {
	return t.Namespace + "/" + t.Policy + "/" + t.Notification.Name
}

// AttemptError is a failed attempt to send a notice. Sender.Send returns one for every
// failure; a dispatcher retries those that are not Permanent.
type AttemptError struct {
	// StatusCode is the receiver's HTTP status, 0 when there was no response.
	StatusCode int
	// Permanent is set when another attempt would fail the same way: the receiver refused the
	// notice (a 4xx other than 408 and 429), redirected it, or the notification cannot be sent
	// as it is set up.
	Permanent bool
	// RetryAfter is how long the receiver asked to be left alone (Retry-After), 0 when it did
	// not say.
	RetryAfter time.Duration
	Err        error
}

func (e *AttemptError) Error() string { return e.Err.Error() }

func (e *AttemptError) Unwrap() error { return e.Err }

// Bounds on a response: it is read (so the connection can be reused) up to maxResponse bytes,
// and at most maxSnippet of it are kept for the error.
const (
	maxResponse   = 64 << 10
	maxSnippet    = 256
	maxRetryAfter = time.Hour
)

// Sender sends one notice to one target, one attempt at a time. It is safe for concurrent use.
type Sender struct {
	client    *http.Client
	secrets   Secrets
	userAgent string
}

// NewSender returns a Sender that reads the notifications' secrets through secrets and calls
// itself coalmine/version. It follows no redirect: a receiver that moved is a notification to
// fix, and a notice (and its signature) must not go where the policy did not say.
func NewSender(secrets Secrets, version string) *Sender {
	return &Sender{
		client: &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		secrets:   secrets,
		userAgent: "coalmine/" + version,
	}
}

// Send makes one attempt to deliver n to t, within the notification's timeout: it reads the
// secrets, encodes and signs the body, POSTs it and reads the answer. A 2xx is success; every
// failure is an *AttemptError. Errors never hold the URL, which for Slack is a secret.
func (s *Sender) Send(ctx context.Context, t Target, n Notice) error {
	nt := t.Notification
	if strings.ContainsAny(n.ID+string(n.Kind), "\r\n\x00") {
		return &AttemptError{Permanent: true, Err: errors.New("notice id or kind holds a line break: it cannot be a header")}
	}
	ctx, cancel := context.WithTimeout(ctx, nt.AttemptTimeout())
	defer cancel()

	b, err := body(nt.Type, n)
	if err != nil {
		return &AttemptError{Permanent: true, Err: fmt.Errorf("encode notice: %w", err)}
	}
	target, err := s.url(ctx, t)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(b))
	if err != nil {
		return &AttemptError{Permanent: true, Err: errors.New("build request: the url cannot be used")}
	}
	now := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.userAgent)
	req.Header.Set(HeaderDelivery, n.ID)
	req.Header.Set(HeaderEvent, string(n.Kind))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now, 10))
	if nt.Type == policies.NotificationWebhook && nt.Secret != nil {
		key, err := s.secrets.Read(ctx, t.Namespace, *nt.Secret)
		if err != nil {
			return &AttemptError{Err: fmt.Errorf("signing key: %w", err)}
		}
		req.Header.Set(HeaderSignature, Sign(key, now, b))
	}

	resp, err := s.client.Do(req)
	if err != nil {
		return &AttemptError{Err: fmt.Errorf("post: %w", withoutURL(err))}
	}
	defer resp.Body.Close()
	snippet := drain(resp.Body)
	return classify(resp, snippet)
}

// url returns the notification's URL, read from its secret when it has one.
func (s *Sender) url(ctx context.Context, t Target) (string, error) {
	nt := t.Notification
	raw := nt.URL
	if nt.URLFrom != nil {
		b, err := s.secrets.Read(ctx, t.Namespace, *nt.URLFrom)
		if err != nil {
			return "", &AttemptError{Err: fmt.Errorf("url: %w", err)}
		}
		raw = strings.TrimSpace(string(b))
	}
	// The URL is never repeated in an error: a Slack webhook's URL is its secret.
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", &AttemptError{Permanent: true, Err: errors.New("url: not an absolute http or https URL with a host")}
	}
	return raw, nil
}

// withoutURL strips the request URL from an error of http.Client.Do, keeping its cause.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// drain reads the response body up to maxResponse bytes and returns its first bytes.
func drain(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, maxResponse))
	if len(b) > maxSnippet {
		b = b[:maxSnippet]
	}
	return strings.TrimSpace(string(b))
}

// classify turns a response into nil (2xx) or an *AttemptError that says whether to retry.
func classify(resp *http.Response, snippet string) error {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	msg := "receiver answered " + resp.Status
	if snippet != "" {
		msg += ": " + strconv.Quote(snippet)
	}
	e := &AttemptError{StatusCode: code, Err: errors.New(msg)}
	switch {
	case code >= 300 && code < 400:
		// Where it points is not said: the Location may hold a token as the URL does.
		e.Permanent = true
		e.Err = fmt.Errorf("receiver answered %s, a redirect, which is not followed: set the url it points to", resp.Status)
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	default:
		e.Permanent = true
	}
	return e
}

// retryAfter reads a Retry-After header, seconds or an HTTP date, as a wait of at most an
// hour; 0 when absent or unreadable.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(strings.TrimSpace(h), 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		d = maxRetryAfter
		if secs < int64(maxRetryAfter/time.Second) {
			d = time.Duration(secs) * time.Second
		}
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, maxRetryAfter))
}
