"""The ``events`` a kiosk sends central and the ``receipts`` central sends back.

Part of the wire contract that :mod:`kiosk.mqtt.protocol` publishes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kiosk.events import EventHeader
from kiosk.mqtt.wire import (
    MAX_SEQ,
    SCHEMA_VERSION,
    ProtocolError,
    dumps,
    is_integer,
    kiosk_batch,
    load_message,
    of_type,
)

MAX_RECEIPT_SEQS = 1_000_000  # a receipt confirming more than this is refused


@dataclass(frozen=True)
class WireEvent(EventHeader):
    """One event as it travels: the log row plus who sent it and whether it is from a backlog."""

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


EVENT_FIELDS: dict[str, type] = {
    "event_id": str,
    "seq": int,
    "boot_id": str,
    "ts_ms": int,
    "clock_synced": bool,
    "type": str,
    "historical": bool,
    "schema": int,
    "data": dict,
}  # every field of an event, each of the JSON type it must have


def event_json(event: WireEvent, data_json: str) -> bytes:
    """One event of an events message, as :func:`encode_events` writes it, with its data
    spliced in as the stored JSON text (from the log), which halves the sync's cost per event;
    ``event.data`` is ignored."""
    quote = json.dumps
    return (
        f'{{"event_id":{quote(event.event_id)},"seq":{event.seq:d},'
        f'"boot_id":{quote(event.boot_id)},"ts_ms":{event.ts_ms:d},'
        f'"clock_synced":{"true" if event.clock_synced else "false"},'
        f'"type":{quote(event.type)},"historical":{"true" if event.historical else "false"},'
        f'"schema":{event.schema:d},"data":{data_json}}}'
    ).encode()


def events_message(site: str, kiosk: str, items: Sequence[bytes]) -> bytes:
    """An events message from items made by :func:`event_json`: its size is
    ``len(events_message(site, kiosk, []))`` plus each item plus one comma between two."""
    head = dumps({"v": SCHEMA_VERSION, "site": site, "kiosk": kiosk})[:-1]
    return head + b',"events":[' + b",".join(items) + b"]}"


def encode_events(site: str, kiosk: str, events: Sequence[WireEvent]) -> bytes:
    """A batch of events from one kiosk (one event when live, many when draining a backlog)."""
    return kiosk_batch(site, kiosk, "events", [event.as_dict() for event in events])


def decode_events(payload: bytes) -> tuple[str, str, list[WireEvent]]:
    """``(site, kiosk, events)`` of an events message; ProtocolError when malformed."""
    message = load_message(payload, "events message")
    site, kiosk, events = message.get("site"), message.get("kiosk"), message.get("events")
    if not isinstance(site, str) or not isinstance(kiosk, str) or not isinstance(events, list):
        raise ProtocolError("events message needs site, kiosk and an events list")
    decoded = []
    for index, item in enumerate(events):
        if not isinstance(item, dict):
            raise ProtocolError(f"event {index} is not an object")
        for name, kind in EVENT_FIELDS.items():
            if not of_type(item.get(name), kind):
                raise ProtocolError(f"event {index}: {name} missing or of the wrong type")
        decoded.append(WireEvent(**{name: item[name] for name in EVENT_FIELDS}))
    return site, kiosk, decoded


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
    return dumps({"v": SCHEMA_VERSION, "ranges": seq_ranges(seqs)})


def decode_receipt(payload: bytes) -> list[int]:
    """The sequence numbers a receipt confirms."""
    message = load_message(payload, "receipt")
    ranges = message.get("ranges")
    if not isinstance(ranges, list):
        raise ProtocolError("receipt needs a ranges list")
    seqs: list[int] = []
    for item in ranges:
        valid = (
            isinstance(item, list)
            and len(item) == 2
            and all(is_integer(n, 1, MAX_SEQ) for n in item)
            and item[0] <= item[1]
        )
        if not valid:
            raise ProtocolError(f"receipt range {item!r} is not [first, last]")
        if len(seqs) + item[1] - item[0] >= MAX_RECEIPT_SEQS:
            raise ProtocolError(f"receipt confirms more than {MAX_RECEIPT_SEQS} events")
        seqs.extend(range(item[0], item[1] + 1))
    return seqs
