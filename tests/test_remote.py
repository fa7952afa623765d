"""A whole simulated kiosk on a real broker: commands from an operator, state, Home Assistant."""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk.central.store import open_store
from kiosk.decide.decision import Reason
from kiosk.mqtt.protocol import Command, KioskTopics, Leaf, command_signature, encode_command
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.simulation import Person
from tests.broker import Broker, BrokerClient, Collector, mqtt_client
from tests.support import make_config, running, wait_until
from tests.test_broker import shipped_setting
from tests.test_sync import central

TOPICS = KioskTopics("s1", "k1")
KEY = "site-command-key-0123456789"
STAFF = Person("staff", b"S-0001", sim.nobody(), "grant")


def kiosk_config(
    tmp_path: Path, broker: Broker, credentials: dict[str, Any] | None = None, **mqtt: Any
) -> Any:
    settings = {
        "enabled": True,
        "host": broker.host,
        "port": broker.port,
        "tls": False,
        "username": "k1",
        "password": broker.password("k1"),
        "command_key": KEY,
        "state_interval_s": 1.0,
    } | mqtt
    return make_config(
        tmp_path,
        kiosk={"id": "k1", "site": "s1"},
        thermometer={"enabled": False},
        credentials=credentials or {},
        mqtt=settings,
    )


def command(
    name: str,
    args: dict[str, Any],
    *,
    key: str | None = KEY,
    ttl_ms: int = 60_000,
    issued_ms: int | None = None,
    command_id: str | None = None,
) -> Command:
    issued = int(time.time() * 1000) if issued_ms is None else issued_ms
    plain = Command(command_id or str(uuid.uuid4()), name, args, issued, issued + ttl_ms)
    if key is None:
        return plain
    return Command(
        plain.id, name, args, issued, issued + ttl_ms, command_signature(key.encode(), plain)
    )


def send(operator: BrokerClient, results: Collector, payload: bytes) -> dict[str, Any]:
    """Publish a command with MQTT 5 correlation data; return the kiosk's result for it."""
    correlation = uuid.uuid4().bytes
    properties = Properties(PacketTypes.PUBLISH)
    properties.CorrelationData = correlation
    operator.publish(TOPICS.topic(Leaf.CMD), payload, qos=1, properties=properties)
    message = results.get(timeout=10)
    assert message.properties is not None
    assert message.properties.json()["CorrelationData"] == correlation.hex()
    result: dict[str, Any] = json.loads(message.payload)
    return result


def test_operator_commands_are_checked_logged_and_answered(tmp_path: Path, broker: Broker) -> None:
    config = kiosk_config(tmp_path, broker)
    operator = mqtt_client(broker, "operator")
    results = Collector(operator)
    results.subscribe(TOPICS.topic(Leaf.RESULT))
    status = Collector(mqtt_client(broker, "central", client_id="watch"))
    status.subscribe(TOPICS.topic(Leaf.STATUS))
    with running(config) as kiosk:
        assert status.get(timeout=15).payload == b"online"
        lockdown = command("lockdown", {"on": True})
        reply = send(operator, results, encode_command(lockdown))
        assert (reply["ok"], reply["id"], reply["error"]) == (True, lockdown.id, None)
        assert kiosk.kiosk.gate.state().lockdown

        kiosk.scene.step_up(STAFF)
        assert kiosk.next_decision().decision.reason is Reason.LOCKDOWN

        refusals = {
            "replayed": encode_command(lockdown),
            "expired": encode_command(command("lockdown", {"on": False}, ttl_ms=-1)),
            "bad_signature": encode_command(
                dataclasses.replace(command("lockdown", {"on": False}), sig="00" * 32)
            ),
            "unsigned": encode_command(command("lockdown", {"on": False}, key=None)),
            "unknown_command": encode_command(command("open_sesame", {})),
            "not_allowed": encode_command(command("emergency_open", {"on": True})),
            "bad_arguments": encode_command(command("set_fever_threshold", {"celsius": 45.0})),
            "malformed": b"{not json",
        }
        for error, payload in refusals.items():
            reply = send(operator, results, payload)
            assert (reply["ok"], reply["error"]) == (False, error), reply
        assert kiosk.kiosk.gate.state().lockdown, "a refused command changed something"
        assert kiosk.kiosk.fever_threshold_c == 37.5

        reply = send(operator, results, encode_command(command("lockdown", {"on": False})))
        assert reply["ok"] and not kiosk.kiosk.gate.state().lockdown
        reply = send(
            operator, results, encode_command(command("set_fever_threshold", {"celsius": 38.0}))
        )
        assert reply["ok"] and kiosk.kiosk.fever_threshold_c == 38.0
        logged = [e.data["command"] for e in kiosk.kiosk.event_log.recent(50, type="command")]
    assert logged == ["lockdown", "lockdown", "set_fever_threshold"]


def test_state_activity_and_home_assistant_discovery(tmp_path: Path, broker: Broker) -> None:
    config = kiosk_config(tmp_path, broker, homeassistant=True)
    watcher = Collector(mqtt_client(broker, "central", client_id="watch"))
    watcher.subscribe(TOPICS.topic(Leaf.ACTIVITY))
    ha = Collector(mqtt_client(broker, "homeassistant", client_id="ha"))
    ha.subscribe("homeassistant/#")
    with running(config) as kiosk:
        discovery = {m.topic: m.payload for m in [ha.get(timeout=15) for _ in range(3)]}
        assert all(topic.startswith("homeassistant/") and "/k1/" in topic for topic in discovery)
        kiosk.scene.step_up(STAFF)
        kiosk.next_decision()
        activity = json.loads(watcher.get(timeout=10).payload)
        assert activity == {"v": 1, "event_type": "grant", "reason": "ok", "temperature_c": None}
        state_reader = Collector(mqtt_client(broker, "central", client_id="state"))
        state_reader.subscribe(TOPICS.topic(Leaf.STATE))

        def granted_today() -> int:
            state = json.loads(state_reader.get(timeout=10).payload)
            return int(state["today"]["granted"])

        wait_until(lambda: granted_today() == 1, timeout=15)


DEEP = b"[" * 10_000 + b"]" * 10_000
BROKER_MAX = int(shipped_setting("max_packet_size")) - 1024  # room for the topic and header
SUBJECT = "s-0123456789abcdef0123"  # must never reach a log line


def neighbour_passage(**fields: Any) -> bytes:
    """A passages message of kiosk k2 holding one granted entry, with ``fields`` overridden."""
    passage = {
        "event_id": str(uuid.uuid4()),
        "seq": 1,
        "ts_ms": int(time.time() * 1000),
        "type": "decision",
        "data": {
            "outcome": "grant",
            "direction": "entry",
            "area": "main",
            "subject": SUBJECT,
            "credential": {"kind": None},
        },
    } | fields
    return json.dumps({"v": 1, "site": "s1", "kiosk": "k2", "passages": [passage]}).encode()


def nested(depth: int) -> Any:
    return [] if depth <= 1 else [nested(depth - 1)]


# What a neighbour's credential can publish on its own passages topic, which every kiosk of
# the site reads. Each one is refused by the bounded decoder.
HOSTILE_PASSAGES = [
    DEEP,
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b'{"v":1,"site":"s1","kiosk":"k2","passages":' + DEEP + b"}",
    b'{"v":1,"pad":"' + b"x" * BROKER_MAX + b'"}',
    neighbour_passage(data={"outcome": "grant", "t": float("nan")}),
    neighbour_passage(data={"outcome": "grant", "t": float("-inf")}),
    neighbour_passage(seq=1).replace(b'"seq": 1', b'"seq": 1e400'),
    neighbour_passage(data={"subject": "\ud800"}),  # json.dumps escapes it: a lone surrogate
    neighbour_passage(seq=2**63),
    neighbour_passage(ts_ms=2**62),  # a 64-bit integer, but no date
    neighbour_passage(ts_ms=-(2**62)),
    neighbour_passage(data={"deep": nested(40)}),
    neighbour_passage(seq="1"),
    neighbour_passage(type="passage"),
    neighbour_passage().replace(b'"kiosk": "k2"', b'"kiosk": "k1"'),  # not its own topic
    b'{"v":1,"site":"\xff\xfe","kiosk":"k2","passages":[]}',
    b"\xef\xbb\xbf{}",
    b"",
    b"null",
    b"[]",
    b'{"v":1',
    json.dumps({"v": 2, "site": "s1", "kiosk": "k2", "passages": []}).encode(),
    json.dumps({"v": 1, "site": "s1", "kiosk": "k2", "passages": {}}).encode(),
    json.dumps({"v": 1, "site": "s1", "kiosk": "k2", "passages": [1]}).encode(),
]
# What a central credential could send as receipts.
HOSTILE_RECEIPTS = [
    DEEP,
    b'{"v":1,"ranges":[' + b",".join([b"[1,999999]"] * 20_000) + b"]}",
    b'{"v":1,"ranges":[[1,NaN]]}',
    b'{"v":1,"ranges":[[1,2]],"x":"\xff"}',
]


def latest(collector: Collector) -> dict[str, Any]:
    """The newest state a collector has received (waiting for one if none came yet)."""
    try:
        message = collector.messages.get(timeout=10)
    except queue.Empty:
        pytest.fail("the kiosk published no state for 10 s: its sync loop is not running")
    while not collector.messages.empty():
        message = collector.get()
    state: dict[str, Any] = json.loads(message.payload)
    return state


def poison(neighbour: BrokerClient, issuer: BrokerClient) -> int:
    """Publish the hostile passages and receipts; returns how many the kiosk must ignore."""
    for payload in HOSTILE_PASSAGES:
        assert neighbour.publish_acked("kiosk/v1/s1/k2/passages", payload) == 0
    for payload in HOSTILE_PASSAGES[:3]:  # the neighbour's events never reach the kiosk
        assert neighbour.publish_acked("kiosk/v1/s1/k2/events", payload) == 0
    for payload in HOSTILE_RECEIPTS:
        assert issuer.publish_acked(TOPICS.topic(Leaf.RECEIPTS), payload) == 0
    return len(HOSTILE_PASSAGES) + len(HOSTILE_RECEIPTS)


def test_hostile_messages_never_stop_the_sync(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """Poison on every topic the kiosk reads: it answers, counts, logs and goes on syncing."""
    caplog.set_level(logging.WARNING)
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    config = kiosk_config(tmp_path, broker, credentials={"trust_anchor": str(anchor)})
    operator = mqtt_client(broker, "operator")
    results = Collector(operator)
    results.subscribe(TOPICS.topic(Leaf.RESULT))
    status = Collector(mqtt_client(broker, "central", client_id="status"))
    status.subscribe(TOPICS.topic(Leaf.STATUS))
    states = Collector(mqtt_client(broker, "central", client_id="state"))
    neighbour = mqtt_client(broker, "k2")
    issuer = mqtt_client(broker, "central", client_id="issuer")
    store = open_store(str(tmp_path / "central.db"))
    with central(broker, store), running(config) as kiosk:
        assert status.get(timeout=15).payload == b"online"
        states.subscribe(TOPICS.topic(Leaf.STATE))
        ignored = poison(neighbour, issuer)

        def all_ignored() -> bool:
            if not status.messages.empty():  # e.g. online again after a restart
                pytest.fail(f"the kiosk said {status.get().payload!r} while running")
            return latest(states)["mqtt"]["ignored_messages"] == ignored

        wait_until(all_ignored, timeout=30)
        assert neighbour.publish_acked("kiosk/v1/s1/k2/passages", neighbour_passage()) == 0
        wait_until(lambda: kiosk.kiosk.entrance.area.is_inside(SUBJECT), timeout=15)
        for payload in (b"\x81" * 10_000 + b"\x00", b"\xff" * 100, b"x" * BROKER_MAX):
            assert issuer.publish_acked("kiosk/v1/s1/site/trust", payload, retain=True) == 0

        nested_args = command("lockdown", {"on": nested(40)})
        malformed = [
            DEEP,
            encode_command(nested_args),
            encode_command(command("set_fever_threshold", {"celsius": 38.0})).replace(
                b"38.0", b"NaN"
            ),
            b'{"v":1,"id":"\xff"}',
            b'{"v":1,"pad":"' + b"x" * BROKER_MAX + b'"}',
            b"",
            encode_command(command("lockdown", {"on": True}, command_id="ID")).replace(
                b'"ID"', b'"\\ud800"'
            ),
            encode_command(command("lockdown", {"on": True}, issued_ms=2**63)),
        ]
        for payload in malformed:
            reply = send(operator, results, payload)
            assert (reply["ok"], reply["error"]) == (False, "malformed"), reply
        reply = send(operator, results, encode_command(command("open_sesame", {})))
        assert reply["error"] == "unknown_command"

        kiosk.scene.step_up(STAFF)  # and the kiosk still works and syncs
        assert kiosk.next_decision().decision.reason is Reason.OK
        log = kiosk.kiosk.event_log
        wait_until(lambda: log.stats().unconfirmed == 0, timeout=30)
        mqtt: dict[str, Any] = {}

        def settled() -> bool:  # a state published after the last receipt
            mqtt.update(latest(states)["mqtt"])
            return bool(mqtt["in_flight"] == 0)

        wait_until(settled, timeout=30)
        assert mqtt | {"last_receipt_ms": 0} == {
            "connected": True,
            "in_flight": 0,
            "last_receipt_ms": 0,
            "ignored_messages": ignored,
            "unsendable_events": 0,
            "restarts": 0,
            "refused_subscriptions": [],
        }
        assert status.messages.empty(), "the kiosk said more than 'online' once"
        documents = [e.data["accepted"] for e in log.recent(50, type="document")]
        assert documents == [False] * 3  # the trust lists were refused and reported
    store.close()
    lines = [r.getMessage() for r in caplog.records]
    assert not [line for line in lines if "crashed" in line]
    assert sum("ignored a message" in line for line in lines) == 20  # then only counted
    assert not [line for line in lines if SUBJECT in line or "xxxxxxxx" in line]
