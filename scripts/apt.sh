# apt.sh holds what the install scripts share. Source it after defining log and die.

# first_runnable prints the path of the first candidate (a name on PATH or a path) that answers
# --version; empty candidates are skipped.
first_runnable() {
  local candidate path
  for candidate in "$@"; do
    [ -n "$candidate" ] || continue
    path="$(command -v -- "$candidate" 2>/dev/null)" || continue
    if "$path" --version >/dev/null 2>&1; then
      printf '%s\n' "$path"
      return 0
    fi
    log "found $path but '$path --version' fails; ignoring it"
  done
  return 1
}

# apt_prepare sets apt to the apt-get command line, through sudo when not root. wanted names
# what is missing, for the error when apt-get is not there.
apt_prepare() {
  local wanted=$1
  command -v apt-get >/dev/null 2>&1 || die "$wanted and apt-get is unavailable"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is unavailable; rerun as root"
    sudo=(sudo --non-interactive)
  fi
  # DPkg::Lock::Timeout makes apt wait for another apt/dpkg (e.g. a background
  # install) instead of failing with "Could not get lock".
  apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q)
}

# apt_update runs apt-get update. DPkg::Lock::Timeout does not cover the
# package lists' lock, so wait for that one here.
apt_update() {
  local out deadline=$((SECONDS + 300))
  out="$(mktemp)"
  while true; do
    if "${apt[@]}" update 2>&1 | tee "$out" >&2; then
      rm -f "$out"
      return 0
    fi
    if ! grep -q 'Could not get lock' "$out" || [ "$SECONDS" -ge "$deadline" ]; then
      rm -f "$out"
      return 1
    fi
    log "apt package lists are locked by another apt; waiting"
    sleep 5
  done
}
