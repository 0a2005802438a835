#!/usr/bin/env bash
# Builds dist/rrdsync, one standalone executable for this machine (the tests run it). The flags and the embedded
# build facts live in scripts/compile.ts, shared with `bun run release` (every target).
set -euo pipefail
cd "$(dirname "$0")/.."
bun scripts/compile.ts --outfile dist/rrdsync
