#!/usr/bin/env bash
# install-prometheus.sh makes a real Prometheus binary available for coalmine's
# integration tests and demo.
#
# If $COALMINE_PROMETHEUS (or `prometheus` on PATH, or /usr/bin/prometheus) is
# already runnable, it prints that path and exits 0. Otherwise it installs
# Debian's prometheus package with apt-get (through sudo when not root),
# waiting for a held dpkg lock instead of failing, and makes sure the package
# did not leave a system Prometheus service running on :9090: coalmine starts
# its own Prometheus processes on random loopback ports.
#
# Usage: scripts/install-prometheus.sh [--force]
#   --force  run apt-get even when a binary is already runnable.
# The last line of output on success is the binary's path.
set -euo pipefail

log() { printf 'install-prometheus: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=scripts/apt.sh
. "$(dirname "$0")/apt.sh"

force=false
case "${1:-}" in
  "") ;;
  --force) force=true ;;
  -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1 (usage: $0 [--force])" ;;
esac

# An explicit COALMINE_PROMETHEUS is what the tests will run; installing the
# Debian package cannot fix it, so say so instead of falling back.
if [ -n "${COALMINE_PROMETHEUS:-}" ] && ! "$COALMINE_PROMETHEUS" --version >/dev/null 2>&1; then
  die "COALMINE_PROMETHEUS=$COALMINE_PROMETHEUS is not runnable; fix or unset it"
fi

# runnable prints the path of a Prometheus binary that answers --version.
runnable() { first_runnable "${COALMINE_PROMETHEUS:-}" prometheus /usr/bin/prometheus; }

if ! $force && path="$(runnable)"; then
  log "prometheus already installed: $("$path" --version 2>&1 | head -n1)"
  printf '%s\n' "$path"
  exit 0
fi

apt_prepare "prometheus not found; install Prometheus >= 2.42 and set COALMINE_PROMETHEUS to its path"
export DEBIAN_FRONTEND=noninteractive

start=$SECONDS
updated=false
# Update only when no package list offers prometheus: a version table line
# with a repository URL (the dpkg status line alone does not count).
# Capture first: with pipefail, `apt-cache | grep -q` fails when grep exits
# early and apt-cache gets SIGPIPE.
policy="$(apt-cache policy prometheus 2>/dev/null || true)"
if grep -Eq '^[[:space:]]+[0-9]+ [a-z+]+:/' <<<"$policy"; then
  log "package lists already know prometheus; skipping apt-get update"
else
  log "running apt-get update (no install candidate for prometheus yet)"
  apt_update || die "apt-get update failed"
  updated=true
fi

# Remember whether the service existed before, so we only stop a service we
# brought in ourselves.
had_service=false
if [ -e /etc/init.d/prometheus ] || [ -e /lib/systemd/system/prometheus.service ]; then
  had_service=true
fi

log "installing prometheus with apt-get (waits up to 300s for the dpkg lock)"
if ! "${apt[@]}" install -y --no-install-recommends prometheus >&2; then
  # Stale package lists name files the mirror no longer has.
  $updated && die "apt-get install prometheus failed"
  log "apt-get install failed; retrying after apt-get update"
  apt_update || die "apt-get update failed"
  "${apt[@]}" install -y --no-install-recommends prometheus >&2 || die "apt-get install prometheus failed"
fi
log "apt-get finished in $((SECONDS - start))s"

# Debian's postinst enables and starts prometheus.service (on :9090) unless a
# policy-rc.d forbids it. Stop and disable it when this run installed it;
# otherwise just report it.
if pgrep -x -u prometheus prometheus >/dev/null 2>&1; then
  if $had_service; then
    log "note: a system prometheus service is running (not started by this script); leaving it alone"
  else
    log "stopping the system prometheus service started by the package's postinst"
    if [ -d /run/systemd/system ]; then
      "${sudo[@]}" systemctl disable --now prometheus.service >&2 || true
    else
      "${sudo[@]}" /etc/init.d/prometheus stop >&2 || true
      "${sudo[@]}" update-rc.d prometheus disable >&2 || true
    fi
    if pgrep -x -u prometheus prometheus >/dev/null 2>&1; then
      die "could not stop the system prometheus service; stop it by hand"
    fi
  fi
fi

path="$(runnable)" || die "prometheus is still not runnable after apt-get install"
log "installed: $("$path" --version 2>&1 | head -n1)"
printf '%s\n' "$path"
