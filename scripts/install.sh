#!/usr/bin/env bash
# Installs rrdsync on a server: the binary, a starter config (only if none exists), the systemd unit and the
# logrotate snippet; prints the cron line for those who run --once instead of the daemon.
# Usage: scripts/install.sh [--bin dist/rrdsync] [--prefix /usr/local] [--etc /etc/rrdsync]
#                           [--systemd /etc/systemd/system] [--logrotate /etc/logrotate.d] [--no-systemd]
# Run as root for the default locations; every location can point elsewhere (a test installs into a temp dir).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$here/../dist/rrdsync"
prefix=/usr/local
etc=/etc/rrdsync
systemd=/etc/systemd/system
logrotate=/etc/logrotate.d
use_systemd=1
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --etc) etc="$2"; shift 2 ;;
    --systemd) systemd="$2"; shift 2 ;;
    --logrotate) logrotate="$2"; shift 2 ;;
    --no-systemd) use_systemd=0; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ ! -x "$bin" ]; then
  echo "install.sh: $bin is missing: build it first (bun run build), or pass --bin PATH" >&2
  exit 2
fi

install -d "$prefix/bin"
# temp + rename: a running daemon keeps its old binary until restarted, never a half-copied one
install -m 0755 "$bin" "$prefix/bin/.rrdsync.new"
mv -f "$prefix/bin/.rrdsync.new" "$prefix/bin/rrdsync"
echo "installed $prefix/bin/rrdsync ($("$prefix/bin/rrdsync" --version))"

config="$etc/config.json"
if [ -e "$config" ]; then
  echo "kept the existing $config"
else
  "$prefix/bin/rrdsync" init --config "$config" >/dev/null
  echo "wrote a starter config: $config (edit remote_sync, then: rrdsync check --config $config)"
fi

if [ "$use_systemd" = 1 ]; then
  install -d "$systemd" "$logrotate"
  sed -e "s#/usr/local/bin/rrdsync#$prefix/bin/rrdsync#g" -e "s#/etc/rrdsync/config.json#$config#g" \
    "$here/rrdsync.service" > "$systemd/rrdsync.service"
  install -m 0644 "$here/rrdsync.logrotate" "$logrotate/rrdsync"
  echo "installed $systemd/rrdsync.service and $logrotate/rrdsync"
  if [ "$systemd" = /etc/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload 2>/dev/null || true
    echo "start the daemon with: systemctl enable --now rrdsync"
  fi
fi
echo "or, without the daemon, from cron (crontab -e), every 5 minutes:"
echo "  */5 * * * * $prefix/bin/rrdsync --once --quiet --config $config"
