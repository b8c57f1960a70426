// Package simulator plays the seed app (containersol/k8s-deployment-strategies) for tests and demos.
//
// It runs simulated pods in-process, each with its own /metrics listener that exposes the seed
// app's http_requests_total counter and request_duration_seconds histogram, advances their counters
// from a Scenario (Poisson arrivals, an error share, a log-normal latency), and writes a Prometheus
// file_sd targets file so that a real Prometheus scrapes the pods as it would in a cluster.
// No real HTTP traffic is generated: only the counters a scrape would see.
package simulator
