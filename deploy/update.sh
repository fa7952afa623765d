#!/usr/bin/env bash
# Update the kiosk on a Raspberry Pi to this checkout, and roll back if it does not come up.
#
#   sudo deploy/update.sh [--dry-run]      # install this version, restart, check, or roll back
#   sudo deploy/update.sh --rollback       # go back to the version before the last update
#
# The previous virtual environment is kept in /opt/kiosk/.venv.previous. The event log and the
# configuration are not touched (the log's schema only migrates forward: a rollback across a
# schema change is refused by the older version, which then says so in the journal).
set -o errexit -o pipefail -o nounset

DRY_RUN=0
ROLLBACK=0
PREFIX=/opt/kiosk
CONFIG=/etc/kiosk/kiosk.toml
SOURCE=$(cd "$(dirname "$0")/.." && pwd)
WAIT_S=30

while (($#)); do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --rollback) ROLLBACK=1 ;;
    *) echo "update.sh: unknown option $1" >&2; exit 64 ;;
  esac
  shift
done

NAME=update.sh
# shellcheck source=deploy/common.sh
source "$(dirname "$0")/common.sh"

require_root

swap_back() {
  say "rolling back to the previous version"
  run rm -rf "$PREFIX/.venv.failed"
  run mv "$PREFIX/.venv" "$PREFIX/.venv.failed"
  run mv "$PREFIX/.venv.previous" "$PREFIX/.venv"
  run systemctl restart kiosk.service
}

healthy() {
  if ((DRY_RUN)); then
    printf '   would wait up to %s s for kiosk.service to be active, then run kiosk doctor\n' \
      "$WAIT_S"
    return 0
  fi
  for _ in $(seq "$WAIT_S"); do
    if systemctl is-active --quiet kiosk.service; then
      "$PREFIX/.venv/bin/kiosk" doctor --config "$CONFIG"
      return $?
    fi
    sleep 1
  done
  return 1
}

if ((ROLLBACK)); then
  if [ ! -d "$PREFIX/.venv.previous" ] && ((!DRY_RUN)); then
    echo "update.sh: no previous version in $PREFIX/.venv.previous" >&2
    exit 1
  fi
  swap_back
  exit 0
fi

say "keeping the running version as $PREFIX/.venv.previous"
run rm -rf "$PREFIX/.venv.previous"
run cp -a "$PREFIX/.venv" "$PREFIX/.venv.previous"

say "installing $(cd "$SOURCE" && git describe --always --dirty 2>/dev/null || echo "$SOURCE")"
run "$PREFIX/.venv/bin/pip" install --quiet --upgrade "$SOURCE"
run "$PREFIX/.venv/bin/kiosk" config check --machine "$CONFIG"
run install -m 0644 "$SOURCE/systemd/kiosk.service" /etc/systemd/system/kiosk.service
run systemctl daemon-reload
run systemctl restart kiosk.service

say "checking the new version"
if healthy; then
  say "updated"
else
  echo "update.sh: the new version is not healthy" >&2
  swap_back
  exit 1
fi
