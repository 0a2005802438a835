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

# Files whose scenarios never reach the standby through a transport (the CLI's own input checks, the watcher and
# the real writers, local state and metrics files, sd_notify, rrdsync merge): the SFTP passes would repeat them
# exactly, so they run in the rsync passes only (from source and as the binary). Keep CI under 30 minutes.
TRANSPORT_FREE="help merge config-edges mistakes state-db state-disk-full metrics-flood notify watch-writers watch-rrdtool planted-symlinks reused-inode"
sftp_files() {
  local f base skip
  for f in "$@"; do
    base=$(basename "$f" .test.ts); skip=0
    for t in $TRANSPORT_FREE; do [ "$base" = "$t" ] && skip=1; done
    [ $skip -eq 0 ] && echo "$f"
  done
}

if [ $# -eq 0 ]; then
  # shellcheck disable=SC2046 # file names without spaces, by construction
  RRDSYNC_TEST_TRANSPORT=sftp bun test $(sftp_files test/e2e/watch/*.test.ts test/e2e/cli/*.test.ts) 2>&1 | tee -a "$out" || rc=1
  if bash scripts/build.sh >/dev/null; then
    RRDSYNC_BIN="$PWD/dist/rrdsync" bun test test/e2e/cli 2>&1 | tee -a "$out" || rc=1
    # shellcheck disable=SC2046
    RRDSYNC_BIN="$PWD/dist/rrdsync" RRDSYNC_TEST_TRANSPORT=sftp bun test $(sftp_files test/e2e/cli/*.test.ts) 2>&1 | tee -a "$out" || rc=1
  else
    echo "build failed" | tee -a "$out"; rc=1
  fi
fi

passed=$(grep -aE '^ *[0-9]+ pass$' "$out" | awk '{s+=$1} END {print s+0}')
failed=$(grep -aE '^ *[0-9]+ fail$' "$out" | awk '{s+=$1} END {print s+0}')
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi  # a crash that printed no count is still a failure
echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
