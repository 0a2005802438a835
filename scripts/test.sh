#!/usr/bin/env bash
# Runs every test (unit + e2e against the source, rsync transport), the e2e suite again with the SFTP transport,
# then both e2e runs against the compiled dist/rrdsync; ends with one line "N passed, N failed" (bun test prints
# its counts in another shape). With arguments: only `bun test ARGS` (set RRDSYNC_TEST_TRANSPORT=sftp for SFTP).
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0

bun test "$@" 2>&1 | tee -a "$out" || rc=1

if [ $# -eq 0 ]; then
  RRDSYNC_TEST_TRANSPORT=sftp bun test test/e2e 2>&1 | tee -a "$out" || rc=1
  if bash scripts/build.sh >/dev/null; then
    RRDSYNC_BIN="$PWD/dist/rrdsync" bun test test/e2e/cli 2>&1 | tee -a "$out" || rc=1
    RRDSYNC_BIN="$PWD/dist/rrdsync" RRDSYNC_TEST_TRANSPORT=sftp bun test test/e2e/cli 2>&1 | tee -a "$out" || rc=1
  else
    echo "build failed" | tee -a "$out"; rc=1
  fi
fi

passed=$(grep -aE '^ *[0-9]+ pass$' "$out" | awk '{s+=$1} END {print s+0}')
failed=$(grep -aE '^ *[0-9]+ fail$' "$out" | awk '{s+=$1} END {print s+0}')
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi  # a crash that printed no count is still a failure
echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
