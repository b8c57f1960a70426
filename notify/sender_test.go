package notify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/coalmine/coalmine/policies"
)

// TestSendHeaders checks what each kind of notification sends besides the body.
func TestSendHeaders(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		typ    policies.NotificationType
		secret bool
		signed bool
	}{
		{name: "signed webhook", typ: policies.NotificationWebhook, secret: true, signed: true},
		{name: "webhook without a secret", typ: policies.NotificationWebhook},
		{name: "slack", typ: policies.NotificationSlack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			target := webhookTarget("hook", rc.URL)
			target.Notification.Type = tt.typ
			if tt.secret {
				target.Notification.Secret = &policies.SecretSource{File: keyFile}
			}
			before := time.Now().Unix()
			if err := NewSender(FileSecrets{}, "v1.2.3").Send(context.Background(), target, notice("n-1")); err != nil {
				t.Fatal(err)
			}
			h := rc.requests()[0].header
			for k, want := range map[string]string{
				"User-Agent":   "coalmine/v1.2.3",
				"Content-Type": "application/json",
				HeaderDelivery: "n-1",
				HeaderEvent:    "rolledBack",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if ts, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64); err != nil || ts < before || ts > time.Now().Unix() {
				t.Errorf("%s = %q, want the time of sending", HeaderTimestamp, h.Get(HeaderTimestamp))
			}
			if got := h.Get(HeaderSignature) != ""; got != tt.signed {
				t.Errorf("signed = %v, want %v", got, tt.signed)
			}
		})
	}
}

// TestSendClassifies checks which answers are success, which are retried and which are not.
func TestSendClassifies(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		wantErr    bool
		permanent  bool
		retryAfter time.Duration
	}{
		{name: "200", status: 200},
		{name: "204", status: 204},
		{name: "400 refused", status: 400, wantErr: true, permanent: true},
		{name: "401 refused", status: 401, wantErr: true, permanent: true},
		{name: "404 refused", status: 404, wantErr: true, permanent: true},
		{name: "408 retried", status: 408, wantErr: true},
		{name: "429 retried after its Retry-After", status: 429, header: map[string]string{"Retry-After": "7"}, wantErr: true, retryAfter: 7 * time.Second},
		{name: "429 with a huge Retry-After, capped", status: 429, header: map[string]string{"Retry-After": "99999999999"}, wantErr: true, retryAfter: time.Hour},
		{name: "500 retried", status: 500, wantErr: true},
		{name: "503 retried after its Retry-After", status: 503, header: map[string]string{"Retry-After": "2"}, wantErr: true, retryAfter: 2 * time.Second},
		{name: "302 same host, not followed", status: 302, header: map[string]string{"Location": "/elsewhere"}, wantErr: true, permanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) (int, string) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				return tt.status, "go away"
			})
			err := NewSender(FileSecrets{}, "test").Send(context.Background(), webhookTarget("hook", rc.URL), notice("n-1"))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Send = %v, want an error: %v", err, tt.wantErr)
			}
			if len(rc.requests()) != 1 {
				t.Errorf("%d requests, want 1 (redirects are not followed)", len(rc.requests()))
			}
			if err == nil {
				return
			}
			var ae *AttemptError
			if !errors.As(err, &ae) {
				t.Fatalf("Send = %v, not an *AttemptError", err)
			}
			if ae.StatusCode != tt.status || ae.Permanent != tt.permanent || ae.RetryAfter != tt.retryAfter {
				t.Errorf("got status %d permanent %v retryAfter %s, want %d %v %s", ae.StatusCode, ae.Permanent, ae.RetryAfter, tt.status, tt.permanent, tt.retryAfter)
			}
		})
	}
}

// TestSendRefusesRedirectToAnotherHost checks that a receiver cannot send a notice, and its
// signature, on to a host the policy did not name.
func TestSendRefusesRedirectToAnotherHost(t *testing.T) {
	other := newReceiver(t, nil)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) (int, string) {
		w.Header().Set("Location", other.URL+"/collect")
		return http.StatusTemporaryRedirect, ""
	})
	err := NewSender(FileSecrets{}, "test").Send(context.Background(), webhookTarget("hook", rc.URL), notice("n-1"))
	var ae *AttemptError
	if !errors.As(err, &ae) || !ae.Permanent {
		t.Fatalf("Send = %v, want a permanent error", err)
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("the other host got %d requests, want 0", n)
	}
	if strings.Contains(err.Error(), other.URL) {
		t.Errorf("error %q repeats where the redirect pointed", err)
	}
}

// TestSendKeepsTheURLSecret checks that no error repeats the URL: a Slack webhook's URL is
// its credential, and errors reach logs and Events.
func TestSendKeepsTheURLSecret(t *testing.T) {
	const token = "T0000/B0000/s3cr3t-t0k3n"
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	closed := newReceiver(t, nil)
	closed.Close()
	slow := newHangingReceiver(t)
	tests := []struct {
		name      string
		url       string
		urlFile   string
		permanent bool
	}{
		{name: "nothing listening", url: closed.URL + "/services/" + token},
		{name: "timeout", url: slow.URL + "/services/" + token},
		{name: "url from a file, not a URL", urlFile: write("bad-url", "hooks.slack.com/services/"+token+"\n"), permanent: true},
		{name: "url from a file, a bad scheme", urlFile: write("ftp-url", "ftp://hooks.slack.com/services/"+token), permanent: true},
		{name: "url from a missing file", urlFile: filepath.Join(dir, "missing")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := webhookTarget("team", tt.url)
			target.Notification.Type = policies.NotificationSlack
			target.Notification.Timeout = model.Duration(50 * time.Millisecond)
			if tt.urlFile != "" {
				target.Notification.URL = ""
				target.Notification.URLFrom = &policies.SecretSource{File: tt.urlFile}
			}
			start := time.Now()
			err := NewSender(FileSecrets{}, "test").Send(context.Background(), target, notice("n-1"))
			var ae *AttemptError
			if !errors.As(err, &ae) || ae.Permanent != tt.permanent {
				t.Fatalf("Send = %v, want an *AttemptError, permanent %v", err, tt.permanent)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q holds the URL's token", err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Send took %s, past its 50ms timeout", took)
			}
		})
	}
}

// TestSendBodies checks what each type of notification POSTs.
func TestSendBodies(t *testing.T) {
	rc := newReceiver(t, nil)
	s := NewSender(FileSecrets{}, "test")
	hook := webhookTarget("hook", rc.URL)
	slack := webhookTarget("team", rc.URL)
	slack.Notification.Type = policies.NotificationSlack
	for _, target := range []Target{hook, slack} {
		if err := s.Send(context.Background(), target, notice("n-1")); err != nil {
			t.Fatal(err)
		}
	}
	reqs := rc.requests()
	var p Payload
	if err := json.Unmarshal(reqs[0].body, &p); err != nil {
		t.Fatal(err)
	}
	if p.APIVersion != PayloadAPIVersion || p.Kind != PayloadKind || p.ID != "n-1" || p.Event != KindRolledBack || p.CanaryVersion != "1.5.0" {
		t.Errorf("webhook payload %+v", p)
	}
	var m slackMessage
	if err := json.Unmarshal(reqs[1].body, &m); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, "Canary rolled back") || len(m.Blocks) == 0 {
		t.Errorf("slack message %+v", m)
	}
}

// TestSendRefusesHeaderInjection checks a notice whose ID would split a header is refused
// for good rather than retried.
func TestSendRefusesHeaderInjection(t *testing.T) {
	rc := newReceiver(t, nil)
	err := NewSender(FileSecrets{}, "test").Send(context.Background(), webhookTarget("hook", rc.URL), notice("n-1\r\nX-Evil: 1"))
	var ae *AttemptError
	if !errors.As(err, &ae) || !ae.Permanent {
		t.Errorf("Send = %v, want a permanent error", err)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("%d requests, want 0", n)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	tests := []struct {
		name, header string
		want         time.Duration
	}{
		{"absent", "", 0},
		{"seconds", "120", 2 * time.Minute},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"garbage", "soon", 0},
		{"an HTTP date", now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{"an HTTP date past", now.Add(-30 * time.Second).Format(http.TimeFormat), 0},
		{"more than an hour", "86400", time.Hour},
		{"more than int64 seconds", "99999999999999999999", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryAfter(tt.header, now); got != tt.want {
				t.Errorf("retryAfter(%q) = %s, want %s", tt.header, got, tt.want)
			}
		})
	}
}
