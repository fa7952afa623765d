"""Central ingest never halts: poison messages are quarantined, the rest is stored (issue 10).

Real mosquitto with the shipped config, real SQLite files and the local PostgreSQL. Every
poison message is published with a kiosk's own credential, as a hostile or broken kiosk would.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kiosk.central import Ingest, Store, open_store, print_status
from kiosk.central.cli import PASSWORD_ENV
from kiosk.central.messages import read_events
from kiosk.central.quarantine import QUARANTINE_BYTES
from kiosk.central.validation import event_problem
from kiosk.mqtt import boundedjson
from kiosk.mqtt.protocol import ProtocolError
from tests.broker import Broker, mqtt_client
from tests.central_support import (
    EVENTS_TOPIC,
    SITE,
    CrashesAfterCommit,
    Receipts,
    execute,
    fresh_database,
    stored_seqs,
)
from tests.support import wait_until

pytest_plugins = ("tests.central_fixtures",)

SCHEMA = json.loads((Path(__file__).parents[1] / "docs/schemas/events.json").read_text())
STATE_TOPIC = f"kiosk/v1/{SITE}/k1/state"
BOOT = "0b4d3e1c-6a57-4a2e-9f0e-3c1f5d2b7a90"


def event_json(seq: int | str, *, data: str = '{"n":1}', **fields: str) -> str:
    """One event as JSON text; ``fields`` replace a field's JSON text as it is."""
    parts = {
        "event_id": json.dumps(str(uuid.uuid4())),
        "seq": str(seq),
        "boot_id": json.dumps(BOOT),
        "ts_ms": "1700000000000",
        "clock_synced": "true",
        "type": '"passage"',
        "historical": "false",
        "schema": "1",
        "data": data,
        **fields,
    }
    return "{" + ",".join(f'"{name}":{text}' for name, text in parts.items()) + "}"


def message(*events: str, kiosk: str = "k1") -> bytes:
    return f'{{"v":1,"site":"{SITE}","kiosk":"{kiosk}","events":[{",".join(events)}]}}'.encode()


# Each names the first real event's seq, as an attacker who wants its receipt would.
POISON_EVENTS = {
    "NaN in data": event_json(1, data='{"n":NaN}'),
    "Infinity in data": event_json(1, data='{"n":-Infinity}'),
    "NUL in data": event_json(1, data='{"s":"a\\u0000b"}'),
    "NUL in a key of data": event_json(1, data='{"a\\u0000":1}'),
    "lone surrogate in data": event_json(1, data='{"s":"\\ud800"}'),
    "number past 2^63 in data": event_json(1, data='{"n":99999999999999999999}'),
    "NUL in event_id": event_json(1, event_id=f'"{uuid.uuid4()}\\u0000"'),
    "seq 2^63": event_json(2**63),
    "ts_ms 1e30": event_json(1, ts_ms="1e30"),
    "ts_ms 10^30": event_json(1, ts_ms="1" + "0" * 30),
    "ts_ms after the year 9999": event_json(1, ts_ms="253402300800000"),
    "10,000 levels deep": event_json(1, data='{"n":' + "[" * 10_000 + "]" * 10_000 + "}"),
}
POISON_MESSAGES = {
    **{name: message(text) for name, text in POISON_EVENTS.items()},
    "not UTF-8": b"\xff\xfe{",
    "body names another kiosk": message(event_json(1), kiosk="k2"),
    "over central's 256 KiB": message(event_json(1, data='{"s":"' + "x" * 300_000 + '"}')),
}
POISON_STATES = [b'{"v":1,"backlog":NaN}', b'{"v":1,"s":"\\ud800"}', b'{"v":1,"s":"\\u0000"}']


def quarantined(ingest: Ingest) -> int:
    return ingest.stats()["quarantined"]


def status_text(db_url: str) -> str:
    out = io.StringIO()
    print_status(db_url, out)
    return out.getvalue()


def test_poison_messages_are_quarantined_and_every_later_message_is_stored(
    broker: Broker,
    central: Callable[..., Ingest],
    store: Store,
    db_url: str,
    connect: Callable[[str], Store],
) -> None:
    ingest = central(store)
    receipts = Receipts(broker, "k1", connect(db_url))
    k1 = receipts.client
    for payload in POISON_MESSAGES.values():
        assert k1.publish_acked(EVENTS_TOPIC, payload) == 0
    for payload in POISON_STATES:
        assert k1.publish_acked(STATE_TOPIC, payload, retain=True) == 0
    # One bad event inside a good batch: the rest of the batch is stored.
    mixed = message(event_json(1), event_json(2, data='{"s":"\\u0000"}'), event_json(3))
    assert k1.publish_acked(EVENTS_TOPIC, mixed) == 0
    assert k1.publish_acked(EVENTS_TOPIC, message(event_json(4), event_json(5))) == 0
    wait_until(lambda: receipts.covered() == {1, 3, 4, 5}, timeout=20)
    assert ingest.wait_idle(10)
    assert stored_seqs(store) == [1, 3, 4, 5]
    assert 2 not in receipts.covered()  # a refused event is never confirmed to its kiosk
    expected = len(POISON_MESSAGES) + len(POISON_STATES) + 1
    assert quarantined(ingest) == store.quarantined_count() == expected
    rows = store.quarantined(expected)
    assert {(q.site, q.kiosk) for q in rows} == {(SITE, "k1")}
    by_reason = {q.reason: q for q in rows}
    assert any("NUL" in reason for reason in by_reason)
    assert any("nested deeper" in reason for reason in by_reason)
    assert any("differ from the topic" in reason for reason in by_reason)
    (big,) = [q for q in rows if q.size > 256 * 1024]
    assert len(big.payload) == QUARANTINE_BYTES  # raw bytes kept, bounded
    (single,) = [q for q in rows if q.seq == 2]
    assert json.loads(single.payload)["data"] == {"s": "\x00"}
    text = status_text(db_url)
    assert f"quarantined: {expected}" in text
    assert "seq 2: data holds a NUL character" in text


def test_a_row_the_store_refuses_is_quarantined_alone(
    broker: Broker,
    central: Callable[..., Ingest],
    store: Store,
    db_url: str,
    connect: Callable[[str], Store],
) -> None:
    """A store error about one row (here a trigger's) never stalls the batch or ingest."""
    refuse_seq_in_store(db_url, 3)
    ingest = central(store)
    receipts = Receipts(broker, "k1", connect(db_url))
    batch = message(*(event_json(seq) for seq in range(1, 6)))
    assert receipts.client.publish_acked(EVENTS_TOPIC, batch) == 0
    assert receipts.client.publish_acked(EVENTS_TOPIC, message(event_json(6))) == 0
    wait_until(lambda: receipts.covered() == {1, 2, 4, 5, 6}, timeout=20)
    assert stored_seqs(store) == [1, 2, 4, 5, 6]
    (row,) = store.quarantined(5)
    assert (row.seq, row.reason.startswith("the store refused it:")) == (3, True)
    assert ingest.wait_idle(5)  # the counters are updated after the receipts go out
    assert quarantined(ingest) == 1


def refuse_seq_in_store(db_url: str, seq: int) -> None:
    """A trigger that makes the database itself refuse events with ``seq``."""
    if db_url.startswith("sqlite:///"):
        execute(
            db_url,
            [
                f"CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.seq = {seq}"
                " BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
            ],
        )
        return
    execute(
        db_url,
        [
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF NEW.seq = {seq} THEN RAISE EXCEPTION 'refused by a trigger'"
            " USING ERRCODE = 'data_exception'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse()",
        ],
    )


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from fresh_database("postgresql", tmp_path)


def test_a_lost_database_connection_is_retried_not_quarantined(
    broker: Broker,
    central: Callable[..., Ingest],
    connect: Callable[[str], Store],
    pg_url: str,
) -> None:
    import psycopg

    db_url = pg_url
    store = connect(db_url)
    ingest = central(store)
    receipts = Receipts(broker, "k1", connect(db_url))
    assert receipts.client.publish_acked(EVENTS_TOPIC, message(event_json(1))) == 0
    wait_until(lambda: receipts.covered() == {1})
    with psycopg.connect(db_url, autocommit=True) as admin:  # the server drops central
        admin.execute("SELECT pg_terminate_backend(%s)", (store._conn.info.backend_pid,))
    assert receipts.client.publish_acked(EVENTS_TOPIC, message(event_json(2))) == 0
    wait_until(lambda: receipts.covered() == {1, 2}, timeout=20)
    assert stored_seqs(store) == [1, 2]
    assert (quarantined(ingest), store.quarantined_count()) == (0, 0)


def test_a_restart_after_a_poison_message_does_not_block_again(
    broker: Broker,
    central: Callable[..., Ingest],
    db_url: str,
    connect: Callable[[str], Store],
) -> None:
    """Killed after its commit, before its acks: the broker redelivers the poison message to
    the next process, which quarantines it again (one row, two sightings) and goes on."""
    store = connect(db_url)
    receipts = Receipts(broker, "k1", connect(db_url))
    crashed = central(store, cls=CrashesAfterCommit, batch_wait_s=0.5)
    assert isinstance(crashed, CrashesAfterCommit)
    poison = POISON_MESSAGES["NUL in data"]
    assert receipts.client.publish_acked(EVENTS_TOPIC, poison) == 0
    assert receipts.client.publish_acked(EVENTS_TOPIC, message(event_json(1))) == 0
    assert crashed.dead.wait(10)
    assert receipts.seqs == []
    restarted = central(connect(db_url))
    assert receipts.client.publish_acked(EVENTS_TOPIC, message(event_json(2))) == 0
    wait_until(lambda: receipts.covered() == {1, 2}, timeout=20)
    assert restarted.wait_idle(10)
    assert stored_seqs(store) == [1, 2]
    (row,) = store.quarantined(5)
    assert (store.quarantined_count(), row.repeats) == (1, 2)


def test_a_kiosk_cannot_take_another_kiosks_next_event(
    broker: Broker,
    central: Callable[..., Ingest],
    store: Store,
    db_url: str,
    connect: Callable[[str], Store],
) -> None:
    """k2 publishes k1's next event id and seq, on its own topic and on k1's behalf; k1's real
    event is still stored and confirmed."""
    central(store)
    k1 = Receipts(broker, "k1", connect(db_url))
    k2 = mqtt_client(broker, "k2")
    real = event_json(1, event_id=json.dumps(str(uuid.uuid4())))
    stolen = message(real.replace('"n":1', '"n":2'), kiosk="k2")
    assert k2.publish_acked(f"kiosk/v1/{SITE}/k2/events", stolen) == 0
    assert k2.publish_acked(f"kiosk/v1/{SITE}/k2/events", message(real, kiosk="k1")) == 0
    # Both reach central first: the broker acked them before k1 publishes.
    assert k1.client.publish_acked(EVENTS_TOPIC, message(real)) == 0
    wait_until(lambda: k1.covered() == {1})
    stored = {(e.kiosk, e.seq, e.event_id, e.data) for e in store.events_between(0, 2**62)}
    real_id = json.loads(real)["event_id"]
    assert stored == {("k1", 1, real_id, '{"n": 1}'), ("k2", 1, real_id, '{"n": 2}')}
    (refused,) = store.quarantined(5)
    assert (refused.kiosk, refused.reason) == (
        "k2",
        "site/kiosk in the payload differ from the topic",
    )


def test_a_kiosk_reusing_a_seq_for_another_event_is_quarantined_not_confirmed(
    broker: Broker, central: Callable[..., Ingest], store: Store, db_url: str, connect: Any
) -> None:
    ingest = central(store)
    k1 = Receipts(broker, "k1", connect(db_url))
    first = message(event_json(1))
    for sent in (1, 2):  # the second time it is a duplicate: confirmed again
        assert k1.client.publish_acked(EVENTS_TOPIC, first) == 0
        k1.wait_for(sent)
    assert k1.client.publish_acked(EVENTS_TOPIC, message(event_json(1), event_json(2))) == 0
    k1.wait_for(3)
    assert k1.seqs == [[1], [1], [2]]  # the other event that claims seq 1 is not confirmed
    assert ingest.wait_idle(5)
    assert ingest.stats()["duplicates"] == 1
    (row,) = store.quarantined(5)
    assert (row.seq, row.reason) == (1, "seq already stored for another event")


# Not JSON, or not storable JSON: refused by kiosk.mqtt.boundedjson before any schema is consulted.
NOT_STORABLE_JSON = {
    "NaN in data",
    "Infinity in data",
    "lone surrogate in data",
    "number past 2^63 in data",
    "seq 2^63",
    "ts_ms 10^30",
    "10,000 levels deep",
}


def test_central_refuses_what_the_published_schema_refuses() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    good = message(event_json(1, data="{}"))
    assert list(validator.iter_errors(json.loads(good))) == []
    assert read_events(SITE, "k1", good, 0)[1] == []
    for name, text in POISON_EVENTS.items():
        if name in NOT_STORABLE_JSON:
            with pytest.raises(ProtocolError):
                read_events(SITE, "k1", message(text), 0)
            continue
        assert list(validator.iter_errors(json.loads(message(text)))), f"schema accepts {name}"
        rows, refused = read_events(SITE, "k1", message(text, event_json(2)), 0)
        assert ([row.seq for row in rows], len(refused)) == ([2], 1), name
        assert event_problem(json.loads(text)) == refused[0].reason


def test_a_10_mb_or_deeply_nested_message_is_refused_with_a_reason_before_it_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsed")

    monkeypatch.setattr(boundedjson.json, "loads", parse)  # bounded before parsing
    with pytest.raises(ProtocolError, match="larger than 262144 bytes"):
        read_events(SITE, "k1", message(event_json(1, data='"' + "x" * 10_000_000 + '"')), 0)
    with pytest.raises(ProtocolError, match="nested deeper than 32 levels"):
        read_events(SITE, "k1", POISON_MESSAGES["10,000 levels deep"], 0)


KIOSK = [sys.executable, "-c", "from kiosk.cli.main import main; main()"]


def start_central_process(broker: Broker, db_path: Path) -> subprocess.Popen[bytes]:
    """``kiosk central run`` as an operator starts it, on the test broker's plain port."""
    env = {**os.environ, PASSWORD_ENV: broker.password("central")}
    command = [*KIOSK, "central", "run", "--db", str(db_path), "--host", broker.host]
    command += ["--port", str(broker.port), "--retention-days", "30"]
    return subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)


def test_central_killed_with_poison_in_flight_starts_again_and_goes_on(
    broker: Broker, tmp_path: Path
) -> None:
    """kill -9 of the real ``kiosk central run`` while poison and good messages arrive; the
    next process quarantines what it must, stores the rest, and status shows it."""
    db_path = tmp_path / "central.db"
    store = open_store(str(db_path))  # created first: two processes racing to set up WAL can fail
    receipts = Receipts(broker, "k1", store)
    process = start_central_process(broker, db_path)
    last = len(POISON_EVENTS) + 1
    try:
        wait_until(lambda: publish(receipts, 1) and 1 in stored_seqs(store), timeout=30)
        for seq, poison in enumerate(POISON_EVENTS.values(), start=2):
            assert receipts.client.publish_acked(EVENTS_TOPIC, message(poison)) == 0
            publish(receipts, seq)
        wait_until(lambda: store.quarantined_count() >= 1, timeout=30)  # busy with the poison
        process.kill()  # mid-stream: what it had not acked, the broker still holds
        process.wait(10)
        process = start_central_process(broker, db_path)
        wait_until(lambda: set(range(1, last + 1)) <= receipts.covered(), timeout=30)
    finally:
        process.kill()
        process.wait(10)
    assert stored_seqs(store) == list(range(1, last + 1))
    assert store.quarantined_count() == len(POISON_EVENTS)
    result = subprocess.run(
        [*KIOSK, "central", "status", "--db", str(db_path)], capture_output=True, check=True
    )
    assert f"quarantined: {len(POISON_EVENTS)}" in result.stdout.decode()
    store.close()


def publish(receipts: Receipts, seq: int) -> bool:
    """Publish event ``seq``, the same bytes each time; False if central had not subscribed."""
    event = event_json(seq, event_id=json.dumps(str(uuid.UUID(int=seq))))
    code = receipts.client.publish_acked(EVENTS_TOPIC, message(event))
    assert not code.is_failure  # 0x10 "no matching subscribers" is not a failure
    return code == 0
