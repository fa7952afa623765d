"""Central ingest against a real mosquitto, real SQLite files and a real PostgreSQL."""

from __future__ import annotations

import io
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from kiosk.central import (
    EventRow,
    Ingest,
    IngestSettings,
    Store,
    format_fleet,
    open_store,
    print_status,
    run_central,
)
from kiosk.central.cli import PASSWORD_ENV
from kiosk.protocol import (
    WireEvent,
    command_signature,
    decode_command,
    decode_receipt,
    encode_events,
    encode_state,
)
from tests.broker import Broker, Collector, mqtt_client

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SITE = "s1"
KEY = b"site-command-key"
EVENTS_TOPIC = f"kiosk/v1/{SITE}/k1/events"


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        pause.wait(0.02)


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


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: an SQLite file, or a PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'central.db'}"
        return
    import psycopg

    try:
        admin = psycopg.connect(PG_URL, autocommit=True)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):  # CI's machine runs PostgreSQL: it must be tested there
            raise
        pytest.skip(f"PostgreSQL not reachable on this machine: {exc}")
    schema = f"central_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return str(tmp_path / "central.db")


@pytest.fixture
def connect() -> Iterator[Callable[[str], Store]]:
    """open_store, closing every store at the end of the test."""
    opened: list[Store] = []

    def open_one(url: str) -> Store:
        opened.append(open_store(url))
        return opened[-1]

    yield open_one
    for one in opened:
        one.close()


@pytest.fixture
def central(broker: Broker, connect: Callable[[str], Store]) -> Iterator[Callable[..., Ingest]]:
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
        self._db = db
        self.client = mqtt_client(broker, kiosk)
        Collector(self.client).subscribe(f"kiosk/v1/{SITE}/{kiosk}/receipts")
        self.client.on_message = self._on_message

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        seqs = decode_receipt(message.payload)
        stored = {e.seq for e in self._db.events_between(0, 2**62)}
        self.stored_on_arrival.append(set(seqs) <= stored)
        self.seqs.append(seqs)

    def covered(self) -> set[int]:
        return {seq for receipt in list(self.seqs) for seq in receipt}


def stored_seqs(store: Store) -> list[int]:
    return [e.seq for e in store.events_between(0, 2**62)]


# --- store level: the same tests on SQLite and PostgreSQL ---


def test_store_ignores_events_it_already_has(store: Store) -> None:
    batch = rows(SITE, "k1", [1, 2, 3])
    assert store.insert_batch(batch).new == 3
    assert store.insert_batch([*batch, *rows(SITE, "k1", [4])]).new == 1
    assert stored_seqs(store) == [1, 2, 3, 4]
    (k1,) = store.fleet()
    assert (k1.highest_seq, k1.count, k1.missing) == (4, 4, 0)


def test_store_reports_gaps_per_kiosk(store: Store) -> None:
    store.insert_batch(rows(SITE, "k1", [2, 3, 6, 10]) + rows(SITE, "k2", [1, 2]))
    assert store.gaps(SITE, "k1") == [[1, 1], [4, 5], [7, 9]]
    assert store.gaps(SITE, "k1", after=3) == [[4, 5], [7, 9]]
    assert store.gaps(SITE, "k2") == []
    assert [(k.kiosk, k.missing) for k in store.fleet()] == [("k1", 6), ("k2", 0)]


def test_store_keeps_status_state_and_resend_per_kiosk(store: Store) -> None:
    store.set_availability(SITE, "k1", "online", 1_000)
    store.set_state(SITE, "k1", {"backlog": 12}, None)
    store.record_resend(SITE, "k1", 7, 2_000)
    store.set_availability(SITE, "k1", "offline", None)
    (k1,) = store.fleet()
    assert (k1.availability, k1.last_seen_ms, k1.state) == ("offline", 1_000, {"backlog": 12})
    assert (k1.resend_from_seq, k1.resend_at_ms) == (7, 2_000)


# --- ingest over MQTT ---


def test_events_are_stored_once_in_order_and_receipted_after_commit(
    broker: Broker,
    central: Callable[..., Ingest],
    store: Store,
    db_url: str,
    connect: Callable[[str], Store],
) -> None:
    ingest = central(store)
    receipts = Receipts(broker, "k1", connect(db_url))
    for first in range(1, 31, 10):
        batch = events(range(first, first + 10))
        assert receipts.client.publish_acked(EVENTS_TOPIC, encode_events(SITE, "k1", batch)) == 0
    wait_until(lambda: receipts.covered() == set(range(1, 31)))
    assert stored_seqs(store) == list(range(1, 31))
    assert all(receipts.stored_on_arrival), "a receipt arrived before its rows were committed"
    stats = ingest.stats()
    assert (stats["stored"], stats["duplicates"], stats["malformed"]) == (30, 0, 0)


def test_a_batch_sent_twice_is_stored_once_and_receipted_twice(
    broker: Broker, central: Callable[..., Ingest], sqlite_url: str, connect: Callable[[str], Store]
) -> None:
    store = connect(sqlite_url)
    ingest = central(store)
    receipts = Receipts(broker, "k1", connect(sqlite_url))
    payload = encode_events(SITE, "k1", events(range(1, 6)))
    for sent in (1, 2):  # e.g. the kiosk missed the first receipt and sent the batch again
        assert receipts.client.publish_acked(EVENTS_TOPIC, payload) == 0
        wait_until(lambda sent=sent: len(receipts.seqs) == sent)
    assert receipts.seqs == [[1, 2, 3, 4, 5]] * 2
    assert stored_seqs(store) == [1, 2, 3, 4, 5]
    assert (ingest.stats()["stored"], ingest.stats()["duplicates"]) == (5, 5)


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


def test_messages_committed_but_not_acked_are_redelivered_and_deduplicated(
    broker: Broker, central: Callable[..., Ingest], sqlite_url: str, connect: Callable[[str], Store]
) -> None:
    store = connect(sqlite_url)
    crashed = central(store, cls=CrashesAfterCommit, batch_max=5)
    receipts = Receipts(broker, "k1", connect(sqlite_url))
    for first in range(1, 101, 5):
        payload = encode_events(SITE, "k1", events(range(first, first + 5)))
        assert receipts.client.publish_acked(EVENTS_TOPIC, payload) == 0
    assert crashed.dead.wait(10)
    committed = store.count()
    assert committed > 0 and receipts.seqs == []
    # A new process with the same client id resumes the session; the broker redelivers.
    restarted = central(connect(sqlite_url))
    wait_until(lambda: receipts.covered() == set(range(1, 101)))
    assert stored_seqs(store) == list(range(1, 101))
    assert restarted.stats()["duplicates"] >= committed


def test_malformed_messages_are_counted_acked_and_do_not_stop_ingest(
    broker: Broker, central: Callable[..., Ingest], sqlite_url: str, connect: Callable[[str], Store]
) -> None:
    store = connect(sqlite_url)
    ingest = central(store)
    k1 = mqtt_client(broker, "k1")
    good = encode_events(SITE, "k1", events([1]))
    bad = [
        b"not json",
        good.replace(b'"v":1', b'"v":99'),
        good.replace(b'"boot_id":"boot-1",', b""),
        encode_events(SITE, "k2", events([2])),  # k1 speaking for k2
    ]
    for payload in [*bad, good]:
        assert k1.publish_acked(EVENTS_TOPIC, payload) == 0
    wait_until(lambda: store.count() == 1)
    assert ingest.wait_idle(5)
    # Three are refused as whole messages; the event without a boot_id is refused alone.
    assert (ingest.stats()["malformed"], ingest.stats()["quarantined"]) == (3, 4)
    assert store.quarantined_count() == 4
    ingest.stop()
    # Acked: a restart of the same consumer gets nothing again.
    again = central(store)
    assert k1.publish_acked(EVENTS_TOPIC, encode_events(SITE, "k1", events([2]))) == 0
    wait_until(lambda: store.count() == 2)
    assert again.stats()["received"] == 1
    assert stored_seqs(store) == [1, 2]


def test_a_gap_that_lasts_the_grace_period_gets_one_signed_resend(
    broker: Broker, central: Callable[..., Ingest], sqlite_url: str, connect: Callable[[str], Store]
) -> None:
    store = connect(sqlite_url)
    central(store, gap_grace_s=0.5)
    commands = Collector(mqtt_client(broker, "k1"))
    commands.subscribe(f"kiosk/v1/{SITE}/k1/cmd")
    k1 = mqtt_client(broker, "k1")
    sent_at = time.monotonic()
    assert k1.publish_acked(EVENTS_TOPIC, encode_events(SITE, "k1", events([1, 2, 5]))) == 0
    command = decode_command(commands.get(timeout=5).payload)
    asked_at = time.monotonic()
    assert asked_at - sent_at >= 0.5
    assert (command.command, command.args) == ("resend", {"from_seq": 3})
    assert command.sig == command_signature(KEY, command)
    assert command.expires_at_ms > command.issued_at_ms
    assert store.fleet()[0].resend_from_seq == 3
    # Still missing: asked again, but not before another grace period.
    again = decode_command(commands.get(timeout=5).payload)
    assert time.monotonic() - asked_at >= 0.45
    assert again.args == {"from_seq": 3} and again.id != command.id
    # The kiosk sends 3 and 4: the gap closes and no further request follows.
    assert k1.publish_acked(EVENTS_TOPIC, encode_events(SITE, "k1", events([3, 4]))) == 0
    wait_until(lambda: store.count() == 5)
    with pytest.raises(queue.Empty):
        commands.messages.get(timeout=1.0)


def test_two_consumers_in_a_share_group_split_the_events(
    broker: Broker, central: Callable[..., Ingest], sqlite_url: str, connect: Callable[[str], Store]
) -> None:
    first = central(connect(sqlite_url), client_id="central-a")
    second = central(connect(sqlite_url), client_id="central-b")
    k1 = mqtt_client(broker, "k1")
    for start in range(1, 201, 5):
        payload = encode_events(SITE, "k1", events(range(start, start + 5)))
        assert k1.publish_acked(EVENTS_TOPIC, payload) == 0
    store = connect(sqlite_url)
    wait_until(lambda: store.count() == 200)
    a, b = first.stats(), second.stats()
    assert a["stored"] > 0 and b["stored"] > 0
    assert a["stored"] + b["stored"] == 200
    assert a["duplicates"] + b["duplicates"] == 0
    assert stored_seqs(store) == list(range(1, 201))


def test_fleet_status_follows_retained_status_state_and_the_will(
    broker: Broker, central: Callable[..., Ingest], sqlite_url: str, connect: Callable[[str], Store]
) -> None:
    status_topic = f"kiosk/v1/{SITE}/k1/status"
    kiosk = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, "k1", protocol=mqtt.MQTTv5)
    kiosk.username_pw_set("k1", broker.password("k1"))
    kiosk.will_set(status_topic, b"offline", qos=1, retain=True)
    kiosk.connect(broker.host, broker.port)
    kiosk.loop_start()
    state = encode_state({"backlog": 7, "oldest_unconfirmed_age_s": 125})
    for topic, payload in ((status_topic, b"online"), (f"kiosk/v1/{SITE}/k1/state", state)):
        kiosk.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    # Central starts later and learns everything from the retained messages.
    store = connect(sqlite_url)
    central(store)
    wait_until(lambda: bool(store.fleet()) and store.fleet()[0].availability == "online")
    wait_until(lambda: store.fleet()[0].state.get("backlog") == 7)
    out = io.StringIO()
    print_status(sqlite_url, out)
    line = out.getvalue().splitlines()[1].split()
    assert line[:3] == ["s1", "k1", "online"] and "7" in line and "2m" in line
    # The kiosk drops off the network: the broker publishes its will.
    will = ReasonCode(PacketTypes.DISCONNECT, identifier=4)  # disconnect with will message
    kiosk.disconnect(reasoncode=will, properties=Properties(PacketTypes.DISCONNECT))
    kiosk.loop_stop()
    wait_until(lambda: store.fleet()[0].availability == "offline")
    assert "offline" in format_fleet(store.fleet())


def test_run_central_ingests_until_stopped_with_secrets_from_the_environment(
    broker: Broker,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    connect: Callable[[str], Store],
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, broker.password("central"))
    settings = IngestSettings(host=broker.host, port=broker.port, username="central")
    stop, result = threading.Event(), {}
    store = connect(sqlite_url)  # created first: two connections racing to set up WAL can fail
    runner = threading.Thread(
        target=lambda: result.update(run_central(settings, sqlite_url, stop, stats_every_s=0.1))
    )
    runner.start()
    try:
        k1 = mqtt_client(broker, "k1")
        payload = encode_events(SITE, "k1", events([1]))

        def sent_and_stored() -> bool:  # resent until central has subscribed and stored it
            assert not k1.publish_acked(EVENTS_TOPIC, payload).is_failure  # 0x10: none yet
            return store.count() == 1

        wait_until(sent_and_stored)
    finally:
        stop.set()
        runner.join(10)
    assert result["stored"] == 1
