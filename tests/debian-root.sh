# Sourced by tests/arm/run.sh and tests/systemd/root.sh: Debian roots made once with mmdebstrap from the host's
# own mirror.

# The host's Debian mirror (its own apt sources), which reaches every suite.
mirror() {
  local uri
  uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# build_root WHAT ROOT LOG SUITE [MMDEBSTRAP OPTION...]: builds Debian SUITE into ROOT (a folder named
# NAME-<recipe hash>) unless ROOT/.complete says an earlier build finished. One builder per NAME at a time (a flock
# on NAME.lock: a root that a background `--prepare` is building is waited for); the NAME-* roots of older recipes
# are removed first; a failed download is retried (3 attempts). Returns 1, with LOG's tail, when all fail.
build_root() (
  what=$1 root=$2 log=$3 suite=$4
  shift 4
  exec {lock}>"${root%-*}.lock"
  flock "$lock"
  [ -e "$root/.complete" ] && exit 0
  for old in "${root%-*}"-*; do [ -e "$old" ] && rm -rf "$old"; done
  for attempt in 1 2 3; do
    echo "$what: building the Debian $suite root (minutes, once)" >&2
    rm -rf "$root"
    if mmdebstrap --quiet "$@" "$suite" "$root" "deb $(mirror) $suite main" >"$log" 2>&1; then
      touch "$root/.complete"
      exit 0
    fi
    echo "$what: building the Debian $suite root failed (attempt $attempt of 3); see $log" >&2
    [ "$attempt" = 3 ] && { tail -5 "$log" >&2; exit 1; }
    sleep $((attempt * 15))
  done
)
