"""The ``passages`` a kiosk tells its site's other kiosks: with each events message, the
granted entries and exits in it and the grants withdrawn unused, cut down to what
:meth:`kiosk.decide.entrance.Entrance.learn_event` reads.

Part of the wire contract that :mod:`kiosk.mqtt.protocol` publishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kiosk.decide.area import TS_MS_RANGE
from kiosk.events import EventType
from kiosk.ids import TOKEN
from kiosk.mqtt.wire import (
    MAX_SEQ,
    UUID,
    ProtocolError,
    is_integer,
    is_segment,
    kiosk_batch,
    load_message,
)

MAX_PASSAGES = 1000  # per message: one events message carries at most 500 events
PASSAGES_DEPTH = 5  # message > passages list > passage > data > credential
MAX_MEETING_CHARS = 200
_DECISION = EventType.DECISION.value  # compared per passage: a plain str compares fastest
PASSAGE_TYPES = (_DECISION, EventType.GRANT_UNUSED.value)


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
    return kiosk_batch(site, kiosk, "passages", [passage.as_dict() for passage in passages])


def decode_passages(payload: bytes) -> tuple[str, str, list[WirePassage]]:
    """``(site, kiosk, passages)`` of a passages message; ProtocolError names what is wrong.

    Every field a neighbour uses is checked (type, form, range); fields this version does not
    know are dropped, so nothing unchecked reaches the area's state."""
    message = load_message(payload, "passages message", max_depth=PASSAGES_DEPTH)
    site, kiosk, items = message.get("site"), message.get("kiosk"), message.get("passages")
    if not is_segment(site) or not is_segment(kiosk):
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


def _passage(item: object, *, own: bool = False) -> WirePassage:
    """A checked passage from its JSON object, keeping only the fields a neighbour reads.

    ``own``: an event of this kiosk, whose decisions also carry a ``mode`` other than
    ``checkin`` (a gate's or a screen's), which is not shared."""
    if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
        raise ProtocolError("not an object with a data object")
    event_id, seq, ts_ms, kind = (item.get(k) for k in ("event_id", "seq", "ts_ms", "type"))
    if not isinstance(event_id, str) or not UUID.match(event_id):
        raise ProtocolError("event_id is not a UUID")
    if not is_integer(seq, 1, MAX_SEQ) or not is_integer(
        ts_ms, TS_MS_RANGE.start, TS_MS_RANGE.stop - 1
    ):
        raise ProtocolError(
            f"seq or ts_ms missing or out of range (seq 1 to {MAX_SEQ}, ts_ms from 1970 to 2100)"
        )
    if kind not in PASSAGE_TYPES:
        raise ProtocolError(f"type must be one of {PASSAGE_TYPES}")
    data: dict[str, Any] = item["data"]
    cut = {k: data.get(k) for k in ("direction", "area", "subject")}
    if cut["direction"] not in ("entry", "exit") or not is_segment(cut["area"]):
        raise ProtocolError("direction must be entry or exit, area a topic segment")
    if not isinstance(cut["subject"], str) or not TOKEN.match(cut["subject"]):
        raise ProtocolError("subject is not a pseudonym")
    if kind == _DECISION:
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
