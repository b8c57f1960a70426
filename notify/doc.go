// Package notify tells people about canaries: it sends notices to the webhooks and Slack-compatible
// incoming webhooks a policy names (policies.Notification), one attempt at a time (Sender), and in
// the background with retries (Dispatcher), never making the canary wait.
//
// # What is sent when
//
// A notice (Notice) has a kind:
//
//	started         a canary version started: its first step is in place
//	step            the canary advanced to its next step
//	approvalNeeded  the canary waits for someone to approve its next step
//	promoted        the canary was promoted
//	rolledBack      the canary was rolled back
//	inconclusive    the analysis ended without a decisive verdict
//	stopped         coalmine stopped acting on the canary (someone else changed the release)
//	command         someone gave coalmine a command about the canary (reason: which; by: who)
//
// A notification's events choose the kinds it is sent; with none, it is sent every kind.
//
// # Webhook
//
// A webhook notification POSTs a JSON document (Payload) with Content-Type application/json:
//
//	{
//	  "apiVersion": "coalmine.dev/v1alpha1",
//	  "kind": "CanaryNotification",
//	  "id": "5f0c2a7e-shop-cart-1.5.0-rolledBack",
//	  "event": "rolledBack",
//	  "namespace": "shop",
//	  "policy": "cart",
//	  "app": "cart",
//	  "baselineVersion": "1.4.0",
//	  "canaryVersion": "1.5.0",
//	  "step": 2,
//	  "steps": 3,
//	  "phase": "RolledBack",
//	  "reason": "error-rate: canary 4.1% vs baseline 0.3%",
//	  "at": "2026-03-14T15:09:26Z"
//	}
//
// The schema is versioned by apiVersion: fields may be added within coalmine.dev/v1alpha1, and
// a receiver should ignore those it does not know; a field renamed or removed is a new
// apiVersion. "by" is present for commands and manual actions only. "step" is 1-based, 0 when
// the canary has no step. Strings that come from the cluster are bounded: "reason" to 2000
// bytes, the others to 256, cut with "…".
//
// With every request come the headers
//
//	User-Agent: coalmine/<version>
//	X-Coalmine-Delivery: <id>       the same on every retry of the notice
//	X-Coalmine-Event: <event>
//	X-Coalmine-Timestamp: <unix seconds when sent>
//	X-Coalmine-Signature: sha256=<hex>   webhooks with a secret only
//
// # Verifying a webhook
//
// The signature is, as GitHub's and Stripe's webhooks do it, the hex HMAC-SHA256, keyed with
// the notification's secret, of the timestamp header's value, a ".", and the raw body:
//
//	sha256=hex(HMAC-SHA256(key, "<X-Coalmine-Timestamp>" + "." + body))
//
// A receiver recomputes it over the bytes it received (before decoding the JSON), compares in
// constant time, and refuses a timestamp more than a few minutes from its clock: the timestamp
// is signed, so a captured request cannot be replayed later, and within the tolerance the
// delivery ID already seen is dropped. In Go, Verify does all of it:
//
//	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
//	if err := notify.Verify(key, r.Header, body, time.Now(), 5*time.Minute); err != nil {
//		http.Error(w, "bad signature", http.StatusUnauthorized)
//		return
//	}
//
// The headers other than the signature are not signed; trust the id and event in the body. The
// secret is read when each notice is sent (a file, or a key of a Secret in the policy's
// namespace; a trailing newline is no part of it), so a rotated key is used from the next
// attempt: verify with the new key and, until the rotation is done, with the old one.
//
// # Slack
//
// A slack notification POSTs an incoming webhook's message: text (a one-line summary, shown in
// notifications and by Slack-compatible receivers without blocks) and blocks: a headline with an
// emoji per kind, the namespace, policy, versions and step as fields, then the reason. Strings
// from the cluster have Slack's &, < and > escaped, so a reason cannot mention @channel or make
// a link of its own. A Slack webhook's URL is its credential: name it through urlFrom, and no
// error or log repeats it.
//
// # Trust
//
// Notices are POSTed from where coalmine runs, to whatever URL a policy names, and a failed
// attempt's status goes to logs: whoever may write a policy may make coalmine POST a notice to
// a service inside the cluster. Secrets are read only from the policy's own namespace, and
// the files a notification reads (policies.Notification.Files) are the daemon's to bound as
// it bounds the Prometheus settings' files.
//
// # Delivery
//
// Each attempt has the notification's timeout (default 5s). A 2xx answer delivers the notice.
// 408, 429, 5xx and network errors are retried with exponential backoff and jitter (1s, 2s,
// 4s, ... up to 1m by default, at least the receiver's Retry-After, capped), up to a number of
// attempts and an age; any other answer, a redirect included (redirects are not followed), is
// not retried. A target's notices are sent in the order they were enqueued, one at a time; a
// slow or failing receiver holds up only its own.
//
// Delivery is at least once, with a stable delivery ID. The engine keeps undelivered notices in
// an outbox on the cluster and marks them delivered when done reports success, so a notice is
// sent once across restarts except when coalmine crashes between the receiver's 2xx and
// recording it: then the same notice, with the same ID, is sent again, for the receiver to
// drop. Within one process, a notice queued or delivered lately is not sent to the same target
// twice. A notice given up on (a permanent error, out of attempts) is reported to the caller,
// which decides whether to offer it again.
package notify
