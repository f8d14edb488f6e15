#!/usr/bin/env bash
# Runs one libFuzzer binary for a bounded time, starting from the committed corpus (which is
# only read: new inputs go to a temporary directory). Exit 77 (ctest: skipped) when the fuzz
# build does not exist, e.g. a build without clang.
#
#   fuzz/run_one.sh FUZZER_BINARY CORPUS_DIR SECONDS
set -euo pipefail
bin=$1 corpus=$2 secs=$3
if [ ! -x "$bin" ]; then
  echo "no fuzz build at $bin (./setup.sh test makes one with clang): skipped"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# -rss_limit_mb keeps a run inside the machine; crashes land in $work and fail the test.
"$bin" -max_total_time="$secs" -rss_limit_mb=2048 -artifact_prefix="$work/" -print_final_stats=1 \
  "$work" "$corpus" 2>&1 | tail -n 12
status=${PIPESTATUS[0]}
if ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
  echo "fuzzer found a failing input:"; ls -la "$work"
  for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do [ -e "$f" ] && xxd "$f" | head -20; done
  exit 1
fi
exit "$status"
