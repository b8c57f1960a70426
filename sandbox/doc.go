// Package sandbox starts real components, a Prometheus and a Kubernetes
// control plane, for coalmine's integration tests and demo.
//
// Nothing here fakes Prometheus: StartPrometheus runs the binary installed by
// scripts/install-prometheus.sh (Debian's prometheus package, 2.42) with a
// generated configuration that scrapes the targets listed in file_sd files,
// much as the kubernetes-pods job scrapes pods in a cluster.
//
// StartVictoriaMetrics runs Debian's VictoriaMetrics (scripts/install-victoria-metrics.sh), a
// second engine that answers Prometheus's query API, fed through its import API. A Prometheus
// started with PrometheusOptions.BasicAuth asks for a password, as --web.config.file makes it.
//
// StartCluster runs a real control plane on loopback from the binaries that
// scripts/install-kube.sh builds and caches: etcd, kube-apiserver (RBAC,
// token authentication, TokenRequest), kube-controller-manager with the
// deployment, replicaset and garbage-collector controllers, kube-scheduler,
// and kwok, which plays the kubelet of one fake node, NodeName. Pods become
// Running and Ready within a second and get IPs from 127.0.1.0/24, so a test
// can listen on a pod's IP and port to serve its metrics. A pod labelled
// UnreadyLabel ("coalmine.dev/sandbox-unready": "true") runs but never
// becomes Ready, as if its readiness probe failed; removing the label makes
// it Ready. With ClusterOptions.WithPrometheus a Prometheus 3.7.3 discovers
// the pods through the API server and scrapes them as the usual
// kubernetes-pods job does.
//
// This is a test-support package: testing.go and cluster_testing.go import
// "testing" so that StartPrometheusT and StartClusterT can tie a component
// to a test's lifetime. Production code must not import sandbox.
package sandbox
