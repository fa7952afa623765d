"""What the docs say the kiosk publishes, checked against what the code publishes.

docs/mqtt.md, docs/asyncapi.yaml, deploy/mosquitto/README.md and docs/hardware.md make claims
about topics, encodings and ways to run the kiosk; each test here takes the claim from the
document and the fact from the code (the protocol encoders, the sync loop, the ACL file, a
kiosk run as the document says), so that either drifting fails. tests/test_mqtt_contract.py
holds the payload schemas' side.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache, partial
from pathlib import Path
from typing import Any, cast

import cv2
import yaml

from kiosk.credentials.cose import key_id
from kiosk.credentials.passes import PassVerifier
from kiosk.decide.privacy import Pseudonymizer
from kiosk.mqtt.homeassistant import discovery_messages
from kiosk.mqtt.protocol import KioskTopics, Leaf
from kiosk.mqtt.uplink import Connected
from kiosk.run.runtime import build_entrance
from kiosk.sensors.synthetic import render_qr_frame
from kiosk.store.eventlog import EventLog, read_events
from kiosk.sync import Sync
from tests.support import SALT, make_config, write_config
from tests.test_cli import logged, run_until_stopped
from tests.test_mqtt_contract import (
    BOOT,
    DECISIONS,
    KIOSK,
    NOW,
    PASS_KEY,
    SITE,
    FakeUplink,
    _doc_examples,
    _pass,
)

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
TOPICS = KioskTopics(SITE, KIOSK)


def _text(path: Path) -> str:
    """A document with its line breaks and runs of spaces made single spaces."""
    return re.sub(r"\s+", " ", path.read_text("utf-8"))


@cache
def _asyncapi() -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load((DOCS / "asyncapi.yaml").read_text("utf-8")))


def _discovery() -> list[tuple[str, bytes]]:
    """Every discovery message the kiosk can publish: with the button, and its removal."""
    messages = partial(
        discovery_messages, TOPICS, prefix="homeassistant", version="1.0", signed_commands=False
    )
    offered = messages(allow_emergency_open=True)
    withdrawn = messages(allow_emergency_open=False)
    return offered + [m for m in withdrawn if m not in offered]


def _mosquitto_match(pattern: str, topic: str) -> bool:
    """MQTT topic-filter matching (``+`` one level, ``#`` the rest)."""
    want, have = pattern.split("/"), topic.split("/")
    for index, level in enumerate(want):
        if level == "#":
            return True
        if index >= len(have) or level not in ("+", have[index]):
            return False
    return len(want) == len(have)


def _acl() -> set[tuple[str, str, str]]:
    """(user, access, topic) of every rule in deploy/mosquitto/acl; user "%u" for patterns."""
    rules, user = set(), ""
    for line in (REPO / "deploy" / "mosquitto" / "acl").read_text("utf-8").splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user":
            user = words[1]
        elif words[0] == "pattern":
            rules.add(("%u", words[1], words[2]))
        elif words[0] == "topic":
            access, topic = (words[1], words[2]) if len(words) == 3 else ("readwrite", words[1])
            rules.add((user, access, topic))
    return rules


class _Recorder(FakeUplink):
    """FakeUplink that also keeps the topic a message went to."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, bytes, int, bool]] = []

    def publish(self, leaf: Leaf, payload: bytes, **options: Any) -> int:
        topic = options.get("topic") or self.topics.topic(leaf)
        qos, retain = options.get("qos", 1), options.get("retain", False)
        self.sent.append((topic, payload, qos, retain))
        return super().publish(leaf, payload, **options)


def _published(tmp_path: Path) -> _Recorder:
    """What the real sync loop publishes: connection, discovery, events, alerts, state."""
    uplink = _Recorder()
    state = {k: v for k, v in _doc_examples()["state"][0].items() if k not in ("v", "mqtt")}
    with EventLog(tmp_path / "events.db", boot_id=BOOT) as outbox:
        sync = Sync(cast(Any, uplink), outbox, state=lambda: state, announce=_discovery())
        uplink.inbox.put(Connected(session_present=False))
        for data in DECISIONS:
            outbox.append("decision", data)
            sync.step()
    return uplink


def test_home_assistant_discovery_topics_are_the_documented_ones(tmp_path: Path) -> None:
    topics = [topic for topic, _ in _discovery()]
    # docs/mqtt.md: the pattern and its example
    (documented,) = re.findall(r"`(<prefix>/[^`]*)`", _text(DOCS / "mqtt.md"))
    pattern = re.escape(documented).replace("<prefix>", "homeassistant")
    pattern = pattern.replace("<kiosk>", KIOSK).replace("<component>", "[a-z_]+")
    assert all(re.fullmatch(pattern.replace("<object_id>", "[a-z_]+"), t) for t in topics)
    assert "homeassistant/binary_sensor/lobby-1/camera/config" in topics
    unique_ids = {json.loads(p)["unique_id"] for _, p in _discovery() if p}
    assert "kiosk-hq-lobby-1_camera" in unique_ids
    # docs/asyncapi.yaml: the channel's address and parameters, and how it is sent
    channel = _asyncapi()["channels"]["homeassistantDiscovery"]
    parameters = _asyncapi()["components"]["parameters"]
    components = {t.split("/")[1] for t in topics}
    assert components == set(parameters["component"]["enum"])
    address = channel["address"].replace("{discoveryPrefix}", "homeassistant")
    address = address.replace("{kiosk}", KIOSK).replace("{component}", "[a-z_]+")
    assert all(re.fullmatch(address.replace("{objectId}", "[a-z_]+"), t) for t in topics)
    (operation,) = [
        o
        for o in _asyncapi()["operations"].values()
        if o["channel"]["$ref"] == "#/channels/homeassistantDiscovery"
    ]
    binding = operation["bindings"]["mqtt"]
    assert operation["action"] == "send"
    sent = {t: (qos, retain) for t, _, qos, retain in _published(tmp_path).sent}
    assert {sent[t] for t in topics} == {(binding["qos"], binding["retain"])} == {(1, True)}
    # deploy/mosquitto/acl: the kiosk may write them and Home Assistant read them
    writes = [t.replace("%u", KIOSK) for u, a, t in _acl() if u == "%u" and a == "write"]
    reads = [t for u, a, t in _acl() if u == "homeassistant" and a == "read"]
    for topic in topics:
        assert any(_mosquitto_match(w, topic) for w in writes), topic
        assert any(_mosquitto_match(r, topic) for r in reads), topic


def _compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _as_documented(leaf: str, message: dict[str, Any]) -> bytes:
    """The bytes docs/mqtt.md describes: no spaces, but events' data as the log stored it."""
    if leaf != "events":
        return _compact(message)
    items = [
        _compact({k: v for k, v in event.items() if k != "data"})[:-1]
        + b',"data":'
        + json.dumps(event["data"], ensure_ascii=False).encode()
        + b"}"
        for event in message["events"]
    ]
    head = _compact({k: v for k, v in message.items() if k != "events"})[:-1]
    return head + b',"events":[' + b",".join(items) + b"]}"


def test_json_is_published_without_spaces_except_in_event_data(tmp_path: Path) -> None:
    assert (
        "without spaces between tokens, except inside an event's `data`, which is copied "
        "from the event log as it was stored there" in _text(DOCS / "mqtt.md")
    )
    leaves = set()
    for topic, payload, _, _ in _published(tmp_path).sent:
        leaf = topic.rsplit("/", 1)[1]
        if leaf == "status" or not payload:  # text, or a discovery config removed
            continue
        leaves.add(leaf)
        assert payload == _as_documented(leaf, json.loads(payload)), topic
    assert {"events", "state", "alerts", "config"} <= leaves
    assert any(b'"data":{"mode": "gate"' in p for t, p, _, _ in _published(tmp_path).sent)


def test_a_pass_holders_subject_is_the_documented_pseudonym(tmp_path: Path) -> None:
    assert "for a badge (of its id) and for a pass (of `pass:` and the pass's `sub` claim" in _text(
        DOCS / "mqtt.md"
    )
    config = make_config(tmp_path, kiosk={"site": SITE, "id": KIOSK})
    entrance = build_entrance(config, SALT.encode())
    keys = {key_id(PASS_KEY.public_key()): PASS_KEY.public_key()}
    entrance.checker.replace_verifier(PassVerifier(keys, site=SITE, revoked=frozenset()))
    assessment = entrance.assess(_pass(), NOW, too_large=False)
    assert assessment.subject == Pseudonymizer(SALT.encode()).subject("pass:p-7f3a")
    assert re.fullmatch(r"s-[0-9a-f]{20}", assessment.subject or "")


def _table(markdown: str) -> set[tuple[str, str, str]]:
    """(user, access, topic) from the ACL table of deploy/mosquitto/README.md."""
    who = {"every kiosk": "%u"}
    access = {"read": "read", "write": "write", "read and write": "readwrite", "denied": "deny"}
    rules = set()
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[1] not in access:
            continue
        user = who.get(cells[0], cells[0].strip("`"))
        rules |= {(user, access[cells[1]], t) for t in re.findall(r"`([^`]+)`", cells[2])}
    return rules


def test_the_brokers_readme_lists_exactly_what_the_acl_grants() -> None:
    readme = (REPO / "deploy" / "mosquitto" / "README.md").read_text("utf-8")
    assert _table(readme) == _acl()


def test_the_central_command_key_is_documented_where_operators_look() -> None:
    mqtt_md = _text(DOCS / "mqtt.md")
    assert "with `KIOSK_CENTRAL_COMMAND_KEY` from its environment, the same key" in mqtt_md
    assert "`kiosk command send` builds, signs and publishes a command" in mqtt_md


def test_image_folders_run_on_a_pc_as_docs_hardware_md_says(tmp_path: Path) -> None:
    """The documented way: no --simulate, gpiozero's mock pins, no thermometer."""
    hardware = (DOCS / "hardware.md").read_text("utf-8")
    assert "GPIOZERO_PIN_FACTORY=mock kiosk run --config kiosk.toml" in hardware
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "badge.png"), render_qr_frame(b"S-0001"))
    config = write_config(
        tmp_path, camera={"source": f"folder:{images}"}, thermometer={"enabled": False}
    )
    environment = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}

    log = tmp_path / "events.db"

    def decided() -> bool:
        return any(e.type == "decision" for e in logged(log))

    stderr = run_until_stopped(["run", "--config", str(config)], decided, environment)
    first = read_events(log, 1000, type="decision")[0].data
    assert (first["outcome"], first["credential"]["type"]) == ("grant", "badge"), stderr
