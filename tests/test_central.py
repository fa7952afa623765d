"""Central ingest against a real mosquitto, real SQLite files and a real PostgreSQL."""

from __future__ import annotations

import io
import json
import queue
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from kiosk.central import (
    Ingest,
    IngestSettings,
    Store,
    format_fleet,
    print_status,
    run_central,
)
from kiosk.central.cli import PASSWORD_ENV
from kiosk.central.quarantine import refusal
from kiosk.cli.main import cli
from kiosk.mqtt.protocol import (
    command_signature,
    decode_command,
    encode_events,
    encode_state,
)
from tests.broker import Broker, Collector, mqtt_client
from tests.central_support import (
    EVENTS_TOPIC,
    KEY,
    SITE,
    CrashesAfterCommit,
    Receipts,
    events,
    execute,
    rows,
    stored_seqs,
)
from tests.support import wait_until

pytest_plugins = ("tests.central_fixtures",)


# --- store level: the same tests on SQLite and PostgreSQL ---


def test_store_ignores_events_it_already_has(store: Store) -> None:
    batch = rows(SITE, "k1", [1, 2, 3])
    assert store.insert_batch(batch).new == 3
    assert store.insert_batch([*batch, *rows(SITE, "k1", [4])]).new == 1
    assert stored_seqs(store) == [1, 2, 3, 4]
    (k1,) = store.fleet()
    assert (k1.highest_seq, k1.count, k1.missing) == (4, 4, 0)


def test_store_refuses_a_seq_or_event_id_its_kiosk_used_for_another_event(store: Store) -> None:
    first = rows(SITE, "k1", [1, 2])
    store.insert_batch(first)
    taken_seq, taken_id, fresh = rows(SITE, "k1", [2, 3, 4])
    taken_id = taken_id._replace(event_id=first[0].event_id)
    other_kiosk = first[0]._replace(kiosk="k2")  # the same id and seq, another kiosk: fine
    stored = store.insert_batch([*first, taken_seq, taken_id, fresh, other_kiosk])
    assert stored.new == 2
    assert [(row.seq, reason) for row, reason in stored.conflicts] == [
        (2, "seq already stored for another event"),
        (3, "event_id already stored under another seq"),
    ]
    assert [(k.kiosk, k.highest_seq, k.count) for k in store.fleet()] == [
        ("k1", 4, 3),
        ("k2", 1, 1),
    ]


def test_store_reports_gaps_per_kiosk(store: Store) -> None:
    store.insert_batch(rows(SITE, "k1", [2, 3, 6, 10]) + rows(SITE, "k2", [1, 2]))
    assert store.gaps(SITE, "k1") == [[1, 1], [4, 5], [7, 9]]
    assert store.gaps(SITE, "k1", after=3) == [[4, 5], [7, 9]]
    assert store.gaps(SITE, "k2") == []
    assert [(k.kiosk, k.missing) for k in store.fleet()] == [("k1", 6), ("k2", 0)]


def test_a_quarantined_seq_is_not_a_gap_to_ask_for_again(store: Store) -> None:
    """Asking the kiosk to resend it would only quarantine it again, every grace period."""
    store.insert_batch(rows(SITE, "k1", [1, 2, 4]))
    topic = f"kiosk/v1/{SITE}/k1/events"
    store.quarantine([refusal(topic, b"{}", "ts_ms out of range", 1_000, seq=3)])
    assert store.gaps(SITE, "k1") == []
    assert store.gaps(SITE, "k2") == []


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
    assert ingest.wait_idle(5)  # the counters are updated after the receipts go out
    stats = ingest.stats()
    assert (stats["stored"], stats["duplicates"], stats["malformed"]) == (30, 0, 0)


def test_central_connects_over_tls_only_to_a_broker_its_ca_signed(
    broker: Broker, central: Callable[..., Ingest], sqlite_url: str, connect: Callable[[str], Store]
) -> None:
    central(connect(sqlite_url), port=broker.tls_port, ca_file=broker.ca_file)
    receipts = Receipts(broker, "k1", connect(sqlite_url))
    batch = encode_events(SITE, "k1", events(range(1, 4)))
    assert receipts.client.publish_acked(EVENTS_TOPIC, batch) == 0
    wait_until(lambda: receipts.covered() == {1, 2, 3})
    untrusting = Ingest(
        IngestSettings(
            host=broker.host,
            port=broker.tls_port,
            client_id="central-2",
            username="central",
            password=broker.password("central"),
            ca_file=broker.wrong_ca_file,
        ),
        connect(sqlite_url),
    )
    untrusting.start()
    try:
        assert not untrusting.wait_ready(3), "connected to a broker its CA did not sign"
    finally:
        untrusting.stop()


def test_a_batch_sent_twice_is_stored_once_and_receipted_twice(
    broker: Broker, central: Callable[..., Ingest], sqlite_url: str, connect: Callable[[str], Store]
) -> None:
    store = connect(sqlite_url)
    ingest = central(store)
    receipts = Receipts(broker, "k1", connect(sqlite_url))
    payload = encode_events(SITE, "k1", events(range(1, 6)))
    for sent in (1, 2):  # e.g. the kiosk missed the first receipt and sent the batch again
        assert receipts.client.publish_acked(EVENTS_TOPIC, payload) == 0
        receipts.wait_for(sent)
    assert receipts.seqs == [[1, 2, 3, 4, 5]] * 2
    assert stored_seqs(store) == [1, 2, 3, 4, 5]
    assert ingest.wait_idle(5)
    assert (ingest.stats()["stored"], ingest.stats()["duplicates"]) == (5, 5)


def test_messages_committed_but_not_acked_are_redelivered_and_deduplicated(
    broker: Broker, central: Callable[..., Ingest], sqlite_url: str, connect: Callable[[str], Store]
) -> None:
    store = connect(sqlite_url)
    crashed = central(store, cls=CrashesAfterCommit, batch_max=5)
    assert isinstance(crashed, CrashesAfterCommit)
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
    assert restarted.wait_idle(5)
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
    command = decode_command(bytes(commands.get(timeout=5).payload))
    asked_at = time.monotonic()
    assert asked_at - sent_at >= 0.5
    assert (command.command, command.args) == ("resend", {"from_seq": 3})
    assert command.sig == command_signature(KEY, command)
    assert command.expires_at_ms > command.issued_at_ms
    assert store.fleet()[0].resend_from_seq == 3
    # Still missing: asked again, but not before another grace period.
    again = decode_command(bytes(commands.get(timeout=5).payload))
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
    assert first.wait_idle(10) and second.wait_idle(10)  # counters follow the commit
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
    state = encode_state({"log": {"unconfirmed": 7, "oldest_unconfirmed_age_s": 125}})
    for topic, payload in ((status_topic, b"online"), (f"kiosk/v1/{SITE}/k1/state", state)):
        kiosk.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    # Central starts later and learns everything from the retained messages.
    store = connect(sqlite_url)
    central(store)
    wait_until(lambda: bool(store.fleet()) and store.fleet()[0].availability == "online")
    wait_until(lambda: store.fleet()[0].state.get("log", {}).get("unconfirmed") == 7)
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


# --- schema migration and retention ---


def v1_store(db_url: str) -> None:
    """A store as central version 1 left it: events keyed on event_id alone; k1 reused seq 1."""
    pg = db_url.startswith("postgresql")
    boolean, json_type = ("BOOLEAN", "JSONB") if pg else ("INTEGER", "TEXT")
    true = "true" if pg else "1"
    values = [
        ("a", "k1", 1, 10),
        ("b", "k1", 1, 20),  # the same seq for another event: only the first is kept
        ("c", "k1", 2, 30),
        ("d", "k2", 1, 40),
    ]
    execute(
        db_url,
        [
            "CREATE TABLE events (event_id TEXT PRIMARY KEY, site TEXT NOT NULL,"
            " kiosk TEXT NOT NULL, seq BIGINT NOT NULL, boot_id TEXT NOT NULL,"
            f" ts_ms BIGINT NOT NULL, clock_synced {boolean} NOT NULL, type TEXT NOT NULL,"
            f" historical {boolean} NOT NULL, schema INTEGER NOT NULL, data {json_type} NOT NULL,"
            " received_at_ms BIGINT NOT NULL)",
            "CREATE INDEX events_kiosk_seq ON events (site, kiosk, seq)",
            "CREATE TABLE kiosks (site TEXT NOT NULL, kiosk TEXT NOT NULL, availability TEXT,"
            f" last_seen_ms BIGINT, state {json_type}, highest_seq BIGINT NOT NULL DEFAULT 0,"
            " event_count BIGINT NOT NULL DEFAULT 0, resend_from_seq BIGINT,"
            " resend_at_ms BIGINT, PRIMARY KEY (site, kiosk))",
            *(
                f"INSERT INTO events VALUES ('{event_id}', '{SITE}', '{kiosk}', {seq}, 'b1', 5,"
                f" {true}, 'passage', {true}, 1, '{{}}', {received})"
                for event_id, kiosk, seq, received in values
            ),
            f"INSERT INTO kiosks VALUES ('{SITE}', 'k1', NULL, 30, NULL, 2, 3, NULL, NULL),"
            f" ('{SITE}', 'k2', NULL, 40, NULL, 1, 1, NULL, NULL)",
        ],
    )


def test_an_older_store_is_migrated_to_per_kiosk_identity(
    db_url: str, connect: Callable[[str], Store]
) -> None:
    v1_store(db_url)
    store = connect(db_url)
    kept = [(e.kiosk, e.seq, e.event_id) for e in store.events_between(0, 2**62)]
    assert sorted(kept) == [("k1", 1, "a"), ("k1", 2, "c"), ("k2", 1, "d")]
    (moved,) = store.quarantined(5)
    assert (moved.kiosk, moved.seq, json.loads(moved.payload)["event_id"]) == ("k1", 1, "b")
    assert moved.reason == "migration: seq already stored for another event"
    assert [(k.kiosk, k.count, k.missing) for k in store.fleet()] == [("k1", 2, 0), ("k2", 1, 0)]
    # Identity is per kiosk now: k2 may use an event id k1 used.
    (row,) = rows(SITE, "k2", [2])
    assert store.insert_batch([row._replace(event_id="a")]).new == 1
    store.close()
    again = connect(db_url)  # opened again: nothing left to migrate
    assert (again.count(), again.quarantined_count()) == (4, 1)


def test_a_negative_retention_is_refused() -> None:
    result = CliRunner().invoke(cli, ["central", "run", "--retention-days", "-1"])
    assert result.exit_code == 2 and "--retention-days" in result.output
