"""Home Assistant discovery: one device, one config per entity, the button only when it can work."""

from __future__ import annotations

import json
import re
from typing import Any

from jinja2 import Environment

from kiosk.config import KioskConfig
from kiosk.gate import GateState
from kiosk.mqtt.homeassistant import discovery_messages
from kiosk.mqtt.protocol import KioskTopics, Leaf
from kiosk.operator.actions import ActionOutcome, ActionRequest
from kiosk.operator.commands import CommandProcessor
from kiosk.run.health import Health, Parts, state_document

TOPICS = KioskTopics("lab", "door-2")
NODE = "door-2"  # the discovery node id: the kiosk id, its MQTT user name
DEVICE = "kiosk-lab-door-2"
NOW = 1_700_000_000_000


def configs(
    *, allow_emergency_open: bool = False, signed_commands: bool = False, occupancy: bool = False
) -> dict[str, dict[str, Any]]:
    """Discovery configs by topic; an empty payload (an entity removal) maps to {}."""
    messages = discovery_messages(
        TOPICS,
        prefix="homeassistant",
        version="1.2.3",
        allow_emergency_open=allow_emergency_open,
        signed_commands=signed_commands,
        occupancy=occupancy,
    )
    return {topic: json.loads(payload) if payload else {} for topic, payload in messages}


def state_with(*, inside: int | None, lockdown: bool) -> dict[str, Any]:
    """The state document a gate kiosk publishes (kiosk.run.health), for templates to read."""
    health = Health(
        parts=Parts().snapshot(),
        frames_read=10,
        frames_per_s=15.0,
        last_reading=None,
        last_temperature_c=36.6,
        gate=GateState(False, lockdown, False, False, 0),
        log=None,
        clock_synced=True,
        today={"granted": 4, "denied": 1, "referred": 0, "fevers": 1, "tailgating": 0},
        inside=inside,
    )
    return state_document(KioskConfig(), health, NOW)


def live(found: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {topic: config for topic, config in found.items() if config}


def test_every_entity_belongs_to_one_device_with_one_availability() -> None:
    found = live(configs(allow_emergency_open=True))
    devices = {json.dumps(c["device"], sort_keys=True) for c in found.values()}
    availability = {json.dumps(c["availability"], sort_keys=True) for c in found.values()}
    assert len(devices) == 1 and len(availability) == 1
    device = next(iter(found.values()))["device"]
    assert device == {
        "identifiers": [DEVICE],
        "name": "Kiosk lab/door-2",
        "model": "Entrance kiosk",
        "sw_version": "1.2.3",
    }
    [avail] = next(iter(found.values()))["availability"]
    assert avail["topic"] == TOPICS.topic(Leaf.STATUS)
    assert (avail["payload_available"], avail["payload_not_available"]) == ("online", "offline")
    assert "stopped" not in avail["value_template"]  # everything but online maps to offline


def test_topics_and_unique_ids_are_stable_and_unique() -> None:
    first, second = configs(allow_emergency_open=True), configs(allow_emergency_open=True)
    assert first == second
    for topic in first:
        assert re.fullmatch(rf"homeassistant/[a-z_]+/{NODE}/[a-z_]+/config", topic), topic
    unique_ids = [c["unique_id"] for c in live(first).values()]
    assert len(unique_ids) == len(set(unique_ids)) == len(live(first))
    assert all(uid.startswith(f"{DEVICE}_") for uid in unique_ids)


def test_the_expected_entities_are_offered() -> None:
    found = live(configs())
    by_object = {topic.split("/")[3]: (topic.split("/")[1], c) for topic, c in found.items()}
    assert {name: component for name, (component, _) in by_object.items()} == {
        "camera": "binary_sensor",
        "thermometer": "binary_sensor",
        "log": "binary_sensor",
        "lockdown": "binary_sensor",
        "backlog": "sensor",
        "oldest_unconfirmed_age": "sensor",
        "last_temperature": "sensor",
        "granted_today": "sensor",
        "denied_today": "sensor",
        "fevers_today": "sensor",
        "activity": "event",
    }
    for name, (component, config) in by_object.items():
        expected = TOPICS.topic(Leaf.ACTIVITY if component == "event" else Leaf.STATE)
        assert config["state_topic"] == expected, name
    assert by_object["activity"][1]["event_types"] == ["grant", "deny", "refer"]
    assert by_object["last_temperature"][1]["device_class"] == "temperature"
    assert by_object["last_temperature"][1]["unit_of_measurement"] == "°C"
    camera = by_object["camera"][1]
    assert camera["device_class"] == "problem"
    assert camera["value_template"] == "{{ 'OFF' if value_json.camera.ok else 'ON' }}"


def test_the_state_contract_keys_are_the_ones_the_templates_read() -> None:
    templates = " ".join(c.get("value_template", "") for c in live(configs()).values())
    read = set(re.findall(r"value_json\.([a-z_.]+)", templates))
    assert read == {
        "camera.ok",
        "thermometer.ok",
        "log.ok",
        "gate.lockdown",
        "log.unconfirmed",
        "log.oldest_unconfirmed_age_s",
        "last_temperature_c",
        "today.granted",
        "today.denied",
        "today.fevers",
    }


def test_the_emergency_button_is_offered_only_when_allowed_and_unsigned() -> None:
    button = f"homeassistant/button/{NODE}/emergency_open/config"
    assert configs(allow_emergency_open=True)[button]["command_topic"] == TOPICS.topic(Leaf.CMD)
    assert configs(allow_emergency_open=False)[button] == {}  # removes an earlier button
    assert configs(allow_emergency_open=True, signed_commands=True)[button] == {}
    assert not any("button" in t for t in live(configs(allow_emergency_open=False)))


class Door:
    """Stands for the kiosk's operator: records the requests it is handed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def perform(self, request: ActionRequest) -> ActionOutcome:
        self.calls.append((request.action.value, dict(request.args)))
        return ActionOutcome("done")


def test_the_button_payload_rendered_by_home_assistant_is_accepted_by_the_kiosk() -> None:
    button = configs(allow_emergency_open=True)[
        f"homeassistant/button/{NODE}/emergency_open/config"
    ]
    seconds = NOW / 1000
    rendered_by_expression = {
        "now().timestamp()": str(seconds),
        "(now().timestamp()*1000)|int": str(NOW),
        "((now().timestamp()+60)*1000)|int": str(NOW + 60_000),
    }
    payload = re.sub(
        r"\{\{ (.+?) \}\}",
        lambda match: rendered_by_expression[match.group(1)],
        button["command_template"],
    )
    door = Door()
    processor = CommandProcessor(
        door, kiosk_id="door-2", key=None, allow_emergency_open=True, now_ms=lambda: NOW + 500
    )
    outcome = processor.handle(payload.encode())
    assert outcome.ok, outcome.message
    assert door.calls == [("emergency_open", {"on": True})]


def test_a_kiosk_that_counts_people_inside_offers_that_sensor_and_the_lockdown() -> None:
    sensor = f"homeassistant/sensor/{NODE}/people_inside/config"
    inside = configs(occupancy=True)[sensor]
    assert inside["state_topic"] == TOPICS.topic(Leaf.STATE)
    assert inside["value_template"] == "{{ value_json.occupancy.inside }}"
    assert inside["state_class"] == "measurement"
    assert configs(occupancy=False)[sensor] == {}  # removes one published in gate mode earlier
    lockdown = configs()[f"homeassistant/binary_sensor/{NODE}/lockdown/config"]
    assert lockdown["value_template"] == "{{ 'ON' if value_json.gate.lockdown else 'OFF' }}"


def test_the_templates_read_the_state_the_kiosk_publishes() -> None:
    """Each state entity's template, rendered by Jinja as Home Assistant does, over a real
    state document with 3 people inside and the entrance locked down."""
    document = state_with(inside=3, lockdown=True)
    rendered = {
        topic.split("/")[3]: Environment()
        .from_string(c["value_template"])
        .render(value_json=document)
        for topic, c in live(configs(occupancy=True)).items()
        if "value_template" in c and c.get("state_topic") == TOPICS.topic(Leaf.STATE)
    }
    assert rendered["people_inside"] == "3"
    assert rendered["lockdown"] == "ON"
    assert rendered["granted_today"] == "4"
