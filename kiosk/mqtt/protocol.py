"""The MQTT protocol between kiosks and central: every topic and payload, defined once.

Topics live under a versioned prefix per kiosk, ``kiosk/v1/<site>/<kiosk>/``:

==============  ==========  =========  ===  ======  ============================================
leaf            publisher   reader     QoS  retain  payload
==============  ==========  =========  ===  ======  ============================================
``events``      kiosk       central    1    no      :func:`encode_events` (a batch of events)
``status``      kiosk/will  anyone     1    yes     ``online`` / ``offline`` / ``stopped``
``state``       kiosk       anyone     1    yes     health JSON (:func:`encode_state`)
``alerts``      kiosk       anyone     1    no      one alert JSON per event that needs a human
``activity``    kiosk       HA         0    no      each live decision (:func:`encode_activity`)
``passages``    kiosk       kiosks     1    no      :func:`encode_passages`: grants, withdrawn
``cmd``         operators   kiosk      1    no      a command JSON (see ``kiosk.operator.commands``)
``result``      kiosk       operators  1    no      a command result JSON
``receipts``    central     kiosk      1    no      :func:`encode_receipt`: seqs stored
``trust``       issuer      kiosks     1    yes     signed trust list, under ``<site>/site/``
``revocation``  issuer      kiosks     1    yes     signed revocation list, likewise
==============  ==========  =========  ===  ======  ============================================

``cmd`` also comes from central (``resend`` when it sees a gap). Kiosks of one site share
occupancy, anti-passback and attendance through ``passages``: with each events message, the
granted entries and exits in it and the grants withdrawn unused, cut down to what
:meth:`kiosk.decide.entrance.Entrance.learn_event` reads, so that no kiosk needs another's
``events`` (which the broker's ACL does not let it read). ``docs/mqtt.md`` documents each
topic; ``docs/asyncapi.yaml`` and ``docs/schemas/`` describe them formally, and the tests
check real messages against those schemas.

The module is longer than most because it is the whole wire contract, kept in one place
beside its documents.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeGuard

from kiosk.decide.area import TS_MS_RANGE
from kiosk.mqtt import boundedjson

PREFIX = "kiosk/v1"
SITE_DOCUMENTS = "site"  # the reserved kiosk id under which a site's signed lists live
SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024  # the largest events batch or command the peers accept
DEFAULT_MESSAGE_BYTES = 240 * 1024  # mqtt.max_message_bytes: room left for topic and properties
MAX_RECEIPT_SEQS = 1_000_000  # a receipt confirming more than this is refused
MAX_DEPTH = 32  # the deepest nesting of any message (events carry data objects of depth ≤ 4)
SEGMENT = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}\Z")


class Leaf(StrEnum):
    """The last level of each per-kiosk topic."""

    EVENTS = "events"
    STATUS = "status"
    STATE = "state"
    ALERTS = "alerts"
    CMD = "cmd"
    RESULT = "result"
    RECEIPTS = "receipts"
    TRUST = "trust"  # under the site's reserved kiosk id "site": the signed trust list
    REVOCATION = "revocation"  # likewise: the signed revocation list
    ACTIVITY = "activity"  # live decisions for Home Assistant (kiosk.mqtt.homeassistant)
    PASSAGES = "passages"  # what the site's other kiosks learn from this one's events


class Availability(StrEnum):
    """Values of the retained ``status`` topic."""

    ONLINE = "online"
    OFFLINE = "offline"  # the broker published the kiosk's will: connection lost
    STOPPED = "stopped"  # the kiosk shut down cleanly


class ProtocolError(ValueError):
    """A message that does not follow this protocol; the text says what is wrong."""


@dataclass(frozen=True)
class KioskTopics:
    """The topics of one kiosk."""

    site: str
    kiosk: str

    def __post_init__(self) -> None:
        for name, value in (("site", self.site), ("kiosk", self.kiosk)):
            if not SEGMENT.match(value):
                raise ValueError(f"{name} {value!r} cannot be used in a topic")

    @property
    def base(self) -> str:
        """``kiosk/v1/<site>/<kiosk>``."""
        return f"{PREFIX}/{self.site}/{self.kiosk}"

    def topic(self, leaf: Leaf) -> str:
        """The full topic for ``leaf``."""
        return f"{self.base}/{leaf.value}"


def subscription(leaf: Leaf, *, site: str = "+", kiosk: str = "+", share: str = "") -> str:
    """A topic filter for ``leaf`` over all kiosks (or one site); ``share`` adds $share/<group>/."""
    topic = f"{PREFIX}/{site}/{kiosk}/{leaf.value}"
    return f"$share/{share}/{topic}" if share else topic


def parse_topic(topic: str) -> tuple[str, str, Leaf]:
    """``(site, kiosk, leaf)`` of a per-kiosk topic; ProtocolError if it is not one."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != PREFIX:
        raise ProtocolError(f"not a kiosk topic: {topic!r}")
    site, kiosk, leaf = parts[2], parts[3], parts[4]
    try:
        return site, kiosk, Leaf(leaf)
    except ValueError:
        raise ProtocolError(f"unknown topic leaf {leaf!r}") from None


@dataclass(frozen=True)
class WireEvent:
    """One event as it travels: the log row plus who sent it and whether it is from a backlog."""

    event_id: str
    seq: int
    boot_id: str
    ts_ms: int
    clock_synced: bool
    type: str
    data: dict[str, Any]
    historical: bool = False
    schema: int = SCHEMA_VERSION

    def as_dict(self) -> dict[str, Any]:
        """The JSON object for this event."""
        return {
            "event_id": self.event_id,
            "seq": self.seq,
            "boot_id": self.boot_id,
            "ts_ms": self.ts_ms,
            "clock_synced": self.clock_synced,
            "type": self.type,
            "historical": self.historical,
            "schema": self.schema,
            "data": self.data,
        }


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _loads(payload: bytes, what: str, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    try:
        value = boundedjson.loads(payload, max_bytes=MAX_MESSAGE_BYTES, max_depth=max_depth)
    except boundedjson.JSONLimitError as exc:
        raise ProtocolError(f"{what} refused: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    if value.get("v") != SCHEMA_VERSION:
        raise ProtocolError(
            f"{what} has version {value.get('v')!r}; this side speaks {SCHEMA_VERSION}"
        )
    return value


def event_json(event: WireEvent, data_json: str) -> bytes:
    """One event of an events message, as :func:`encode_events` writes it, with its data
    spliced in as the stored JSON text (from the log), which halves the sync's cost per event;
    ``event.data`` is ignored."""
    dumps = json.dumps
    return (
        f'{{"event_id":{dumps(event.event_id)},"seq":{event.seq:d},'
        f'"boot_id":{dumps(event.boot_id)},"ts_ms":{event.ts_ms:d},'
        f'"clock_synced":{"true" if event.clock_synced else "false"},'
        f'"type":{dumps(event.type)},"historical":{"true" if event.historical else "false"},'
        f'"schema":{event.schema:d},"data":{data_json}}}'
    ).encode()


def events_message(site: str, kiosk: str, items: Sequence[bytes]) -> bytes:
    """An events message from items made by :func:`event_json`: its size is
    ``len(events_message(site, kiosk, []))`` plus each item plus one comma between two."""
    head = _dumps({"v": SCHEMA_VERSION, "site": site, "kiosk": kiosk})[:-1]
    return head + b',"events":[' + b",".join(items) + b"]}"


def encode_events(site: str, kiosk: str, events: Sequence[WireEvent]) -> bytes:
    """A batch of events from one kiosk (one event when live, many when draining a backlog)."""
    return _batch(site, kiosk, "events", [event.as_dict() for event in events])


def _batch(site: str, kiosk: str, name: str, items: list[dict[str, Any]]) -> bytes:
    return _dumps({"v": SCHEMA_VERSION, "site": site, "kiosk": kiosk, name: items})


_EVENT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "event_id": str,
    "seq": int,
    "boot_id": str,
    "ts_ms": int,
    "clock_synced": bool,
    "type": str,
    "historical": bool,
    "schema": int,
    "data": dict,
}


def decode_events(payload: bytes) -> tuple[str, str, list[WireEvent]]:
    """``(site, kiosk, events)`` of an events message; ProtocolError when malformed."""
    message = _loads(payload, "events message")
    site, kiosk, events = message.get("site"), message.get("kiosk"), message.get("events")
    if not isinstance(site, str) or not isinstance(kiosk, str) or not isinstance(events, list):
        raise ProtocolError("events message needs site, kiosk and an events list")
    decoded = []
    for index, item in enumerate(events):
        if not isinstance(item, dict):
            raise ProtocolError(f"event {index} is not an object")
        for name, kind in _EVENT_FIELDS.items():
            value = item.get(name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ProtocolError(f"event {index}: {name} missing or of the wrong type")
        decoded.append(WireEvent(**{name: item[name] for name in _EVENT_FIELDS}))
    return site, kiosk, decoded


MAX_SEQ = 2**63 - 1
MAX_PASSAGES = 1000  # per message: one events message carries at most 500 events
PASSAGES_DEPTH = 5  # message > passages list > passage > data > credential
MAX_MEETING_CHARS = 200
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
PASSAGE_TYPES = ("decision", "grant_unused")  # kiosk.events.EventType values


@dataclass(frozen=True)
class WirePassage:
    """What a neighbour learns from one event: a granted entry or exit (``decision``) or a
    grant withdrawn unused (``grant_unused``), its ``data`` cut down to subject, direction,
    area, whether a visitor, and a check-in's meeting."""

    event_id: str
    seq: int
    ts_ms: int
    type: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The JSON object for this passage."""
        return {
            "event_id": self.event_id,
            "seq": self.seq,
            "ts_ms": self.ts_ms,
            "type": self.type,
            "data": self.data,
        }


def passage_of(
    event_type: str, event_id: str, seq: int, ts_ms: int, data: dict[str, Any]
) -> WirePassage | None:
    """The passage an event tells the site's other kiosks, or None: only granted entries and
    exits with a subject, and withdrawn grants, that a neighbour would accept."""
    if event_type not in PASSAGE_TYPES:
        return None
    item = {"event_id": event_id, "seq": seq, "ts_ms": ts_ms, "type": event_type, "data": data}
    try:
        return _passage(item, own=True)
    except ProtocolError:
        return None


def encode_passages(site: str, kiosk: str, passages: Sequence[WirePassage]) -> bytes:
    """The passages of one events message, for the site's other kiosks."""
    return _batch(site, kiosk, "passages", [passage.as_dict() for passage in passages])


def decode_passages(payload: bytes) -> tuple[str, str, list[WirePassage]]:
    """``(site, kiosk, passages)`` of a passages message; ProtocolError names what is wrong.

    Every field a neighbour uses is checked (type, form, range); fields this version does not
    know are dropped, so nothing unchecked reaches the area's state."""
    message = _loads(payload, "passages message", max_depth=PASSAGES_DEPTH)
    site, kiosk, items = message.get("site"), message.get("kiosk"), message.get("passages")
    if not _is_segment(site) or not _is_segment(kiosk):
        raise ProtocolError("passages message needs a site and a kiosk id")
    if not isinstance(items, list) or not 0 < len(items) <= MAX_PASSAGES:
        raise ProtocolError(f"passages message needs a list of 1 to {MAX_PASSAGES} passages")
    passages = []
    for index, item in enumerate(items):
        try:
            passages.append(_passage(item))
        except ProtocolError as exc:
            raise ProtocolError(f"passage {index}: {exc}") from None
    return site, kiosk, passages


def _is_segment(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(SEGMENT.match(value))


def _integer(value: object, low: int, high: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _passage(item: object, *, own: bool = False) -> WirePassage:
    """A checked passage from its JSON object, keeping only the fields a neighbour reads.

    ``own``: an event of this kiosk, whose decisions also carry a ``mode`` other than
    ``checkin`` (a gate's or a screen's), which is not shared."""
    if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
        raise ProtocolError("not an object with a data object")
    event_id, seq, ts_ms, kind = (item.get(k) for k in ("event_id", "seq", "ts_ms", "type"))
    if not isinstance(event_id, str) or not UUID.match(event_id):
        raise ProtocolError("event_id is not a UUID")
    if not _integer(seq, 1, MAX_SEQ) or not _integer(
        ts_ms, TS_MS_RANGE.start, TS_MS_RANGE.stop - 1
    ):
        raise ProtocolError(
            f"seq or ts_ms missing or out of range (seq 1 to {MAX_SEQ}, ts_ms from 1970 to 2100)"
        )
    if kind not in PASSAGE_TYPES:
        raise ProtocolError(f"type must be one of {PASSAGE_TYPES}")
    data: dict[str, Any] = item["data"]
    cut = {k: data.get(k) for k in ("direction", "area", "subject")}
    if cut["direction"] not in ("entry", "exit") or not _is_segment(cut["area"]):
        raise ProtocolError("direction must be entry or exit, area a topic segment")
    if not isinstance(cut["subject"], str) or not SUBJECT.match(cut["subject"]):
        raise ProtocolError("subject is not a pseudonym")
    if kind == "decision":
        credential = data.get("credential")
        if data.get("outcome") != "grant" or not isinstance(credential, dict):
            raise ProtocolError("a decision passage needs outcome grant and a credential")
        visitor = credential.get("kind") == "visitor"  # the only kind the rules count
        cut |= {"outcome": "grant", "credential": {"kind": "visitor" if visitor else None}}
        if data.get("mode") == "checkin" or (not own and ("mode" in data or "meeting" in data)):
            meeting = data.get("meeting")
            if data.get("mode") != "checkin" or not isinstance(meeting, str):
                raise ProtocolError("a check-in passage needs mode checkin and a meeting")
            if not 0 < len(meeting) <= MAX_MEETING_CHARS:
                raise ProtocolError(f"meeting must be 1 to {MAX_MEETING_CHARS} characters")
            cut |= {"mode": "checkin", "meeting": meeting}
    return WirePassage(event_id, seq, ts_ms, kind, cut)


def seq_ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Compress sequence numbers into sorted inclusive ``[first, last]`` ranges."""
    ranges: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return ranges


def encode_receipt(seqs: Iterable[int]) -> bytes:
    """Central's receipt: the events with these sequence numbers are stored durably.

    Sequence numbers are unique per kiosk across restarts, so they alone identify events.
    """
    return _dumps({"v": SCHEMA_VERSION, "ranges": seq_ranges(seqs)})


def decode_receipt(payload: bytes) -> list[int]:
    """The sequence numbers a receipt confirms."""
    message = _loads(payload, "receipt")
    ranges = message.get("ranges")
    if not isinstance(ranges, list):
        raise ProtocolError("receipt needs a ranges list")
    seqs: list[int] = []
    for item in ranges:
        valid = (
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in item)
            and item[0] <= item[1]
        )
        if not valid:
            raise ProtocolError(f"receipt range {item!r} is not [first, last]")
        if len(seqs) + item[1] - item[0] >= MAX_RECEIPT_SEQS:
            raise ProtocolError(f"receipt confirms more than {MAX_RECEIPT_SEQS} events")
        seqs.extend(range(item[0], item[1] + 1))
    return seqs


def encode_state(state: dict[str, Any]) -> bytes:
    """The retained health state of a kiosk."""
    return _dumps({"v": SCHEMA_VERSION, **state})


def decode_state(payload: bytes) -> dict[str, Any]:
    """A kiosk's health state (the JSON object, ``v`` included)."""
    return _loads(payload, "state")


def encode_activity(outcome: str, reason: str, temperature_c: float | None) -> bytes:
    """One live decision for dashboards and Home Assistant's event entity (no subject)."""
    return _dumps(
        {
            "v": SCHEMA_VERSION,
            "event_type": outcome,
            "reason": reason,
            "temperature_c": temperature_c,
        }
    )


def encode_alert(kiosk: str, alert: str, event: WireEvent, detail: str) -> bytes:
    """An alert for a human, derived from a logged event."""
    return _dumps(
        {
            "v": SCHEMA_VERSION,
            "kiosk": kiosk,
            "alert": alert,
            "event_id": event.event_id,
            "seq": event.seq,
            "ts_ms": event.ts_ms,
            "historical": event.historical,
            "detail": detail,
        }
    )


class CommandName(StrEnum):
    """Commands a kiosk accepts on its ``cmd`` topic."""

    EMERGENCY_OPEN = "emergency_open"  # args: {"on": bool}
    LOCKDOWN = "lockdown"  # args: {"on": bool}
    RELOAD_ALLOWLIST = "reload_allowlist"  # args: {}
    SET_FEVER_THRESHOLD = "set_fever_threshold"  # args: {"celsius": float}
    RESEND = "resend"  # args: {"from_seq": int}: send every event from this seq again


@dataclass(frozen=True)
class Command:
    """A command as sent: a unique id (replays are refused), an expiry, optional signature."""

    id: str
    command: str
    args: dict[str, Any]
    issued_at_ms: int
    expires_at_ms: int
    sig: str | None = None

    def signed_fields(self) -> dict[str, Any]:
        """The fields the HMAC covers (everything but the signature)."""
        return {
            "v": SCHEMA_VERSION,
            "id": self.id,
            "command": self.command,
            "args": self.args,
            "issued_at_ms": self.issued_at_ms,
            "expires_at_ms": self.expires_at_ms,
        }


def canonical_json(value: dict[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes an HMAC signs."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def command_signature(key: bytes, command: Command) -> str:
    """HMAC-SHA256 (hex) of the command's canonical JSON without its signature."""
    return hmac.new(key, canonical_json(command.signed_fields()), hashlib.sha256).hexdigest()


def encode_command(command: Command) -> bytes:
    """A command message (sign it first with :func:`command_signature` if the site requires)."""
    fields = command.signed_fields()
    if command.sig is not None:
        fields["sig"] = command.sig
    return _dumps(fields)


def decode_command(payload: bytes) -> Command:
    """Parse a command message; ProtocolError names what is missing or wrong."""
    message = _loads(payload, "command")
    kinds = {"id": str, "command": str, "args": dict, "issued_at_ms": int, "expires_at_ms": int}
    for name, kind in kinds.items():
        value = message.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ProtocolError(f"command: {name} missing or of the wrong type")
    sig = message.get("sig")
    if sig is not None and not isinstance(sig, str):
        raise ProtocolError("command: sig must be a hex string")
    unknown = set(message) - {"v", "sig", *kinds}
    if unknown:
        raise ProtocolError(f"command: unknown fields {sorted(unknown)}")
    return Command(
        message["id"],
        message["command"],
        message["args"],
        message["issued_at_ms"],
        message["expires_at_ms"],
        sig,
    )


def decode_result(payload: bytes) -> dict[str, Any]:
    """A kiosk's command result (bounded, strict); ProtocolError says what is wrong."""
    return _loads(payload, "command result")


def encode_result(
    kiosk: str,
    command_id: str | None,
    error: str | None,
    message: str,
    *,
    data: dict[str, Any] | None = None,
) -> bytes:
    """A command's result: ``error`` is None when it was carried out, else a stable code."""
    return _dumps(
        {
            "v": SCHEMA_VERSION,
            "kiosk": kiosk,
            "id": command_id,
            "ok": error is None,
            "error": error,
            "message": message,
            "data": data or {},
        }
    )
