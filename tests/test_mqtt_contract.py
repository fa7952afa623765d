"""The MQTT contract: real messages match docs/schemas, docs/mqtt.md and docs/asyncapi.yaml.

Messages are built by the real producers (the protocol encoders, the sync loop, the command
processor, a simulated kiosk), so a payload that drifts from its schema fails here.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, cast

import cbor2
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jsonschema import Draft202012Validator

from kiosk.config import FEVER_MAX_C, FEVER_MIN_C
from kiosk.credentials import KINDS, CredentialStatus, declared, trust
from kiosk.credentials.cose import key_id
from kiosk.credentials.dcc import Dsc
from kiosk.credentials.dcc import trustlist as dcc_trust
from kiosk.credentials.declarations import load_declarations
from kiosk.credentials.documents import (
    RevocationList,
    TrustList,
    encode_document,
    load_document,
)
from kiosk.credentials.passes import (
    PassClaims,
    PassVerifier,
    decode_sign1,
    sign_pass,
)
from kiosk.credentials.trust import TrustStore
from kiosk.decide.area import TS_MS_RANGE
from kiosk.decide.decision import Reason, decide
from kiosk.events import EventType, decision_event_data
from kiosk.mqtt import protocol
from kiosk.mqtt.protocol import (
    Availability,
    Command,
    KioskTopics,
    Leaf,
    ProtocolError,
    WireEvent,
    command_signature,
    decode_passages,
    decode_receipt,
    encode_alert,
    encode_command,
    encode_events,
    encode_passages,
    encode_receipt,
    encode_result,
    encode_state,
)
from kiosk.mqtt.uplink import Connected, Published, Received
from kiosk.operator.actions import Action, ActionError, ActionOutcome, ActionRequest
from kiosk.operator.commands import CommandError, CommandProcessor
from kiosk.run.runtime import build_entrance
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.measurement import Measurement, TemperatureStatus
from kiosk.sensors.simulation import Person
from kiosk.store.eventlog import EventLog, read_events
from kiosk.sync import Sync
from kiosk.sync_send import BACKLOG_FOR_BATCHING
from tests.dcc_support import make_dsc
from tests.support import SALT, make_config, running

DOCS = Path(__file__).resolve().parents[1] / "docs"
SCHEMAS = DOCS / "schemas"
SCHEMA_FILES = {
    "dcc-trust",
    "declarations",
    "events",
    "receipt",
    "state",
    "alert",
    "command",
    "result",
    "activity",
    "status",
    "document",
    "passages",
}
LEAF_SCHEMA = {
    "events": "events",
    "passages": "passages",
    "status": "status",
    "state": "state",
    "alerts": "alert",
    "cmd": "command",
    "result": "result",
    "receipts": "receipt",
    "activity": "activity",
    "trust": "document",
    "revocation": "document",
    "dcc-trust": "dcc-trust",
    "declarations": "declarations",
    "declarations-delta": "declarations",
}
# Signed documents: binary COSE_Sign1, published by the issuer under the reserved kiosk id
# "site" (kiosk.run.runtime.build_sync), not JSON.
DOCUMENT_LEAVES = {
    Leaf.TRUST.value,
    Leaf.REVOCATION.value,
    Leaf.DCC_TRUST.value,
    Leaf.DECLARATIONS.value,
    Leaf.DECLARATIONS_DELTA.value,
}
SITE_KIOSK_ID = "site"
CREDENTIAL_TYPES = {"badge", "pass", "national", "dcc"}
KEY = b"test-command-key"
SITE, KIOSK = "hq", "lobby-1"
BOOT = "5d2c9a40-1e6b-4c8e-8f3d-2a7b9c0e1f55"
# The example keys of docs/mqtt.md (seeds of 32 equal bytes: never use them for real).
DOCUMENT_KEY = Ed25519PrivateKey.from_private_bytes(bytes(32))
PASS_KEY = Ed25519PrivateKey.from_private_bytes(bytes([1]) * 32)
NOW = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


@cache
def schema(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
    return value


def errors(name: str, message: bytes | str | dict[str, Any]) -> list[str]:
    """Schema violations of a message (bytes as published, or an already parsed value)."""
    if isinstance(message, bytes):
        message = message.decode("utf-8") if name == "status" else json.loads(message)
    validator = Draft202012Validator(schema(name))
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(message)]


def assert_valid(name: str, message: bytes | str | dict[str, Any]) -> None:
    assert errors(name, message) == [], message


def assert_invalid(name: str, message: dict[str, Any] | str) -> None:
    assert errors(name, message), f"{name} schema accepted {message!r}"


def enum_of(node: dict[str, Any]) -> set[Any]:
    return set(node["enum"])


# --- the schema files themselves -------------------------------------------------------


def test_schema_files_are_the_documented_set() -> None:
    assert {path.stem for path in SCHEMAS.glob("*.json")} == SCHEMA_FILES


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_schema_is_a_valid_2020_12_schema(name: str) -> None:
    document = schema(name)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(document)


def test_schema_enums_follow_the_code() -> None:
    """Names the code defines once are the names the schemas allow."""
    event = schema("events")["$defs"]
    assert enum_of(event["event"]["properties"]["type"]) == {t.value for t in EventType}
    logged_reasons = {r.value for r in Reason} - {Reason.LOG_UNAVAILABLE.value}
    assert enum_of(event["decision"]["properties"]["reason"]) == logged_reasons
    credential = event["credential"]["properties"]
    assert enum_of(credential["status"]) == {s.value for s in CredentialStatus}
    assert enum_of(credential["kind"]) == {*KINDS, None}
    assert enum_of(credential["type"]) == CREDENTIAL_TYPES
    documents = {*trust.KINDS, dcc_trust.KIND, *declared.KINDS.values()}
    assert enum_of(event["document"]["properties"]["kind"]) == documents
    assert enum_of(schema("document")["properties"]["typ"]) == set(trust.KINDS)
    # command events: the MQTT commands, plus the status page's relay test
    assert enum_of(event["command"]["properties"]["command"]) == {
        *(c.value for c in Action),
        "test_relay",
    }
    command = schema("command")
    assert enum_of(command["properties"]["command"]) == {c.value for c in Action}
    assert enum_of(schema("result")["properties"]["error"]) == {None} | {
        e.value for e in CommandError
    }
    assert enum_of(schema("status")) == {a.value for a in Availability}
    assert enum_of(schema("activity")["properties"]["reason"]) == {r.value for r in Reason}
    passage = schema("passages")["$defs"]["passage"]["properties"]
    assert enum_of(passage["type"]) == set(protocol.PASSAGE_TYPES) < {t.value for t in EventType}
    assert passage["ts_ms"]["maximum"] == TS_MS_RANGE.stop - 1
    assert schema("passages")["properties"]["passages"]["maxItems"] == protocol.MAX_PASSAGES
    meeting = schema("passages")["$defs"]["grant"]["properties"]["meeting"]
    assert meeting["maxLength"] == protocol.MAX_MEETING_CHARS
    (threshold,) = [
        rule["then"]["properties"]["args"]["properties"]["celsius"]
        for rule in command["allOf"]
        if rule["if"]["properties"]["command"].get("const") == "set_fever_threshold"
    ]
    assert (threshold["minimum"], threshold["maximum"]) == (FEVER_MIN_C, FEVER_MAX_C)


# --- events, alerts, state and status from the real sync loop ---------------------------


class FakeUplink:
    """What :class:`kiosk.sync.Sync` needs from an uplink; records every publish."""

    def __init__(self) -> None:
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.connected = True
        self.topics = KioskTopics(SITE, KIOSK)
        self.published: list[tuple[Leaf, bytes, int, bool]] = []

    def publish(
        self, leaf: Leaf, payload: bytes, *, qos: int = 1, retain: bool = False, **_: Any
    ) -> int:
        self.published.append((leaf, payload, qos, retain))
        return len(self.published)

    def subscribe(self, *topics: str) -> None:
        pass

    def is_alive(self) -> bool:
        return True

    def restart(self) -> None:
        pass

    def of(self, leaf: Leaf) -> list[bytes]:
        return [payload for sent, payload, _, _ in self.published if sent is leaf]


BADGE = {"status": "valid", "kind": "staff", "type": "badge", "unsigned": False, "pass_id": None}
NORMAL = {
    "status": "normal",
    "celsius": 36.61,
    "ambient_c": 24.0,
    "stable": True,
    "retested": False,
    "samples": 5,
}
ENTRY = {"direction": "entry", "area": "main", "clock_synced": True}
NATIONAL_CREDENTIAL = {
    "status": "valid",
    "kind": "visitor",
    "type": "national",
    "unsigned": True,
    "pass_id": None,
}
DECISIONS: list[dict[str, Any]] = [
    {  # gate mode, granted (docs/events.md)
        "mode": "gate", "outcome": "grant", "reason": "ok", **ENTRY,
        "subject": "s-4def6e9b4a287f437c2d", "credential": BADGE, "temperature": NORMAL,
        "decision_ms": 712.4,
    },
    {  # a fever, confirmed on retest
        "mode": "gate", "outcome": "deny", "reason": "fever", **ENTRY,
        "subject": "s-0123456789abcdef0123", "credential": {**BADGE, "kind": "visitor"},
        "temperature": {"status": "fever", "celsius": 38.4, "ambient_c": 23.5,
                        "stable": True, "retested": True, "samples": 10},
        "decision_ms": 2210.0,
    },
    {  # not a badge id: no subject, credential failed before measuring
        "mode": "gate", "outcome": "deny", "reason": "malformed_credential", **ENTRY,
        "subject": None, "credential": {**BADGE, "status": "malformed", "kind": None},
        "temperature": None, "decision_ms": 3.1,
    },
    {  # sensor fault: referred
        "mode": "gate", "outcome": "refer", "reason": "sensor_fault", **ENTRY,
        "subject": "s-4def6e9b4a287f437c2d", "credential": BADGE,
        "temperature": {"status": "fault", "celsius": None, "ambient_c": None,
                        "stable": False, "retested": False, "samples": 0},
        "decision_ms": 4000.2,
    },
    {  # screen mode: nobody's badge
        "mode": "screen", "outcome": "grant", "reason": "ok", **ENTRY, "subject": None,
        "credential": None, "temperature": {**NORMAL, "celsius": 36.5}, "decision_ms": 650.0,
    },
    {  # checkin mode: attendance, no temperature
        "mode": "checkin", "outcome": "grant", "reason": "checked_in", **ENTRY,
        "subject": "s-4def6e9b4a287f437c2d", "credential": BADGE, "temperature": None,
        "meeting": "Board meeting", "decision_ms": 12.0,
    },
    {  # a signed pass, revoked: its keyed pseudonym and its id
        "mode": "gate", "outcome": "deny", "reason": "revoked", **ENTRY,
        "subject": "s-9c1e2f4a6b8d0e3f5a7c",
        "credential": {"status": "revoked", "kind": "staff", "type": "pass", "unsigned": False,
                       "pass_id": "0a1b2c3d4e5f6071"},
        "temperature": None, "decision_ms": 4.2,
    },
    {  # an unsigned national-app code, referred to reception; the clock was not synced
        "mode": "gate", "outcome": "refer", "reason": "unsigned_credential",
        **ENTRY, "clock_synced": False, "subject": "n-86a1f2b9c07d34e5f612",
        "credential": NATIONAL_CREDENTIAL, "temperature": None, "decision_ms": 5.0,
    },
    {  # a toggle kiosk: the way out
        "mode": "gate", "outcome": "grant", "reason": "ok", **ENTRY, "direction": "exit",
        "area": "lab-2", "subject": "s-4def6e9b4a287f437c2d", "credential": BADGE,
        "temperature": None, "decision_ms": 8.0,
    },
]  # fmt: skip

OTHER_EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("kiosk_started", {"mode": "gate", "degraded": ["thermometer"]}),
    ("passage", {}),  # from a kiosk before passages said what let them through
    ("passage", {"by": "grant", "grant": "3f9d2b6a-7c1e-4a58-9d0b-6e2f4c8a1b73"}),
    ("passage", {"by": "none", "grant": None}),  # raises the tailgating alert
    (
        "grant_unused",
        {
            "grant": "3f9d2b6a-7c1e-4a58-9d0b-6e2f4c8a1b73",
            "subject": "s-4def6e9b4a287f437c2d",
            "direction": "entry",
            "area": "main",
        },
    ),
    ("fire_alarm", {"active": True}),
    ("fire_alarm", {"active": False}),
    ("health", {"part": "camera", "ok": False, "detail": "no frame for 5 s"}),
    ("health", {"part": "thermometer", "ok": True, "detail": "ok"}),
    ("health", {"part": "log_capacity", "ok": False, "detail": "91 % of 1000 rows"}),
    ("command", {"id": "c-1", "command": "lockdown", "args": {"on": True}}),
    ("document", {"kind": "trust", "accepted": True, "version": 3, "reason": "accepted"}),
    (
        "document",
        {
            "kind": "revocation",
            "accepted": False,
            "version": None,
            "reason": "version 11 is not newer than 12",
        },
    ),
    ("kiosk_stopped", {}),
]


def _sync(uplink: FakeUplink, outbox: EventLog, state: dict[str, Any], **kw: Any) -> Sync:
    return Sync(cast(Any, uplink), outbox, state=lambda: state, **kw)


@pytest.fixture
def state() -> dict[str, Any]:
    """A state document from docs/mqtt.md without the sync's own part."""
    document = _doc_examples()["state"][0]
    assert isinstance(document, dict)
    return {k: v for k, v in document.items() if k not in ("v", "mqtt")}


def test_events_alerts_state_and_status_from_the_sync_loop(
    tmp_path: Path, state: dict[str, Any]
) -> None:
    uplink = FakeUplink()
    with EventLog(tmp_path / "events.db", boot_id=BOOT) as outbox:
        sync = _sync(uplink, outbox, state)
        uplink.inbox.put(Connected(session_present=False))
        for data in DECISIONS:
            outbox.append("decision", data)
        assert max(len(DECISIONS), len(OTHER_EVENTS)) <= BACKLOG_FOR_BATCHING
        sync.step()  # live events, a few at a time: one message each
        for event_type, data in OTHER_EVENTS:
            outbox.append(event_type, data)
        sync.step()
        live = uplink.of(Leaf.EVENTS)
        for _ in range(30):  # a backlog: packed into batches
            outbox.append("passage", {})
        sync.step()

    events_messages = uplink.of(Leaf.EVENTS)
    assert len(live) == len(DECISIONS) + len(OTHER_EVENTS)  # one message per live event
    assert any(len(json.loads(m)["events"]) > 1 for m in events_messages[len(live) :])
    sent_types = set()
    for message in events_messages:
        assert_valid("events", message)
        sent_types |= {event["type"] for event in json.loads(message)["events"]}
    assert sent_types == {t.value for t in EventType}

    alerts = uplink.of(Leaf.ALERTS)
    for message in alerts:
        assert_valid("alert", message)
    assert {json.loads(m)["alert"] for m in alerts} == enum_of(
        schema("alert")["properties"]["alert"]
    )
    (status,) = uplink.of(Leaf.STATUS)
    assert_valid("status", status)
    for message in uplink.of(Leaf.STATE):
        assert_valid("state", message)


def test_passages_from_the_sync_loop_carry_only_what_neighbours_need(
    tmp_path: Path, state: dict[str, Any]
) -> None:
    """Each granted decision with a subject and each withdrawn grant goes out on passages, cut
    down to subject, direction, area, visitor or not and a check-in's meeting; refusals,
    reasons, temperatures, credential types and pass ids never do."""
    uplink = FakeUplink()
    with EventLog(tmp_path / "events.db", boot_id=BOOT) as outbox:
        sync = _sync(uplink, outbox, state)
        uplink.inbox.put(Connected(session_present=False))
        visitor = {**DECISIONS[0], "credential": NATIONAL_CREDENTIAL, "subject": "n-" + "a" * 20}
        logged = [outbox.append("decision", data) for data in [*DECISIONS, visitor]]
        logged += [outbox.append(kind, data) for kind, data in OTHER_EVENTS]
        sync.step()
    shared = {
        e.event_id: e
        for e in logged
        if e.type == "grant_unused" or (e.data.get("outcome") == "grant" and e.data["subject"])
    }
    assert len(shared) == 5  # gate entry, check-in, toggle exit, visitor; a withdrawn grant
    events: list[str] = []  # the ids of the events message just before each passages message
    for leaf, message, _, _ in uplink.published:
        if leaf is Leaf.EVENTS:
            events = [event["event_id"] for event in json.loads(message)["events"]]
        if leaf is not Leaf.PASSAGES:
            continue
        assert_valid("passages", message)
        passages = json.loads(message)["passages"]
        assert [p.as_dict() for p in decode_passages(message)[2]] == passages
        assert [p["event_id"] for p in passages] == [i for i in events if i in shared]
        for passage in passages:
            event = shared.pop(passage["event_id"])
            assert (passage["seq"], passage["ts_ms"], passage["type"]) == (
                event.seq,
                event.ts_ms,
                event.type,
            )
            data = passage["data"]
            kept = {"direction", "area", "subject"}
            if event.type == "decision":
                checkin = event.data["mode"] == "checkin"
                kept |= {"outcome"} | ({"mode", "meeting"} if checkin else set())
                kind = event.data["credential"]["kind"]
                assert data.pop("credential") == {"kind": "visitor" if kind == "visitor" else None}
            assert data == {key: event.data[key] for key in kept}
    assert not shared


def _passage(**changes: Any) -> dict[str, Any]:
    return {
        "event_id": "0b8f6c1e-4f7a-4d51-9a43-7f1d6c2e9b10",
        "seq": 7,
        "ts_ms": 1767261845123,
        "type": "decision",
        "data": {
            "direction": "entry",
            "area": "main",
            "subject": "s-9c1e2f4a6b8d0e3f5a7c",
            "outcome": "grant",
            "credential": {"kind": None},
        },
    } | changes


def _passages(*items: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {"v": 1, "site": SITE, "kiosk": KIOSK, "passages": list(items)} | envelope


def _data(**changes: Any) -> dict[str, Any]:
    """The example passage's data with ``changes``; a change to ``...`` removes the field."""
    data: dict[str, Any] = _passage()["data"] | changes
    return {key: value for key, value in data.items() if value is not ...}


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(_passages(_passage(ts_ms=2**62)), id="ts_ms 2^62"),
        pytest.param(_passages(_passage(ts_ms=-(2**62))), id="ts_ms -2^62"),
        pytest.param(_passages(_passage(ts_ms=TS_MS_RANGE.stop)), id="ts_ms in 2100"),
        pytest.param(_passages(_passage(ts_ms=1767261845123.5)), id="ts_ms a float"),
        pytest.param(_passages(_passage(seq=0)), id="seq 0"),
        pytest.param(_passages(_passage(seq=True)), id="seq a boolean"),
        pytest.param(_passages(_passage(seq=2**63)), id="seq 2^63"),
        pytest.param(_passages(_passage(event_id="not-a-uuid")), id="event_id not a uuid"),
        pytest.param(_passages(_passage(type="passage")), id="a passage event"),
        pytest.param(_passages(_passage(type="health")), id="a health event"),
        pytest.param(_passages(_passage(data=_data(outcome="deny"))), id="a refusal"),
        pytest.param(_passages(_passage(data=_data(subject=None))), id="no subject"),
        pytest.param(_passages(_passage(data=_data(subject="S 0001"))), id="subject a badge"),
        pytest.param(_passages(_passage(data=_data(subject="s" * 65))), id="subject too long"),
        pytest.param(_passages(_passage(data=_data(direction="in"))), id="unknown direction"),
        pytest.param(_passages(_passage(data=_data(area="Main"))), id="area not a segment"),
        pytest.param(_passages(_passage(data=_data(credential=...))), id="no credential"),
        pytest.param(_passages(_passage(data=_data(mode="checkin"))), id="check-in no meeting"),
        pytest.param(_passages(_passage(data=_data(meeting="Board"))), id="meeting no mode"),
        pytest.param(
            _passages(_passage(data=_data(mode="gate", meeting="Board"))), id="mode not checkin"
        ),
        pytest.param(
            _passages(_passage(data=_data(mode="checkin", meeting="m" * 201))),
            id="meeting too long",
        ),
        pytest.param(
            _passages(_passage(type="grant_unused", data=_data(subject=...))),
            id="withdrawn grant without subject",
        ),
        pytest.param(_passages(), id="no passages"),
        pytest.param(_passages(*[_passage()] * 1001), id="1001 passages"),
        pytest.param(_passages(_passage(), v=2), id="version 2"),
        pytest.param(_passages(_passage(), site="HQ"), id="site not a segment"),
        pytest.param(_passages(_passage(), kiosk=None), id="no kiosk"),
    ],
)
def test_wrong_passages_are_refused_by_schema_and_kiosk(message: dict[str, Any]) -> None:
    assert_invalid("passages", message)
    with pytest.raises(ProtocolError):
        decode_passages(json.dumps(message).encode())


def test_passages_go_again_with_their_events_and_a_refusal_names_the_acl(
    tmp_path: Path, state: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    uplink = FakeUplink()
    with EventLog(tmp_path / "events.db", boot_id=BOOT) as outbox:
        sync = _sync(uplink, outbox, state)
        uplink.inbox.put(Connected(session_present=False))
        grant = outbox.append("decision", DECISIONS[0])
        sync.step()
        sync.resend_from(grant.seq)  # as central asks when it sees a gap
        sync.step()
        sent = [json.loads(m)["passages"][0]["event_id"] for m in uplink.of(Leaf.PASSAGES)]
        assert sent == [grant.event_id] * 2
        mid = next(i for i, (leaf, *_) in enumerate(uplink.published, 1) if leaf is Leaf.PASSAGES)
        uplink.inbox.put(Published(mid, False, "Not authorized"))  # a broker on an older ACL
        sync.step()
    assert "does its ACL grant this kiosk's topics?" in caplog.text


def test_passages_refused_by_bounds_before_parsing() -> None:
    deep = _passage(data=_data(credential={"kind": {"nested": []}}))  # 6 levels
    with pytest.raises(ProtocolError, match="nested"):
        decode_passages(json.dumps(_passages(deep)).encode())
    huge = _passages(_passage(), pad="x" * protocol.MAX_MESSAGE_BYTES)
    with pytest.raises(ProtocolError, match="bytes"):
        decode_passages(json.dumps(huge).encode())


def test_good_passages_are_accepted_and_unknown_fields_dropped() -> None:
    checkin = _passage(data=_data(mode="checkin", meeting="Board meeting"))
    unused = _passage(type="grant_unused", data=_data(outcome=..., credential=...))
    visitor = _passage(data=_data(credential={"kind": "visitor"}))
    for item in (_passage(), checkin, unused, visitor):
        assert_valid("passages", _passages(item))
        site, kiosk, (passage,) = decode_passages(json.dumps(_passages(item)).encode())
        assert (site, kiosk, passage.as_dict()) == (SITE, KIOSK, item)
    extra = _passage(data=_data(reason="ok", temperature={"celsius": 36.6}), later=1)
    (passage,) = decode_passages(json.dumps(_passages(extra)).encode())[2]
    assert passage.as_dict() == _passage()  # a newer kiosk's fields are not passed on
    staff = _passage(data=_data(credential={"kind": "staff", "type": "badge"}))
    (passage,) = decode_passages(json.dumps(_passages(staff)).encode())[2]
    assert passage.data["credential"] == {"kind": None}


def test_a_message_whose_handling_crashes_is_counted_and_a_command_is_answered_failed(
    tmp_path: Path, state: dict[str, Any]
) -> None:
    """The last guard: whatever a handler raises, the loop goes on and a command gets a result."""
    uplink = FakeUplink()

    def crash(message: Received) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    with EventLog(tmp_path / "events.db", boot_id=BOOT) as outbox:
        sync = _sync(uplink, outbox, state)
        sync.on_command = sync.on_message = crash
        topics = [uplink.topics.topic(leaf) for leaf in (Leaf.CMD, Leaf.RECEIPTS)]
        for topic in [*topics, f"{protocol.PREFIX}/{SITE}/k2/passages"]:
            uplink.inbox.put(Received(topic, b"[[[", None, b"correlation"))
        uplink.inbox.put(Connected(session_present=False))
        sync.step()
        outbox.append("passage", {})
        sync.step()
    (result,) = uplink.of(Leaf.RESULT)
    assert_valid("result", result)
    assert (json.loads(result)["error"], json.loads(result)["id"]) == ("failed", None)
    assert sync.stats.ignored_messages == sync.mqtt_state()["ignored_messages"] == 3
    assert len(uplink.of(Leaf.EVENTS)) == 1  # the loop went on


def test_ignored_messages_are_logged_at_most_20_times_a_minute_and_all_counted(
    tmp_path: Path, state: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    uplink = FakeUplink()
    now = [1000.0]
    receipts = uplink.topics.topic(Leaf.RECEIPTS)
    with EventLog(tmp_path / "events.db", boot_id=BOOT) as outbox:
        sync = _sync(uplink, outbox, state, clock=lambda: now[0])
        for second in (0.0, 59.0, 60.0):
            now[0] = 1000.0 + second
            for _ in range(15):
                uplink.inbox.put(Received(receipts, b"[" * 100, None, None))
            sync.step()
    lines = [r.getMessage() for r in caplog.records if "ignored a message" in r.getMessage()]
    assert len(lines) == 20 + 15  # 30 in the first minute, 15 in the next
    assert "further ones this minute are only counted" in lines[19]
    assert sync.stats.ignored_messages == 45


def test_publish_qos_and_retain_follow_the_asyncapi_document(
    tmp_path: Path, state: dict[str, Any]
) -> None:
    uplink = FakeUplink()
    with EventLog(tmp_path / "events.db", boot_id=BOOT) as outbox:
        outbox.append("decision", DECISIONS[1])  # raises a fever alert
        outbox.append("decision", DECISIONS[0])  # a grant: shared with the neighbours
        sync = _sync(uplink, outbox, state)
        uplink.inbox.put(Connected(session_present=False))
        sync.step()
        sync.publish_activity(protocol.encode_activity("deny", "fever", 38.4))
    bindings = _send_bindings()
    seen = {leaf.value for leaf, _, _, _ in uplink.published}
    assert seen == {"events", "passages", "status", "state", "alerts", "activity"}
    for leaf, _, qos, retain in uplink.published:
        assert (qos, retain) == bindings[leaf.value], leaf


def _pass(pass_id: str = "0a1b2c3d4e5f6071", key: Ed25519PrivateKey = PASS_KEY, **kw: Any) -> bytes:
    claims = PassClaims(
        issuer="acme",
        subject="p-7f3a",
        kind="staff",
        pass_id=pass_id,
        issued_at=NOW - timedelta(days=1),
        valid_from=NOW - timedelta(days=1),
        valid_until=NOW + timedelta(days=30),
        sites=(SITE,),
    )
    return sign_pass(key, dataclasses.replace(claims, **kw)).encode()


NATIONAL = "PC-COVID|012345678|TRAN THI B|12/03/1985|Nữ|Hà Nội|KBYT|01/10/2021 08:30".encode()
PAYLOADS = [  # scanned in this order by each kiosk of _real_decisions
    b"S-0001",  # an allowlist badge
    b"S-0003",  # expired
    b"NOPE-1",  # unknown
    b"not a badge!",  # malformed
    NATIONAL,  # an unsigned national-app code
    _pass(),  # a signed pass
    _pass("0b0b0b0b0b0b0b0b"),  # revoked
    _pass("0c0c0c0c0c0c0c0c", sites=("elsewhere",)),  # wrong site
    _pass("0d0d0d0d0d0d0d0d", key=Ed25519PrivateKey.generate()),  # unknown key
    b"KP1:not base45",  # malformed pass
    _pass(),  # the same pass again: inside already, or on its way out
    b"S-0001",
]


def _real_decisions(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Decision data from the real producers: credential checks, entry rules, the decision
    core and kiosk.events.decision_event_data, for every credential type and mode."""
    normal = Measurement(TemperatureStatus.NORMAL, 36.61, 24.0, 5, True, False, "ok", 1.2)
    verifier = PassVerifier(
        {key_id(PASS_KEY.public_key()): PASS_KEY.public_key()},
        site=SITE,
        revoked=frozenset({"0b0b0b0b0b0b0b0b"}),
    )
    setups = [("gate", "entry"), ("gate", "toggle"), ("gate", "exit"), ("checkin", "entry")]
    for number, (mode, direction) in enumerate(setups):
        directory = tmp_path / f"k{number}"
        directory.mkdir()
        kiosk = {"site": SITE, "mode": mode, "direction": direction, "area": "lab-2"}
        config = make_config(
            directory,
            kiosk=kiosk | ({"meeting": "Board meeting"} if mode == "checkin" else {}),
            rules={"anti_passback": True},
        )
        entrance = build_entrance(config, SALT.encode())
        entrance.checker.replace_verifier(verifier)
        for step, payload in enumerate(PAYLOADS):
            assessment = entrance.assess(payload, NOW, too_large=False)
            measurement = normal if entrance.needs_temperature(assessment) else None
            decision = decide(
                mode,
                assessment.credential,
                measurement,
                rule=assessment.rule,
                unsigned_policy=config.credentials.national_qr,
                exiting=assessment.exiting,
                checked_in_before=assessment.checked_in_before,
            )
            data = decision_event_data(
                config, decision, assessment, measurement, decision_ms=3.5, clock_synced=True
            )
            logged_ms = int(NOW.timestamp() * 1000) - 60_000 + step  # a minute ago
            entrance.learn(str(uuid.uuid4()), logged_ms, data)
            yield data
    screen = make_config(tmp_path, kiosk={"site": SITE, "mode": "screen"})
    decision = decide("screen", None, normal)
    yield decision_event_data(screen, decision, None, normal, decision_ms=650, clock_synced=False)


def test_real_decisions_match_the_schema(tmp_path: Path) -> None:
    decisions = list(_real_decisions(tmp_path))
    for data in decisions:
        assert_valid("events", _batch(_wire_event(type="decision", data=data)))
    credentials = [d["credential"] for d in decisions if d["credential"] is not None]
    assert {c["type"] for c in credentials} == CREDENTIAL_TYPES - {"dcc"}  # tests/test_dcc_gate
    assert {d["direction"] for d in decisions} == {"entry", "exit"}
    assert {d["subject"][:2] for d in decisions if d["subject"]} == {"s-", "n-"}
    assert {"revoked", "wrong_site", "unknown_key", "already_inside", "unsigned_credential"} <= {
        d["reason"] for d in decisions
    }


def _view(value: Any) -> Any:
    """A CBOR value in the JSON data model of docs/schemas/document.json (bytes as hex)."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_view(item) for item in value]
    if isinstance(value, dict):
        return {key: _view(item) for key, item in value.items()}
    return value


def _document_payload(document: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = _view(cbor2.loads(decode_sign1(document).payload))
    return payload


def test_signed_documents_match_the_schema() -> None:
    keys = [PASS_KEY.public_key(), Ed25519PrivateKey.generate().public_key()]
    documents: list[TrustList | RevocationList] = [
        TrustList("acme", 1, NOW, {key_id(key): key for key in keys}),
        RevocationList("acme", 2, NOW, frozenset()),
        RevocationList("acme", 3, NOW, frozenset({"0a1b2c3d4e5f6071", "ff" * 16})),
    ]
    for document in documents:
        payload = _document_payload(encode_document(document, DOCUMENT_KEY))
        assert_valid("document", payload)
        assert_invalid("document", {**payload, "ver": 0})
        assert_invalid("document", {**payload, "typ": "allowlist"})
        assert_invalid("document", {k: v for k, v in payload.items() if k != "org"})
        other = "ids" if payload["typ"] == "trust" else "keys"
        assert_invalid("document", {**payload, other: []})
    trusted = _document_payload(encode_document(documents[0], DOCUMENT_KEY))
    assert_invalid("document", {**trusted, "keys": []})
    assert_invalid("document", {**trusted, "keys": [trusted["keys"][0][:62]]})


def test_signed_dcc_trust_lists_match_the_schema() -> None:
    dsc = Dsc.from_der(make_dsc(ec.generate_private_key(ec.SECP256R1()), country="DE"))
    signed = dcc_trust.encode_trust_list(
        [dsc], org="acme", version=2, issued_at=NOW, signing_key=DOCUMENT_KEY
    )
    payload = _document_payload(signed)
    assert_valid("dcc-trust", payload)
    (entry,) = payload["dscs"]
    assert (entry["kid"], entry["c"], entry["der"]) == (dsc.kid.hex(), "DE", dsc.der.hex())
    assert_invalid("dcc-trust", {**payload, "typ": "trust"})
    assert_invalid("dcc-trust", {**payload, "dscs": []})
    assert_invalid("dcc-trust", {k: v for k, v in payload.items() if k != "dscs"})
    assert_invalid("dcc-trust", {**payload, "dscs": [{**entry, "der": entry["der"][:-1]}]})
    assert_invalid("dcc-trust", {**payload, "dscs": [{"kid": entry["kid"], "c": "DE"}]})


def test_events_from_a_simulated_kiosk_and_its_commands(tmp_path: Path) -> None:
    """A real kiosk: its decision, command and lifecycle events and its state document."""
    config = make_config(tmp_path)
    now_ms = int(time.time() * 1000)
    with running(config) as kiosk:
        kiosk.scene.step_up(Person("staff", b"S-0001", sim.person(36.6), "grant"))
        kiosk.next_decision()
        processor = CommandProcessor(
            kiosk.kiosk, kiosk_id=KIOSK, key=KEY, allow_emergency_open=False, now_ms=lambda: now_ms
        )
        for on in (True, False):
            outcome = processor.handle(_command("lockdown", {"on": on}, now_ms, key=KEY))
            assert outcome.ok, outcome.message
            assert_valid("result", processor.encode(outcome))
        store = TrustStore(config, DOCUMENT_KEY.public_key())
        keys = {key_id(PASS_KEY.public_key()): PASS_KEY.public_key()}
        signed = encode_document(TrustList("acme", 3, NOW, keys), DOCUMENT_KEY)
        for kind, document in [
            ("trust", signed),  # accepted
            ("trust", encode_document(TrustList("acme", 2, NOW, keys), DOCUMENT_KEY)),  # older
            ("revocation", b"\xd2\x84"),  # malformed
            ("revocation", encode_document(RevocationList("acme", 1, NOW, frozenset()), PASS_KEY)),
        ]:
            update = store.offer(kind, document, save=False)
            kiosk.kiosk.apply_trust_update(
                update.kind, update.accepted, update.version, update.reason, store.verifier()
            )
        live_state = kiosk.kiosk.state()
    events = read_events(config.log_path, 100)
    types = {"kiosk_started", "decision", "command", "document", "kiosk_stopped"}
    assert types <= {e.type for e in events}
    documents = [e.data for e in events if e.type == "document"]
    assert [d["accepted"] for d in documents] == [True, False, False, False]
    wire = [
        WireEvent(e.event_id, e.seq, e.boot_id, e.ts_ms, e.clock_synced, e.type, e.data)
        for e in events
    ]
    assert_valid("events", encode_events(config.kiosk.site, config.kiosk.id, wire))
    uplink = FakeUplink()
    with EventLog(config.log_path, boot_id=BOOT) as outbox:
        _sync(uplink, outbox, live_state).publish_state()
    (message,) = uplink.of(Leaf.STATE)
    assert_valid("state", message)


def _wire_event(**changes: Any) -> dict[str, Any]:
    event = WireEvent(str(uuid.uuid4()), 7, BOOT, 1767261845123, True, "passage", {})
    return dataclasses.replace(event, **changes).as_dict()


def _batch(*events: dict[str, Any]) -> dict[str, Any]:
    return {"v": 1, "site": SITE, "kiosk": KIOSK, "events": list(events)}


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda e: e.pop("seq"), id="no seq"),
        pytest.param(lambda e: e.update(seq=0), id="seq 0"),
        pytest.param(lambda e: e.update(seq="7"), id="seq as text"),
        pytest.param(lambda e: e.pop("event_id"), id="no event_id"),
        pytest.param(lambda e: e.update(event_id="not-a-uuid"), id="event_id not a uuid"),
        pytest.param(lambda e: e.update(historical=None), id="historical null"),
        pytest.param(lambda e: e.update(type="gate"), id="unknown type"),
        pytest.param(lambda e: e.update(data={"x": 1}), id="passage with data"),
        pytest.param(
            lambda e: e.update(data={"by": "grant", "grant": None}), id="passage by no grant"
        ),
        pytest.param(lambda e: e.update(type="fire_alarm", data={}), id="fire_alarm no active"),
        pytest.param(
            lambda e: e.update(type="health", data={"part": "relay", "ok": True, "detail": ""}),
            id="health of an unknown part",
        ),
        pytest.param(
            lambda e: e.update(type="decision", data={**DECISIONS[0], "badge_id": "S-0001"}),
            id="decision carrying a badge id",
        ),
        pytest.param(
            lambda e: e.update(type="decision", data={**DECISIONS[0], "subject": "S-0001"}),
            id="subject not pseudonymous",
        ),
        pytest.param(
            lambda e: e.update(
                type="decision", data={**DECISIONS[0], "subject": "n-86a1f2b9c07d34e5f612"}
            ),
            id="badge with a national subject",
        ),
        pytest.param(
            lambda e: e.update(type="decision", data={**DECISIONS[6], "subject": "p 7f3a"}),
            id="pass subject not an identifier",
        ),
        pytest.param(
            lambda e: e.update(type="decision", data={**DECISIONS[7], "subject": "s-0001"}),
            id="national code without its n- hash",
        ),
        pytest.param(
            lambda e: e.update(
                type="decision",
                data={**DECISIONS[7], "credential": {**NATIONAL_CREDENTIAL, "unsigned": False}},
            ),
            id="national code claimed signed",
        ),
        pytest.param(
            lambda e: e.update(
                type="decision",
                data={**DECISIONS[0], "credential": {**BADGE, "pass_id": "0a1b2c3d4e5f6071"}},
            ),
            id="badge with a pass id",
        ),
        pytest.param(
            lambda e: e.update(
                type="decision",
                data={**DECISIONS[0], "credential": {"status": "valid", "kind": "staff"}},
            ),
            id="credential in the old shape",
        ),
        pytest.param(
            lambda e: e.update(
                type="decision", data={k: v for k, v in DECISIONS[0].items() if k != "direction"}
            ),
            id="decision without direction",
        ),
        pytest.param(
            lambda e: e.update(type="decision", data={**DECISIONS[4], "subject": "s-" + "0" * 20}),
            id="screen mode with a subject",
        ),
        pytest.param(
            lambda e: e.update(
                type="document",
                data={"kind": "trust", "accepted": True, "version": None, "reason": "accepted"},
            ),
            id="accepted document without version",
        ),
        pytest.param(
            lambda e: e.update(
                type="document",
                data={"kind": "trust", "accepted": False, "version": 4, "reason": "bad signature"},
            ),
            id="refused document with a version",
        ),
        pytest.param(
            lambda e: e.update(type="command", data={"id": "c", "command": "lockdown"}),
            id="command without args",
        ),
    ],
)
def test_wrong_event_shapes_are_rejected(bad: Any) -> None:
    event = _wire_event()
    assert_valid("events", _batch(event))
    bad(event)
    assert_invalid("events", _batch(event))


def test_wrong_batch_envelopes_are_rejected() -> None:
    event = _wire_event()
    assert_invalid("events", {**_batch(event), "v": 2})
    assert_invalid("events", {**_batch(event), "site": "HQ"})  # not a topic segment
    assert_invalid("events", _batch())  # an empty batch
    envelope = _batch(event)
    del envelope["kiosk"]
    assert_invalid("events", envelope)


def test_alert_shape() -> None:
    event = WireEvent(str(uuid.uuid4()), 9, BOOT, 1767261845123, True, "decision", {})
    assert_valid("alert", encode_alert(KIOSK, "fever", event, "fever confirmed on retest"))
    assert_invalid("alert", json.loads(encode_alert(KIOSK, "smoke", event, "")))
    message = json.loads(encode_alert(KIOSK, "fever", event, ""))
    del message["event_id"]
    assert_invalid("alert", message)


def test_state_shape(state: dict[str, Any]) -> None:
    mqtt = {"connected": True, "in_flight": 0, "last_receipt_ms": None, "ignored_messages": 0}
    full = state | {"mqtt": mqtt | {"unsendable_events": 0, "restarts": 0}}
    assert_valid("state", encode_state(full))
    assert_invalid("state", json.loads(encode_state(state)))  # without the sync's part
    broken = json.loads(encode_state(full))
    broken["today"]["granted"] = "212"
    assert_invalid("state", broken)
    broken = json.loads(encode_state(full))
    del broken["log"]["unconfirmed"]
    assert_invalid("state", broken)


def test_status_values() -> None:
    for value in Availability:
        assert_valid("status", value.value.encode())
    assert_invalid("status", "away")


# --- receipts ------------------------------------------------------------------------


def test_receipts() -> None:
    for seqs in ([], [1], [1, 2, 3, 7, 9, 10], range(1, 5000)):
        assert_valid("receipt", encode_receipt(seqs))
    for ranges in ([[5]], [[1, 2, 3]], [["1", 2]], [[0, 3]], [[1.5, 2]], [[True, 2]], [5]):
        assert_invalid("receipt", {"v": 1, "ranges": ranges})
    assert_invalid("receipt", {"ranges": [[1, 2]]})
    # [first, last] with first > last is well-shaped: only the protocol can refuse it
    assert_valid("receipt", {"v": 1, "ranges": [[5, 3]]})
    with pytest.raises(ProtocolError):
        decode_receipt(b'{"v":1,"ranges":[[5,3]]}')


# --- commands and results ------------------------------------------------------------


class FakeOperator:
    """The kiosk's operator for the command processor; ``fail`` makes one request fail."""

    def __init__(self, fail: str = "") -> None:
        self.fail = fail

    def perform(self, request: ActionRequest) -> ActionOutcome:
        if self.fail == "log":
            return ActionOutcome("not carried out: disk full", ActionError.LOG_UNAVAILABLE)
        if self.fail == "allowlist" and request.action is Action.RELOAD_ALLOWLIST:
            message = "reload_allowlist failed: allowlist.csv:3: expected 3 columns"
            return ActionOutcome(message, ActionError.FAILED)
        return ActionOutcome(f"{request.action} done", data={"done": True})


NOW_MS = 1767262100000
VALID_ARGS: dict[str, dict[str, Any]] = {
    "lockdown": {"on": True},
    "emergency_open": {"on": False},
    "reload_allowlist": {},
    "set_fever_threshold": {"celsius": 38.0},
    "resend": {"from_seq": 1042},
    "test_relay": {},
}
BAD_ARGS: list[tuple[str, dict[str, Any]]] = [
    ("lockdown", {}),
    ("lockdown", {"on": "yes"}),
    ("lockdown", {"on": True, "for_s": 60}),
    ("reload_allowlist", {"path": "/tmp/x.csv"}),
    ("set_fever_threshold", {"celsius": 45}),
    ("set_fever_threshold", {"celsius": "38"}),
    ("resend", {"from_seq": 0}),
    ("resend", {"from_seq": 1.5}),
    ("test_relay", {"times": 2}),
]


def _command(
    name: str,
    args: dict[str, Any],
    now_ms: int = NOW_MS,
    *,
    key: bytes | None = None,
    **changes: Any,
) -> bytes:
    command = Command(str(uuid.uuid4()), name, args, now_ms, now_ms + 30_000)
    command = dataclasses.replace(command, **changes)
    if key is not None:
        command = dataclasses.replace(command, sig=command_signature(key, command))
    return encode_command(command)


def _processor(key: bytes | None = KEY, fail: str = "") -> CommandProcessor:
    return CommandProcessor(
        FakeOperator(fail),
        kiosk_id=KIOSK,
        key=key,
        allow_emergency_open=True,
        now_ms=lambda: NOW_MS,
    )


def test_every_command_matches_the_schema_and_is_carried_out() -> None:
    assert set(VALID_ARGS) == {c.value for c in Action}
    processor = _processor()
    for name, args in VALID_ARGS.items():
        message = _command(name, args, key=KEY)
        assert_valid("command", message)
        assert_valid("command", _command(name, args))  # unsigned is well-formed too
        outcome = processor.handle(message)
        assert outcome.ok, outcome.message
        assert_valid("result", processor.encode(outcome))


@pytest.mark.parametrize(("name", "args"), BAD_ARGS)
def test_bad_arguments_are_refused_by_schema_and_kiosk(name: str, args: dict[str, Any]) -> None:
    message = _command(name, args, key=KEY)
    assert_invalid("command", json.loads(message))
    outcome = _processor().handle(message)
    assert outcome.error is CommandError.BAD_ARGUMENTS
    assert_valid("result", _processor().encode(outcome))


def test_malformed_commands_are_refused_by_schema_and_kiosk() -> None:
    good = json.loads(_command("lockdown", {"on": True}, key=KEY))
    for broken in (
        {k: v for k, v in good.items() if k != "expires_at_ms"},
        {**good, "reply_to": "elsewhere"},
        {**good, "issued_at_ms": "now"},
        {**good, "v": 2},
        {**good, "id": "x" * 129},
    ):
        assert_invalid("command", broken)
        outcome = _processor().handle(json.dumps(broken).encode())
        assert outcome.error is CommandError.MALFORMED, broken
    assert_invalid("command", {**good, "sig": "ABC"})  # not lower-case hex SHA-256
    assert_invalid("command", {**good, "command": "open_gate"})


def _refusals() -> Iterator[tuple[CommandError, CommandProcessor, bytes]]:
    lockdown = {"on": True}
    yield CommandError.MALFORMED, _processor(), b"not json"
    yield CommandError.UNSIGNED, _processor(), _command("lockdown", lockdown)
    yield CommandError.BAD_SIGNATURE, _processor(), _command("lockdown", lockdown, key=b"x")
    yield (
        CommandError.EXPIRED,
        _processor(),
        _command("lockdown", lockdown, NOW_MS - 60_000, key=KEY),
    )
    yield (
        CommandError.NOT_YET_VALID,
        _processor(),
        _command("lockdown", lockdown, NOW_MS + 3_600_000, key=KEY),
    )
    yield (
        CommandError.TOO_LONG_LIVED,
        _processor(),
        _command("lockdown", lockdown, key=KEY, expires_at_ms=NOW_MS + 2 * 86_400_000),
    )
    replaying = _processor()
    message = _command("lockdown", lockdown, key=KEY)
    assert replaying.handle(message).ok
    yield CommandError.REPLAYED, replaying, message
    yield CommandError.UNKNOWN_COMMAND, _processor(), _command("open_gate", {}, key=KEY)
    yield CommandError.BAD_ARGUMENTS, _processor(), _command("lockdown", {}, key=KEY)
    strict = CommandProcessor(
        FakeOperator(),
        kiosk_id=KIOSK,
        key=None,
        allow_emergency_open=False,
        now_ms=lambda: NOW_MS,
    )
    yield CommandError.NOT_ALLOWED, strict, _command("emergency_open", lockdown)
    yield (
        CommandError.LOG_UNAVAILABLE,
        _processor(fail="log"),
        _command("lockdown", lockdown, key=KEY),
    )
    yield (
        CommandError.FAILED,
        _processor(fail="allowlist"),
        _command("reload_allowlist", {}, key=KEY),
    )


def test_every_refusal_gives_a_result_that_matches_the_schema() -> None:
    seen = set()
    for error, processor, message in _refusals():
        outcome = processor.handle(message)
        assert outcome.error is error, outcome.message
        result = processor.encode(outcome)
        assert_valid("result", result)
        assert json.loads(result)["ok"] is False
        seen.add(error)
    assert seen == set(CommandError)


def test_wrong_results_are_rejected() -> None:
    assert_invalid("result", json.loads(encode_result(KIOSK, "c-1", "oops", "")))
    ok = json.loads(encode_result(KIOSK, "c-1", None, "lockdown on"))
    assert_invalid("result", {**ok, "error": "failed"})  # ok with an error code
    assert_invalid("result", {**ok, "ok": False})  # not ok without one
    assert_invalid("result", {k: v for k, v in ok.items() if k != "message"})


# --- activity ------------------------------------------------------------------------


def test_activity_shape() -> None:
    for example in _doc_examples()["activity"]:
        assert_valid("activity", example)
    assert_valid(
        "activity",
        {"v": 1, "event_type": "refer", "reason": "log_unavailable", "temperature_c": None},
    )
    assert_invalid(
        "activity", {"v": 1, "event_type": "open", "reason": "ok", "temperature_c": None}
    )
    assert_invalid("activity", {"event_type": "grant", "reason": "ok", "temperature_c": None})
    assert_invalid(
        "activity",
        {
            "v": 1,
            "event_type": "grant",
            "reason": "ok",
            "temperature_c": None,
            "subject": "s-4def6e9b4a287f437c2d",
        },
    )


def test_activity_encoder_matches_the_schema() -> None:
    assert_valid("activity", protocol.encode_activity("grant", "ok", 36.61))
    assert_valid("activity", protocol.encode_activity("refer", "sensor_fault", None))


# --- docs/mqtt.md --------------------------------------------------------------------


def _mqtt_md() -> str:
    return (DOCS / "mqtt.md").read_text(encoding="utf-8")


def _sections() -> dict[str, str]:
    """The text under each ``##`` heading of docs/mqtt.md."""
    parts = re.split(r"^## (.+)$", _mqtt_md(), flags=re.MULTILINE)
    return {
        title.strip(): re.split(r"^# ", body, flags=re.MULTILINE)[0]
        for title, body in zip(parts[1::2], parts[2::2], strict=True)
    }


@cache
def _doc_examples() -> dict[str, list[Any]]:
    """The example payloads of each topic section (JSON blocks, and text blocks for status)."""
    examples: dict[str, list[Any]] = {}
    for title, body in _sections().items():
        blocks = re.findall(r"^```(json|text)\n(.*?)^```", body, flags=re.MULTILINE | re.DOTALL)
        examples[title] = [json.loads(b) if kind == "json" else b.strip() for kind, b in blocks]
    return examples


def test_mqtt_md_has_one_section_per_topic_leaf() -> None:
    headings = re.findall(r"^## (.+)$", _mqtt_md(), flags=re.MULTILINE)
    assert len(headings) == len(set(headings))
    assert set(headings) == {leaf.value for leaf in Leaf}


def test_mqtt_md_examples_match_the_schemas() -> None:
    for leaf in Leaf:
        examples = _doc_examples()[leaf.value]
        assert examples, f"no example payload under '## {leaf.value}'"
        if leaf.value in DOCUMENT_LEAVES:
            continue  # binary: test_mqtt_md_document_examples_are_real_signed_documents
        for example in examples:
            assert_valid(LEAF_SCHEMA[leaf.value], example)


@pytest.mark.parametrize("leaf", sorted(DOCUMENT_LEAVES))
def test_mqtt_md_document_examples_are_real_signed_documents(leaf: str) -> None:
    """The hex example is a document the kiosk accepts; the JSON example is its payload."""
    message, payload = _doc_examples()[leaf]
    document = bytes.fromhex(message)
    if LEAF_SCHEMA[leaf] == "declarations":  # central's, checked by the kiosk
        declared = load_declarations(document, DOCUMENT_KEY.public_key(), site=SITE, now=NOW)
        assert _document_payload(document) == payload
        assert_valid("declarations", payload)
        assert (declared.kind, declared.version) == (payload["kind"], payload["ver"])
        return
    if LEAF_SCHEMA[leaf] == "dcc-trust":
        listed = dcc_trust.load_trust_list(document, DOCUMENT_KEY.public_key(), current_version=3)
        assert _document_payload(document) == payload
        assert_valid("dcc-trust", payload)
        (dsc,) = listed.dscs
        assert (dsc.kid.hex(), dsc.country) == (payload["dscs"][0]["kid"], "VN")
        return
    kind = cast(Any, leaf)
    loaded = load_document(
        document, DOCUMENT_KEY.public_key(), expected_type=kind, current_version=None
    )
    assert _document_payload(document) == payload
    assert_valid("document", payload)
    assert (loaded.org, loaded.version) == (payload["org"], payload["ver"])
    if isinstance(loaded, TrustList):
        assert key_id(PASS_KEY.public_key()) in loaded.keys
        raw = PASS_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        assert raw in payload["keys"]


def test_mqtt_md_passages_example_is_what_the_kiosk_shares_of_the_events_example() -> None:
    site, kiosk, events = protocol.decode_events(json.dumps(_doc_examples()["events"][0]).encode())
    shared = [protocol.passage_of(e.type, e.event_id, e.seq, e.ts_ms, e.data) for e in events]
    passages = [p for p in shared if p is not None]
    (example,) = _doc_examples()["passages"]
    assert json.loads(encode_passages(site, kiosk, passages)) == example


def test_mqtt_md_sections_state_qos_and_retain_as_the_asyncapi_document() -> None:
    bindings = _send_bindings() | _receive_bindings()
    for leaf, body in _sections().items():
        match = re.search(r"\*\*QoS (\d), (not retained|retained)\.", body)
        assert match, f"'## {leaf}' does not state its QoS and retain flag"
        assert (int(match[1]), match[2] == "retained") == bindings[leaf], leaf


def test_mqtt_md_signing_example_matches_command_signature() -> None:
    (example,) = _doc_examples()["cmd"]
    command = protocol.decode_command(json.dumps(example).encode())
    key = b"example-command-key-from-mqtt.command_key"
    assert command.sig == command_signature(key, command)


# --- docs/asyncapi.yaml --------------------------------------------------------------


@cache
def _asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DOCS / "asyncapi.yaml").read_text("utf-8"))
    return document


def _operation_bindings(action: str) -> dict[str, tuple[int, bool]]:
    found = {}
    for operation in _asyncapi()["operations"].values():
        if operation["action"] == action:
            leaf = operation["channel"]["$ref"].rsplit("/", 1)[1]
            mqtt = operation["bindings"]["mqtt"]
            found[leaf] = (mqtt["qos"], mqtt["retain"])
    return found


def _send_bindings() -> dict[str, tuple[int, bool]]:
    return _operation_bindings("send")


def _receive_bindings() -> dict[str, tuple[int, bool]]:
    return _operation_bindings("receive")


def test_asyncapi_declares_3_0_0_and_an_mqtt5_server() -> None:
    document = _asyncapi()
    assert document["asyncapi"] == "3.0.0"
    (server,) = document["servers"].values()
    assert (server["protocol"], str(server["protocolVersion"])) == ("mqtt", "5")
    assert server["bindings"]["mqtt"]["lastWill"]["message"] == Availability.OFFLINE.value


def test_asyncapi_has_one_channel_per_leaf() -> None:
    channels = _asyncapi()["channels"]
    # + Home Assistant's discovery topics, checked by tests/test_doc_contract.py
    assert set(channels) - {"homeassistantDiscovery"} == {leaf.value for leaf in Leaf}
    for leaf in Leaf:
        channel = channels[leaf.value]
        (message,) = channel["messages"].values()
        target = _resolve(_asyncapi(), message["$ref"])
        assert target["payload"]["schema"]["$ref"] == f"./schemas/{LEAF_SCHEMA[leaf.value]}.json"
        if leaf.value in DOCUMENT_LEAVES:  # the site's, under the reserved kiosk id
            assert channel["address"] == f"{protocol.PREFIX}/{{site}}/{SITE_KIOSK_ID}/{leaf.value}"
            assert set(channel["parameters"]) == {"site"}
            assert target["contentType"].startswith("application/cose")
        else:
            assert channel["address"] == f"{protocol.PREFIX}/{{site}}/{{kiosk}}/{leaf.value}"
            assert set(channel["parameters"]) == {"site", "kiosk"}
            json_or_text = "text/plain" if leaf is Leaf.STATUS else "application/json"
            assert target["contentType"] == json_or_text


def test_asyncapi_operations_are_from_the_kiosks_point_of_view() -> None:
    # a kiosk reads its commands and receipts, the site's signed documents and its
    # neighbours' passages, never their events (kiosk.run.runtime.build_sync)
    assert set(_receive_bindings()) == {"cmd", "receipts", "passages"} | DOCUMENT_LEAVES
    kiosk_sends = {leaf.value for leaf in Leaf} - {"cmd", "receipts"} - DOCUMENT_LEAVES
    assert set(_send_bindings()) - {"homeassistantDiscovery"} == kiosk_sends


def test_kiosks_subscribe_to_the_documented_topics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The site's documents under the reserved kiosk id, and the neighbours' passages."""
    from kiosk.run import runtime

    created: list[dict[str, Any]] = []

    def sync(*args: Any, **kwargs: Any) -> None:
        created.append(kwargs)

    monkeypatch.setattr(runtime, "Uplink", lambda *args, **kwargs: None)
    monkeypatch.setattr(runtime, "Sync", sync)
    config = make_config(tmp_path, kiosk={"site": SITE, "id": KIOSK})
    enabled = cast(TrustStore, type("Trust", (), {"enabled": True})())
    with EventLog(tmp_path / "events.db", boot_id=BOOT) as outbox:
        runtime.build_sync(config, outbox, enabled, state=dict)
        dcc_list = dcc_trust.DccTrustStore(DOCUMENT_KEY.public_key(), tmp_path / "dcc-trust.cose")
        runtime.build_sync(config, outbox, enabled, state=dict, dcc_trust=dcc_list)
    (arguments, with_dcc) = created
    assert set(arguments["listen"]) == {
        f"{protocol.PREFIX}/{SITE}/+/passages",
        f"{protocol.PREFIX}/{SITE}/{SITE_KIOSK_ID}/trust",
        f"{protocol.PREFIX}/{SITE}/{SITE_KIOSK_ID}/revocation",
        f"{protocol.PREFIX}/{SITE}/{SITE_KIOSK_ID}/declarations",
        f"{protocol.PREFIX}/{SITE}/{SITE_KIOSK_ID}/declarations-delta",
    }
    dcc = f"{protocol.PREFIX}/{SITE}/{SITE_KIOSK_ID}/dcc-trust"  # with [dcc] on
    assert set(with_dcc["listen"]) == {*arguments["listen"], dcc}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: Any, pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node = document
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_asyncapi_ref_resolves() -> None:
    document = _asyncapi()
    files = set()
    for ref in _refs(document):
        target, _, fragment = ref.partition("#")
        if not target:
            _resolve(document, ref)
            continue
        path = (DOCS / target).resolve()
        assert path.parent == SCHEMAS.resolve() and path.is_file(), ref
        files.add(path.stem)
        if fragment:
            _resolve(schema(path.stem), f"#{fragment}")
    assert files == SCHEMA_FILES
