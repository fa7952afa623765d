"""A whole simulated kiosk on a real broker: commands from an operator, state, Home Assistant."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk.decision import Reason
from kiosk.protocol import Command, KioskTopics, Leaf, command_signature, encode_command
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.simulation import Person
from tests.broker import Broker, BrokerClient, Collector, mqtt_client
from tests.support import make_config, running, wait_until

TOPICS = KioskTopics("s1", "k1")
KEY = "site-command-key-0123456789"
STAFF = Person("staff", b"S-0001", sim.nobody(), "grant")


def kiosk_config(tmp_path: Path, broker: Broker, **mqtt: Any) -> Any:
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
        tmp_path, kiosk={"id": "k1", "site": "s1"}, thermometer={"enabled": False}, mqtt=settings
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
    assert message.properties.CorrelationData == correlation
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
