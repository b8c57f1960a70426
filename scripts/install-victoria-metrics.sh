#!/usr/bin/env bash
# install-victoria-metrics.sh makes a real VictoriaMetrics binary available for
# coalmine's integration tests: a second engine that answers Prometheus's query
# API with its own PromQL implementation (sandbox.StartVictoriaMetrics).
#
# If $COALMINE_VICTORIA_METRICS (or `victoria-metrics` on PATH, or
# /usr/bin/victoria-metrics) is already runnable, it prints that path and exits
# 0. Otherwise it installs Debian's victoria-metrics package with apt-get
# (through sudo when not root), waiting for a held dpkg lock instead of
# failing, and makes sure the package did not leave a system service running on
# :8428: coalmine starts its own processes on random loopback ports.
#
# Usage: scripts/install-victoria-metrics.sh [--force]
#   --force  run apt-get even when a binary is already runnable.
# The last line of output on success is the binary's path.
set -euo pipefail

log() { printf 'install-victoria-metrics: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=scripts/apt.sh
. "$(dirname "$0")/apt.sh"

force=false
case "${1:-}" in
  "") ;;
  --force) force=true ;;
  -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1 (usage: $0 [--force])" ;;
esac

if [ -n "${COALMINE_VICTORIA_METRICS:-}" ] && ! "$COALMINE_VICTORIA_METRICS" --version >/dev/null 2>&1; then
  die "COALMINE_VICTORIA_METRICS=$COALMINE_VICTORIA_METRICS is not runnable; fix or unset it"
fi

runnable() { first_runnable "${COALMINE_VICTORIA_METRICS:-}" victoria-metrics /usr/bin/victoria-metrics; }
# version names a binary's version: Debian's build prints none, so its package's.
version() {
  local v
  v="$("$1" --version 2>&1 | head -n1)"
  [ -n "$v" ] || v="$(dpkg-query -W -f='victoria-metrics ${Version}' victoria-metrics 2>/dev/null || true)"
  printf '%s\n' "${v:-unknown version}"
}

if ! $force && path="$(runnable)"; then
  log "victoria-metrics already installed: $(version "$path")"
  printf '%s\n' "$path"
  exit 0
fi

apt_prepare "victoria-metrics not found; install it and set COALMINE_VICTORIA_METRICS to its path"

start=$SECONDS
updated=false
policy="$(apt-cache policy victoria-metrics 2>/dev/null || true)"
if grep -Eq '^[[:space:]]+[0-9]+ [a-z+]+:/' <<<"$policy"; then
  log "package lists already know victoria-metrics; skipping apt-get update"
else
  log "running apt-get update (no install candidate for victoria-metrics yet)"
  apt_update || die "apt-get update failed"
  updated=true
fi

had_service=false
if [ -e /etc/init.d/victoria-metrics ] || [ -e /lib/systemd/system/victoria-metrics.service ]; then
  had_service=true
fi

log "installing victoria-metrics with apt-get (waits up to 300s for the dpkg lock)"
if ! "${apt[@]}" install -y --no-install-recommends victoria-metrics >&2; then
  $updated && die "apt-get install victoria-metrics failed"
  log "apt-get install failed; retrying after apt-get update"
  apt_update || die "apt-get update failed"
  "${apt[@]}" install -y --no-install-recommends victoria-metrics >&2 || die "apt-get install victoria-metrics failed"
fi
log "apt-get finished in $((SECONDS - start))s"

# Debian's postinst enables and starts victoria-metrics.service unless a
# policy-rc.d forbids it. Stop and disable it when this run installed it.
if pgrep -x victoria-metrics >/dev/null 2>&1; then
  if $had_service; then
    log "note: a system victoria-metrics service is running (not started by this script); leaving it alone"
  else
    log "stopping the system victoria-metrics service started by the package's postinst"
    sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo --non-interactive)
    if [ -d /run/systemd/system ]; then
      "${sudo[@]}" systemctl disable --now victoria-metrics.service >&2 || true
    else
      "${sudo[@]}" /etc/init.d/victoria-metrics stop >&2 || true
      "${sudo[@]}" update-rc.d victoria-metrics disable >&2 || true
    fi
  fi
fi

path="$(runnable)" || die "victoria-metrics is still not runnable after apt-get install"
log "installed: $(version "$path")"
printf '%s\n' "$path"
