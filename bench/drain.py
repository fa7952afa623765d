"""Kiosk backlog drain, end to end: outbox → Sync/Uplink → mosquitto → Ingest → receipts.

Run: ``.venv/bin/python bench/drain.py [--events 100000] [--pg URL]`` (about 1–2 minutes).

Each run: a backlog of decision events (~300-byte data) is bulk-inserted into a fresh kiosk
event log; a private mosquitto (anonymous, 127.0.0.1, persistence off) and a real central
``Ingest`` (SQLite or PostgreSQL store, in this process) are started; then a kiosk child
process opens the log with ``EventLog`` and drains it with the real ``Sync`` + ``Uplink``
(receipt confirmation, batch_max 50). The time runs from starting the Sync until
``EventLog.stats().unconfirmed == 0`` (polled every 20 ms). The kiosk's peak RSS is the
child's own ``VmHWM``, so central's memory is not mixed in: its ``ru_maxrss`` (``os.wait4``,
also reported) is useless here, because Linux carries the parent's RSS at fork across exec.

The 50 ms RTT runs put a user-space TCP delay proxy (its own process, asyncio, 25 ms each
way, no bandwidth limit) between the kiosk and the broker; central connects directly.
Prints a table, then one JSON object as the last line. The backlog and the kiosk child are in
``drain_kiosk.py``, the delay proxy in ``delayproxy.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from delayproxy import DELAY_S, delay_proxy, publish_rtt_ms
from drain_kiosk import build_backlog, run_kiosk

BENCH = Path(__file__).resolve().parent
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
GOAL_LOOPBACK = 20_000
GOAL_RTT50 = 5_000


# --- central and one run --------------------------------------------------------------------


@contextlib.contextmanager
def pg_database(url: str) -> Iterator[str | None]:
    """A fresh database kiosk_bench_<pid> on the server of ``url``, dropped afterwards."""
    try:
        import psycopg

        admin = psycopg.connect(url, autocommit=True)
    except Exception as exc:
        print(f"PostgreSQL runs skipped: {exc}")
        yield None
        return
    name = f"kiosk_bench_{os.getpid()}"
    admin.execute(f"DROP DATABASE IF EXISTS {name}")
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def drain_run(
    name: str,
    template: Path,
    store_url: str,
    tmp: Path,
    *,
    window: int = 5000,
    batch_max: int = 100,
    rtt: bool = False,
) -> dict[str, Any]:
    from ingest import mosquitto

    from kiosk.central import Ingest, IngestSettings, open_store

    db = tmp / "kiosk.db"
    shutil.copyfile(template, db)
    kind = "postgresql" if store_url.startswith("postgres") else "sqlite"
    result: dict[str, Any] = {"run": name, "store": kind}
    with mosquitto(tmp) as broker_port:
        store = open_store(store_url)
        ingest = Ingest(
            IngestSettings(host="127.0.0.1", port=broker_port, client_id="central-bench"), store
        )
        ingest.start()
        try:
            if not ingest.wait_ready(10):
                raise RuntimeError("central ingest did not connect")
            with contextlib.ExitStack() as stack:
                kiosk_port = broker_port
                if rtt:
                    kiosk_port = stack.enter_context(delay_proxy(broker_port))
                    result["rtt_ms"] = round(publish_rtt_ms(kiosk_port), 1)
                kiosk = run_kiosk(db, kiosk_port, window, batch_max)
            ingest.wait_idle(10)
            stats = ingest.stats()
        finally:
            ingest.stop()
        stored = store.count()
        store.close()
    db.unlink()
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    events = kiosk["backlog"]
    result |= {
        "events": events,
        "window": window,
        "batch_max": batch_max,
        "seconds": round(kiosk["seconds"], 3),
        "events_per_s": round(events / kiosk["seconds"]) if not kiosk["unconfirmed"] else 0,
        "unconfirmed_left": kiosk["unconfirmed"],
        "stored": stored,
        "duplicates": stats["duplicates"],
        "resent": kiosk["resent_events"],
        "kiosk_rss_before_sync_mb": kiosk["rss_before_sync_mb"],
        "kiosk_peak_rss_mb": kiosk["peak_rss_mb"],
        "kiosk_ru_maxrss_mb": kiosk["ru_maxrss_mb"],
        "kiosk_cpu_s": kiosk["cpu_s"],
    }
    if rtt:
        result["window_ceiling_ev_s"] = round(window / (result["rtt_ms"] / 1000))
    print(
        f"  {name}: {result['events_per_s']} ev/s, peak RSS {result['kiosk_peak_rss_mb']} MB",
        file=sys.stderr,
    )
    return result


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=20_000, help="backlog for the memory check")
    parser.add_argument(
        "--small-window",
        type=int,
        default=1000,
        help="a smaller window, for comparison with the default 5000",
    )
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL URL ('' to skip)")
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    from benchlib import machine_info

    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kiosk-drain-") as scratch:
        tmp = Path(scratch)
        small, big = tmp / "small.db", tmp / "big.db"
        started = time.monotonic()
        data_bytes = build_backlog(big, args.events)
        build_s = time.monotonic() - started
        build_backlog(small, args.small)
        print(
            f"backlog: {args.events} events bulk-inserted in {build_s:.1f} s,"
            f" data {data_bytes} B/event",
            file=sys.stderr,
        )
        sqlite_url = str(tmp / "central.db")

        def sqlite_store() -> str:
            for suffix in ("", "-wal", "-shm"):
                Path(sqlite_url + suffix).unlink(missing_ok=True)
            return sqlite_url

        runs.append(drain_run("loopback, sqlite, small", small, sqlite_store(), tmp))
        runs.append(drain_run("loopback, sqlite", big, sqlite_store(), tmp))
        runs.append(
            drain_run(
                f"loopback, sqlite, window {args.small_window}",
                big,
                sqlite_store(),
                tmp,
                window=args.small_window,
            )
        )
        if args.pg:
            with pg_database(args.pg) as pg_url:
                if pg_url:
                    runs.append(drain_run("loopback, postgresql", big, pg_url, tmp))
        runs.append(drain_run("50 ms RTT, sqlite", big, sqlite_store(), tmp, rtt=True))
        runs.append(
            drain_run(
                f"50 ms RTT, sqlite, window {args.small_window}",
                big,
                sqlite_store(),
                tmp,
                window=args.small_window,
                rtt=True,
            )
        )

    by_name = {r["run"]: r for r in runs}
    loop_sqlite = by_name["loopback, sqlite"]["events_per_s"]
    rtt_default = by_name["50 ms RTT, sqlite"]["events_per_s"]
    small_rss = by_name["loopback, sqlite, small"]["kiosk_peak_rss_mb"]
    big_rss = by_name["loopback, sqlite"]["kiosk_peak_rss_mb"]
    flat = big_rss <= small_rss * 1.10 + 2  # within 10 % (+2 MB noise) for 5x the backlog
    goals = {
        "loopback_sqlite_ev_s": {"goal": GOAL_LOOPBACK, "got": loop_sqlite},
        "rtt50_sqlite_ev_s": {"goal": GOAL_RTT50, "got": rtt_default},
        "kiosk_memory_flat": {
            "goal": f"peak RSS at {args.events} ≤ 1.1 x at {args.small} + 2 MB",
            "got": f"{small_rss} MB → {big_rss} MB",
            "met": flat,
        },
    }
    goals["loopback_sqlite_ev_s"]["met"] = loop_sqlite >= GOAL_LOOPBACK
    goals["rtt50_sqlite_ev_s"]["met"] = rtt_default >= GOAL_RTT50

    header = (
        f"{'run':32} {'events':>7} {'window':>6} {'rtt ms':>6} {'s':>7} {'ev/s':>7}"
        f" {'stored':>7} {'dup':>4} {'RSS0 MB':>7} {'peak MB':>7} {'kiosk CPU s':>11}"
    )
    print("broker: private mosquitto on 127.0.0.1, persistence off (throughput bench);")
    print("kiosk child: RSS0 before Sync starts, peak = its VmHWM, CPU = its user+sys")
    print(header)
    for r in runs:
        print(
            f"{r['run']:32} {r['events']:>7} {r['window']:>6} {r.get('rtt_ms', '-')!s:>6}"
            f" {r['seconds']:>7} {r['events_per_s']:>7} {r['stored']:>7} {r['duplicates']:>4}"
            f" {r['kiosk_rss_before_sync_mb']:>7} {r['kiosk_peak_rss_mb']:>7}"
            f" {r['kiosk_cpu_s']:>11}"
        )
    for name, goal in goals.items():
        verdict = "met" if goal["met"] else "NOT met"
        print(f"goal {name}: {goal['got']} (goal {goal['goal']}) → {verdict}")
    print(
        json.dumps(
            {
                "bench": "kiosk_drain",
                "events": args.events,
                "data_bytes_per_event": data_bytes,
                "backlog_build": "one sqlite3 transaction on the EventLog's file and schema",
                "broker": "mosquitto, 127.0.0.1, persistence false",
                "proxy_delay_ms_each_way": DELAY_S * 1000,
                "runs": runs,
                "goals": goals,
                "machine": machine_info(),
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
