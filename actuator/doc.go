// Package actuator moves a release forward or takes it back on a Kubernetes cluster, with
// client-go: it scales Deployments, pauses, resumes and undoes rollouts, switches Service
// selectors, records progress on the Deployment in annotations, and emits Events. One file per
// strategy; a dry-run twin logs what it would do and writes nothing.
//
// Every write is a patch of only the fields coalmine owns (replicas, a rollout's pause, update
// strategy and hold, a Service's version selector, coalmine.dev/* annotations), under the field
// manager "coalmine", so that GitOps tools and autoscalers can own the rest. A write that
// depends on what it read carries the resourceVersion read and is made again from a fresh read
// on conflict. Every operation is idempotent: applying a step twice leaves the cluster as
// applying it once.
package actuator
