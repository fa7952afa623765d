"""Central's reading of kiosk messages and the commands it sends, as plain functions."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any, NamedTuple

from kiosk.central.rows import EventRow
from kiosk.central.validation import event_problem, nul_free
from kiosk.mqtt.protocol import (
    MAX_SEQ,
    Availability,
    Command,
    Leaf,
    ProtocolError,
    command_signature,
    decode_state,
)
from kiosk.mqtt.wire import is_integer, load_message
from kiosk.operator.actions import Action

Update = tuple[str, str, Leaf, Any, int | None]  # site, kiosk, status/state, value, seen_ms


class EventRefusal(NamedTuple):
    """One event of a message that cannot be stored: its seq when readable, its JSON (ASCII,
    so NUL and lone surrogates stay visible as escapes) and why."""

    seq: int | None
    payload: bytes
    reason: str


def read_events(
    site: str, kiosk: str, payload: bytes, now_ms: int
) -> tuple[list[EventRow], list[EventRefusal]]:
    """The storable rows of an events message on ``site``/``kiosk``'s topic and the events
    refused one by one (:func:`kiosk.central.validation.event_problem`). ProtocolError when
    the message as a whole is refused: not bounded JSON, another version, or a body that
    names another site or kiosk than its topic."""
    message = load_message(payload, "events message")
    if (message.get("site"), message.get("kiosk")) != (site, kiosk):
        raise ProtocolError("site/kiosk in the payload differ from the topic")
    events = message.get("events")
    if not isinstance(events, list) or not events:
        raise ProtocolError("events message needs a non-empty events list")
    rows: list[EventRow] = []
    refused: list[EventRefusal] = []
    nul_possible = b"\\u0000" in payload
    for e in events:
        problem = event_problem(e, nul_possible=nul_possible)
        if problem is not None:
            seq = e.get("seq") if isinstance(e, dict) else None
            text = json.dumps(e, ensure_ascii=True).encode("ascii")
            refused.append(
                EventRefusal(seq if is_integer(seq, 1, MAX_SEQ) else None, text, problem)
            )
            continue
        rows.append(
            EventRow(
                e["event_id"],
                site,
                kiosk,
                e["seq"],
                e["boot_id"],
                e["ts_ms"],
                e["clock_synced"],
                e["type"],
                e["historical"],
                e["schema"],
                json.dumps(e["data"], ensure_ascii=False, allow_nan=False),
                now_ms,
            )
        )
    return rows, refused


def decode_update(
    site: str, kiosk: str, leaf: Leaf, payload: bytes, retain: bool, now_ms: int
) -> Update:
    """A status or state message as a store update; retained copies do not count as seen."""
    seen = None if retain else now_ms
    if leaf is Leaf.STATUS:
        try:
            availability = Availability(payload.decode("utf-8"))
        except ValueError:
            raise ProtocolError("status is not online, offline or stopped") from None
        if availability is Availability.OFFLINE:  # the broker sent the will: not a sighting
            seen = None
        return site, kiosk, leaf, availability.value, seen
    if leaf is Leaf.STATE:
        state = decode_state(payload)
        if not nul_free(state):
            raise ProtocolError("state holds a NUL character")
        return site, kiosk, leaf, state, seen
    raise ProtocolError(f"central does not read {leaf.value}")


def resend_command(from_seq: int, key: bytes | None, expiry_s: int, now_ms: int) -> Command:
    """A ``resend`` command from ``from_seq``, signed when a key is configured."""
    command = Command(
        id=str(uuid.uuid4()),
        command=Action.RESEND.value,
        args={"from_seq": from_seq},
        issued_at_ms=now_ms,
        expires_at_ms=now_ms + expiry_s * 1000,
    )
    if key:
        command = dataclasses.replace(command, sig=command_signature(key, command))
    return command
