#!/usr/bin/env bash
# Installs what rrdsync needs on a fresh Debian/Ubuntu machine that has Node/npm: Bun (via npm), rsync,
# and with --test also openssh-server (the tests start their own throwaway sshd) and rrdtool, then the packages.
# --test also tries (a failure only skips those tests, with the reason in their names) qemu-user-static and
# libc6-arm64-cross (the arm64 and no-AVX2 release binaries are run emulated), binutils (objdump: the glibc each
# binary needs), systemd (systemd-notify checks the test's NOTIFY_SOCKET; systemd-analyze scores the unit) and
# strace (pauses a real `rrdtool update` between its open and its lock, for the in-place merge's test).
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
want=()
if [ "${1:-}" = "--test" ]; then
  command -v qemu-aarch64-static >/dev/null 2>&1 || command -v qemu-aarch64 >/dev/null 2>&1 || want+=(qemu-user-static)
  [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || want+=(libc6-arm64-cross)
  command -v objdump >/dev/null 2>&1 || want+=(binutils)
  command -v systemd-notify >/dev/null 2>&1 || want+=(systemd)
  command -v strace >/dev/null 2>&1 || want+=(strace)
fi
if [ ${#need[@]} -gt 0 ] || [ ${#want[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    if [ ${#need[@]} -gt 0 ]; then echo "setup: please install: ${need[*]} (needs root)" >&2; exit 1; fi
    echo "setup: not root: without ${want[*]} some release tests are skipped" >&2
  else
    apt-get update -qq >/dev/null
    if [ ${#need[@]} -gt 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; fi
    for p in "${want[@]}"; do
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null 2>&1 || echo "setup: could not install $p: the tests that need it are skipped" >&2
    done
  fi
fi
bun install --frozen-lockfile >/dev/null
echo "setup: bun $(bun --version), $(rsync --version | head -1)"
