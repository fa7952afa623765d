"""Reading the event log: the latest events, and filtered pages for the status page.

:func:`read_events` and :func:`query_events` open the file read-only, so another process (the
status page, ``kiosk events``) reads while the kiosk writes; :func:`select_recent` is the
query :meth:`~kiosk.store.eventlog.EventLog.recent` runs on the kiosk's own connection.
"""

from __future__ import annotations

import json
import sqlite3
from os import PathLike
from pathlib import Path
from typing import Any

from kiosk.store.records import Event
from kiosk.store.schema import COLUMNS, open_readonly


def read_events(
    path: str | PathLike[str],
    limit: int = 50,
    *,
    after_seq: int | None = None,
    type: str | None = None,
) -> list[Event]:
    """Read events like :meth:`~kiosk.store.eventlog.EventLog.recent` from another process,
    without blocking it.

    Opens the file read-only: never creates or migrates a database. WAL lets this run while the
    kiosk writes.

    :raises LogOpenError: no log at ``path``, not a database, or an unknown schema version.
    """
    with open_readonly(Path(path)) as conn:
        return select_recent(conn, limit, after_seq, type)


def query_events(
    path: str | PathLike[str],
    *,
    limit: int,
    before_seq: int | None = None,
    after_seq: int | None = None,
    type: str | None = None,
    outcome: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[Event]:
    """Events matching every given filter, newest first (for the status page); read-only.

    ``before_seq``/``after_seq`` and ``since_ms``/``until_ms`` bound exclusively/inclusively:
    ``after_seq < seq < before_seq``, ``since_ms <= ts_ms < until_ms``. ``outcome`` keeps
    decisions with that outcome.
    """
    clauses: list[str] = []
    params: list[int | str] = []
    for clause, value in (
        ("seq < ?", before_seq),
        ("seq > ?", after_seq),
        ("type = ?", type),
        ("json_extract(data, '$.outcome') = ?", outcome),
        ("ts_ms >= ?", since_ms),
        ("ts_ms < ?", until_ms),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    with open_readonly(Path(path)) as conn:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM events {where} ORDER BY seq DESC LIMIT ?", (*params, limit)
        ).fetchall()
    return [_event(row) for row in rows]


def select_recent(
    conn: sqlite3.Connection, limit: int, after_seq: int | None, type: str | None
) -> list[Event]:
    """Events in seq order: the last ``limit``, or the first ``limit`` after ``after_seq``."""
    clauses: list[str] = []
    params: list[int | str] = []
    if after_seq is not None:
        clauses.append("seq > ?")
        params.append(after_seq)
    if type is not None:
        clauses.append("type = ?")
        params.append(type)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    order = "DESC" if after_seq is None else "ASC"  # the newest, or the next after after_seq
    sql = f"SELECT {COLUMNS} FROM events {where} ORDER BY seq {order} LIMIT ?"
    rows = conn.execute(sql, (*params, limit)).fetchall()
    if after_seq is None:
        rows.reverse()
    return [_event(row) for row in rows]


def _event(row: tuple[Any, ...]) -> Event:
    seq, event_id, boot_id, ts_ms, synced, type_, data, sent_at_ms, confirmed_at_ms = row
    return Event(
        event_id=event_id,
        seq=seq,
        boot_id=boot_id,
        ts_ms=ts_ms,
        clock_synced=bool(synced),
        type=type_,
        data=json.loads(data),
        sent_at_ms=sent_at_ms,
        confirmed_at_ms=confirmed_at_ms,
    )
