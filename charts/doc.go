// Package charts holds no Go code: charts/coalmine is the Helm chart that installs coalmine's
// in-cluster daemon (`helm install coalmine charts/coalmine -n coalmine --create-namespace`).
// Its tests run the real helm (scripts/install-helm.sh builds it): lint, templates rendered
// with several sets of values and checked object by object, the alerts' and the dashboard's
// PromQL parsed and held to the metrics coalmine exports, the chart kept in step with the
// kustomize base in deploy/, and `helm install` against a real API server, with what the
// chart's ServiceAccount may and may not do.
package charts
