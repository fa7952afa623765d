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

from kiosk.mqtt.boundedjson import INT64_MAX
from kiosk.mqtt.protocol import SCHEMA_VERSION

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
# boot_id is a UUID from the kiosk; test and bench kiosks name their runs, so any short token.
BOOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
TS_MS_MAX = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the last instant a date can name
TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")  # kiosk.events.EventType's, and future ones
_BOOLEANS = ("clock_synced", "historical")
FIELDS = frozenset(
    ("event_id", "seq", "boot_id", "ts_ms", "clock_synced", "type", "historical", "schema", "data")
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
    if not _is_int(event["seq"]) or not 1 <= event["seq"] <= INT64_MAX:
        return "seq is not an integer in 1..2^63-1"
    if not isinstance(event["boot_id"], str) or not BOOT_ID.match(event["boot_id"]):
        return "boot_id is not a token of 1 to 64 letters, digits or ._:-"
    if not _is_int(event["ts_ms"]) or not 0 <= event["ts_ms"] <= TS_MS_MAX:
        return "ts_ms is not an integer between 1970 and the year 9999"
    for name in _BOOLEANS:
        if not isinstance(event[name], bool):
            return f"{name} is not a boolean"
    if not isinstance(event["type"], str) or not TYPE.match(event["type"]):
        return "type is not a name of 1 to 32 lower-case letters, digits or _"
    if not _is_int(event["schema"]) or event["schema"] != SCHEMA_VERSION:
        return f"schema is not {SCHEMA_VERSION}"
    if not isinstance(event["data"], dict):
        return "data is not an object"
    if nul_possible and not nul_free(event["data"]):
        return "data holds a NUL character"
    return None
