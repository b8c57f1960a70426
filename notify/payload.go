package notify

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/coalmine/coalmine/policies"
)

// The apiVersion and kind of a webhook's JSON body. A change that removes or renames a field
// is a new apiVersion.
const (
	PayloadAPIVersion = "coalmine.dev/v1alpha1"
	PayloadKind       = "CanaryNotification"
)

// Payload is the JSON body a webhook notification POSTs; the package documentation shows one.
// Receivers written in Go may decode into it.
type Payload struct {
	// APIVersion and Kind are PayloadAPIVersion and PayloadKind.
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// ID is the delivery ID, the same on every retry: drop a notice whose ID you have seen.
	ID string `json:"id"`
	// Event is the kind of notice: started, step, approvalNeeded, promoted, rolledBack,
	// inconclusive, stopped or command.
	Event Kind `json:"event"`
	// Namespace, Policy and App name the release.
	Namespace string `json:"namespace"`
	Policy    string `json:"policy"`
	App       string `json:"app"`
	// BaselineVersion and CanaryVersion are the versions compared.
	BaselineVersion string `json:"baselineVersion"`
	CanaryVersion   string `json:"canaryVersion"`
	// Step (1-based) and Steps are where the canary stands; 0 when it has no step.
	Step  int `json:"step"`
	Steps int `json:"steps"`
	// Phase is the CanaryPolicy's phase (Analyzing, Promoted, RolledBack, ...).
	Phase string `json:"phase"`
	// Reason says why, for people (at most 2000 bytes); for a command, the command.
	Reason string `json:"reason"`
	// By is who asked, for commands and manual actions; absent otherwise.
	By string `json:"by,omitempty"`
	// At is when it happened, in UTC.
	At time.Time `json:"at"`
}

// NewPayload returns the webhook body of a notice, its strings bounded.
func NewPayload(n Notice) Payload {
	n = n.bounded()
	return Payload{
		APIVersion:      PayloadAPIVersion,
		Kind:            PayloadKind,
		ID:              n.ID,
		Event:           n.Kind,
		Namespace:       n.Namespace,
		Policy:          n.Policy,
		App:             n.App,
		BaselineVersion: n.Baseline,
		CanaryVersion:   n.Canary,
		Step:            n.Step,
		Steps:           n.Steps,
		Phase:           n.Phase,
		Reason:          n.Reason,
		By:              n.By,
		At:              n.At.UTC(),
	}
}

// body encodes a notice as a notification of type t sends it.
func body(t policies.NotificationType, n Notice) ([]byte, error) {
	switch t {
	case policies.NotificationWebhook:
		return json.Marshal(NewPayload(n))
	case policies.NotificationSlack:
		return json.Marshal(newSlackMessage(n))
	}
	return nil, fmt.Errorf("unknown notification type %q", t)
}
