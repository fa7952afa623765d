"""The NATS worker on a backlog: it reads the next batch while the last one is being stored,
and acknowledges each message once its batch is stored (a real three-node cluster and
PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from bench.fleet_cluster import Cluster
from kiosk.central import Store, open_store
from kiosk.central.nats import NatsSettings, NatsWorker, nats_subject
from kiosk.central.nats.worker import STREAM, consumer_config
from kiosk.central.rows import EventRow, Stored
from kiosk.mqtt.protocol import encode_events
from tests.central_support import events, fresh_database
from tests.support import wait_until

pytest.importorskip("nats")
SITE = "s1"


@pytest.fixture
def backlog(tmp_path: Path) -> Iterator[tuple[Cluster, Store]]:
    """A three-node cluster of its own and a fresh PostgreSQL store."""
    cluster = Cluster(tmp_path / "nats")
    cluster.start()
    try:
        for url in fresh_database("postgresql", tmp_path):
            store = open_store(url)
            try:
                yield cluster, store
            finally:
                store.close()
    finally:
        cluster.stop()


def streams_created(cluster: Cluster) -> None:
    """An MQTT connection makes nats-server create its streams."""
    probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, "probe", protocol=mqtt.MQTTv311)
    connected = threading.Event()
    probe.on_connect = lambda *_: connected.set()
    probe.connect("127.0.0.1", cluster.mqtt_ports[0])
    probe.loop_start()
    try:
        assert connected.wait(60)
    finally:
        probe.disconnect()
        probe.loop_stop()


def publish(cluster: Cluster, settings: NatsSettings, kiosk: str, seqs: Iterable[int]) -> None:
    """The workers' consumer made, then one events message per seq into the MQTT stream, as
    the listener stores them: a backlog waiting for the workers."""
    import nats

    subject = "$MQTT.msgs." + nats_subject(f"kiosk/v1/{SITE}/{kiosk}/events")

    async def send() -> None:
        nc = await nats.connect(cluster.nats_urls)
        try:
            js = nc.jetstream()
            await js.add_consumer(STREAM, consumer_config(settings))
            for seq in seqs:
                await js.publish(subject, encode_events(SITE, kiosk, events([seq])))
        finally:
            await nc.close()

    asyncio.run(send())


def unacknowledged(cluster: Cluster, durable: str) -> int:
    """Messages of the consumer delivered and not acknowledged, or not delivered yet."""
    import nats

    async def ask() -> int:
        nc = await nats.connect(cluster.nats_urls)
        try:
            info = await nc.jetstream().consumer_info(STREAM, durable)
            return int(info.num_ack_pending) + int(info.num_pending)
        finally:
            await nc.close()

    return asyncio.run(ask())


def test_the_next_batch_is_read_while_the_last_is_stored_and_each_is_acked_once_stored(
    backlog: tuple[Cluster, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, store = backlog
    streams_created(cluster)
    durable = f"central-{uuid.uuid4().hex[:8]}"
    settings = NatsSettings(servers=tuple(cluster.nats_urls), durable=durable, batch_max=10)
    entered, release = threading.Event(), threading.Event()
    insert = store.insert_batch

    def held_first(rows: Iterable[EventRow]) -> Stored:
        if not entered.is_set():
            entered.set()
            assert release.wait(60)
        return insert(rows)

    monkeypatch.setattr(store, "insert_batch", held_first)
    publish(cluster, settings, "k1", range(1, 21))  # two batches of ten
    worker = NatsWorker(settings, store)
    worker.start()
    try:
        assert worker.wait_ready(60)
        wait_until(entered.is_set)
        wait_until(lambda: worker.stats()["received"] == 20)  # the second read meanwhile
        assert store.count() == 0
        assert unacknowledged(cluster, durable) == 20  # nothing acked before it is stored
        release.set()
        wait_until(lambda: store.count() == 20)
        wait_until(lambda: unacknowledged(cluster, durable) == 0)
        assert worker.stats()["stored"] == 20
        assert worker.stats()["duplicates"] == 0
    finally:
        release.set()
        worker.stop()


def test_a_failure_after_the_commit_does_not_stop_the_worker(
    backlog: tuple[Cluster, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catch-up receipt of a kiosk back online fails once (the database went away a
    moment): the batch is stored all the same and the worker goes on with the next ones."""
    import nats

    cluster, store = backlog
    streams_created(cluster)
    durable = f"central-{uuid.uuid4().hex[:8]}"
    settings = NatsSettings(servers=tuple(cluster.nats_urls), durable=durable, batch_max=10)
    failed = threading.Event()
    highest = store.highest_seq

    def fails_once(site: str, kiosk: str) -> int:
        if not failed.is_set():
            failed.set()
            raise OSError("the database went away")
        return highest(site, kiosk)

    monkeypatch.setattr(store, "highest_seq", fails_once)
    publish(cluster, settings, "k1", range(1, 4))

    async def online() -> None:
        nc = await nats.connect(cluster.nats_urls)
        try:
            subject = "$MQTT.msgs." + nats_subject(f"kiosk/v1/{SITE}/k1/status")
            await nc.jetstream().publish(subject, b"online")
        finally:
            await nc.close()

    asyncio.run(online())
    worker = NatsWorker(settings, store)
    worker.start()
    try:
        assert worker.wait_ready(60)
        wait_until(failed.is_set)
        publish(cluster, settings, "k1", range(4, 7))  # after the failure
        wait_until(lambda: store.count() == 6)
        wait_until(lambda: unacknowledged(cluster, durable) == 0)
    finally:
        worker.stop()
