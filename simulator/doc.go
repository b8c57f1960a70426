// Package simulator plays the seed app (containersol/k8s-deployment-strategies) for tests and demos.
//
// It runs simulated pods in-process, each with its own /metrics listener that exposes the seed
// app's http_requests_total counter and request_duration_seconds histogram, and advances their
// counters from a Scenario (Poisson arrivals, an error share, a log-normal latency). No real HTTP
// traffic is generated: only the counters a scrape would see.
//
// # Static mode
//
// By default the pods are those the scenario counts (a version's pods), each listening on its own
// port of Options.Host, and a Prometheus file_sd targets file lists them with the labels a
// Kubernetes scrape would give, so that a real Prometheus scrapes them as it would in a cluster.
//
// # Cluster mode
//
// With Options.Kube set, the pods come from a Kubernetes API server, as kwok makes them Ready,
// and a Prometheus with kubernetes_sd_configs discovers and scrapes them. The simulator watches
// the Pods and Services of the namespaces of the scenario's apps and plays every pod that
//   - is Ready and has a pod IP,
//   - is annotated prometheus.io/scrape: "true" and prometheus.io/port,
//   - is labelled app with the name of a scenario app of its namespace, and version with the
//     name of one of that app's versions,
//
// by listening on podIP:port and serving the metrics on prometheus.io/path (default /metrics).
// Every 127.0.0.0/8 address is local on Linux, so kwok's loopback pod IPs work. A pod that
// cannot listen, such as a second pod on the same IP and port, is logged and skipped.
//
// The version entry gives the pod's error rate and latency; its pods count is ignored, except
// that podOverrides indexes must stay below it. A pod's index is its position among the played
// pods of its version, ordered by creation time and then name.
//
// Traffic is split as a Service would: the Services of the namespace whose selector holds the
// app's app label route the app's RPS evenly to the pods they select, or, when the app has no
// such Service, to all its played pods. Terminating pods get none. A version with its own RPS
// spreads it over its own routed pods. So scaling a Deployment or switching a Service's selector
// moves the traffic, on the informers' events. A pod that stops being Ready or is deleted stops
// listening, and its counters go with it; one that is Ready again starts from zero, as a
// restarted process would. Apply changes the behaviour of the running pods without resetting
// their counters.
package simulator
