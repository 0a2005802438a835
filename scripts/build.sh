#!/usr/bin/env bash
# Builds dist/rrdsync, one standalone executable.
# ssh2's native addons cannot load under Bun; left in, they would be embedded and unpacked to /tmp at every start.
# --bytecode: precompiled JS starts ~20 ms faster (60 → 40 ms measured), which every cron run pays.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist
bun build src/main.ts --compile --minify --bytecode --sourcemap=none \
  --external cpu-features --external '*.node' \
  --outfile dist/rrdsync
ls -l dist/rrdsync
