#!/usr/bin/env bash
# make demo: on a local sandbox cluster (real kube-apiserver, controller-manager, scheduler, kwok)
# with a real Prometheus 3 discovering the pods, apply the seed's manifests (my-app v1.0.0 x10 and
# v2.0.0 x1 behind one Service) in two namespaces and let `coalmine gate` drive each release:
# the healthy v2 must be promoted (v2 10/10 Ready, v1 0), the v2 with 5x the errors rolled back
# (v2 0). Prints the summaries, checks the cluster's final state itself, tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${BIN:-bin}
# SOURCE=pods runs the demo with no Prometheus: coalmine scrapes the pods itself.
source=${SOURCE:-prometheus}
case "$source" in
  prometheus) policy=testdata/demo/my-app.yaml; sandbox_flags=() ;;
  pods) policy=testdata/demo/my-app-pods.yaml; sandbox_flags=(--no-prometheus) ;;
  *) echo "SOURCE must be prometheus or pods, got $source"; exit 2 ;;
esac
work=$(mktemp -d -t coalmine-demo-XXXXXX)
sandbox_pid=""
status=0

cleanup() {
  if [ -n "$sandbox_pid" ] && kill -0 "$sandbox_pid" 2>/dev/null; then
    echo; echo "==> tearing down the sandbox"
    kill -TERM "$sandbox_pid" 2>/dev/null || true
    wait "$sandbox_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "    WRONG: $*"; status=1; }

step "starting the sandbox: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, Prometheus 3, and the simulated my-app"
"$bin/coalmine-sandbox" --cluster "${sandbox_flags[@]}" --scenario testdata/scenarios/demo-cluster.yaml --dir "$work/sandbox" \
  --ready-file "$work/ready" >"$work/sandbox.out" 2>"$work/sandbox.log" &
sandbox_pid=$!
for i in $(seq 1 120); do
  [ -s "$work/ready" ] && break
  if ! kill -0 "$sandbox_pid" 2>/dev/null; then echo "the sandbox exited; its log:"; tail -40 "$work/sandbox.log"; exit 1; fi
  [ $((i % 5)) -eq 0 ] && echo "    still starting (${i}s)"
  sleep 1
done
[ -s "$work/ready" ] || { echo "the sandbox did not get ready in 120s; its log:"; tail -40 "$work/sandbox.log"; exit 1; }
# shellcheck disable=SC1091
. "$work/ready"
export KUBECONFIG
kubectl() { "$KUBECTL" "$@"; }
if [ "$source" = pods ]; then
  echo "    cluster up; no Prometheus: coalmine will scrape the pods"
  prom_flags=()
else
  echo "    cluster up; Prometheus at $PROMETHEUS_URL"
  prom_flags=(--prometheus-url "$PROMETHEUS_URL")
fi

step "kubectl apply -f testdata/manifests/my-app.yaml in namespaces default and staging (the seed: v1.0.0 x10, v2.0.0 x1)"
for ns in default staging; do
  kubectl apply -n "$ns" -f testdata/manifests/my-app.yaml
done
for ns in default staging; do
  kubectl rollout status -n "$ns" deploy/my-app-v1 --timeout=2m
  kubectl rollout status -n "$ns" deploy/my-app-v2 --timeout=2m
done
kubectl get deploy -n staging -o wide

step "letting a 20s window of traffic build up (the Service sends v2 about 1/11 of it)"
for i in 20 15 10 5; do echo "    ${i}s to go"; sleep 5; done

step "dry run first: coalmine report -n staging (reads the metrics ($source) and the cluster, writes nothing)"
"$bin/coalmine" report -f "$policy" -n staging --kubeconfig "$KUBECONFIG" "${prom_flags[@]}" --log-level warn || true

gate() { # namespace, expected exit code
  local ns=$1 want=$2 code=0
  step "coalmine gate -f $policy -n $ns   (expect exit $want)"
  "$bin/coalmine" gate -f "$policy" -n "$ns" --kubeconfig "$KUBECONFIG" "${prom_flags[@]}" \
    --summary "$work/summary-$ns.md" --junit "$work/junit-$ns.xml" --log-level warn || code=$?
  if [ "$code" -eq "$want" ]; then echo "    exit code $code, as expected"; else fail "exit code $code, expected $want"; fi
}
gate default 0
gate staging 1

step "checking the cluster's final state"
replicas() { kubectl get deploy -n "$1" "$2" -o jsonpath='{.spec.replicas}/{.status.readyReplicas}'; }
for i in $(seq 1 30); do
  [ "$(replicas default my-app-v2)" = "10/10" ] && [ "$(replicas staging my-app-v2)" = "0/" ] && break
  sleep 1
done
d_v2=$(replicas default my-app-v2); d_v1=$(kubectl get deploy -n default my-app-v1 -o jsonpath='{.spec.replicas}')
s_v2=$(kubectl get deploy -n staging my-app-v2 -o jsonpath='{.spec.replicas}'); s_v1=$(kubectl get deploy -n staging my-app-v1 -o jsonpath='{.spec.replicas}')
echo "    default: my-app-v2 ${d_v2} (replicas/ready), my-app-v1 ${d_v1}"
echo "    staging: my-app-v2 ${s_v2}, my-app-v1 ${s_v1}"
[ "$d_v2" = "10/10" ] || fail "default/my-app-v2 should be 10/10 Ready"
[ "$d_v1" = "0" ] || fail "default/my-app-v1 should be at 0"
[ "$s_v2" = "0" ] || fail "staging/my-app-v2 should be at 0"
[ "$s_v1" = "10" ] || fail "staging/my-app-v1 should keep its 10"
kubectl get events -n staging --field-selector involvedObject.name=my-app-v2,source=coalmine -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message || true

step "Markdown summaries (what a CI step summary shows)"
cat "$work/summary-default.md" "$work/summary-staging.md"

if [ "$status" -eq 0 ]; then
  step "demo passed: the healthy v2 was promoted and the broken v2 rolled back"
else
  step "demo FAILED"
fi
exit "$status"
