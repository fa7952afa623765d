"""Central event store in SQLite or PostgreSQL: idempotent on event_id, plus per-kiosk status.

Every method runs under one lock, so a store can be shared by the ingest worker and readers.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 10_000


class EventRow(NamedTuple):
    """One stored event; ``data`` is the event's JSON text."""

    event_id: str
    site: str
    kiosk: str
    seq: int
    boot_id: str
    ts_ms: int
    clock_synced: bool
    type: str
    historical: bool
    schema: int
    data: str
    received_at_ms: int


@dataclass(frozen=True)
class KioskStatus:
    """What central knows about one kiosk."""

    site: str
    kiosk: str
    availability: str | None  # online / offline / stopped, None before any status message
    last_seen_ms: int | None
    state: dict[str, Any]  # the kiosk's last retained state
    highest_seq: int
    count: int  # events stored
    resend_from_seq: int | None  # the last resend asked of this kiosk
    resend_at_ms: int | None

    @property
    def missing(self) -> int:
        """Sequence numbers between 1 and the highest seen that are not stored."""
        return max(0, self.highest_seq - self.count)


@dataclass(frozen=True)
class _Dialect:
    param: str
    greatest: str
    json_type: str
    bool_type: str


_SQLITE = _Dialect("?", "max", "TEXT", "INTEGER")
_POSTGRES = _Dialect("%s", "GREATEST", "JSONB", "BOOLEAN")


def _schema(d: _Dialect) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS events (
            event_id TEXT PRIMARY KEY, site TEXT NOT NULL, kiosk TEXT NOT NULL,
            seq BIGINT NOT NULL, boot_id TEXT NOT NULL, ts_ms BIGINT NOT NULL,
            clock_synced {d.bool_type} NOT NULL, type TEXT NOT NULL,
            historical {d.bool_type} NOT NULL, schema INTEGER NOT NULL,
            data {d.json_type} NOT NULL, received_at_ms BIGINT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS events_kiosk_seq ON events (site, kiosk, seq)",
        f"""CREATE TABLE IF NOT EXISTS kiosks (
            site TEXT NOT NULL, kiosk TEXT NOT NULL, availability TEXT,
            last_seen_ms BIGINT, state {d.json_type},
            highest_seq BIGINT NOT NULL DEFAULT 0, event_count BIGINT NOT NULL DEFAULT 0,
            resend_from_seq BIGINT, resend_at_ms BIGINT,
            PRIMARY KEY (site, kiosk))""",
    ]


def _upsert_kiosk(d: _Dialect, columns: str, updates: str) -> str:
    names = ["site", "kiosk", *columns.split(", ")]
    values = ", ".join(d.param for _ in names)
    return (
        f"INSERT INTO kiosks ({', '.join(names)}) VALUES ({values}) "
        f"ON CONFLICT (site, kiosk) DO UPDATE SET {updates}"
    )


def _seen(d: _Dialect) -> str:
    return (
        f"last_seen_ms = NULLIF({d.greatest}(COALESCE(kiosks.last_seen_ms, 0), "
        "COALESCE(excluded.last_seen_ms, 0)), 0)"
    )


class Store:
    """Events and fleet status behind one DB-API connection (see :func:`open_store`)."""

    def __init__(self, connect: Callable[[], Any], dialect: _Dialect) -> None:
        self._connect = connect
        self._d = dialect
        self._lock = threading.Lock()
        self._conn = connect()
        d, p = dialect, dialect.param
        self._insert_sql = (
            f"INSERT INTO events VALUES ({', '.join(p for _ in EventRow._fields)}) "
            "ON CONFLICT (event_id) DO NOTHING"
        )
        self._events_kiosk_sql = _upsert_kiosk(
            d,
            "last_seen_ms, highest_seq, event_count",
            f"{_seen(d)}, highest_seq = {d.greatest}(kiosks.highest_seq, excluded.highest_seq),"
            " event_count = kiosks.event_count + excluded.event_count",
        )
        self._status_sql = _upsert_kiosk(
            d, "availability, last_seen_ms", f"availability = excluded.availability, {_seen(d)}"
        )
        self._state_sql = _upsert_kiosk(
            d, "state, last_seen_ms", f"state = excluded.state, {_seen(d)}"
        )
        self._resend_sql = _upsert_kiosk(
            d,
            "resend_from_seq, resend_at_ms",
            "resend_from_seq = excluded.resend_from_seq, resend_at_ms = excluded.resend_at_ms",
        )
        self._write(lambda cur: [cur.execute(sql) for sql in _schema(d)])

    def _sql(self, text: str) -> str:
        return text.replace("?", self._d.param)

    def _write(self, work: Callable[[Any], object]) -> Any:
        """Run ``work(cursor)`` in one transaction and commit; roll back on failure."""
        with self._lock:
            if getattr(self._conn, "closed", False):
                self._conn = self._connect()  # PostgreSQL went away; try a new connection
            cur = self._conn.cursor()
            try:
                result = work(cur)
                self._conn.commit()
                return result
            except BaseException:
                try:
                    self._conn.rollback()
                except Exception:
                    log.exception("rollback failed")
                raise
            finally:
                cur.close()

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        def query(cur: Any) -> list[Any]:
            cur.execute(self._sql(sql), params)
            return list(cur.fetchall())

        return list(self._write(query))

    def insert_batch(self, rows: Iterable[EventRow]) -> int:
        """Store new events, ignore ones already stored, in one transaction; returns how many
        were new."""
        batch = sorted(rows, key=lambda r: (r.site, r.kiosk))

        def insert(cur: Any) -> int:
            new = 0
            by_kiosk = groupby(batch, lambda r: (r.site, r.kiosk))
            for (site, kiosk), group in by_kiosk:
                kiosk_rows = list(group)
                cur.executemany(self._insert_sql, kiosk_rows)
                added = max(cur.rowcount, 0)
                last_seen = max(r.received_at_ms for r in kiosk_rows)
                highest = max(r.seq for r in kiosk_rows)
                cur.execute(self._events_kiosk_sql, (site, kiosk, last_seen, highest, added))
                new += added
            return new

        return int(self._write(insert))

    def set_availability(
        self, site: str, kiosk: str, availability: str, seen_ms: int | None
    ) -> None:
        """Record a kiosk's ``status`` message; ``seen_ms`` None keeps last-seen as is."""
        self._write(lambda cur: cur.execute(self._status_sql, (site, kiosk, availability, seen_ms)))

    def set_state(self, site: str, kiosk: str, state: dict[str, Any], seen_ms: int | None) -> None:
        """Record a kiosk's retained ``state``."""
        self._write(
            lambda cur: cur.execute(self._state_sql, (site, kiosk, json.dumps(state), seen_ms))
        )

    def record_resend(self, site: str, kiosk: str, from_seq: int, at_ms: int) -> None:
        """Remember that central asked the kiosk to send again from ``from_seq``."""
        self._write(lambda cur: cur.execute(self._resend_sql, (site, kiosk, from_seq, at_ms)))

    def highest_seq(self, site: str, kiosk: str) -> int:
        """The highest seq stored for a kiosk (0 if none)."""
        rows = self._read(
            "SELECT highest_seq FROM kiosks WHERE site = ? AND kiosk = ?", (site, kiosk)
        )
        return int(rows[0][0]) if rows else 0

    def gaps(self, site: str, kiosk: str, after: int = 0) -> list[list[int]]:
        """Missing seqs as ``[first, last]`` ranges, above ``after`` (taken as all present)."""
        rows = self._read(
            "SELECT prev + 1, seq - 1 FROM (SELECT seq, LAG(seq, 1, ?) OVER (ORDER BY seq) AS prev"
            " FROM events WHERE site = ? AND kiosk = ? AND seq > ?) AS s"
            " WHERE seq > prev + 1 ORDER BY seq",
            (after, site, kiosk, after),
        )
        return [[int(first), int(last)] for first, last in rows]

    def fleet(self) -> list[KioskStatus]:
        """Every kiosk central has heard of, by site and kiosk."""
        rows = self._read(
            "SELECT site, kiosk, availability, last_seen_ms, state, highest_seq, event_count,"
            " resend_from_seq, resend_at_ms FROM kiosks ORDER BY site, kiosk"
        )
        return [
            KioskStatus(site, kiosk, avail, seen, _json(state), int(high), int(count), rfrom, rat)
            for site, kiosk, avail, seen, state, high, count, rfrom, rat in rows
        ]

    def events_between(self, t0_ms: int, t1_ms: int) -> list[EventRow]:
        """Events with ``t0_ms <= ts_ms < t1_ms``, by time, then kiosk and seq."""
        rows = self._read(
            "SELECT * FROM events WHERE ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms, site, kiosk, seq",
            (t0_ms, t1_ms),
        )
        return [_event(row) for row in rows]

    def count(self) -> int:
        """How many events are stored."""
        return int(self._read("SELECT count(*) FROM events")[0][0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def _json(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    loaded = json.loads(value) if isinstance(value, str) else value
    return loaded if isinstance(loaded, dict) else {}


def _event(row: Sequence[Any]) -> EventRow:
    event_id, site, kiosk, seq, boot_id, ts_ms, synced, kind, hist, schema, data, received = row
    text = data if isinstance(data, str) else json.dumps(data)
    return EventRow(
        event_id,
        site,
        kiosk,
        seq,
        boot_id,
        ts_ms,
        bool(synced),
        kind,
        bool(hist),
        schema,
        text,
        received,
    )


def _connect_sqlite(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # an acked message must survive a power cut
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: keeps the event_id index in memory
    return conn


def open_store(url: str) -> Store:
    """``postgresql://…`` (psycopg 3), ``sqlite:///relative/path``, ``sqlite:////abs/path``
    or a plain file path (SQLite, WAL)."""
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        return Store(lambda: psycopg.connect(url), _POSTGRES)
    path = url.removeprefix("sqlite:///")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return Store(lambda: _connect_sqlite(path), _SQLITE)
