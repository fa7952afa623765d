"""``kiosk doctor``'s checks of this machine and what it keeps: the disk, the event log, the
clock, the gate's CPU core and the signed trust material, with their production defaults."""

from __future__ import annotations

import errno
import shutil
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kiosk.cli.doctor_check import Check, ok
from kiosk.config import ConfigError, KioskConfig

DISK_WARN_BYTES = 500 * 1024 * 1024
DISK_FAIL_BYTES = 50 * 1024 * 1024
REVOCATION_MAX_AGE_S = 7 * 24 * 3600
MB = 1024 * 1024


def check_disk(config: KioskConfig, free_bytes: Callable[[Path], int]) -> Check:
    """Free space on the file system that holds the event log."""
    directory = config.log_path.absolute().parent
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = free_bytes(existing)
    detail = f"{free / MB:,.0f} MB free for the event log in {directory}"
    fix = (
        f"free space on the file system of {existing} (`journalctl --vacuum-size=100M`, "
        "old files) or move kiosk.state_dir to a larger one"
    )
    if free < DISK_FAIL_BYTES:
        return Check("disk", "fail", detail + f" (under {DISK_FAIL_BYTES // MB} MB)", fix)
    if free < DISK_WARN_BYTES:
        return Check("disk", "warn", detail + f" (under {DISK_WARN_BYTES // MB} MB)", fix)
    if existing != directory:
        detail += " (created on start)"
    return ok("disk", detail)


def check_event_log(config: KioskConfig) -> Check:
    """How full the event log is against ``log.capacity`` (read-only: the kiosk may be running)."""
    path = config.log_path
    if not path.exists():
        return ok("event log", f"{path} not created yet (the kiosk creates it on start)")
    try:
        conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=2.0)
        try:
            rows, confirmed = conn.execute(
                "SELECT count(*), count(confirmed_at_ms) FROM events"
            ).fetchone()
            has_retention = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'retention'"
            ).fetchone()[0]
            dropped = (
                conn.execute("SELECT dropped_unconfirmed FROM retention").fetchone()[0]
                if has_retention
                else 0
            )
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Check(
            "event log",
            "fail",
            f"{path}: cannot read it: {exc}",
            "stop the kiosk, move the file aside (keep it for central) and start again",
        )
    capacity = config.log.capacity
    detail = f"{path}: {rows:,} of {capacity:,} rows, {rows - confirmed:,} not yet confirmed"
    if dropped:
        detail += f", {dropped:,} dropped unconfirmed"
    if not config.mqtt.enabled:
        return ok("event log", detail + " (sync off: the oldest are pruned beyond capacity)")
    if rows - confirmed >= capacity * config.log.warn_ratio:
        fix = (
            "check the broker connection: unconfirmed events are kept until central confirms"
            " them, or dropped (with an alert) past log.unconfirmed_max_age_days"
        )
        return Check("event log", "warn", detail + " (near capacity)", fix)
    if dropped:
        return Check(
            "event log",
            "warn",
            detail + ": central never got those",
            "check the sync to central; raise log.capacity or log.unconfirmed_max_age_days",
        )
    return ok("event log", detail)


def check_clock(clock_synced: Callable[[], bool]) -> Check:
    """The system clock is kept in sync by NTP: pass validity and event times depend on it."""
    if clock_synced():
        return ok("clock", "synchronised (NTP)")
    return Check(
        "clock",
        "warn",
        "not synchronised: pass validity and event times may be wrong",
        "enable systemd-timesyncd/chrony: passes expire",
    )


def check_gate_core(manager_cpus: Callable[[], set[int]], cpus: Sequence[int]) -> Check:
    """Other processes run off the core the kiosk keeps for its decisions (kiosk/run/cpus.py)."""
    if len(cpus) < 2:
        return ok("cpu", "one core, shared by the kiosk and everything else")
    gate, allowed = cpus[0], manager_cpus()
    if gate not in allowed:
        others = ",".join(str(cpu) for cpu in sorted(allowed))
        return ok("cpu", f"core {gate} kept for the gate; other processes on {others}")
    return Check(
        "cpu",
        "warn",
        f"other processes may run on core {gate}, the gate's: a busy browser or client on"
        " this machine can slow decisions",
        "run deploy/install.sh (without --share-cores) and reboot",
    )


def check_trust(config: KioskConfig, now: Callable[[], float] = time.time) -> Check:
    """Issuer keys and a fresh revocation list are in force when signed passes are configured."""
    from kiosk.credentials.trust import TrustStore

    credentials = config.credentials
    if not credentials.trust_anchor:
        return ok("trust", "signed passes not configured (credentials.trust_anchor empty)")
    try:
        store = TrustStore.open(config)
    except ConfigError as exc:
        return Check(
            "trust", "fail", str(exc), "install the organisation's document-signing public key"
        )
    versions = store.versions()
    if versions["trust"] is None:
        return Check(
            "trust",
            "fail",
            "no valid trust list (issuer keys): every signed pass will be refused",
            "copy the signed trust list to credentials.trust_list (kiosk pass trust), "
            "or publish it on the site's trust topic",
        )
    if versions["revocation"] is None:
        return Check(
            "trust",
            "fail",
            f"trust list v{versions['trust']}, but no valid revocation list: "
            "revoked passes would be accepted",
            "copy the signed revocation list to credentials.revocation_list, "
            "or publish it on the site's revocation topic (a new site with nothing to "
            "revoke: kiosk pass revoke --empty)",
        )
    detail = f"trust list v{versions['trust']}, revocation list v{versions['revocation']}"
    files = [Path(config.kiosk.state_dir) / "revocation.cose"]
    if credentials.revocation_list:
        files.append(Path(credentials.revocation_list))
    mtimes = [path.stat().st_mtime for path in files if path.exists()]
    if mtimes:
        age_s = now() - max(mtimes)
        age = f"{age_s / 86400:.1f} days old"
        if age_s > REVOCATION_MAX_AGE_S:
            return Check(
                "trust",
                "warn",
                f"{detail}, {age}: newly revoked passes may still be accepted",
                "publish a fresh revocation list (kiosk pass revoke, --empty when nothing "
                "is new) and check the MQTT sync",
            )
        detail += f", {age}"
    return ok("trust", detail)


def disk_free_bytes(path: Path) -> int:
    """Bytes available to an unprivileged user on the file system holding ``path``."""
    return shutil.disk_usage(path).free


def running_on_pi() -> bool:
    """True on a Raspberry Pi (the device tree names the model)."""
    try:
        model = Path("/proc/device-tree/model").read_bytes()
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EACCES):
            raise
        return False
    return b"Raspberry Pi" in model
