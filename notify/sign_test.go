package notify

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/coalmine/coalmine/policies"
)

// TestVerify signs a notice as the Sender sends it to a real receiver, then checks what the
// receiver got: it verifies as sent, and fails on any change, the wrong key or an old request.
func TestVerify(t *testing.T) {
	key := []byte("k3y-0f-the-receiver")
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, append(key, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, nil)
	target := webhookTarget("hook", rc.URL)
	target.Notification.Secret = &policies.SecretSource{File: keyFile}
	if err := NewSender(FileSecrets{}, "v1.2.3").Send(context.Background(), target, notice("n-1")); err != nil {
		t.Fatal(err)
	}
	got := rc.requests()[0]
	sent, err := strconv.ParseInt(got.header.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(sent, 0)

	tests := []struct {
		name      string
		key       []byte
		edit      func(h http.Header, body []byte) []byte
		now       time.Time
		tolerance time.Duration
		want      error
	}{
		{name: "as sent", key: key, now: now},
		{name: "received a little later", key: key, now: now.Add(4 * time.Minute)},
		{name: "changed body", key: key, now: now, want: ErrBadSignature,
			edit: func(_ http.Header, b []byte) []byte { return append(b[:len(b)-1:len(b)-1], ' ', '}') }},
		{name: "one byte of the body", key: key, now: now, want: ErrBadSignature,
			edit: func(_ http.Header, b []byte) []byte {
				c := append([]byte(nil), b...)
				c[10] ^= 1
				return c
			}},
		{name: "wrong key", key: []byte("another key"), now: now, want: ErrBadSignature},
		{name: "key with the file's newline", key: append(append([]byte(nil), key...), '\n'), now: now, want: ErrBadSignature},
		{name: "old timestamp", key: key, now: now.Add(6 * time.Minute), want: ErrStaleTimestamp},
		{name: "old within a longer tolerance", key: key, now: now.Add(6 * time.Minute), tolerance: 10 * time.Minute},
		{name: "timestamp from the future", key: key, now: now.Add(-6 * time.Minute), want: ErrStaleTimestamp},
		{name: "timestamp changed to look fresh", key: key, now: now.Add(time.Hour), want: ErrBadSignature,
			edit: func(h http.Header, b []byte) []byte {
				h.Set(HeaderTimestamp, strconv.FormatInt(sent+3600, 10))
				return b
			}},
		{name: "no signature", key: key, now: now, want: ErrNoSignature,
			edit: func(h http.Header, b []byte) []byte { h.Del(HeaderSignature); return b }},
		{name: "no timestamp", key: key, now: now, want: ErrBadTimestamp,
			edit: func(h http.Header, b []byte) []byte { h.Del(HeaderTimestamp); return b }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := got.header.Clone()
			b := append([]byte(nil), got.body...)
			if tt.edit != nil {
				b = tt.edit(h, b)
			}
			err := Verify(tt.key, h, b, tt.now, tt.tolerance)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestSignKnownAnswer pins the signed text: a receiver in another language computes
// HMAC-SHA256(key, timestamp + "." + body).
func TestSignKnownAnswer(t *testing.T) {
	// printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
	got := Sign([]byte("secret"), 1700000000, []byte(`{"a":1}`))
	want := "sha256=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}
