"""Helpers shared by the central tests: events, a fresh SQLite or PostgreSQL database, ingest
consumers on the test broker, and a kiosk client that records its receipts."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from kiosk.central import EventRow, Ingest, IngestSettings, Store
from kiosk.mqtt.protocol import WireEvent, decode_receipt
from tests.broker import Broker, Collector, mqtt_client
from tests.support import in_ci, wait_until

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SITE = "s1"
KEY = b"site-command-key"
EVENTS_TOPIC = f"kiosk/v1/{SITE}/k1/events"


def events(seqs: range | list[int]) -> list[WireEvent]:
    return [
        WireEvent(
            str(uuid.uuid4()),
            seq,
            "boot-1",
            1_700_000_000_000 + seq,
            True,
            "decision",
            {"outcome": "allowed", "n": seq},
        )
        for seq in seqs
    ]


def rows(site: str, kiosk: str, seqs: list[int]) -> list[EventRow]:
    return [
        EventRow(
            e.event_id,
            site,
            kiosk,
            e.seq,
            e.boot_id,
            e.ts_ms,
            e.clock_synced,
            e.type,
            e.historical,
            e.schema,
            '{"n": 1}',
            5,
        )
        for e in events(seqs)
    ]


def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: an SQLite file, or a PostgreSQL schema dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'central.db'}"
        return
    import psycopg

    try:
        admin = psycopg.connect(PG_URL, autocommit=True)
    except psycopg.OperationalError as exc:
        if in_ci():  # CI's machine runs PostgreSQL: it must be tested there
            raise
        pytest.skip(f"PostgreSQL not reachable on this machine: {exc}")
    schema = f"central_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def ingests(broker: Broker) -> Iterator[Callable[..., Ingest]]:
    """Start ingest consumers on the test broker; all are stopped at the end."""
    started: list[Ingest] = []

    def start(store: Store, cls: type[Ingest] = Ingest, **overrides: Any) -> Ingest:
        settings = IngestSettings(
            host=broker.host,
            port=broker.port,
            client_id="central-1",
            username="central",
            password=broker.password("central"),
            command_key=KEY,
            batch_wait_s=0.01,
        )
        ingest = cls(IngestSettings(**{**settings.__dict__, **overrides}), store)
        ingest.start()
        started.append(ingest)
        assert ingest.wait_ready(10), "ingest did not connect and subscribe"
        return ingest

    yield start
    for ingest in started:
        ingest.stop()


class Receipts:
    """Receipts a kiosk client gets, checked against the DB the moment each arrives."""

    def __init__(self, broker: Broker, kiosk: str, db: Store) -> None:
        self.seqs: list[list[int]] = []
        self.stored_on_arrival: list[bool] = []
        self.db = db
        self.client = mqtt_client(broker, kiosk)
        Collector(self.client).subscribe(f"kiosk/v1/{SITE}/{kiosk}/receipts")
        self.client.on_message = self._on_message

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        seqs = decode_receipt(bytes(message.payload))
        stored = {e.seq for e in self.db.events_between(0, 2**62)}
        self.stored_on_arrival.append(set(seqs) <= stored)
        self.seqs.append(seqs)

    def covered(self) -> set[int]:
        return {seq for receipt in list(self.seqs) for seq in receipt}

    def wait_for(self, count: int) -> None:
        """Return once ``count`` receipts have arrived in all; fail the test if they do not."""
        wait_until(lambda: len(self.seqs) == count)


def stored_seqs(store: Store) -> list[int]:
    return [e.seq for e in store.events_between(0, 2**62)]


class CrashesAfterCommit(Ingest):
    """Dies like a killed process right after its first commit: nothing is acked after it."""

    def __init__(self, settings: IngestSettings, store: Store) -> None:
        super().__init__(settings, store)
        self.dead = threading.Event()

    def _commit(self, work: Any) -> Any:
        super()._commit(work)
        self._client.loop_stop()  # the network thread is gone: no ack, no receipt, no DISCONNECT
        self._stop.set()
        self.dead.set()
        return None


def execute(db_url: str, statements: list[str]) -> None:
    """Run SQL statements on the database behind ``db_url``, outside any :class:`Store`."""
    if db_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as pg:
            for sql in statements:
                pg.execute(sql.encode())
        return
    conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    try:
        for sql in statements:
            conn.execute(sql)
        conn.commit()
    finally:
        conn.close()
