#!/usr/bin/env bash
# install-kube.sh builds the real Kubernetes control plane that coalmine's
# sandbox runs for integration tests and the demo: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok (with its stage
# YAMLs) and a Prometheus with Kubernetes service discovery.
#
# Everything is built from the Go module proxy in throwaway wrapper modules
# (in a temp dir, never in the repo) and cached, keyed by version, in
#   ${COALMINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coalmine}/bin/<component>-<version>/
# A component whose binaries are already there and runnable is skipped, so
# only the first run pays (about 10 min cold on 2 cores). Runs are serialised
# with flock, and each component is built into a temp dir and renamed into
# place, so concurrent runs and readers never see half a component.
#
# Usage: scripts/install-kube.sh [--force] [etcd] [kube] [kwok] [prometheus]
#   no component  build all of them.
#   --force       rebuild even when the binaries are cached.
# The last line of output on success is the bin directory.
set -euo pipefail

ETCD_VERSION=3.6.16
KUBE_VERSION=1.36.3
KUBE_STAGING_VERSION=0.36.3 # the k8s.io/* staging modules of KUBE_VERSION
KWOK_VERSION=0.8.0
PROMETHEUS_VERSION=3.7.3
PROMETHEUS_MODULE_VERSION=0.307.3 # github.com/prometheus/prometheus for PROMETHEUS_VERSION

log() { printf 'install-kube: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=false
components=()
for arg in "$@"; do
  case "$arg" in
    --force) force=true ;;
    etcd|kube|kwok|prometheus) components+=("$arg") ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $arg (usage: $0 [--force] [etcd] [kube] [kwok] [prometheus])" ;;
  esac
done
[ "${#components[@]}" -gt 0 ] || components=(etcd kube kwok prometheus)

command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || die "go not found on PATH or in /usr/local/go/bin"
command -v flock >/dev/null 2>&1 || die "flock not found (Debian package util-linux)"

cache="${COALMINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coalmine}"
bin="$cache/bin"
mkdir -p "$bin"

# The wrapper modules must not see a go.work or a vendor setting of the
# caller's; CGO is off so the binaries are static, as Kubernetes ships them.
export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

# Everything created under work is removed on exit, whatever happens.
work="$(mktemp -d "${TMPDIR:-/tmp}/coalmine-install-kube.XXXXXX")"
heartbeat_pid=""
partial="" # a component directory being built, removed if the build fails
cleanup() {
  if [ -n "$heartbeat_pid" ]; then kill "$heartbeat_pid" 2>/dev/null || true; fi
  if [ -n "$partial" ]; then rm -rf "$partial"; fi
  # The module cache is read-only; go clean -modcache is not wanted here.
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

exec 9>"$bin/.install-kube.lock"
if ! flock -n 9; then
  log "another install-kube.sh holds $bin/.install-kube.lock; waiting for it"
  flock 9
fi

# run LABEL CMD... runs CMD and prints a line every 30 s while it runs, so
# that a cold build is never silent for minutes. The go command's hundreds of
# "go: downloading" lines are dropped: the heartbeat says it is working.
run() {
  local label="$1" start rc=0
  shift
  start=$(date +%s)
  # Children must not inherit the lock (fd 9): a leftover sleep would hold it.
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

# runnable DIR NAME ARGS... reports whether the binary DIR/NAME runs with
# ARGS, or for a NAME ending in .yaml, whether that file is there.
runnable() {
  local dir="$1" name="$2"
  shift 2
  case "$name" in
    *.yaml) [ -s "$dir/$name" ] ;;
    *) [ -x "$dir/$name" ] && "$dir/$name" "$@" >/dev/null 2>&1 ;;
  esac
}

# wrapper DIR MODULE IMPORTS... creates a wrapper module in DIR whose tools.go
# imports IMPORTS, so that go mod tidy records their dependencies.
wrapper() {
  local dir="$1" module="$2" imp
  shift 2
  mkdir -p "$dir"
  {
    printf '//go:build tools\n\n// Package tools pins the commands install-kube.sh builds.\npackage tools\n\nimport (\n'
    for imp in "$@"; do printf '\t_ "%s"\n' "$imp"; done
    printf ')\n'
  } >"$dir/tools.go"
  (cd "$dir" && go mod init "$module" >/dev/null 2>&1)
}

ldflags="-s -w"
summary=()

# install_component NAME VERSION CHECK... builds component NAME unless
# $bin/NAME-VERSION passes every CHECK ("binary args..."), by calling
# build_NAME with a fresh output directory.
install_component() {
  local name="$1" version="$2" dest out start check ok=true
  shift 2
  dest="$bin/$name-$version"
  if ! $force && [ -d "$dest" ]; then
    for check in "$@"; do
      # shellcheck disable=SC2086 # check is "binary args..."
      runnable "$dest" $check || { ok=false; break; }
    done
    if $ok; then
      log "$name $version: cached in $dest"
      summary+=("$name $version: cached")
      return 0
    fi
    log "$name $version: $dest is incomplete or not runnable; rebuilding"
  fi
  log "$name $version: building (cold: several minutes; a line every 30s)"
  start=$(date +%s)
  out="$(mktemp -d "$bin/.$name-$version.XXXXXX")"
  partial="$out"
  "build_$name" "$out" "$work/$name"
  chmod 755 "$out"
  for check in "$@"; do
    # shellcheck disable=SC2086
    runnable "$out" $check || die "$name: built $out/${check%% *} but it does not run"
  done
  rm -rf "$dest"
  mv "$out" "$dest"
  partial=""
  local took=$(($(date +%s) - start))
  log "$name $version: built in ${took}s into $dest"
  summary+=("$name $version: built in ${took}s")
}

build_etcd() {
  local out="$1" mod="$2"
  wrapper "$mod" coalmine.local/build/etcd go.etcd.io/etcd/server/v3
  (cd "$mod" && run "etcd: go get" go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" &&
    run "etcd: go mod tidy" go mod tidy &&
    run "etcd: go build" go build -trimpath -ldflags="$ldflags" -o "$out/etcd" go.etcd.io/etcd/server/v3)
}

build_kube() {
  local out="$1" mod="$2" gomod staging cmd
  wrapper "$mod" coalmine.local/build/kube \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
  # k8s.io/kubernetes replaces its staging modules with local paths, which a
  # dependent module does not see: point each at its published version.
  (cd "$mod" && run "kube: go mod download k8s.io/kubernetes" go mod download "k8s.io/kubernetes@v$KUBE_VERSION")
  gomod="$(cd "$mod" && go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [ -f "$gomod" ] || die "kube: cannot find the go.mod of k8s.io/kubernetes@v$KUBE_VERSION"
  staging="$(sed -n 's#^[[:space:]]*\(replace[[:space:]]\{1,\}\)\{0,1\}\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\2#p' "$gomod" | sort -u)"
  [ -n "$staging" ] || die "kube: no ./staging replace lines in $gomod"
  log "  kube: $(wc -w <<<"$staging") staging modules replaced by v$KUBE_STAGING_VERSION"
  local edits=(-require="k8s.io/kubernetes@v$KUBE_VERSION")
  for m in $staging; do edits+=(-replace="$m=$m@v$KUBE_STAGING_VERSION"); done
  (cd "$mod" && go mod edit "${edits[@]}" && run "kube: go mod tidy" go mod tidy)
  local v="k8s.io/component-base/version" c="k8s.io/client-go/pkg/version"
  local kube_ldflags="$ldflags"
  for p in "$v" "$c"; do
    kube_ldflags+=" -X $p.gitVersion=v$KUBE_VERSION -X $p.gitMajor=${KUBE_VERSION%%.*}"
    kube_ldflags+=" -X $p.gitMinor=$(cut -d. -f2 <<<"$KUBE_VERSION") -X $p.gitTreeState=clean"
  done
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    (cd "$mod" && run "kube: go build $cmd" go build -trimpath -ldflags="$kube_ldflags" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
}

build_kwok() {
  local out="$1" mod="$2" dir f
  wrapper "$mod" coalmine.local/build/kwok sigs.k8s.io/kwok/cmd/kwok
  (cd "$mod" && run "kwok: go get" go get "sigs.k8s.io/kwok@v$KWOK_VERSION" &&
    run "kwok: go mod tidy" go mod tidy &&
    run "kwok: go build" go build -trimpath -ldflags="$ldflags" -o "$out/kwok" sigs.k8s.io/kwok/cmd/kwok)
  dir="$(cd "$mod" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ -f "$dir/kustomize/stage/$f" ] || die "kwok: $dir/kustomize/stage/$f not found"
    install -m 644 "$dir/kustomize/stage/$f" "$out/"
  done
}

build_prometheus() {
  local out="$1" mod="$2" p=github.com/prometheus/common/version
  wrapper "$mod" coalmine.local/build/prometheus github.com/prometheus/prometheus/cmd/prometheus
  (cd "$mod" && run "prometheus: go get" go get "github.com/prometheus/prometheus@v$PROMETHEUS_MODULE_VERSION" &&
    run "prometheus: go mod tidy" go mod tidy &&
    run "prometheus: go build" go build -trimpath \
      -ldflags="$ldflags -X $p.Version=$PROMETHEUS_VERSION -X $p.Branch=HEAD -X $p.BuildUser=coalmine" \
      -o "$out/prometheus" github.com/prometheus/prometheus/cmd/prometheus)
}

total=$(date +%s)
for c in "${components[@]}"; do
  case "$c" in
    etcd) install_component etcd "$ETCD_VERSION" "etcd --version" ;;
    kube) install_component kube "$KUBE_VERSION" "kube-apiserver --version" "kube-controller-manager --version" \
      "kube-scheduler --version" "kubectl version --client" ;;
    kwok) install_component kwok "$KWOK_VERSION" "kwok --version" node-initialize.yaml node-heartbeat.yaml \
      pod-ready.yaml pod-complete.yaml pod-delete.yaml ;;
    prometheus) install_component prometheus "$PROMETHEUS_VERSION" "prometheus --version" ;;
  esac
done
if [ "${#summary[@]}" -gt 1 ] && [[ "${summary[*]}" == *"built in"* ]]; then
  for s in "${summary[@]}"; do log "$s"; done
fi
log "done in $(($(date +%s) - total))s; binaries in $bin"
printf '%s\n' "$bin"
