# Shared helpers for the end-to-end tests (sourced). Each test gets its own PINATA_HOME.
set -euo pipefail

BUILD=${1:?usage: $0 BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
PINATA="$BUILD/src/cli/pinata"
PINATA_CACHE=${PINATA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pinata}
export PINATA_GUEST_DIR=${PINATA_GUEST_DIR:-$PINATA_CACHE/guest}
export DOCKER_BUILDKIT=0   # the host CLI has no buildx plugin: the classic builder

WORK=$(mktemp -d /tmp/pinata-e2e.XXXXXX)
export PINATA_HOME="$WORK/home"
export DOCKER_HOST="unix://$PINATA_HOME/docker.sock"
passed=0
failed=0

cleanup() {
  local rc=$?
  if [ -e "$PINATA_HOME/pinatad.sock" ]; then
    "$PINATA" stop --timeout 20 >/dev/null 2>&1 || true
  fi
  if [ "$failed" -gt 0 ] || [ $rc -ne 0 ]; then
    echo "--- pinatad log ---"; tail -n 60 "$PINATA_HOME/log/pinatad.log" 2>/dev/null || true
    echo "--- console (last 80 lines) ---"; tail -n 80 "$PINATA_HOME/console-ring" 2>/dev/null | tr -d '\r' || true
  fi
  umount "$WORK/ro" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok   - $*"; }
not_ok() { failed=$((failed + 1)); echo "FAIL - $*"; }

# check "description" command...: passes when the command exits 0.
check() {
  local what=$1; shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# expect_exit CODE "description" command...: runs the command, keeps its output in $out.
expect_exit() {
  local want=$1 what=$2; shift 2
  local rc=0
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" = "$want" ]; then ok "$what (exit $rc)"; else not_ok "$what: exit $rc, wanted $want; output: $out"; fi
}

contains() { grep -q -- "$2" <<<"$1"; }

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
