#!/usr/bin/env bash
# Builds dist/rrdsync, one standalone executable.
# ssh2's native addons cannot load under Bun; left in, they would be embedded and unpacked to /tmp at every start.
# The SFTP worker thread is a second entry point: the binary carries it, and new Worker() finds it there.
# --bytecode: precompiled JS starts ~20 ms faster (60 → 40 ms measured), which every cron run pays.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist
bun build src/main.ts src/transport/sftp-worker.ts --compile --minify --bytecode --sourcemap=none \
  --external cpu-features --external '*.node' \
  --outfile dist/rrdsync
ls -l dist/rrdsync
