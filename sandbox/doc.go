// Package sandbox starts real components, for now a real Prometheus
// process, for coalmine's integration tests and demo.
//
// Nothing here fakes Prometheus: StartPrometheus runs the binary installed by
// scripts/install-prometheus.sh (Debian's prometheus package, 2.42) with a
// generated configuration that scrapes the targets listed in file_sd files,
// much as the kubernetes-pods job scrapes pods in a cluster.
//
// This is a test-support package: testing.go imports "testing" so that
// StartPrometheusT can tie a Prometheus to a test's lifetime. Production code
// must not import sandbox.
package sandbox
