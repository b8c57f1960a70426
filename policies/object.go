// Markers for controller-gen, which generates the CanaryPolicy CustomResourceDefinition from the
// types of this package (make generate; deploy/crd/). Fields are optional unless marked
// +required: the loader fills the defaults.
//
// +groupName=coalmine.dev
// +versionName=v1alpha1
// +kubebuilder:validation:Optional

package policies

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The CanaryPolicy API resource, served by the CustomResourceDefinition in deploy/crd/.
const (
	Group    = "coalmine.dev"
	Version  = "v1alpha1"
	Resource = "canarypolicies"
)

// CanaryPolicy is a policy as a Kubernetes object: the shape of the CustomResourceDefinition,
// whose schema controller-gen generates from it. The spec is the Spec the file loader reads;
// the daemon turns an object into a Policy with LoadObject, so an object and a file are judged
// by one loader and one validator. Status is the daemon's, written on transitions.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=canarypolicies,singular=canarypolicy,scope=Namespaced,shortName=cpol,categories=coalmine
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Step",type=string,JSONPath=`.status.step`
// +kubebuilder:printcolumn:name="Verdict",type=string,JSONPath=`.status.verdict`
// +kubebuilder:printcolumn:name="Baseline",type=string,JSONPath=`.status.baselineVersion`,priority=1
// +kubebuilder:printcolumn:name="Canary",type=string,JSONPath=`.status.canaryVersion`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CanaryPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   Spec   `json:"spec"`
	Status Status `json:"status,omitzero"`
}

// CanaryPolicyList is a list of CanaryPolicy objects.
type CanaryPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CanaryPolicy `json:"items"`
}

// Phase is where a CanaryPolicy's release stands, as its status says.
// +kubebuilder:validation:Enum=Pending;Analyzing;Promoting;RollingBack;Promoted;RolledBack;Inconclusive;Stopped;Busy;Paused;WaitingForApproval;Invalid
type Phase string

// The phases. Promoted, RolledBack, Inconclusive and Stopped end a canary version; Invalid is a
// policy the daemon refused; Busy a canary another driver holds.
const (
	// PhasePending: the policy is in force and no canary of it is running (its canary
	// Deployment is at 0 replicas, or does not run the canary's version yet).
	PhasePending Phase = "Pending"
	// PhaseAnalyzing: the canary is at a step, judged every interval.
	PhaseAnalyzing    Phase = "Analyzing"
	PhasePromoting    Phase = "Promoting"
	PhaseRollingBack  Phase = "RollingBack"
	PhasePromoted     Phase = "Promoted"
	PhaseRolledBack   Phase = "RolledBack"
	PhaseInconclusive Phase = "Inconclusive"
	// PhaseStopped: someone else changed the release, an action did not complete in time, or
	// its record could not be trusted; coalmine no longer acts on this canary version.
	PhaseStopped Phase = "Stopped"
	// PhaseBusy: another driver (a gate, another install) holds the canary.
	PhaseBusy Phase = "Busy"
	// PhasePaused: a person paused the canary (coalmine pause); coalmine resume goes on.
	PhasePaused Phase = "Paused"
	// PhaseWaitingForApproval: the canary passed its step and waits for coalmine approve.
	PhaseWaitingForApproval Phase = "WaitingForApproval"
	// PhaseInvalid: the policy was refused; the message says why. A policy that was valid
	// before keeps running as it was.
	PhaseInvalid Phase = "Invalid"
)

// Status is what the daemon last saw of a CanaryPolicy's release. It is written when the
// phase, the step or the verdict changes, never on a quiet tick.
type Status struct {
	// ObservedGeneration is the metadata.generation of the spec this status is about.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Phase is where the release stands.
	Phase Phase `json:"phase,omitempty"`
	// Step is the current step of the canary, "2/3".
	Step string `json:"step,omitempty"`
	// CurrentStep (1-based) and Steps are Step as numbers.
	CurrentStep int32 `json:"currentStep,omitempty"`
	Steps       int32 `json:"steps,omitempty"`
	// Verdict is the last overall verdict: pass, fail or inconclusive.
	// +kubebuilder:validation:Enum=pass;fail;inconclusive
	Verdict string `json:"verdict,omitempty"`
	// Reason is a CamelCase word for the last transition; Message says it for people.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// BaselineVersion and CanaryVersion are the versions compared.
	BaselineVersion string `json:"baselineVersion,omitempty"`
	CanaryVersion   string `json:"canaryVersion,omitempty"`
	// LastTransitionTime is when the phase last changed.
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
	// Conditions: Accepted says whether the daemon runs the policy (False: Invalid).
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
