"""The kiosk's side of bench/drain.py: the backlog bulk-inserted into a kiosk event log, and
the kiosk child that drains it with the real ``Sync`` + ``Uplink`` (run as
``python bench/drain_kiosk.py DB PORT WINDOW BATCH_MAX``; one JSON line with its result)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SITE, KIOSK = "bench", "k1"
POLL_S = 0.02
RUN_TIMEOUT_S = 120.0  # a kiosk child gives up after this long


# --- the backlog ---------------------------------------------------------------------------


def decision_data(n: int) -> dict[str, Any]:
    """A realistic decision event's data (about 300 bytes of JSON), like Kiosk._decision_data."""
    return {
        "mode": "entrance",
        "direction": "entry",
        "area": "main",
        "outcome": "grant",
        "reason": "ok",
        "subject": f"s-{n * 2654435761 % 2**80:020x}",
        "credential": {"status": "valid", "kind": "staff"},
        "temperature": {
            "status": "normal",
            "celsius": round(36.1 + (n % 9) / 10, 2),
            "ambient_c": 21.4,
            "stable": True,
            "retested": False,
            "samples": 12,
        },
        "decision_ms": round(180 + n % 97 + 0.4, 1),
    }


def build_backlog(path: Path, n: int) -> int:
    """Create a kiosk log with ``n`` unconfirmed events in one transaction; returns data bytes.

    The schema comes from ``EventLog`` itself (opened once, then closed). The rows go in through
    a plain sqlite3 connection on the same file: seqs continue from ``seq_counter.last_seq``
    and the counter is advanced to the last seq in the same transaction, as ``append`` does.
    """
    from kiosk.store.eventlog import EventLog

    EventLog(path, boot_id="bench-boot").close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        (last,) = conn.execute("SELECT last_seq FROM seq_counter").fetchone()
        t0_ms = time.time_ns() // 1_000_000 - 3_600_000  # an hour-old backlog: historical
        rows = []
        size = 0
        for i in range(n):
            data = json.dumps(decision_data(i), ensure_ascii=False, allow_nan=False)
            size += len(data)
            seq = last + 1 + i
            rows.append((seq, str(uuid.uuid4()), "bench-boot", t0_ms + i * 30, 1, "decision", data))
        conn.executemany(
            "INSERT INTO events (seq, event_id, boot_id, ts_ms, clock_synced, type, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("UPDATE seq_counter SET last_seq = ?", (last + n,))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return size // n


# --- the kiosk child ------------------------------------------------------------------------


def _vm_mb(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` (peak RSS of this address space, reset at exec) in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def kiosk_child(db: str, port: int, window: int, batch_max: int) -> None:
    """Drain ``db`` with the real Sync + Uplink; print one JSON line with the result."""
    from kiosk.config import parse_config
    from kiosk.mqtt.protocol import KioskTopics
    from kiosk.mqtt.uplink import Uplink, client_id
    from kiosk.store.eventlog import EventLog
    from kiosk.sync import Sync

    topics = KioskTopics(SITE, KIOSK)
    mqtt = {"enabled": True, "host": "127.0.0.1", "port": port, "tls": False}
    settings = parse_config({"mqtt": mqtt | {"window": window, "batch_max": batch_max}}).mqtt
    with EventLog(db, boot_id="bench-child") as log:
        backlog = log.stats().unconfirmed
        sync = Sync(
            Uplink(settings, topics, client_id(topics)),
            log,
            confirm=settings.confirm,
            window=settings.window,
            batch_max=settings.batch_max,
            resend_after_s=settings.resend_after_s,
            state_interval_s=settings.state_interval_s,
        )
        rss_before = _vm_mb("VmRSS")
        stop = threading.Event()
        thread = threading.Thread(target=sync.run, args=(stop,), daemon=True)
        start = time.monotonic()
        thread.start()
        deadline = start + RUN_TIMEOUT_S
        left = backlog
        while left and time.monotonic() < deadline:
            time.sleep(POLL_S)
            left = log.stats().unconfirmed
        elapsed = time.monotonic() - start
        stop.set()
        thread.join(timeout=10)
    print(
        json.dumps(
            {
                "backlog": backlog,
                "unconfirmed": left,
                "seconds": elapsed,
                "rss_before_sync_mb": round(rss_before, 1),
                "peak_rss_mb": round(_vm_mb("VmHWM"), 1),
                "published_events": sync.stats.published_events,
                "resent_events": sync.stats.resent_events,
            }
        ),
        flush=True,
    )


def run_kiosk(db: Path, port: int, window: int, batch_max: int) -> dict[str, Any]:
    """Start the kiosk child, wait for it (bounded), return its result and its own peak RSS."""
    command = [sys.executable, str(BENCH / "drain_kiosk.py"), str(db)]
    command += [str(port), str(window), str(batch_max)]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    killer = threading.Timer(RUN_TIMEOUT_S + 30, proc.kill)
    killer.start()
    try:
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        killer.cancel()
    if proc.returncode != 0:
        raise RuntimeError(f"kiosk child failed ({proc.returncode}): {out[-500:]}")
    result = json.loads(out.strip().splitlines()[-1])
    # On Linux a child's ru_maxrss keeps the parent's RSS at fork (it survives exec), so the
    # peak that counts is the child's own VmHWM; ru_maxrss is kept only for reference.
    result["ru_maxrss_mb"] = round(usage.ru_maxrss / 1024, 1)
    result["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
    return result


if __name__ == "__main__":
    kiosk_child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
