#!/usr/bin/env bash
# install-chromium.sh makes a headless-capable Chromium available for the
# report package's screenshot test, which renders the HTML report and checks
# what a browser actually draws.
#
# If $COALMINE_CHROMIUM (or chromium, chromium-browser or google-chrome on
# PATH) is already runnable, it prints that path and exits 0. Otherwise it
# installs Debian's chromium package with apt-get (through sudo when not
# root), waiting for a held dpkg lock instead of failing.
#
# Usage: scripts/install-chromium.sh [--force]
#   --force  run apt-get even when a browser is already runnable.
# The last line of output on success is the binary's path.
set -euo pipefail

log() { printf 'install-chromium: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=scripts/apt.sh
. "$(dirname "$0")/apt.sh"

force=false
case "${1:-}" in
  "") ;;
  --force) force=true ;;
  -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1 (usage: $0 [--force])" ;;
esac

# An explicit COALMINE_CHROMIUM is what the test will run; installing the
# Debian package cannot fix it, so say so instead of falling back.
if [ -n "${COALMINE_CHROMIUM:-}" ] && ! "$COALMINE_CHROMIUM" --version >/dev/null 2>&1; then
  die "COALMINE_CHROMIUM=$COALMINE_CHROMIUM is not runnable; fix or unset it"
fi

# runnable prints the path of a browser that answers --version, in the order
# the screenshot test looks for one.
runnable() { first_runnable "${COALMINE_CHROMIUM:-}" chromium chromium-browser google-chrome; }

if ! $force && path="$(runnable)"; then
  log "chromium already installed: $("$path" --version 2>/dev/null | head -n1)"
  printf '%s\n' "$path"
  exit 0
fi

apt_prepare "chromium not found; install Chromium or Chrome and set COALMINE_CHROMIUM to its path"

start=$SECONDS
log "running apt-get update"
apt_update || die "apt-get update failed"

log "installing chromium with apt-get (waits up to 300s for the dpkg lock)"
"${apt[@]}" install -y --no-install-recommends chromium >&2 || die "apt-get install chromium failed"
log "apt-get finished in $((SECONDS - start))s"

path="$(runnable)" || die "chromium is still not runnable after apt-get install"
log "installed: $("$path" --version 2>/dev/null | head -n1)"
printf '%s\n' "$path"
