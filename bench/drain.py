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
Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SITE, KIOSK = "bench", "k1"
DELAY_S = 0.025  # each way
POLL_S = 0.02
RUN_TIMEOUT_S = 120.0  # a kiosk child gives up after this long
GOAL_LOOPBACK = 20_000
GOAL_RTT50 = 5_000


# --- the backlog ---------------------------------------------------------------------------


def decision_data(n: int) -> dict[str, Any]:
    """A realistic decision event's data (about 300 bytes of JSON), like Kiosk._decision_data."""
    return {
        "mode": "entrance",
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
    command = [sys.executable, str(Path(__file__).resolve()), "--kiosk-child", str(db)]
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


# --- the delay proxy ------------------------------------------------------------------------


def proxy_main(listen_port: int, target_port: int, delay_s: float) -> None:
    """Forward 127.0.0.1:listen_port → target_port, delaying every chunk by ``delay_s``.

    Each direction is a reader that stamps chunks and a writer that sends each one when it
    is due, so the delay is added per direction without limiting throughput.
    """
    import asyncio
    import socket

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, chunk = await chunks.get()
                if not chunk:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
            with contextlib.suppress(OSError):
                writer.close()

        sender = asyncio.create_task(send())
        try:
            while chunk := await reader.read(65536):
                chunks.put_nowait((loop.time() + delay_s, chunk))
        except OSError:
            pass
        chunks.put_nowait((0.0, b""))
        with contextlib.suppress(OSError):
            await sender

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
        for w in (client_w, server_w):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w))

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


@contextlib.contextmanager
def delay_proxy(target_port: int) -> Iterator[int]:
    from ingest import free_port

    port = free_port()
    command = [sys.executable, str(Path(__file__).resolve()), "--proxy", str(port)]
    command += [str(target_port), str(DELAY_S)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("delay proxy did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def publish_rtt_ms(port: int, samples: int = 7) -> float:
    """Median time from publish (QoS 1, MQTT 5, TCP_NODELAY) to its PUBACK through ``port``."""
    import socket

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    acked = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, "rtt-probe", protocol=mqtt.MQTTv5)
    client.on_socket_open = lambda c, u, s: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.on_publish = lambda *args: acked.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    times = []
    try:
        for _ in range(samples):
            acked.clear()
            start = time.monotonic()
            client.publish("bench/rtt", b"x" * 300, qos=1)
            if not acked.wait(5):
                raise RuntimeError("no PUBACK through the delay proxy")
            times.append((time.monotonic() - start) * 1000)
    finally:
        client.disconnect()
        client.loop_stop()
    return statistics.median(times)


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
    if len(sys.argv) > 1 and sys.argv[1] == "--kiosk-child":
        kiosk_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--proxy":
        proxy_main(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        main()
