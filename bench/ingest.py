"""Central ingest throughput: a broker backlog of kiosk events → store, acks and receipts.

Run: ``.venv/bin/python bench/ingest.py [--events 100000] [--per-message 50] [--pg URL]``.
For each run a private mosquitto (no persistence) gets the consumers' sessions, a loader
publishes the backlog while they are offline, then the consumers (one process each) start.
Time runs from that start until receipts cover every event (watched by a receipt subscriber,
as the kiosks would see them). Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from benchlib import machine_info
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.central import Ingest, IngestSettings, open_store
from kiosk.mqtt.protocol import WireEvent, decode_receipt, encode_events

SITE = "bench"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def mosquitto(directory: Path) -> Iterator[int]:
    """A private broker: anonymous, no persistence, unbounded queues for offline sessions."""
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_inflight_messages 100\nset_tcp_nodelay true\n"
        "max_packet_size 1048576\nlog_dest none\n"
    )
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)])
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("mosquitto did not start")
            threading.Event().wait(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def settings(port: int, index: int) -> IngestSettings:
    return IngestSettings(host="127.0.0.1", port=port, client_id=f"central-{index}")


def make_payloads(n_events: int, per_message: int, kiosks: int) -> list[tuple[str, bytes]]:
    """Messages of ``per_message`` events, kiosks interleaved, seqs from 1 per kiosk."""
    per_kiosk = n_events // kiosks
    payloads = []
    for first in range(1, per_kiosk + 1, per_message):
        for k in range(kiosks):
            kiosk = f"k{k:03d}"
            events = [
                WireEvent(
                    str(uuid.uuid4()),
                    seq,
                    "boot-1",
                    1_700_000_000_000 + seq,
                    True,
                    "decision",
                    {
                        "decision": "admitted",
                        "code": "OK",
                        "subject": f"s-{seq:020x}",
                        "temp_c": 36.6,
                        "ambient_c": 21.4,
                        "lane": 1,
                        "scan_ms": 182,
                    },
                    historical=True,
                )
                for seq in range(first, min(first + per_message, per_kiosk + 1))
            ]
            payloads.append((f"kiosk/v1/{SITE}/{kiosk}/events", encode_events(SITE, kiosk, events)))
    return payloads


def load(port: int, payloads: list[tuple[str, bytes]]) -> None:
    """Publish at QoS 1 and wait for every PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, "loader", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in payloads]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


class ReceiptWatch:
    """Subscribes to every receipt and notes when all events are covered."""

    def __init__(self, port: int, total: int) -> None:
        self.total, self.done_at = total, 0.0
        self._covered: dict[str, set[int]] = {}
        self._count = 0
        self.done = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, "watch", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("kiosk/v1/+/+/receipts", qos=0)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        seen = self._covered.setdefault(msg.topic, set())
        before = len(seen)
        seen.update(decode_receipt(msg.payload))
        self._count += len(seen) - before
        if self._count >= self.total and not self.done.is_set():
            self.done_at = time.monotonic()
            self.done.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def consumer(port: int, index: int, db_url: str, go: Any, finish: Any, results: Any) -> None:
    """One consumer process: start on ``go``, report counters on ``finish``."""
    store = open_store(db_url)
    ingest = Ingest(settings(port, index), store)
    results.put(("ready", index))
    go.wait()
    ingest.start()
    finish.wait()
    ingest.wait_idle(10)
    results.put(("stats", ingest.stats()))
    ingest.stop()
    store.close()


def run(
    name: str, db_url: str, consumers: int, payloads: list[tuple[str, bytes]], total: int, tmp: Path
) -> dict[str, Any]:
    with mosquitto(tmp) as port:
        for index in range(consumers):  # create the sessions, then go offline
            ingest = Ingest(settings(port, index), open_store(db_url))
            ingest.start()
            assert ingest.wait_ready(10)
            ingest.stop()
        load(port, payloads)
        ctx = mp.get_context("spawn")
        go, finish, results = ctx.Event(), ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(target=consumer, args=(port, i, db_url, go, finish, results))
            for i in range(consumers)
        ]
        for proc in procs:
            proc.start()
        for _ in procs:
            results.get(timeout=60)
        watch = ReceiptWatch(port, total)
        start = time.monotonic()
        go.set()
        if not watch.done.wait(170):
            raise RuntimeError(f"{name}: receipts incomplete")
        elapsed = watch.done_at - start
        finish.set()
        stats = [results.get(timeout=30)[1] for _ in procs]
        for proc in procs:
            proc.join(30)
        watch.close()
    store = open_store(db_url)
    stored = store.count()
    store.close()
    return {
        "run": name,
        "consumers": consumers,
        "events": total,
        "stored": stored,
        "seconds": round(elapsed, 3),
        "events_per_s": round(total / elapsed),
        "events_per_s_per_consumer": round(total / elapsed / consumers),
        "duplicates": sum(s["duplicates"] for s in stats),
        "per_consumer_stored": [s["stored"] for s in stats],
    }


@contextlib.contextmanager
def pg_schema(url: str) -> Iterator[str | None]:
    try:
        import psycopg

        admin = psycopg.connect(url, autocommit=True)
    except Exception as exc:
        print(f"PostgreSQL run skipped: {exc}")
        yield None
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--per-message", type=int, default=50)
    parser.add_argument("--kiosks", type=int, default=20)
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL URL ('' to skip)")
    args = parser.parse_args()
    payloads = make_payloads(args.events, args.per_message, args.kiosks)
    total = args.events // args.kiosks * args.kiosks
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        results.append(
            run("sqlite, 1 consumer", f"sqlite:///{base / 'one.db'}", 1, payloads, total, base)
        )
        results.append(
            run(
                "sqlite, 2 consumers ($share)",
                f"sqlite:///{base / 'two.db'}",
                2,
                payloads,
                total,
                base,
            )
        )
        if args.pg:
            with pg_schema(args.pg) as url:
                if url:
                    results.append(run("postgresql, 1 consumer", url, 1, payloads, total, base))
    print(f"{'run':30} {'events':>8} {'stored':>8} {'s':>7} {'ev/s':>8} {'ev/s/consumer':>14}")
    for r in results:
        print(
            f"{r['run']:30} {r['events']:>8} {r['stored']:>8} {r['seconds']:>7} "
            f"{r['events_per_s']:>8} {r['events_per_s_per_consumer']:>14}"
        )
    print(
        json.dumps(
            {
                "bench": "central_ingest",
                "per_message": args.per_message,
                "kiosks": args.kiosks,
                "runs": results,
                "machine": machine_info(),
            }
        )
    )


if __name__ == "__main__":
    main()
