// Package actuator moves a release forward or takes it back on a Kubernetes cluster, with
// client-go: it scales Deployments, pauses, resumes and undoes rollouts, switches Service
// selectors, records progress on the Deployment in annotations, and emits Events. One file per
// strategy; a dry-run twin logs what it would do and writes nothing.
//
// Every write re-reads the object and retries on conflict, and every operation is idempotent:
// applying a step twice leaves the cluster as applying it once.
package actuator
