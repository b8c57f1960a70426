package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// The headers of a notice's request.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256, keyed with the webhook's secret, of
	// the timestamp header's value, ".", and the body. Sent by webhooks with a secret.
	HeaderSignature = "X-Coalmine-Signature"
	// HeaderTimestamp is when the request was signed, in Unix seconds.
	HeaderTimestamp = "X-Coalmine-Timestamp"
	// HeaderDelivery is the notice's ID, the same on every retry.
	HeaderDelivery = "X-Coalmine-Delivery"
	// HeaderEvent is the kind of notice.
	HeaderEvent = "X-Coalmine-Event"
)

// DefaultTolerance is how far from the receiver's clock Verify accepts a timestamp when it is
// given none.
const DefaultTolerance = 5 * time.Minute

// The ways a request fails verification.
var (
	ErrNoSignature    = errors.New("no signature")
	ErrBadSignature   = errors.New("signature does not match")
	ErrBadTimestamp   = errors.New("timestamp is not unix seconds")
	ErrStaleTimestamp = errors.New("timestamp outside the tolerance")
)

// Sign returns the value of the signature header of a request with body, sent at timestamp
// (Unix seconds), keyed with key.
func Sign(key []byte, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a webhook request coalmine signed: that the signature header is the
// HMAC-SHA256 of its timestamp and body keyed with key, and that the timestamp is within
// tolerance of now (DefaultTolerance when tolerance <= 0), either way. body must be the raw
// bytes received, before any decoding. The errors wrap ErrNoSignature, ErrBadSignature,
// ErrBadTimestamp or ErrStaleTimestamp.
//
// The timestamp is part of what is signed, so a captured request cannot be replayed once the
// tolerance has passed; within it, drop a delivery ID already seen. To rotate a key without
// losing notices, verify with the new key and then with the old until every sender has the
// new one.
func Verify(key []byte, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	sig := header.Get(HeaderSignature)
	if sig == "" {
		return fmt.Errorf("%s: %w", HeaderSignature, ErrNoSignature)
	}
	raw := header.Get(HeaderTimestamp)
	ts, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return fmt.Errorf("%s %q: %w", HeaderTimestamp, raw, ErrBadTimestamp)
	}
	if !hmac.Equal([]byte(sig), []byte(Sign(key, ts, body))) {
		return fmt.Errorf("%s: %w", HeaderSignature, ErrBadSignature)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%s %d is %s from now, more than %s: %w", HeaderTimestamp, ts, d.Round(time.Second), tolerance, ErrStaleTimestamp)
	}
	return nil
}
