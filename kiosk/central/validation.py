"""What central accepts before storing: each event checked against the published schema's ranges.

``docs/schemas/events.json`` is the contract; these checks are its envelope, written out so
central needs no schema library at run time (tests check both refuse the same messages). The
payload has already been parsed by :func:`kiosk.mqtt.boundedjson.loads`, which refused NaN,
Infinity, lone surrogates, integers outside 64 bits, deep nesting and oversized messages.
What is left to refuse here is what a store cannot hold or a reader cannot trust: NUL in any
string, a seq outside 1..2^63-1, a timestamp past the year 9999, a missing field or one of the
wrong type. As docs/mqtt.md's versioning rule asks, fields central does not know are ignored
and a type it does not know is accepted when it is a plain name (a newer kiosk's event type).
Each refusal is a short reason that names the field, never its value (it may be personal).
"""

from __future__ import annotations

import re
from typing import Any

from kiosk.mqtt.protocol import EVENT_FIELDS, MAX_SEQ, SCHEMA_VERSION, TOKEN, UUID
from kiosk.mqtt.wire import is_integer

TS_MS_MAX = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the last instant a date can name
TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")  # kiosk.events.EventType's, and future ones
_BOOLEANS = ("clock_synced", "historical")
FIELDS = frozenset(EVENT_FIELDS)


def nul_free(value: Any) -> bool:
    """Whether no string in ``value`` (keys included, at any depth) holds a NUL character."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def event_problem(event: object, *, nul_possible: bool = True) -> str | None:
    """Why ``event`` (one item of an events message) cannot be stored; None if it can.

    ``nul_possible`` False skips the walk through ``data`` for NUL characters: pass it when
    the raw message has no ``\\u0000`` escape, the only way JSON text can hold a NUL."""
    if not isinstance(event, dict):
        return "event is not an object"
    missing = sorted(FIELDS - event.keys())
    if missing:
        return f"event lacks {', '.join(missing)}"
    if not isinstance(event["event_id"], str) or not UUID.match(event["event_id"]):
        return "event_id is not a lowercase UUID"
    if not is_integer(event["seq"], 1, MAX_SEQ):
        return "seq is not an integer in 1..2^63-1"
    if not isinstance(event["boot_id"], str) or not TOKEN.match(event["boot_id"]):
        return "boot_id is not a token of 1 to 64 letters, digits or ._:-"
    if not is_integer(event["ts_ms"], 0, TS_MS_MAX):
        return "ts_ms is not an integer between 1970 and the year 9999"
    for name in _BOOLEANS:
        if not isinstance(event[name], bool):
            return f"{name} is not a boolean"
    if not isinstance(event["type"], str) or not TYPE.match(event["type"]):
        return "type is not a name of 1 to 32 lower-case letters, digits or _"
    if not is_integer(event["schema"], SCHEMA_VERSION, SCHEMA_VERSION):
        return f"schema is not {SCHEMA_VERSION}"
    if not isinstance(event["data"], dict):
        return "data is not an object"
    if nul_possible and not nul_free(event["data"]):
        return "data holds a NUL character"
    return None
