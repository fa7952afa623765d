# shellcheck shell=bash
# Shared by install.sh and update.sh (sourced, not run): step titles, dry-run aware commands,
# and the root check. Expects DRY_RUN (0 or 1) and NAME to be set.

say() { printf '== %s\n' "$*"; }

run() {
  if ((DRY_RUN)); then
    printf '   would run: %s\n' "$*"
  else
    "$@"
  fi
}

require_root() {
  if ((!DRY_RUN)) && [ "$(id -u)" -ne 0 ]; then
    echo "$NAME: run as root (sudo), or with --dry-run" >&2
    exit 77
  fi
}
