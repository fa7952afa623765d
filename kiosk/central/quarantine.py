"""The quarantine (dead-letter) rows: what central can never store, kept for a human.

A message that cannot be parsed, or one event in it that breaks the schema's ranges or that
the store refuses, is written to the ``quarantine`` table with its topic, its first
:data:`QUARANTINE_BYTES` bytes and the reason, then acknowledged, so one bad message never
holds up the ones behind it. Each write keeps the table to its bound (:func:`trim`), the rows
last refused longest ago going first, so a flood of poison cannot fill the disk between two
retention runs. ``kiosk central status`` shows the count and the latest reasons.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any, NamedTuple

from kiosk.central.rows import EventRow
from kiosk.mqtt.protocol import ProtocolError, parse_topic


class Quarantined(NamedTuple):
    """A message, or one event of a message, that can never be stored, kept for a human."""

    received_ms: int
    topic: str
    site: str | None  # as far as known (from the topic)
    kiosk: str | None
    seq: int | None  # for one refused event
    size: int  # the full size of what was refused; ``payload`` is its first QUARANTINE_BYTES
    payload: bytes
    reason: str
    repeats: int = 1  # how many times the same bytes were refused for the same reason


QUARANTINE_BYTES = 16 * 1024
#: Most rows the quarantine keeps unless ``[store] quarantine_max_rows`` says otherwise.
QUARANTINE_MAX_ROWS = 10_000
_DATA_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # includes UnicodeEncodeError and psycopg's "NUL in a text field"
    ArithmeticError,  # OverflowError: an integer SQLite cannot hold
    TypeError,
    sqlite3.IntegrityError,
    sqlite3.DataError,
)
try:
    import psycopg

    _DATA_ERRORS += (psycopg.DataError, psycopg.IntegrityError)
except ImportError:  # pragma: no cover - central on SQLite without the PostgreSQL extra
    pass


def is_data_error(exc: BaseException) -> bool:
    """Whether ``exc`` is about the row being written (retrying it cannot help), rather than
    about the store (connection lost, lock timeout, disk full: worth retrying)."""
    return isinstance(exc, _DATA_ERRORS)


def clean_text(text: str, limit: int = 500) -> str:
    """``text`` made storable anywhere: NUL and lone surrogates escaped, at most ``limit``."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe.replace("\x00", "\\x00")[:limit]


def digest(item: Quarantined) -> str:
    """A key for the same bytes refused for the same reason: repeats are counted on it."""
    text = f"{item.topic}\n{item.seq}\n{item.reason}\n".encode("utf-8", "backslashreplace")
    return hashlib.sha256(text + item.payload).hexdigest()


def refusal(
    topic: str, payload: bytes, reason: str, received_ms: int, seq: int | None = None
) -> Quarantined:
    """A quarantine row for ``payload`` received on ``topic``; site and kiosk come from the
    topic when it is a kiosk topic."""
    site: str | None
    kiosk: str | None
    try:
        site, kiosk, _leaf = parse_topic(topic)
    except ProtocolError:
        site = kiosk = None
    return Quarantined(
        received_ms, topic, site, kiosk, seq, len(payload), payload[:QUARANTINE_BYTES], reason
    )


def trim(cur: Any, param: str, max_rows: int) -> int:
    """Inside a store transaction, delete the quarantine rows last refused longest ago until
    ``max_rows`` are left (``param``: the dialect's placeholder); returns how many went."""
    cur.execute("SELECT count(*) FROM quarantine")
    excess = int(cur.fetchone()[0]) - max_rows
    if excess <= 0:
        return 0
    cur.execute(
        "DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine"
        f" ORDER BY last_ms, id LIMIT {param})",
        (excess,),
    )
    return excess


def stored_row(q: Quarantined) -> tuple[object, ...]:
    """The values of ``q``'s quarantine row, as the store's INSERT takes them (received_ms,
    last_ms, topic, site, kiosk, seq, size, payload, reason, digest), made storable."""
    return (
        q.received_ms,
        q.received_ms,
        clean_text(q.topic),
        None if q.site is None else clean_text(q.site, 64),
        None if q.kiosk is None else clean_text(q.kiosk, 64),
        q.seq,
        q.size,
        q.payload[:QUARANTINE_BYTES],
        clean_text(q.reason),
        digest(q),
    )


def leftover(event: EventRow) -> Quarantined:
    """An event an older store kept under a seq its kiosk had used for another event."""
    payload = json.dumps(event._asdict(), ensure_ascii=True).encode("ascii")
    topic = f"kiosk/v1/{event.site}/{event.kiosk}/events"
    reason = "migration: seq already stored for another event"
    return Quarantined(
        event.received_at_ms,
        topic,
        event.site,
        event.kiosk,
        event.seq,
        len(payload),
        payload,
        reason,
    )
