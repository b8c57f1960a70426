#!/usr/bin/env bash
# install-helm.sh builds the real helm that the chart's tests (charts/) run:
# helm.sh/helm/v4 from the Go module proxy, in a throwaway wrapper module (in
# a temp dir, never in the repo, so coalmine's go.mod is untouched), cached,
# keyed by version, in
#   ${COALMINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coalmine}/bin/helm-<version>/helm
# A cached binary that runs is kept, so only the first run pays: cold (empty
# Go build and module caches) about 9 CPU-minutes, so some 5 minutes on two
# idle cores (17.5 minutes measured on two cores shared with other builds).
# Runs are serialised with flock, and the binary is built into a temp dir and
# renamed into place, so concurrent runs and readers never see half a build.
#
# Usage: scripts/install-helm.sh [--force]
#   --force  rebuild even when the binary is cached.
# The last line of output on success is the binary's path.
set -euo pipefail

# Keep in step with charts/helm_test.go's helmVersion.
HELM_VERSION=4.3.2

log() { printf 'install-helm: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=false
case "${1:-}" in
  "") ;;
  --force) force=true ;;
  -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1 (usage: $0 [--force])" ;;
esac

command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || die "go not found on PATH or in /usr/local/go/bin"
command -v flock >/dev/null 2>&1 || die "flock not found (Debian package util-linux)"

cache="${COALMINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coalmine}"
bin="$cache/bin"
dest="$bin/helm-$HELM_VERSION"
mkdir -p "$bin"

# The wrapper module must not see a go.work or a vendor setting of the
# caller's; CGO is off so the binary is static, as helm's releases are.
export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

# cached reports whether the helm in DIR runs and is HELM_VERSION.
cached() { [ -x "$1/helm" ] && "$1/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "v$HELM_VERSION"; }

if ! $force && cached "$dest"; then
  log "helm $HELM_VERSION: cached in $dest"
  printf '%s\n' "$dest/helm"
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/coalmine-install-helm.XXXXXX")"
heartbeat_pid=""
out=""
cleanup() {
  if [ -n "$heartbeat_pid" ]; then kill "$heartbeat_pid" 2>/dev/null || true; fi
  if [ -n "$out" ]; then rm -rf "$out"; fi
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

exec 9>"$bin/.install-helm.lock"
if ! flock -n 9; then
  log "another install-helm.sh holds $bin/.install-helm.lock; waiting for it"
  flock 9
fi
# Another run may have built it while this one waited.
if ! $force && cached "$dest"; then
  log "helm $HELM_VERSION: cached in $dest"
  printf '%s\n' "$dest/helm"
  exit 0
fi

# run LABEL CMD... runs CMD and prints a line every 30 s while it runs, so a
# cold build is never silent for minutes; the go command's "go: downloading"
# lines are dropped.
run() {
  local label="$1" start rc=0
  shift
  start=$(date +%s)
  (
    exec 9>&-
    while sleep 30 </dev/null >/dev/null 2>&1; do
      log "  $label: still running ($(($(date +%s) - start))s)"
    done
  ) &
  heartbeat_pid=$!
  "$@" 9>&- 2>&1 | awk '!/^go: (downloading|added|finding|found|upgraded) /' >&2 || rc=$?
  kill "$heartbeat_pid" 2>/dev/null || true
  wait "$heartbeat_pid" 2>/dev/null || true
  heartbeat_pid=""
  [ "$rc" -eq 0 ] || die "$label failed (exit $rc)"
}

log "helm $HELM_VERSION: building (cold: a few minutes; a line every 30s)"
start=$(date +%s)
mod="$work/helm"
mkdir -p "$mod"
printf '//go:build tools\n\n// Package tools pins the command install-helm.sh builds.\npackage tools\n\nimport _ "helm.sh/helm/v4/cmd/helm"\n' >"$mod/tools.go"
(cd "$mod" && go mod init coalmine.local/build/helm >/dev/null 2>&1)
out="$(mktemp -d "$bin/.helm-$HELM_VERSION.XXXXXX")"
# helm's version (`helm version`, and the kubeVersion and apiVersion checks of
# charts) is stamped at link time, as helm's own Makefile does.
v=helm.sh/helm/v4/internal/version
(cd "$mod" && run "helm: go get" go get "helm.sh/helm/v4@v$HELM_VERSION" &&
  run "helm: go mod tidy" go mod tidy &&
  run "helm: go build" go build -trimpath \
    -ldflags="-s -w -X $v.version=v$HELM_VERSION -X $v.gitTreeState=clean" \
    -o "$out/helm" helm.sh/helm/v4/cmd/helm)
chmod 755 "$out"
cached "$out" || die "built $out/helm but it does not run or is not v$HELM_VERSION: $("$out/helm" version 2>&1 || true)"
rm -rf "$dest"
mv "$out" "$dest"
out=""
log "helm $HELM_VERSION: built in $(($(date +%s) - start))s into $dest"
printf '%s\n' "$dest/helm"
