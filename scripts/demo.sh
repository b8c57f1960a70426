#!/usr/bin/env bash
# make demo: bring up a real Prometheus and the simulated my-app on loopback, judge a healthy and
# a broken v2 with the example policy, print both reports, check the verdicts, tear down.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${BIN:-bin}
policy=policies/examples/my-app.yaml
window=${DEMO_WINDOW:-20s}
work=$(mktemp -d -t coalmine-demo-XXXXXX)
sandbox_pid=""

cleanup() {
  if [ -n "$sandbox_pid" ] && kill -0 "$sandbox_pid" 2>/dev/null; then
    kill -TERM "$sandbox_pid" 2>/dev/null || true
    wait "$sandbox_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }

step "starting the sandbox: the simulated my-app (v1.0.0 x10, v2.0.0 x1) in namespaces default and staging, and a real Prometheus"
"$bin/coalmine-sandbox" --scenario testdata/scenarios/demo.yaml --dir "$work/sandbox" \
  --ready-file "$work/ready" >"$work/sandbox.out" 2>"$work/sandbox.log" &
sandbox_pid=$!
for i in $(seq 1 120); do
  [ -s "$work/ready" ] && break
  if ! kill -0 "$sandbox_pid" 2>/dev/null; then
    echo "the sandbox exited; its log:"; cat "$work/sandbox.log"; exit 1
  fi
  [ $((i % 5)) -eq 0 ] && echo "    waiting for Prometheus to scrape every pod (${i}s)"
  sleep 1
done
[ -s "$work/ready" ] || { echo "the sandbox did not get ready in 120s; its log:"; cat "$work/sandbox.log"; exit 1; }
url=$(cat "$work/ready")
echo "    Prometheus at $url scrapes 22 simulated pods"

step "letting a ${window} analysis window of traffic build up"
secs=${window%s}
for ((i = secs + 2; i > 0; i -= 5)); do echo "    ${i}s to go"; sleep $((i < 5 ? i : 5)); done

status=0
judge() { # namespace, expected exit code, what it is
  local ns=$1 want=$2 what=$3 code=0
  step "coalmine report -f $policy -n $ns --prometheus-url $url --window $window   ($what)"
  "$bin/coalmine" report -f "$policy" -n "$ns" --prometheus-url "$url" --window "$window" --log-level warn || code=$?
  if [ "$code" -eq "$want" ]; then
    echo "    exit code $code, as expected"
  else
    echo "    exit code $code, expected $want: WRONG"
    status=1
  fi
}
judge default 0 "v2 as good as v1: expect pass, exit 0"
judge staging 1 "v2 with 5x the errors: expect fail, exit 1"

step "Markdown summary for the broken release (what a CI step summary would show)"
"$bin/coalmine" report -f "$policy" -n staging --prometheus-url "$url" --window "$window" --format markdown --log-level error || true

if [ "$status" -eq 0 ]; then
  step "demo passed: the healthy v2 would be promoted and the broken v2 rolled back"
else
  step "demo FAILED: a verdict was not the expected one"
fi
exit "$status"
