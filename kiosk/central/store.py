"""Central event store in SQLite or PostgreSQL: idempotent per (site, kiosk, seq), per-kiosk
status, a quarantine for what can never be stored, and age-based pruning.

Every method runs under one lock, so a store can be shared by the ingest worker and readers.
Every query of both dialects lives in the one class that runs it; what it stores and returns
is :mod:`kiosk.central.rows`, the tables :mod:`kiosk.central.schema`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

from kiosk.central.pgbulk import BulkInsert
from kiosk.central.quarantine import QUARANTINE_MAX_ROWS, Quarantined, leftover, stored_row, trim
from kiosk.central.rows import (
    ID_TAKEN,
    SEQ_TAKEN,
    EventRow,
    KioskStatus,
    Stored,
    event_of,
    state_of,
)
from kiosk.central.schema import (
    POSTGRES,
    SQLITE,
    Dialect,
    migrate,
    subject_events_copy,
)

log = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 10_000


def _upsert_kiosk(d: Dialect, columns: str, updates: str) -> str:
    names = ["site", "kiosk", *columns.split(", ")]
    values = ", ".join(d.param for _ in names)
    return (
        f"INSERT INTO kiosks ({', '.join(names)}) VALUES ({values}) "
        f"ON CONFLICT (site, kiosk) DO UPDATE SET {updates}"
    )


def _seen(d: Dialect) -> str:
    return (
        f"last_seen_ms = NULLIF({d.greatest}(COALESCE(kiosks.last_seen_ms, 0), "
        "COALESCE(excluded.last_seen_ms, 0)), 0)"
    )


_CHUNK = 500  # rows per IN (...) list or DELETE: far below either database's parameter limit


class Store:
    """Events and fleet status behind one DB-API connection (see :func:`open_store`)."""

    #: Most quarantine rows kept ([store] quarantine_max_rows; set by ``kiosk central run``).
    quarantine_max_rows = QUARANTINE_MAX_ROWS

    def __init__(self, connect: Callable[[], Any], dialect: Dialect) -> None:
        self._connect = connect
        self._d = dialect
        self._lock = threading.Lock()
        self._conn = connect()
        d, p = dialect, dialect.param
        self._insert_sql = (
            f"INSERT INTO events VALUES ({', '.join(p for _ in EventRow._fields)}) "
            "ON CONFLICT DO NOTHING"
        )
        self._subject_sql = subject_events_copy(d)
        events_kiosk = (
            f"{_seen(d)}, highest_seq = {d.greatest}(kiosks.highest_seq, excluded.highest_seq),"
            " event_count = kiosks.event_count + excluded.event_count"
        )
        self._events_kiosk_sql = _upsert_kiosk(
            d, "last_seen_ms, highest_seq, event_count", events_kiosk
        )
        self._bulk = BulkInsert(events_kiosk) if d is POSTGRES else None
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
        self._quarantine_sql = self._sql(
            "INSERT INTO quarantine (received_ms, last_ms, topic, site, kiosk, seq, size, payload,"
            " reason, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO UPDATE"
            " SET repeats = quarantine.repeats + 1, last_ms = excluded.last_ms"
        )
        moved = int(self._write(self._migrate))
        if moved:
            log.warning("%d events of an older store reused a seq: quarantined", moved)

    def _migrate(self, cur: Any) -> int:
        leftovers = [stored_row(leftover(event_of(row))) for row in migrate(cur, self._d)]
        if leftovers:
            cur.executemany(self._quarantine_sql, leftovers)
        return len(leftovers)

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

    @property
    def dialect(self) -> Dialect:
        """The database this store is in."""
        return self._d

    def transaction(self, work: Callable[[Any], object]) -> Any:
        """Run ``work(cursor)`` in one transaction under the store's lock, commit, and return
        what it returned; for modules that keep their own tables' queries (the roster)."""
        return self._write(work)

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        def query(cur: Any) -> list[Any]:
            cur.execute(self._sql(sql), params)
            return list(cur.fetchall())

        return list(self._write(query))

    def insert_batch(self, rows: Iterable[EventRow]) -> Stored:
        """Store new events in one transaction; an event already stored (same kiosk, seq and
        event id) is ignored, one whose seq or event id its kiosk already used for another
        event is not stored and comes back in :attr:`Stored.conflicts`. The events that
        name a subject also go to ``subject_events``, in the same transaction. PostgreSQL
        takes a batch in a few statements (:mod:`kiosk.central.pgbulk`), SQLite row by row."""
        if self._bulk is not None:
            bulk, listed_rows = self._bulk, list(rows)
            if not listed_rows:
                return Stored(0, [])
            stored_pg: Stored = self._write(lambda cur: bulk(cur, listed_rows))
            return stored_pg
        batch = sorted(rows, key=lambda r: (r.site, r.kiosk))

        def insert(cur: Any) -> Stored:
            new, conflicts = 0, []
            for (site, kiosk), group in groupby(batch, lambda r: (r.site, r.kiosk)):
                kiosk_rows = list(group)
                cur.executemany(self._insert_sql, kiosk_rows)
                added = max(cur.rowcount, 0)
                if added < len(kiosk_rows):
                    conflicts += self._conflicts(cur, site, kiosk, kiosk_rows)
                stored = [r for r in kiosk_rows if all(r is not c for c, _ in conflicts)]
                if stored:
                    last_seen = max(r.received_at_ms for r in stored)
                    highest = max(r.seq for r in stored)
                    cur.execute(self._events_kiosk_sql, (site, kiosk, last_seen, highest, added))
                    seqs = [r.seq for r in stored]
                    listed = json.dumps(seqs) if self._d is SQLITE else seqs
                    cur.execute(self._subject_sql, (site, kiosk, listed))
                new += added
            return Stored(new, conflicts)

        result: Stored = self._write(insert)
        return result

    def _conflicts(
        self, cur: Any, site: str, kiosk: str, rows: list[EventRow]
    ) -> list[tuple[EventRow, str]]:
        """The rows not stored as they are: a row whose seq is stored with its event id was
        stored before (a duplicate); one whose seq is stored with another event id, or not
        stored at all (so its event id was taken under another seq), is a conflict."""
        held: dict[int, str] = {}
        for at in range(0, len(rows), _CHUNK):
            chunk = rows[at : at + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            cur.execute(
                self._sql(
                    f"SELECT seq, event_id FROM events WHERE site = ? AND kiosk = ?"
                    f" AND seq IN ({marks})"
                ),
                (site, kiosk, *(r.seq for r in chunk)),
            )
            held.update((int(seq), event_id) for seq, event_id in cur.fetchall())
        return [
            (row, SEQ_TAKEN if row.seq in held else ID_TAKEN)
            for row in rows
            if held.get(row.seq) != row.event_id
        ]

    def quarantine(self, items: Iterable[Quarantined]) -> None:
        """Keep what can never be stored; the same bytes refused again for the same reason
        count as a repeat of the first row, not a new one; the table is kept to
        :attr:`quarantine_max_rows` (the rows last refused longest ago go)."""
        params = [stored_row(q) for q in items]
        if params:

            def work(cur: Any) -> None:
                cur.executemany(self._quarantine_sql, params)
                trim(cur, self._d.param, self.quarantine_max_rows)

            self._write(work)

    def quarantined_count(self) -> int:
        """How many messages or events are in the quarantine (repeats not counted)."""
        return int(self._read("SELECT count(*) FROM quarantine")[0][0])

    def quarantined(self, limit: int = 10) -> list[Quarantined]:
        """The latest ``limit`` quarantine rows, newest first."""
        rows = self._read(
            "SELECT received_ms, topic, site, kiosk, seq, size, payload, reason, repeats"
            " FROM quarantine ORDER BY last_ms DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [
            Quarantined(int(at), topic, site, kiosk, seq, int(size), bytes(raw), reason, int(n))
            for at, topic, site, kiosk, seq, size, raw, reason, n in rows
        ]

    def prune(self, before_ms: int) -> tuple[int, int]:
        """Delete events received and quarantine rows last refused before ``before_ms``, in
        small transactions; returns how many of each. A kiosk's pruned seqs stop counting as
        gaps."""
        events = 0
        while True:
            deleted = int(self._write(lambda cur: self._prune_events(cur, before_ms)))
            events += deleted
            if deleted < _CHUNK:
                break

        def prune_quarantine(cur: Any) -> int:
            cur.execute(self._sql("DELETE FROM quarantine WHERE last_ms < ?"), (before_ms,))
            return max(cur.rowcount, 0)

        return events, int(self._write(prune_quarantine))

    def _prune_events(self, cur: Any, before_ms: int) -> int:
        cur.execute(
            self._sql(
                "SELECT site, kiosk, seq FROM events WHERE received_at_ms < ?"
                " ORDER BY received_at_ms LIMIT ?"
            ),
            (before_ms, _CHUNK),
        )
        keys = [tuple(row) for row in cur.fetchall()]
        cur.executemany(
            self._sql("DELETE FROM events WHERE site = ? AND kiosk = ? AND seq = ?"), keys
        )
        highest: dict[tuple[str, str], int] = {}
        for site, kiosk, seq in keys:
            highest[(site, kiosk)] = max(highest.get((site, kiosk), 0), int(seq))
        cur.executemany(
            self._sql(
                f"UPDATE kiosks SET pruned_seq = {self._d.greatest}(pruned_seq, ?)"
                " WHERE site = ? AND kiosk = ?"
            ),
            [(seq, site, kiosk) for (site, kiosk), seq in highest.items()],
        )
        return len(keys)

    def set_availability(
        self, site: str, kiosk: str, availability: str, seen_ms: int | None
    ) -> None:
        """Record a kiosk's ``status`` message; ``seen_ms`` None keeps last-seen as is."""
        self._write(lambda cur: cur.execute(self._status_sql, (site, kiosk, availability, seen_ms)))

    def set_state(self, site: str, kiosk: str, state: dict[str, Any], seen_ms: int | None) -> None:
        """Record a kiosk's retained ``state``."""
        text = json.dumps(state, allow_nan=False)
        self._write(lambda cur: cur.execute(self._state_sql, (site, kiosk, text, seen_ms)))

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
        """Missing seqs as ``[first, last]`` ranges, above ``after`` and above the kiosk's
        pruned seqs (both taken as all present). A quarantined seq is not missing: asking for
        it again would only quarantine it again."""
        pruned = self._read(
            "SELECT pruned_seq FROM kiosks WHERE site = ? AND kiosk = ?", (site, kiosk)
        )
        after = max(after, int(pruned[0][0]) if pruned else 0)
        rows = self._read(
            "SELECT prev + 1, seq - 1 FROM (SELECT seq, LAG(seq, 1, ?) OVER (ORDER BY seq) AS prev"
            " FROM (SELECT seq FROM events WHERE site = ? AND kiosk = ? AND seq > ?"
            " UNION SELECT seq FROM quarantine WHERE site = ? AND kiosk = ? AND seq > ?) AS q"
            ") AS s WHERE seq > prev + 1 ORDER BY seq",
            (after, site, kiosk, after, site, kiosk, after),
        )
        return [[int(first), int(last)] for first, last in rows]

    def fleet(self) -> list[KioskStatus]:
        """Every kiosk central has heard of, by site and kiosk."""
        rows = self._read(
            "SELECT site, kiosk, availability, last_seen_ms, state, highest_seq, event_count,"
            " resend_from_seq, resend_at_ms FROM kiosks ORDER BY site, kiosk"
        )
        return [
            KioskStatus(
                site, kiosk, avail, seen, state_of(state), int(high), int(count), rfrom, rat
            )
            for site, kiosk, avail, seen, state, high, count, rfrom, rat in rows
        ]

    def events_between(self, t0_ms: int, t1_ms: int) -> list[EventRow]:
        """Events with ``t0_ms <= ts_ms < t1_ms``, by time, then kiosk and seq."""
        rows = self._read(
            "SELECT * FROM events WHERE ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms, site, kiosk, seq",
            (t0_ms, t1_ms),
        )
        return [event_of(row) for row in rows]

    def count(self) -> int:
        """How many events are stored."""
        return int(self._read("SELECT count(*) FROM events")[0][0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


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

        return Store(lambda: psycopg.connect(url), POSTGRES)
    path = url.removeprefix("sqlite:///")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return Store(lambda: _connect_sqlite(path), SQLITE)
