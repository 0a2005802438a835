#!/usr/bin/env bash
# Builds dist/rrdsync, one standalone executable.
# ssh2's native addons cannot load under Bun; left in, they would be embedded and unpacked to /tmp at every start.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist
bun build src/main.ts --compile --minify --sourcemap=none \
  --external cpu-features --external '*.node' \
  --outfile dist/rrdsync
ls -l dist/rrdsync
