"""Kiosk → broker → central, end to end on a real mosquitto: nothing lost, nothing doubled."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, cast

import pytest

from kiosk.central.ingest import Ingest, IngestSettings
from kiosk.central.store import Store, open_store
from kiosk.config import MqttSection, parse_config
from kiosk.mqtt.protocol import MAX_MESSAGE_BYTES, KioskTopics, Leaf, encode_receipt
from kiosk.mqtt.uplink import Uplink, UplinkError, client_id, read_password
from kiosk.store.eventlog import EventLog, read_events
from kiosk.sync import Sync
from kiosk.sync_send import pack
from tests.broker import Broker, Collector, mqtt_client
from tests.support import holds_for, wait_until

REPO = Path(__file__).resolve().parents[1]
TOPICS = KioskTopics("s1", "k1")


def mqtt_settings(port: int, **overrides: Any) -> MqttSection:
    """The kiosk k1's MQTT settings for a test broker's plain listener."""
    values = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": port,
        "tls": False,
        "username": "k1",
        "password": "k1-pw",
        "resend_after_s": 2.0,
        "state_interval_s": 1.0,
    } | overrides
    return parse_config({"mqtt": values}).mqtt


@contextlib.contextmanager
def syncing(log: EventLog, settings: MqttSection, **kwargs: Any) -> Iterator[Sync]:
    """Run a Sync for ``log`` in a thread; stop it cleanly afterwards."""
    sync = Sync(
        Uplink(settings, TOPICS, client_id(TOPICS)),
        log,
        confirm=settings.confirm,
        resend_after_s=settings.resend_after_s,
        state_interval_s=settings.state_interval_s,
        **kwargs,
    )
    stop = threading.Event()
    thread = threading.Thread(target=sync.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield sync
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.fixture
def central_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(str(tmp_path / "central.db"))
    yield store
    store.close()


@contextlib.contextmanager
def central(broker: Broker, store: Store) -> Iterator[Ingest]:
    ingest = Ingest(
        IngestSettings(
            host=broker.host,
            port=broker.port,
            username="central",
            password=broker.password("central"),
            client_id="central-test",
            gap_grace_s=60.0,
        ),
        store,
    )
    ingest.start()
    assert ingest.wait_ready(10)
    try:
        yield ingest
    finally:
        ingest.stop()


def fill(log: EventLog, n: int) -> None:
    for index in range(n):
        log.append("decision", {"outcome": "grant", "reason": "ok", "n": index})


def seqs_seen(watcher: Collector, at_least: int, timeout: float = 20.0) -> list[int]:
    """Sequence numbers in the event messages a watcher got, until ``at_least`` arrived."""
    seqs: list[int] = []
    while len(seqs) < at_least:
        message = watcher.get(timeout)
        seqs += [event["seq"] for event in json.loads(message.payload)["events"]]
    return seqs


def unconfirmed(db: Path) -> int:
    """Events in another process's log that central has not confirmed yet."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(
            conn.execute("SELECT count(*) FROM events WHERE confirmed_at_ms IS NULL").fetchone()[0]
        )


def stored_seqs(store: Store) -> list[int]:
    return sorted(row.seq for row in store.events_between(0, 2**62))


def events_messages(watcher: Collector) -> list[list[int]]:
    """Each events message the watcher has received so far: its size in bytes, then its seqs."""
    messages = []
    while not watcher.messages.empty():
        payload = watcher.get().payload
        seqs = [event["seq"] for event in json.loads(payload)["events"]]
        messages.append([len(payload), *seqs])
    return messages


@pytest.mark.parametrize(
    ("sizes", "count", "budget", "batches"),
    [
        ([10] * 5, 2, 100, [2, 2, 1]),
        ([10] * 5, 10, 32, [3, 2]),  # 10 + 1 + 10 + 1 + 10 = 32 bytes: a fourth would not fit
        ([10, 50, 10], 10, 40, [1, 1, 1]),  # an item over the budget goes alone
        ([5] * 3, 1, 100, [1, 1, 1]),
        ([], 5, 100, []),
    ],
)
def test_pack_cuts_by_count_and_by_bytes(
    sizes: list[int], count: int, budget: int, batches: list[int]
) -> None:
    assert pack(sizes, count, budget) == batches


def test_events_arrive_once_in_order_and_are_confirmed(
    broker: Broker, central_store: Store, tmp_path: Path
) -> None:
    watcher = Collector(mqtt_client(broker, "central", client_id="watcher"))
    watcher.subscribe(TOPICS.topic(Leaf.EVENTS))
    with (
        EventLog(tmp_path / "events.db", boot_id="b1") as log,
        central(broker, central_store),
        syncing(log, mqtt_settings(broker.port)),
    ):
        fill(log, 300)
        wait_until(lambda: log.stats().unconfirmed == 0, timeout=30)
    assert seqs_seen(watcher, 300) == list(range(1, 301))
    assert watcher.messages.empty()
    assert stored_seqs(central_store) == list(range(1, 301))


def test_a_kiosk_that_boots_offline_delivers_everything_later(
    broker: Broker, central_store: Store, tmp_path: Path
) -> None:
    broker.stop()
    with (
        EventLog(tmp_path / "events.db", boot_id="b1") as log,
        syncing(log, mqtt_settings(broker.port)) as sync,
    ):
        fill(log, 500)
        wait_until(lambda: "cannot reach" in sync.stats.last_error, timeout=10)
        assert log.stats().unconfirmed == 500
        broker.start()
        with central(broker, central_store):
            wait_until(lambda: log.stats().unconfirmed == 0, timeout=60)
    assert stored_seqs(central_store) == list(range(1, 501))


@pytest.mark.slow
def test_broker_killed_again_and_again_while_people_pass(
    broker: Broker, central_store: Store, tmp_path: Path
) -> None:
    """The kiosk keeps logging while the broker is SIGKILLed three times mid-stream."""
    total = 6000
    with (
        EventLog(tmp_path / "events.db", boot_id="b1") as log,
        central(broker, central_store),
        syncing(log, mqtt_settings(broker.port)),
    ):
        writer = threading.Thread(target=fill, args=(log, total))
        writer.start()

        def stored_at_least(count: int) -> bool:
            return central_store.count() >= count

        for stored in (1000, 2500, 4000):
            wait_until(partial(stored_at_least, stored), timeout=60)
            broker.kill()
            broker.start()
        writer.join(timeout=60)
        wait_until(lambda: log.stats().unconfirmed == 0, timeout=120)
    assert stored_seqs(central_store) == list(range(1, total + 1))
    assert central_store.count() == total


@pytest.mark.slow
def test_kiosk_killed_during_a_drain_loses_nothing(
    broker: Broker, central_store: Store, tmp_path: Path
) -> None:
    db = tmp_path / "events.db"
    command = [sys.executable, "-m", "tests.sync_child", str(db), str(broker.port)]
    with central(broker, central_store):
        child = subprocess.Popen([*command, "20000"], cwd=REPO)
        try:
            wait_until(lambda: central_store.count() > 500, timeout=30)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        logged = len(read_events(db, 100_000))
        assert logged < 20000, "the kiosk logged everything before it was killed"
        child = subprocess.Popen(command, cwd=REPO)
        try:
            wait_until(lambda: central_store.count() == logged, timeout=60)
            wait_until(lambda: unconfirmed(db) == 0, timeout=30)
        finally:
            child.terminate()
            child.wait(timeout=10)
    assert stored_seqs(central_store) == list(range(1, logged + 1))


def test_puback_mode_confirms_without_central(broker: Broker, tmp_path: Path) -> None:
    with (
        EventLog(tmp_path / "events.db", boot_id="b1") as log,
        syncing(log, mqtt_settings(broker.port, confirm="puback")),
    ):
        fill(log, 50)
        wait_until(lambda: log.stats().unconfirmed == 0, timeout=20)


def test_unconfirmed_events_are_sent_again(broker: Broker, tmp_path: Path) -> None:
    """No central, no receipts: after resend_after_s the same events go out again."""
    watcher = Collector(mqtt_client(broker, "central", client_id="watcher"))
    watcher.subscribe(TOPICS.topic(Leaf.EVENTS))
    with (
        EventLog(tmp_path / "events.db", boot_id="b1") as log,
        syncing(log, mqtt_settings(broker.port, resend_after_s=1.0)) as sync,
    ):
        fill(log, 3)
        wait_until(lambda: sync.stats.resent_events >= 3, timeout=20)
        assert log.stats().unconfirmed == 3
    seen = seqs_seen(watcher, 6)
    assert seen[:3] == [1, 2, 3] and seen.count(1) >= 2


def resend_waits(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int]]:
    """(waited, next wait) in seconds of each resend the sync logged, in order."""
    found = re.findall(
        r"not confirmed after (\d+) s: sending them again \(then again after (\d+) s",
        caplog.text,
    )
    return [(int(waited), int(then)) for waited, then in found]


def test_unanswered_resends_wait_longer_each_time_and_a_receipt_resets_the_wait(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No central: the event goes again after 1 s, then 2 s, then 4 s, and then every 4 s
    (4 × resend_after_s), so a fleet does not bury an overloaded central in resends; a
    receipt brings the wait back to 1 s."""
    caplog.set_level(logging.WARNING, logger="kiosk.sync_send")
    watcher = Collector(mqtt_client(broker, "central", client_id="watcher"))
    watcher.subscribe(TOPICS.topic(Leaf.EVENTS))
    with (
        EventLog(tmp_path / "events.db", boot_id="b1") as log,
        syncing(log, mqtt_settings(broker.port, resend_after_s=1.0)),
    ):
        fill(log, 1)
        arrived = [watcher.get(20).timestamp for _ in range(5)]  # paho's receive time
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrived)]
        assert resend_waits(caplog)[:4] == [(1, 2), (2, 4), (4, 4), (4, 4)]
        for gap, waited in zip(gaps, (1, 2, 4, 4), strict=True):
            assert gap >= waited / 2, gaps  # really waited (half: the broker's latency varies)

        receipts = mqtt_client(broker, "central", client_id="central-test")
        receipts.publish(TOPICS.topic(Leaf.RECEIPTS), encode_receipt([1]), qos=1)
        wait_until(lambda: log.stats().unconfirmed == 0)
        before = len(resend_waits(caplog))
        fill(log, 1)
        wait_until(lambda: len(resend_waits(caplog)) > before, timeout=20)
        assert resend_waits(caplog)[before] == (1, 2)


def test_status_is_online_then_stopped_and_state_is_retained(
    broker: Broker, tmp_path: Path
) -> None:
    state = {"kiosk": "k1", "site": "s1", "camera": {"ok": True}}
    with (
        EventLog(tmp_path / "events.db", boot_id="b1") as log,
        syncing(log, mqtt_settings(broker.port), state=lambda: state),
    ):
        watcher = Collector(mqtt_client(broker, "central", client_id="watcher"))
        watcher.subscribe(TOPICS.topic(Leaf.STATUS))
        watcher.subscribe(TOPICS.topic(Leaf.STATE))
        messages = {m.topic: m for m in watcher.get_until(TOPICS.topic(Leaf.STATE))}
        assert messages[TOPICS.topic(Leaf.STATUS)].payload == b"online"
    retained = Collector(mqtt_client(broker, "central", client_id="late"))
    retained.subscribe(TOPICS.topic(Leaf.STATUS))
    assert retained.get().payload == b"stopped"
    retained.subscribe(TOPICS.topic(Leaf.STATE))
    document = json.loads(retained.get().payload)
    assert document["camera"] == {"ok": True} and document["mqtt"]["in_flight"] == 0


@pytest.mark.slow
def test_last_will_says_offline_when_the_kiosk_dies(broker: Broker, tmp_path: Path) -> None:
    watcher = Collector(mqtt_client(broker, "central", client_id="watcher"))
    watcher.subscribe(TOPICS.topic(Leaf.STATUS))
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.sync_child", str(tmp_path / "events.db"), str(broker.port)],
        cwd=REPO,
    )
    try:
        assert watcher.get(timeout=20).payload == b"online"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert watcher.get(timeout=20).payload == b"offline"


def test_tls_with_the_site_ca_and_a_clear_error_for_a_wrong_one(
    broker: Broker, tmp_path: Path
) -> None:
    good = mqtt_settings(broker.tls_port, tls=True, ca_file=broker.ca_file, confirm="puback")
    with EventLog(tmp_path / "good.db", boot_id="b1") as log, syncing(log, good):
        fill(log, 5)
        wait_until(lambda: log.stats().unconfirmed == 0, timeout=20)
    wrong = mqtt_settings(broker.tls_port, tls=True, ca_file=broker.wrong_ca_file)
    with EventLog(tmp_path / "wrong.db", boot_id="b1") as log, syncing(log, wrong) as sync:
        wait_until(lambda: bool(sync.stats.last_error), timeout=20)
        assert "certificate is not trusted" in sync.stats.last_error
        assert "mqtt.ca_file" in sync.stats.last_error
        assert not sync.stats.connected


@pytest.mark.slow
def test_watchdog_restarts_a_dead_mqtt_client(broker: Broker, tmp_path: Path) -> None:
    """paho's network thread dies (e.g. an exception escaped a callback): the sync notices."""
    with (
        EventLog(tmp_path / "events.db", boot_id="b1") as log,
        syncing(log, mqtt_settings(broker.port, confirm="puback")) as sync,
    ):
        wait_until(lambda: sync.stats.connected, timeout=10)
        dead = sync.uplink._client
        dead.loop_stop()  # the thread is gone; paho would never reconnect by itself
        # (not asserted dead here: the watchdog may already have replaced it, on a busy machine)
        fill(log, 20)
        wait_until(lambda: sync.uplink._client is not dead, timeout=20)
        wait_until(lambda: log.stats().unconfirmed == 0, timeout=20)
        assert sync.uplink.is_alive()


def test_mqtt_3_1_1_works_too(broker: Broker, tmp_path: Path) -> None:
    with (
        EventLog(tmp_path / "events.db", boot_id="b1") as log,
        syncing(log, mqtt_settings(broker.port, protocol="3.1.1", confirm="puback")) as sync,
    ):
        fill(log, 10)
        wait_until(lambda: log.stats().unconfirmed == 0, timeout=20)
        assert sync.stats.connected


def test_password_file_must_be_private(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("k1-pw\n", encoding="utf-8")
    secret.chmod(0o600)
    assert read_password(mqtt_settings(1883, password="", password_file=str(secret))) == "k1-pw"
    secret.chmod(0o644)
    with pytest.raises(UplinkError, match="readable by others; chmod 600"):
        read_password(mqtt_settings(1883, password="", password_file=str(secret)))


def test_a_batch_max_of_500_fits_the_message_limit_and_every_event_confirms(
    broker: Broker, central_store: Store, tmp_path: Path
) -> None:
    """500 of these events would make a ~470 KB message, which central refuses."""
    settings = mqtt_settings(broker.port, batch_max=500)
    watcher = Collector(mqtt_client(broker, "central", client_id="watcher"))
    watcher.subscribe(TOPICS.topic(Leaf.EVENTS))
    with EventLog(tmp_path / "events.db", boot_id="b1") as log:
        for n in range(601):
            log.append("decision", {"outcome": "grant", "reason": "ok", "n": n, "note": "x" * 700})
        assert sum(len(e.data_json) for e in log.pending_json(500)) > MAX_MESSAGE_BYTES
        with (
            central(broker, central_store),
            syncing(
                log,
                settings,
                batch_max=settings.batch_max,
                max_message_bytes=settings.max_message_bytes,
            ),
        ):
            wait_until(lambda: log.stats().unconfirmed == 0, timeout=60)
    assert stored_seqs(central_store) == list(range(1, 602))
    messages = events_messages(watcher)
    assert max(size for size, *_ in messages) <= settings.max_message_bytes == 240 * 1024
    assert max(len(seqs) for _, *seqs in messages) > 200  # still packed, by bytes


def test_an_event_over_the_limit_goes_alone_and_one_too_large_for_any_message_blocks_nothing(
    broker: Broker, central_store: Store, tmp_path: Path
) -> None:
    settings = mqtt_settings(broker.port, batch_max=500, max_message_bytes=16 * 1024)
    watcher = Collector(mqtt_client(broker, "central", client_id="watcher"))
    watcher.subscribe(TOPICS.topic(Leaf.EVENTS))
    with EventLog(tmp_path / "events.db", boot_id="b1") as log:
        fill(log, 30)
        large = log.append("decision", {"note": "x" * 20_000})  # seq 31: over 16 KiB
        fill(log, 30)
        huge = log.append("decision", {"note": "x" * MAX_MESSAGE_BYTES})  # seq 62
        fill(log, 30)
        with (
            central(broker, central_store),
            syncing(log, settings, batch_max=500, max_message_bytes=16 * 1024) as sync,
        ):
            wait_until(lambda: log.stats().unconfirmed == 1, timeout=60)
            assert sync.stats.unsendable_events == 1
            assert f"seq [{huge.seq}]" in sync.stats.last_error
            assert sync.mqtt_state()["unsendable_events"] == 1
    assert stored_seqs(central_store) == [s for s in range(1, 93) if s != huge.seq]
    messages = events_messages(watcher)
    assert [seqs for _, *seqs in messages if large.seq in seqs] == [[large.seq]]
    assert all(size <= 16 * 1024 for size, *seqs in messages if large.seq not in seqs)
    assert all(huge.seq not in seqs for _, *seqs in messages)


class ReadCountingLog(EventLog):
    """The real event log, counting how often the outbox hands out each seq."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads: dict[int, int] = {}

    def pending_json(self, limit: int, after_seq: int = 0) -> list[Any]:
        found = super().pending_json(limit, after_seq)
        for event in found:
            self.reads[event.seq] = self.reads.get(event.seq, 0) + 1
        return found


def test_an_unsendable_last_event_is_not_read_again_every_round(
    broker: Broker, central_store: Store, tmp_path: Path
) -> None:
    """It stays in the log, unconfirmed; reading its 256 KiB from SQLite 50 times a second
    (under the lock appends take) would only slow the gate."""
    with ReadCountingLog(tmp_path / "events.db", boot_id="b1") as log:
        fill(log, 5)
        huge = log.append("decision", {"note": "x" * MAX_MESSAGE_BYTES})
        with central(broker, central_store), syncing(log, mqtt_settings(broker.port)) as sync:
            wait_until(lambda: log.stats().unconfirmed == 1, timeout=60)
            rounds = sync.stats.published_events
            log.append("decision", {"n": 1})  # one more event: the sync reads the outbox again
            wait_until(
                lambda: log.stats().unconfirmed == 1 and sync.stats.published_events > rounds
            )
    assert log.reads[huge.seq] == 1


class CrashingOutbox:
    """An outbox whose read fails with a bug (not an EventLogError): the sync loop crashes."""

    def pending_json(self, limit: int, after_seq: int = 0) -> list[Any]:
        raise RuntimeError("a bug in the outbox")

    def mark_sent(self, seqs: Any) -> None:
        pass

    def mark_confirmed(self, seqs: Any) -> int:
        return 0


@pytest.mark.slow
def test_a_crashed_sync_loop_leaves_with_its_will_never_stopped(broker: Broker) -> None:
    """Only a shutdown says 'stopped'; a crash says 'offline' (after the will delay)."""
    watcher = Collector(mqtt_client(broker, "central", client_id="watcher"))
    watcher.subscribe(TOPICS.topic(Leaf.STATUS))
    settings = mqtt_settings(broker.port)
    sync = Sync(Uplink(settings, TOPICS, client_id(TOPICS)), CrashingOutbox())
    crashes: list[BaseException] = []

    def run() -> None:
        try:
            sync.run(threading.Event())
        except RuntimeError as exc:
            crashes.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert watcher.get(timeout=10).payload == b"online"
    thread.join(timeout=10)
    assert [str(exc) for exc in crashes] == ["a bug in the outbox"]
    assert watcher.get(timeout=15).payload == b"offline"
    assert sync.stats.runs == 1


def settled(sync: Sync, watcher: Collector) -> int:
    """Wait until the kiosk is connected and has published its state; its loop's rounds."""
    watcher.get_until(TOPICS.topic(Leaf.STATE), timeout=20)
    wait_until(lambda: sync.stats.connected and not sync.in_flight)
    return sync.rounds


def test_an_idle_sync_loop_sleeps_until_its_fallback_poll(broker: Broker, tmp_path: Path) -> None:
    """An idle kiosk's loop wakes about once a second (the fallback poll; the watchdog every
    5 s), not 50 times a second: at most 10 rounds in 3 s (the old 20 ms tick: 150)."""
    watcher = Collector(mqtt_client(broker, "central", client_id="watcher"))
    watcher.subscribe(TOPICS.topic(Leaf.STATE))
    settings = mqtt_settings(broker.port, state_interval_s=600.0)
    with (
        EventLog(tmp_path / "events.db", boot_id="b1") as log,
        syncing(log, settings, poll_s=1.0) as sync,
    ):
        start = settled(sync, watcher)
        assert holds_for(lambda: sync.rounds <= start + 10, 3.0)
        wait_until(lambda: sync.rounds >= start + 2)  # but the poll does wake it


ASLEEP: dict[str, Any] = {
    "poll_s": 60.0,
    "watchdog_s": 600.0,
}  # nothing but the feature tested wakes the loop


def test_an_appended_event_wakes_the_loop_and_is_published_at_once(
    broker: Broker, tmp_path: Path
) -> None:
    """The log tells the sync of each append: the event goes out in a few rounds, long before
    the fallback poll (60 s here) or the watchdog (600 s) would have found it."""
    watcher = Collector(mqtt_client(broker, "central", client_id="watcher"))
    watcher.subscribe(TOPICS.topic(Leaf.STATE))
    watcher.subscribe(TOPICS.topic(Leaf.EVENTS))
    settings = mqtt_settings(broker.port, state_interval_s=600.0, confirm="puback")
    with (
        EventLog(tmp_path / "events.db", boot_id="b1") as log,
        syncing(log, settings, **ASLEEP) as sync,
    ):
        start = settled(sync, watcher)
        assert holds_for(lambda: sync.rounds <= start + 3, 1.0)  # asleep (a 20 ms tick: 50)
        start = sync.rounds
        fill(log, 1)
        assert seqs_seen(watcher, 1, timeout=20) == [1]
        wait_until(lambda: log.stats().unconfirmed == 0)
        assert sync.rounds - start <= 5  # wake-up, PUBACK, mark flush


def test_resends_fall_due_without_the_fallback_poll(broker: Broker, tmp_path: Path) -> None:
    """The loop sleeps until the next resend, not a fixed tick (the state here every 600 s).
    No central, no receipts: the events are sent again after 1 s, 2 s and 4 s (a loop that
    did not wake for them would only if each PUBACK took that long)."""
    settings = mqtt_settings(broker.port, resend_after_s=1.0, state_interval_s=600.0)
    with (
        EventLog(tmp_path / "events.db", boot_id="b1") as log,
        syncing(log, settings, **ASLEEP) as sync,
    ):
        fill(log, 3)
        wait_until(lambda: sync.stats.resent_events >= 9, timeout=40)


def test_the_state_falls_due_without_the_fallback_poll(broker: Broker, tmp_path: Path) -> None:
    """The loop sleeps until the next state publish: the first state, then one every 2 s (a
    loop that did not wake for them would only publish one when a PUBACK took 2 s)."""
    watcher = Collector(mqtt_client(broker, "central", client_id="watcher"))
    watcher.subscribe(TOPICS.topic(Leaf.STATE))
    settings = mqtt_settings(broker.port, state_interval_s=2.0)
    with (
        EventLog(tmp_path / "events.db", boot_id="b1") as log,
        syncing(log, settings, **ASLEEP),
    ):
        for _ in range(4):
            watcher.get_until(TOPICS.topic(Leaf.STATE), timeout=20)


def test_a_stop_wakes_the_sleeping_loop(broker: Broker, tmp_path: Path) -> None:
    """Setting ``stop`` ends the sleeping loop at once, not at its next poll (60 s here)."""
    watcher = Collector(mqtt_client(broker, "central", client_id="watcher"))
    watcher.subscribe(TOPICS.topic(Leaf.STATE))
    watcher.subscribe(TOPICS.topic(Leaf.STATUS))
    settings = mqtt_settings(broker.port, state_interval_s=600.0)
    with EventLog(tmp_path / "events.db", boot_id="b1") as log:
        sync = Sync(Uplink(settings, TOPICS, client_id(TOPICS)), log, **ASLEEP)
        stop = threading.Event()
        thread = threading.Thread(target=sync.run, args=(stop,), daemon=True)
        thread.start()
        try:
            start = settled(sync, watcher)
            assert holds_for(lambda: sync.rounds <= start + 3, 1.0)  # asleep
        finally:
            stop.set()
            thread.join(timeout=20)
        assert not thread.is_alive()
        assert watcher.get_until(TOPICS.topic(Leaf.STATUS))[-1].payload == b"stopped"


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), 0.0, -1.0])
@pytest.mark.parametrize("name", ["poll_s", "watchdog_s"])
def test_a_poll_or_watchdog_interval_that_would_spin_the_loop_is_refused(
    name: str, seconds: float
) -> None:
    with pytest.raises(ValueError, match=f"{name} must be a finite number of seconds above 0"):
        interval: dict[str, Any] = {name: seconds}
        Sync(cast(Any, None), cast(Any, None), **interval)


def test_a_failing_append_observer_does_not_fail_the_append(tmp_path: Path) -> None:
    """The event is durable before observers hear of it; one that raises is only logged."""
    told: list[int] = []

    def broken() -> None:
        raise RuntimeError("observer bug")

    with EventLog(tmp_path / "events.db", boot_id="b1") as log:
        log.add_append_observer(broken)
        log.add_append_observer(lambda: told.append(1))
        event = log.append("decision", {"n": 1})
        assert event.seq == 1 and told == [1]
        assert log.stats().rows == 1
