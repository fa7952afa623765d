"""What every message of the protocol shares: its version, its bounds, its error, JSON in and
out, and the forms of the UUIDs and integers it carries (kiosk and central both check these;
the forms of the other ids are :mod:`kiosk.ids`'s).

Part of the wire contract that :mod:`kiosk.mqtt.protocol` publishes.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeGuard

from kiosk.ids import SEGMENT
from kiosk.mqtt import boundedjson
from kiosk.mqtt.boundedjson import INT64_MAX

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024  # the largest events batch or command the peers accept
DEFAULT_MESSAGE_BYTES = 240 * 1024  # mqtt.max_message_bytes: room left for topic and properties
MAX_DEPTH = 32  # the deepest nesting of any message (events carry data objects of depth ≤ 4)
MAX_SEQ = INT64_MAX  # sequence numbers run from 1 to 2^63-1

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


class ProtocolError(ValueError):
    """A message that does not follow this protocol; the text says what is wrong."""


def is_segment(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a string usable as one topic level (:data:`SEGMENT`)."""
    return isinstance(value, str) and bool(SEGMENT.match(value))


def is_integer(value: object, low: int, high: int) -> TypeGuard[int]:
    """Whether ``value`` is an integer (not a boolean) from ``low`` to ``high``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def of_type(value: object, kind: type) -> bool:
    """Whether ``value`` is a ``kind``, where a boolean does not count as an ``int``."""
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def dumps(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as every message is sent."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def kiosk_batch(site: str, kiosk: str, name: str, items: list[dict[str, Any]]) -> bytes:
    """A message of one kiosk carrying a list of ``items`` under ``name``."""
    return dumps({"v": SCHEMA_VERSION, "site": site, "kiosk": kiosk, name: items})


def load_message(payload: bytes, what: str, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """A message's JSON object, read with bounds; ProtocolError unless it is of this version."""
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
