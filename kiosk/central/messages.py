"""Central's reading of kiosk messages and the commands it sends, as plain functions."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

from kiosk.central.store import EventRow
from kiosk.protocol import (
    Availability,
    Command,
    CommandName,
    Leaf,
    ProtocolError,
    command_signature,
    decode_events,
    decode_state,
)

Update = tuple[str, str, Leaf, Any, int | None]  # site, kiosk, status/state, value, seen_ms


def decode_event_rows(site: str, kiosk: str, payload: bytes, now_ms: int) -> list[EventRow]:
    """The rows of an events message on ``site``/``kiosk``'s topic; ProtocolError if refused."""
    sender_site, sender, events = decode_events(payload)
    if (sender_site, sender) != (site, kiosk):
        raise ProtocolError("site/kiosk in the payload differ from the topic")
    if any(event.seq < 1 for event in events):
        raise ProtocolError("seq must be positive")
    return [
        EventRow(
            e.event_id,
            site,
            kiosk,
            e.seq,
            e.boot_id,
            e.ts_ms,
            e.clock_synced,
            e.type,
            e.historical,
            e.schema,
            json.dumps(e.data, ensure_ascii=False),
            now_ms,
        )
        for e in events
    ]


def decode_update(
    site: str, kiosk: str, leaf: Leaf, payload: bytes, retain: bool, now_ms: int
) -> Update:
    """A status or state message as a store update; retained copies do not count as seen."""
    seen = None if retain else now_ms
    if leaf is Leaf.STATUS:
        availability = Availability(payload.decode("utf-8"))
        if availability is Availability.OFFLINE:  # the broker sent the will: not a sighting
            seen = None
        return site, kiosk, leaf, availability.value, seen
    if leaf is Leaf.STATE:
        return site, kiosk, leaf, decode_state(payload), seen
    raise ProtocolError(f"central does not read {leaf.value}")


def resend_command(from_seq: int, key: bytes | None, expiry_s: int, now_ms: int) -> Command:
    """A ``resend`` command from ``from_seq``, signed when a key is configured."""
    command = Command(
        id=str(uuid.uuid4()),
        command=CommandName.RESEND.value,
        args={"from_seq": from_seq},
        issued_at_ms=now_ms,
        expires_at_ms=now_ms + expiry_s * 1000,
    )
    if key:
        command = dataclasses.replace(command, sig=command_signature(key, command))
    return command
