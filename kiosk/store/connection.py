"""The event log's one connection, shared by its parts: opening it (again), transactions, and
the gapless sequence every row is inserted with.

:class:`LogConnection` is the base of :class:`~kiosk.store.eventlog.EventLog`, which sets the
attributes declared here; :class:`~kiosk.store.outbox.OutboxMarks` and
:class:`~kiosk.store.retention.Pruning` build on it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from kiosk.store.errors import EventLogError, LogOpenError, LogWriteError, sqlite_error
from kiosk.store.schema import RETENTION_TABLE, open_writer

log = logging.getLogger(__name__)


class LogConnection:
    """One SQLite connection, one lock serialising all use of it, and the cached row counts.

    While the file cannot be opened the log is *down*: ``_conn`` is None and every use raises,
    and the file is opened again at most every ``_reopen_after_s``.
    """

    path: Path
    _boot_id: str
    _now_ms: Callable[[], int]
    _clock_synced: Callable[[], bool]
    _new_id: Callable[[], str]
    _monotonic: Callable[[], float]
    _reopen_after_s: float
    _lock: threading.Lock
    _conn: sqlite3.Connection | None
    _closed: bool
    _down: EventLogError | None
    _down_since: float
    _next_open: float
    _rows: int  # rows in the table
    _confirmed: int  # of them, confirmed by central
    _dropped: int  # unconfirmed rows pruned, ever (the retention table)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connect(self) -> None:
        conn = open_writer(self.path)
        try:
            conn.execute(RETENTION_TABLE)
            conn.execute("INSERT OR IGNORE INTO retention (id, dropped_unconfirmed) VALUES (1, 0)")
            self._rows, self._confirmed = conn.execute(
                "SELECT count(*), count(confirmed_at_ms) FROM events"
            ).fetchone()
            (self._dropped,) = conn.execute("SELECT dropped_unconfirmed FROM retention").fetchone()
        except sqlite3.Error as exc:
            conn.close()
            raise sqlite_error(LogOpenError, "open", self.path, exc) from exc
        self._conn = conn

    def _open_conn(self, error: type[EventLogError]) -> sqlite3.Connection:
        """The connection; while the log is down, open it again when it is time (lock held)."""
        if self._closed:
            raise error(f"event log {self.path} is closed")
        if self._conn is None and self._monotonic() >= self._next_open:
            try:
                self._connect()
                down_s = self._monotonic() - self._down_since
                log.warning("event log %s opened after %.0f s", self.path, down_s)
            except LogOpenError as exc:
                self._down = exc
                self._next_open = self._monotonic() + self._reopen_after_s
        if self._conn is None:
            err = error(f"{self._down} (not opened yet: retried every {self._reopen_after_s:g} s)")
            err.errno = self._down.errno if self._down is not None else None
            raise err
        return self._conn

    @contextmanager
    def _write(self, action: str, *, durable: bool) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE transaction (caller holds the lock): commit, or roll back, raise."""
        conn = self._open_conn(LogWriteError)
        try:
            if not durable:
                conn.execute("PRAGMA synchronous = NORMAL")  # not allowed inside a transaction
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # SQLite rolls back by itself after some errors
                        conn.execute("ROLLBACK")
                    raise
            finally:
                if not durable:
                    conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise sqlite_error(LogWriteError, action, self.path, exc) from exc

    def _insert(
        self, conn: sqlite3.Connection, type: str, payload: str
    ) -> tuple[int, str, int, bool]:
        """Insert one row with the next seq (inside the caller's transaction): the counter
        survives pruning and a rolled-back insert gives its seq back, so seqs have no gaps."""
        event_id, ts_ms = self._new_id(), self._now_ms()
        synced = bool(self._clock_synced())
        (seq,) = conn.execute(
            "UPDATE seq_counter SET last_seq = last_seq + 1 RETURNING last_seq"
        ).fetchone()
        conn.execute(
            "INSERT INTO events (seq, event_id, boot_id, ts_ms, clock_synced, type, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, event_id, self._boot_id, ts_ms, synced, type, payload),
        )
        return seq, event_id, ts_ms, synced

    def _checkpoint(self) -> None:
        """After a write failed for space: move the WAL into the file and truncate it."""
        if self._conn is None:
            return
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            log.debug("checkpoint after a full disk failed", exc_info=True)
