"""Durable append rate of the event log: WAL + synchronous=FULL, one event per transaction.

Run: ``.venv/bin/python bench/append.py [--n N] [--dir DIR]``. Prints a summary, then one JSON
object as the last line. Use ``--dir`` to measure the storage the kiosk will really use.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchlib import machine_info

from kiosk.store.eventlog import EventLog

WARMUP = 20


def decision_data(n: int) -> dict[str, Any]:
    """A realistic gate decision, about 300 bytes of JSON."""
    return {
        "decision": "refused" if n % 7 == 0 else "admitted",
        "code": "FEVER" if n % 7 == 0 else "OK",
        "pass": f"tok_{uuid.uuid4().hex}",
        "temp_c": 36.6 + (n % 10) / 10,
        "ambient_c": 21.4,
        "samples_c": [36.5, 36.6, 36.7, 36.6, 36.6],
        "lane": 1,
        "scan_ms": 182,
        "screen_ms": 911,
        "gate_open_s": 5.0,
        "sensor": {"id": "mlx90614-5a", "emissivity": 0.98},
        "fw": "0.1.0",
    }


def filesystem_of(directory: Path) -> str | None:
    """The fstype of the mount holding ``directory`` (Linux only), or None."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    target, best, fstype = str(directory.resolve()), "", None
    for line in mounts:
        _, mount_point, kind, *_ = line.split()
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) > len(best):
            best, fstype = mount_point, kind
    return fstype


def run(n: int, directory: Path) -> dict[str, Any]:
    """Append ``WARMUP + n`` events to a fresh log in ``directory``; time the last ``n``."""
    path = directory / f"bench-{uuid.uuid4().hex}.db"
    payloads = [decision_data(i) for i in range(WARMUP + n)]
    latencies_ms = []
    try:
        with EventLog(path, boot_id=str(uuid.uuid4()), capacity=10 * (WARMUP + n)) as log:
            for data in payloads[:WARMUP]:
                log.append("gate", data)
            started = time.perf_counter()
            for data in payloads[WARMUP:]:
                t0 = time.perf_counter_ns()
                log.append("gate", data)
                latencies_ms.append((time.perf_counter_ns() - t0) / 1e6)
            elapsed = time.perf_counter() - started
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    cuts = statistics.quantiles(latencies_ms, n=100)
    return {
        "n": n,
        "appends_per_s": round(n / elapsed),
        "p50_ms": round(statistics.median(latencies_ms), 3),
        "p99_ms": round(cuts[98], 3),
        "max_ms": round(max(latencies_ms), 3),
        "data_bytes": len(json.dumps(payloads[WARMUP], ensure_ascii=False)),
        "journal": "wal",
        "synchronous": "full",
        "sqlite": sqlite3.sqlite_version,
        "dir": str(directory),
        "filesystem": filesystem_of(directory),
        "machine": machine_info(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="timed appends (default 3000)")
    parser.add_argument("--dir", type=Path, help="directory for the DB (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.n < 100:
        parser.error("--n must be at least 100 for a meaningful p99")
    if args.dir is None:
        with tempfile.TemporaryDirectory(prefix="kiosk-bench-") as tmp:
            result = run(args.n, Path(tmp))
    else:
        result = run(args.n, args.dir)
    print(
        f"{result['n']} durable appends (WAL + FULL, 1 event/txn, {result['data_bytes']} B data)"
        f" on {result['filesystem'] or '?'} at {result['dir']}\n"
        f"  {result['appends_per_s']:,} appends/s\n"
        f"  latency p50 {result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms,"
        f" max {result['max_ms']:.3f} ms\n"
        f"  {result['machine']['processor']}, {result['machine']['cpu_count']} CPUs,"
        f" Python {result['machine']['python']},"
        f" SQLite {result['sqlite']}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
