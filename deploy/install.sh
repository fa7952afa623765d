#!/usr/bin/env bash
# Install the entrance kiosk on Raspberry Pi OS (Bookworm), from this checkout.
#
#   sudo deploy/install.sh [--dry-run] [--relay-pin N] [--relay-active-high] [--share-cores]
#                          [--site-salt FILE]
#
# --site-salt FILE installs the site's subject salt (the same file on every kiosk of a site, see
# docs/deploy.md); without it the first kiosk of a site generates /etc/kiosk/site-salt, to be
# copied to the others.
#
# Idempotent: run it again after an update. --dry-run prints every step without changing
# anything (and works on any Linux machine). --share-cores leaves every process free to run
# on the core the kiosk keeps for its decisions (see docs/deploy.md).
set -o errexit -o pipefail -o nounset

DRY_RUN=0
GATE_CORE=1
RELAY_PIN=17
RELAY_LEVEL=dh # active-low relay boards: high = de-energised
PREFIX=/opt/kiosk
CONFIG_DIR=/etc/kiosk
SALT_FILE=$CONFIG_DIR/site-salt
SOURCE=$(cd "$(dirname "$0")/.." && pwd)
SITE_SALT=""

while (($#)); do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --relay-pin) RELAY_PIN=$2; shift ;;
    --relay-active-high) RELAY_LEVEL=dl ;;
    --share-cores) GATE_CORE=0 ;;
    --site-salt) SITE_SALT=$2; shift ;;
    *) echo "install.sh: unknown option $1" >&2; exit 64 ;;
  esac
  shift
done

NAME=install.sh
# shellcheck source=deploy/common.sh
source "$(dirname "$0")/common.sh"
firmware_line() { # add a line to the firmware config once
  local file=$1 line=$2
  if [ -f "$file" ] && grep -qxF "$line" "$file"; then
    printf '   %s already has %s\n' "$file" "$line"
  elif ((DRY_RUN)); then
    printf '   would add to %s: %s\n' "$file" "$line"
  else
    printf '%s\n' "$line" >>"$file"
  fi
}

write_file() { # write a small config file; a dry run shows it instead
  local file=$1 content=$2
  if ((DRY_RUN)); then
    printf '   would write %s:\n' "$file"
    printf '%s\n' "$content" | sed 's/^/     | /'
  else
    mkdir -p "$(dirname "$file")"
    printf '%s\n' "$content" >"$file"
  fi
}

require_root
if [ -n "$SITE_SALT" ] && [ "$(tr -d '[:space:]' <"$SITE_SALT" 2>/dev/null | wc -c)" -lt 16 ]; then
  echo "$NAME: --site-salt $SITE_SALT: not a readable file of at least 16 characters" >&2
  exit 64
fi

model=$({ tr -d '\0' </proc/device-tree/model; } 2>/dev/null || echo "not a Raspberry Pi")
arch=$(uname -m)
say "machine: $model ($arch)"

say "Debian packages"
packages=(python3-venv python3-lgpio python3-evdev libzbar0 mosquitto-clients)
if [[ $model == Raspberry* ]]; then
  packages+=(python3-picamera2)
fi
run apt-get update -qq
run apt-get install -y -qq "${packages[@]}"

say "I2C for the MLX90614 (and a bus speed it can keep up with)"
if command -v raspi-config >/dev/null 2>&1; then
  run raspi-config nonint do_i2c 0
else
  echo "   raspi-config not found: enable I2C by hand (dtparam=i2c_arm=on)"
fi
firmware=/boot/firmware/config.txt
[ -f "$firmware" ] || firmware=/boot/config.txt
if [[ $model == *"Raspberry Pi 5"* ]]; then
  echo "   Pi 5: its I2C controller has no clock-stretching bug; bus speed left as it is"
else
  firmware_line "$firmware" "dtparam=i2c_arm_baudrate=50000"
fi

say "relay safe from power-on: GPIO$RELAY_PIN as an output at its de-energised level"
firmware_line "$firmware" "gpio=$RELAY_PIN=op,$RELAY_LEVEL"

say "service user"
if id kiosk >/dev/null 2>&1; then
  echo "   user kiosk exists"
else
  run useradd --system --home-dir /var/lib/kiosk --shell /usr/sbin/nologin kiosk
fi
run usermod -a -G gpio,i2c,video,input,dialout kiosk  # input, dialout: code scanners

say "virtual environment in $PREFIX (with the system's picamera2 and lgpio)"
run mkdir -p "$PREFIX"
if [ ! -x "$PREFIX/.venv/bin/python" ]; then
  run python3 -m venv --system-site-packages "$PREFIX/.venv"
fi
extras=""
if [[ $model == Raspberry* ]]; then
  extras="[pi]"
fi
run "$PREFIX/.venv/bin/pip" install --quiet --upgrade "$SOURCE$extras"

say "configuration in $CONFIG_DIR"
run mkdir -p "$CONFIG_DIR"
if [ -f "$CONFIG_DIR/kiosk.toml" ]; then
  echo "   $CONFIG_DIR/kiosk.toml exists: kept"
else
  run install -m 0640 -g kiosk "$SOURCE/deploy/kiosk.example.toml" "$CONFIG_DIR/kiosk.toml"
  if [[ $arch == armv7l || $arch == armv6l ]]; then
    echo "   32-bit Raspberry Pi OS: zxing-cpp has no wheel here, selecting pyzbar"
    run sed -i 's/^decoder = "zxing-cpp"/decoder = "pyzbar"/' "$CONFIG_DIR/kiosk.toml"
  fi
  run sed -i "s|^subject_salt_file = \"\"|subject_salt_file = \"$SALT_FILE\"|" "$CONFIG_DIR/kiosk.toml"
fi

say "the site's subject salt in $SALT_FILE (the same on every kiosk of the site)"
if [ -n "$SITE_SALT" ]; then
  run install -m 0640 -g kiosk "$SITE_SALT" "$SALT_FILE"
elif [ -f "$SALT_FILE" ]; then
  echo "   $SALT_FILE exists: kept"
else
  if ((DRY_RUN)); then
    printf '   would generate %s: 32 random bytes, base64, mode 0640 group kiosk\n' "$SALT_FILE"
  else
    (umask 0027 && head -c 32 /dev/urandom | base64 >"$SALT_FILE")
    chgrp kiosk "$SALT_FILE"
  fi
  echo "   the site's first kiosk: copy $SALT_FILE to the others of this site"
  echo "   (deploy/install.sh --site-salt FILE), never to another site"
fi
if [ -f "$CONFIG_DIR/kiosk.toml" ] && ! grep -q "^subject_salt_file = \"$SALT_FILE\"" "$CONFIG_DIR/kiosk.toml"; then
  echo "   set credentials.subject_salt_file = \"$SALT_FILE\" in $CONFIG_DIR/kiosk.toml"
fi

say "systemd service"
run install -m 0644 "$SOURCE/systemd/kiosk.service" /etc/systemd/system/kiosk.service

say "the first CPU core for the gate"
cores=$(nproc --all)
manager_cpus=/etc/systemd/system.conf.d/50-kiosk-gate-core.conf
kiosk_cpus=/etc/systemd/system/kiosk.service.d/50-all-cores.conf
if ((GATE_CORE && cores > 1)); then
  last=$((cores - 1))
  write_file "$manager_cpus" "# Written by the kiosk's deploy/install.sh: everything systemd starts (services, logins,
# the display's browser) runs off CPU 0, which the kiosk keeps for its decisions
# (docs/deploy.md). Takes full effect at the next boot; delete this file to undo.
[Manager]
CPUAffinity=1-$last"
  write_file "$kiosk_cpus" "# Written by deploy/install.sh: the kiosk may use every core; it pins its decision loop
# to CPU 0 and runs its status page on the others.
[Service]
CPUAffinity=0-$last"
  run systemctl daemon-reexec
elif ((GATE_CORE)); then
  echo "   one core: nothing to keep apart"
else
  echo "   --share-cores: every process may run on the gate's core"
  run rm -f "$manager_cpus" "$kiosk_cpus"
fi
run systemctl daemon-reload
run systemctl enable kiosk.service
echo "   start it with: systemctl start kiosk; check it with: $PREFIX/.venv/bin/kiosk doctor"
if ((DRY_RUN)); then
  say "done (dry run: nothing was changed)"
else
  say "done"
fi
