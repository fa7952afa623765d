"""The central store's ``insert_batch`` alone: events per second into PostgreSQL and SQLite,
PostgreSQL's batch path (kiosk/central/pgbulk.py) against the row-by-row one SQLite uses.

    python bench/insert_batch.py [--events 200000] [--kiosks 100] [--batch 10000] [--pg URL]

Decisions that name a subject (so each also goes to ``subject_events``), kiosks interleaved as
a backlog arrives, stored in batches of ``--batch`` into a fresh store; then one batch sent
again (all duplicates). One JSON line per store and path: events_per_s (wall), the CPU
seconds per 1,000 events of this process and of its PostgreSQL backend, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drain_kiosk import decision_data

from kiosk.central import Store, open_store
from kiosk.central.rows import EventRow

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
TICK = os.sysconf("SC_CLK_TCK")


def backend_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def backlog(events: int, kiosks: int) -> list[EventRow]:
    now = int(time.time() * 1000)
    return [
        EventRow(
            str(uuid.uuid4()),
            "hq",
            f"k{i % kiosks:05d}",
            i // kiosks + 1,
            "boot",
            now - 3_600_000 + i,
            True,
            "decision",
            True,
            1,
            json.dumps(decision_data(i)),
            now,
        )
        for i in range(events)
    ]


@contextmanager
def fresh(kind: str, pg_url: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield str(Path(tmp) / "central.db")
        return
    import psycopg

    schema = f"insert_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{pg_url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def run(kind: str, path: str, rows: list[EventRow], args: argparse.Namespace) -> dict[str, Any]:
    with fresh(kind, args.pg) as url:
        store: Store = open_store(url)
        try:
            if path == "row-by-row":
                store._bulk = None  # the path SQLite takes, and PostgreSQL took before
            pid = store._conn.info.backend_pid if kind == "postgresql" else None
            db0 = backend_cpu_s(pid) if pid else 0.0
            load = os.getloadavg()
            cpu0, start = time.process_time(), time.perf_counter()
            for at in range(0, len(rows), args.batch):
                store.insert_batch(rows[at : at + args.batch])
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu0
            db = (backend_cpu_s(pid) - db0) if pid else 0.0
            again = time.perf_counter()
            assert store.insert_batch(rows[: args.batch]).new == 0
            again_s = time.perf_counter() - again
            assert store.count() == len(rows)
        finally:
            store.close()
    per_k = 1000 / len(rows)
    return {
        "store": kind,
        "path": path,
        "events": len(rows),
        "batch": args.batch,
        "kiosks": args.kiosks,
        "events_per_s": round(len(rows) / elapsed),
        "cpu_s_per_1000": {"python": round(cpu * per_k, 3), "postgres": round(db * per_k, 3)},
        "duplicate_batch_s": round(again_s, 3),
        "loadavg": [round(x, 2) for x in load],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--kiosks", type=int, default=100)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL server URL ('' to skip)")
    args = parser.parse_args()
    rows = backlog(args.events, args.kiosks)
    runs = [("sqlite", "row-by-row")]
    if args.pg:
        runs = [("postgresql", "row-by-row"), ("postgresql", "batch"), *runs]
    for kind, path in runs:
        print(json.dumps(run(kind, path, rows, args)), flush=True)


if __name__ == "__main__":
    main()
