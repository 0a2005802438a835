#!/usr/bin/env bash
# Installs what rrdsync needs on a fresh Debian/Ubuntu machine that has Node/npm: Bun (via npm), rsync,
# and with --test also openssh-server (the tests start their own throwaway sshd) and rrdtool, then the packages.
set -euo pipefail
cd "$(dirname "$0")/.."
BUN_VERSION=1.4.5
if ! command -v bun >/dev/null 2>&1 || [ "$(bun --version)" != "$BUN_VERSION" ]; then
  npm install -g "bun@$BUN_VERSION" >/dev/null
fi
need=()
command -v rsync >/dev/null 2>&1 || need+=(rsync)
if [ "${1:-}" = "--test" ]; then
  [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
  command -v rrdtool >/dev/null 2>&1 || need+=(rrdtool) # the RRD parser's tests compare with `rrdtool info`
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "setup: please install: ${need[*]} (needs root)" >&2; exit 1; fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bun install --frozen-lockfile >/dev/null
echo "setup: bun $(bun --version), $(rsync --version | head -1)"
