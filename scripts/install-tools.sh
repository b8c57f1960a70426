#!/usr/bin/env bash
# install-tools.sh builds the code generators `make generate` runs, outside
# the repository's go.mod (so the module does not gain them), into
#   ${COALMINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coalmine}/tools/<tool>-<version>/
# with `go install module@version` from the Go module proxy. A tool already
# there and runnable is skipped: the first run takes about 4 minutes on 2
# cores, later ones under a second. Runs are serialised with flock, and each
# tool is built into a temp dir and renamed into place, so concurrent runs
# and readers never see half a tool.
#
# Usage: scripts/install-tools.sh [--force]
# The last line of output on success is the path of controller-gen.
set -euo pipefail

CONTROLLER_TOOLS_VERSION=v0.23.0

log() { printf 'install-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=false
for arg in "$@"; do
  case "$arg" in
    --force) force=true ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $arg (usage: $0 [--force])" ;;
  esac
done

command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || die "go not found on PATH or in /usr/local/go/bin"
command -v flock >/dev/null 2>&1 || die "flock not found (Debian package util-linux)"

cache="${COALMINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coalmine}"
tools="$cache/tools"
dir="$tools/controller-gen-$CONTROLLER_TOOLS_VERSION"
mkdir -p "$tools"

# `go install module@version` ignores the go.mod of the directory it runs
# in; a go.work or vendor setting of the caller's must not reach it either.
export GOWORK=off GOFLAGS="-buildvcs=false" CGO_ENABLED=0

exec 9>"$tools/.install-tools.lock"
if ! flock -n 9; then
  log "another install-tools.sh holds $tools/.install-tools.lock; waiting for it"
  flock 9
fi

if ! $force && [ -x "$dir/controller-gen" ] && "$dir/controller-gen" --version >/dev/null 2>&1; then
  echo "$dir/controller-gen"
  exit 0
fi

work="$(mktemp -d "$tools/.controller-gen.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log "building controller-gen $CONTROLLER_TOOLS_VERSION (about 4 minutes the first time)"
# Children must not inherit the lock (fd 9).
(cd "$work" && GOBIN="$work" go install "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_TOOLS_VERSION" 9>&- 2>&1 |
  awk '!/^go: (downloading|finding|found) /' >&2)
"$work/controller-gen" --version >/dev/null || die "controller-gen does not run"
rm -rf "$dir"
mkdir -p "$work/out" && mv "$work/controller-gen" "$work/out/"
mv "$work/out" "$dir"
echo "$dir/controller-gen"
