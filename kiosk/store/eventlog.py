"""Durable event log in SQLite: every gate decision is committed here before the relay moves.

The same table is the MQTT outbox: the sync module reads :meth:`EventLog.pending_json`, marks rows
sent on PUBACK and confirmed on central's receipt. Retention (:class:`Retention`) prunes confirmed
rows first; rows central never confirmed go only past a configured age, with an alert.

Longer than most modules: the log, its retention and its recovery from a full disk share one
connection, one lock and one set of cached counts.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from os import PathLike, fspath
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_BUSY_TIMEOUT_S = 2.0
REOPEN_AFTER_S = 2.0  # a log that could not be opened is tried again this often
# The WAL is checkpointed every this many pages (512 KiB) and cut back to JOURNAL_LIMIT_BYTES, so a
# small partition never holds a WAL too big to checkpoint (SQLite's default is 4 MiB).
WAL_AUTOCHECKPOINT_PAGES = 128
JOURNAL_LIMIT_BYTES = 1024 * 1024
_DAY_MS = 86_400_000
LOG_RESERVE_BYTES = 512 * 1024  # the kiosk's reserve_bytes: room for marks and a prune's WAL
PRUNE_CHUNK = 200  # rows deleted per transaction, so each one's WAL stays small
_COLUMNS = "seq, event_id, boot_id, ts_ms, clock_synced, type, data, sent_at_ms, confirmed_at_ms"

# Forward migrations; entry N-1 takes the schema from user_version N-1 to N. Append, never edit.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            boot_id TEXT NOT NULL,
            ts_ms INTEGER NOT NULL,
            clock_synced INTEGER NOT NULL CHECK (clock_synced IN (0, 1)),
            type TEXT NOT NULL,
            data TEXT NOT NULL,
            sent_at_ms INTEGER,
            confirmed_at_ms INTEGER
        )""",
        "CREATE INDEX events_unconfirmed ON events (seq) WHERE confirmed_at_ms IS NULL",
        # The counter survives pruning, so a seq is never reused even if the newest row is deleted.
        """CREATE TABLE seq_counter (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last_seq INTEGER NOT NULL
        )""",
        "INSERT INTO seq_counter (id, last_seq) VALUES (1, 0)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)
# Additive and ignored by older kiosk versions, so a rollback (deploy/update.sh --rollback) still
# opens the log: created at open, not a migration that bumps user_version.
_RETENTION_TABLE = """CREATE TABLE IF NOT EXISTS retention (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    dropped_unconfirmed INTEGER NOT NULL
)"""


class EventLogError(OSError):
    """The event log failed; the message names the file, the operation and the cause."""


class LogOpenError(EventLogError):
    """The log cannot be opened: missing, not a database, corrupt, or a newer schema."""


class LogWriteError(EventLogError):
    """A write was not made durable (disk full, I/O error, read-only, corrupt database).

    For :meth:`EventLog.append` this means the event is not recorded: the engine refers the
    person to the guard and keeps the gate shut. ``errno`` is ENOSPC, EROFS, EIO or EBUSY when
    the cause is one of those, else None.
    """


@dataclass(frozen=True)
class OutboxEvent:
    """An unconfirmed event as the sync sends it: its data left as the stored JSON text."""

    seq: int
    event_id: str
    boot_id: str
    ts_ms: int
    clock_synced: bool
    type: str
    data_json: str


@dataclass(frozen=True)
class Event:
    """One logged event. ``seq`` is per kiosk, gapless and never reused."""

    event_id: str
    seq: int
    boot_id: str
    ts_ms: int
    clock_synced: bool
    type: str
    data: dict[str, Any]
    sent_at_ms: int | None = None
    confirmed_at_ms: int | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict with the field names above (for ``kiosk events --json``)."""
        return asdict(self)


@dataclass(frozen=True)
class LogStats:
    """Size and backlog of the log, for the status page and the MQTT ``state`` topic."""

    rows: int
    unconfirmed: int
    oldest_unconfirmed_ts_ms: int | None
    last_seq: int
    capacity: int
    near_capacity: bool  # events waiting for central fill warn_ratio of capacity
    over_capacity: bool
    dropped_unconfirmed: int = 0  # events dropped before central confirmed them, ever


@dataclass(frozen=True)
class Retention:
    """What :meth:`EventLog.prune` may delete, oldest first.

    :param awaits_confirmation: False when nothing will ever confirm events (sync off): then
        every row is pruned like a confirmed one.
    :param max_age_days: rows older than this go even under capacity (0: no age limit).
    :param unconfirmed_max_age_days: unconfirmed rows older than this go when the log is over
        capacity or past ``max_age_days`` (0: never); each such prune logs an alert.
    """

    awaits_confirmation: bool = True
    max_age_days: float = 0.0
    unconfirmed_max_age_days: float = 0.0


def _utc_now_ms() -> int:
    return time.time_ns() // 1_000_000


def _new_uuid4() -> str:
    return str(uuid.uuid4())


class EventLog:
    """The kiosk's event log and outbox, in one SQLite file in WAL mode.

    Appends use ``synchronous=FULL``, one transaction and one fsync per event, so an event that
    :meth:`append` returned survives a power cut. Sent/confirmed marks and pruning commit with
    ``synchronous=NORMAL``: losing one in a power cut only causes a re-send, which central
    ingest deduplicates by ``event_id``; the next FULL commit syncs them anyway. Marks share the
    writer's connection and lock, so a gate append waits for at most one short mark transaction
    and never for a busy-retry loop.

    ``capacity`` is a row budget, not a limit: an event is never refused for capacity. Appends
    prune confirmed rows beyond it; :meth:`prune` also applies the age limits of ``retention``.
    While unconfirmed rows exceed it, appends still succeed and :meth:`stats` reports
    ``over_capacity`` so the kiosk can raise an alarm.

    With ``wait_for_disk`` a log that cannot be opened (disk full, I/O error, a corrupt file)
    does not raise: it is *down*, every call raises :class:`LogWriteError` or
    :class:`EventLogError` (the kiosk refers everyone to the guard), and it is opened again at
    most every ``reopen_after_s``. The appends that failed are counted; the first append that
    succeeds afterwards first logs a ``health`` event ``{"part": "log", "ok": true}`` saying how
    many (and of which type) were lost.

    Thread-safe: one lock serialises all use of the connection. Other processes read with
    :func:`read_events`.

    Usage::

        with EventLog("/var/lib/kiosk/events.db", boot_id=boot_id) as events:
            event = events.append("gate", {"code": "OK", "lane": 1})

    :param path: the database file; created if missing (its directory must exist).
    :param boot_id: identifies this run of the kiosk; stored in every event.
    :param capacity: rows to keep; prunable rows beyond this are pruned, oldest first.
    :param warn_ratio: ``near_capacity`` from this fraction of ``capacity``.
    :param retention: which rows may be pruned and when.
    :param now_ms: UTC wall clock in epoch milliseconds.
    :param clock_synced: whether the wall clock is NTP-synchronised, stored per event.
    :param new_id: a new event id (UUID4 string).
    :param wait_for_disk: start *down* instead of raising when the file cannot be opened.
    :param reserve_bytes: refuse appends (LogWriteError, ENOSPC) while the file system has less
        free than this, so that central's confirmations and pruning can still be written and
        free space: a log that filled its partition could otherwise never shrink again.
    :param monotonic: the clock that paces attempts to open the log again.
    :raises LogOpenError: the file cannot be opened or migrated, or its schema is newer (only
        without ``wait_for_disk``).
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        boot_id: str,
        capacity: int = 100_000,
        warn_ratio: float = 0.9,
        retention: Retention | None = None,
        now_ms: Callable[[], int] = _utc_now_ms,
        clock_synced: Callable[[], bool] = lambda: True,
        new_id: Callable[[], str] = _new_uuid4,
        wait_for_disk: bool = False,
        reserve_bytes: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
        reopen_after_s: float = REOPEN_AFTER_S,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if not 0 < warn_ratio <= 1:
            raise ValueError(f"warn_ratio must be in (0, 1], got {warn_ratio}")
        self.path = Path(path)
        self.capacity = capacity
        self.retention = retention or Retention()
        self._boot_id = boot_id
        self._warn_rows = capacity * warn_ratio
        self._now_ms = now_ms
        self._clock_synced = clock_synced
        self._new_id = new_id
        self._monotonic = monotonic
        self._reopen_after_s = reopen_after_s
        self._reserve_bytes = reserve_bytes
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._down: EventLogError | None = None
        self._down_since = self._next_open = monotonic()
        self._missed: Counter[str] = Counter()
        self._rows = self._confirmed = self._dropped = 0
        self._unreported = 0  # unconfirmed rows dropped whose alert is not written yet
        try:
            self._connect()
        except LogOpenError as exc:
            if not wait_for_disk:
                raise
            self._down = exc
            self._next_open = monotonic() + reopen_after_s
            log.error("%s; the kiosk refers everyone to the guard until it opens", exc)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "down" if self._conn is None else f"rows={self._rows}"
        return f"<EventLog {self.path} {state} capacity={self.capacity}>"

    def __enter__(self) -> EventLog:
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
        conn = _open_writer(self.path)
        try:
            conn.execute(_RETENTION_TABLE)
            conn.execute("INSERT OR IGNORE INTO retention (id, dropped_unconfirmed) VALUES (1, 0)")
            self._rows, self._confirmed = conn.execute(
                "SELECT count(*), count(confirmed_at_ms) FROM events"
            ).fetchone()
            (self._dropped,) = conn.execute("SELECT dropped_unconfirmed FROM retention").fetchone()
        except sqlite3.Error as exc:
            conn.close()
            raise _error(LogOpenError, "open", self.path, exc) from exc
        self._conn = conn

    def append(self, type: str, data: Mapping[str, Any]) -> Event:
        """Commit one event durably and return it, with the next seq.

        :raises TypeError, ValueError: ``data`` is not JSON (NaN included); nothing is written.
        :raises LogWriteError: the event was not recorded; the seq is not used up, and later
            appends work again once the cause (e.g. a full disk) is gone.
        """
        payload = json.dumps(dict(data), ensure_ascii=False, allow_nan=False)
        with self._lock:
            try:
                self._check_reserve()
                with self._write("append", durable=True) as conn:
                    if self._missed:
                        self._insert(conn, "health", self._recovery_json())
                    seq, event_id, ts_ms, synced = self._insert(conn, type, payload)
            except LogWriteError as exc:
                if exc.errno is not None or self._conn is None:  # the disk, not the data
                    if not self._missed and self._conn is not None:
                        self._down_since = self._monotonic()
                    self._missed[type] += 1
                if exc.errno == errno.ENOSPC:
                    self._checkpoint()
                raise
            if self._missed:
                self._rows += 1
                log.warning("event log writable again: %s", self._recovery_detail())
                self._missed.clear()
                self._down = None
            self._rows += 1
            if self._rows > self.capacity and (
                self._confirmed or not self.retention.awaits_confirmation
            ):  # cheap: cached counts
                try:
                    self._prune_size()
                except LogWriteError:  # the event is durable; the periodic prune retries
                    log.warning("pruning after append failed", exc_info=True)
        return Event(event_id, seq, self._boot_id, ts_ms, synced, type, json.loads(payload))

    def _check_reserve(self) -> None:
        """Refuse the append when the reserve is not free, after pruning the oldest prunable
        rows to make room (their pages are reused); lock held."""
        if not self._reserve_bytes:
            return
        free = self._free_bytes()
        for _ in range(5):  # a few chunks at most: the person at the gate is waiting
            if free >= self._reserve_bytes or not self._make_room():
                break
            free = self._free_bytes()
        if free < self._reserve_bytes:
            err = LogWriteError(
                f"event log {self.path}: append refused: disk full ({free // 1024} KiB free,"
                f" {self._reserve_bytes // 1024} KiB kept for confirmations and pruning)"
            )
            err.errno = errno.ENOSPC
            raise err

    def _free_bytes(self) -> int:
        """Free space for the log: the file system's, plus (when that is short) free pages
        inside the file."""
        conn = self._open_conn(LogWriteError)
        try:
            stat = os.statvfs(self.path.parent)
            free = int(stat.f_bavail * stat.f_frsize)
            if free >= self._reserve_bytes:
                return free  # the usual case: one statvfs, no query
            (pages,) = conn.execute("PRAGMA freelist_count").fetchone()
            (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        except (OSError, sqlite3.Error):
            return self._reserve_bytes  # the write itself reports what is wrong
        return free + int(pages * page_size)

    def _make_room(self) -> bool:
        """Prune one chunk of the oldest prunable rows (else of unconfirmed ones past their
        age), whatever the capacity; True if any went."""
        prunable = self._confirmed if self.retention.awaits_confirmation else self._rows
        if prunable:
            deleted = self._delete(self._prunable(), (), min(prunable, PRUNE_CHUNK))
        else:
            deleted = self._drop_unconfirmed(PRUNE_CHUNK)
        if not deleted:
            return False
        self._checkpoint()
        log.warning("event log: disk nearly full, pruned the %d oldest events early", deleted)
        return True

    def _insert(
        self, conn: sqlite3.Connection, type: str, payload: str
    ) -> tuple[int, str, int, bool]:
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

    def _recovery_detail(self) -> str:
        lost = ", ".join(f"{n} {kind}" for kind, n in sorted(self._missed.items()))
        down_s = self._monotonic() - self._down_since
        return (
            f"{sum(self._missed.values())} event(s) could not be written ({lost}) over"
            f" {down_s:.0f} s; every person in that time was referred to the guard"
        )

    def _recovery_json(self) -> str:
        return json.dumps({"part": "log", "ok": True, "detail": self._recovery_detail()})

    def _checkpoint(self) -> None:
        """After a write failed for space: move the WAL into the file and truncate it."""
        if self._conn is None:
            return
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            log.debug("checkpoint after a full disk failed", exc_info=True)

    def pending_json(self, limit: int, after_seq: int = 0) -> list[OutboxEvent]:
        """Up to ``limit`` unconfirmed events with seq > ``after_seq``, in seq order, their
        data left as the stored JSON text (the sync forwards it as it is). Includes rows
        already sent: the sync sends them again when no receipt comes."""
        with self._lock:
            conn = self._open_conn(EventLogError)
            try:
                rows = conn.execute(
                    "SELECT seq, event_id, boot_id, ts_ms, clock_synced, type, data FROM events"
                    " WHERE confirmed_at_ms IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                    (after_seq, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise _error(EventLogError, "read", self.path, exc) from exc
        return [
            OutboxEvent(seq, event_id, boot_id, ts_ms, bool(synced), type_, data)
            for seq, event_id, boot_id, ts_ms, synced, type_, data in rows
        ]

    def mark_sent(self, seqs: Iterable[int]) -> None:
        """Record that these events were published (PUBACK), in one transaction.

        ``sent_at_ms`` is the latest send, so a re-send restarts the re-send timer.
        """
        now = self._now_ms()
        with self._lock, self._write("mark_sent", durable=False) as conn:
            conn.executemany(
                "UPDATE events SET sent_at_ms = ? WHERE seq BETWEEN ? AND ?"
                " AND confirmed_at_ms IS NULL",
                ((now, first, last) for first, last in _ranges(seqs)),
            )

    def mark_confirmed(self, seqs: Iterable[int]) -> int:
        """Record central's receipt for these events; returns how many were newly confirmed."""
        now = self._now_ms()
        with self._lock:
            with self._write("mark_confirmed", durable=False) as conn:
                cursor = conn.executemany(
                    "UPDATE events SET confirmed_at_ms = ?, sent_at_ms = coalesce(sent_at_ms, ?)"
                    " WHERE seq BETWEEN ? AND ? AND confirmed_at_ms IS NULL",
                    ((now, now, first, last) for first, last in _ranges(seqs)),
                )
            self._confirmed += cursor.rowcount
        return cursor.rowcount

    def prune(self) -> int:
        """Apply the retention: rows past ``max_age_days``, then rows over ``capacity``,
        oldest first, confirmed (prunable) rows before unconfirmed ones; returns the count.

        Unconfirmed rows go only past ``unconfirmed_max_age_days``; when any do, a ``health``
        event ``{"part": "log_capacity", "ok": false}`` (an alert over MQTT) is written in the
        same transaction with how many, and :meth:`stats` counts them in ``dropped_unconfirmed``.
        """
        with self._lock:
            deleted = self._prune_age() + self._prune_size() + self._drop_unconfirmed()
        if deleted:
            self._checkpoint_after_prune()
        return deleted

    def _prunable(self) -> str:
        return "confirmed_at_ms IS NOT NULL" if self.retention.awaits_confirmation else "1"

    def _cutoff_ms(self, days: float) -> int:
        return self._now_ms() - int(days * _DAY_MS)

    def _prune_age(self) -> int:
        if not self.retention.max_age_days:
            return 0
        cutoff = self._cutoff_ms(self.retention.max_age_days)
        return self._delete(f"{self._prunable()} AND ts_ms < ?", (cutoff,), self._rows)

    def _prune_size(self) -> int:
        prunable = self._confirmed if self.retention.awaits_confirmation else self._rows
        excess = min(self._rows - self.capacity, prunable)
        return self._delete(self._prunable(), (), excess) if excess > 0 else 0

    def _delete(self, where: str, params: tuple[int, ...], limit: int) -> int:
        """Delete up to ``limit`` rows matching ``where``, oldest first, at most PRUNE_CHUNK
        per transaction with a checkpoint between (so the WAL stays small on a small disk);
        keeps the cached counts right."""
        total = 0
        while total < limit:
            chunk = min(PRUNE_CHUNK, limit - total)
            with self._write("prune", durable=False) as conn:
                rows = conn.execute(
                    f"DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE {where}"
                    " ORDER BY seq LIMIT ?) RETURNING confirmed_at_ms",
                    (*params, chunk),
                ).fetchall()
            confirmed = sum(row[0] is not None for row in rows)
            self._rows -= len(rows)
            self._confirmed -= confirmed
            total += len(rows)
            if len(rows) < chunk:
                break
            self._checkpoint()
        if total:
            log.debug("pruned %d events", total)
        return total

    def _drop_unconfirmed(self, limit: int | None = None) -> int:
        """Unconfirmed rows past their age, when over capacity or past max_age_days (or up to
        ``limit`` of them, for room on a full disk); the alert (and the count) is written
        after them, and again at the next prune if that failed."""
        retention = self.retention
        if not (retention.awaits_confirmation and retention.unconfirmed_max_age_days):
            return 0
        cutoff = self._cutoff_ms(retention.unconfirmed_max_age_days)
        if limit is None:
            limit = max(self._rows - self.capacity, 0)
            if retention.max_age_days:
                cutoff, limit = min(cutoff, self._cutoff_ms(retention.max_age_days)), self._rows
        dropped = self._delete("confirmed_at_ms IS NULL AND ts_ms < ?", (cutoff,), limit)
        self._unreported += dropped
        if self._unreported:
            total = self._dropped + self._unreported
            detail = (
                f"dropped {self._unreported} events central never confirmed, older than"
                f" {retention.unconfirmed_max_age_days:g} days, to keep the log within"
                f" log.capacity / log.max_age_days ({total} in all)"
            )
            alert = json.dumps({"part": "log_capacity", "ok": False, "detail": detail})
            with self._write("prune", durable=False) as conn:
                conn.execute("UPDATE retention SET dropped_unconfirmed = ?", (total,))
                self._insert(conn, "health", alert)
            self._rows += 1
            self._dropped, self._unreported = total, 0
            log.error("event log: %s", detail)
        return dropped

    def _checkpoint_after_prune(self) -> None:
        """Pages freed by a prune are reused only once the WAL is checkpointed into the file."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    log.debug("checkpoint after pruning failed", exc_info=True)

    def stats(self) -> LogStats:
        """Row counts, backlog and capacity flags (counts are cached, not recounted)."""
        with self._lock:
            conn = self._open_conn(EventLogError)
            try:
                (last_seq,) = conn.execute("SELECT last_seq FROM seq_counter").fetchone()
                oldest = conn.execute(
                    "SELECT ts_ms FROM events WHERE confirmed_at_ms IS NULL ORDER BY seq LIMIT 1"
                ).fetchone()
            except sqlite3.Error as exc:
                raise _error(EventLogError, "stats", self.path, exc) from exc
            rows = self._rows
            waiting = rows - self._confirmed if self.retention.awaits_confirmation else 0
            return LogStats(
                rows=rows,
                unconfirmed=rows - self._confirmed,
                oldest_unconfirmed_ts_ms=oldest[0] if oldest else None,
                last_seq=last_seq,
                capacity=self.capacity,
                near_capacity=waiting >= self._warn_rows,  # a log full of prunable rows is fine
                over_capacity=rows > self.capacity,
                dropped_unconfirmed=self._dropped,
            )

    def recent(
        self, limit: int = 50, *, after_seq: int | None = None, type: str | None = None
    ) -> list[Event]:
        """Events in seq order: the last ``limit``, or the first ``limit`` after ``after_seq``."""
        with self._lock:
            conn = self._open_conn(EventLogError)
            try:
                return _select_recent(conn, limit, after_seq, type)
            except sqlite3.Error as exc:
                raise _error(EventLogError, "read", self.path, exc) from exc

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
            raise _error(LogWriteError, action, self.path, exc) from exc


def read_events(
    path: str | PathLike[str],
    limit: int = 50,
    *,
    after_seq: int | None = None,
    type: str | None = None,
) -> list[Event]:
    """Read events like :meth:`EventLog.recent` from another process, without blocking it.

    Opens the file read-only: never creates or migrates a database. WAL lets this run while the
    kiosk writes.

    :raises LogOpenError: no log at ``path``, not a database, or an unknown schema version.
    """
    with _readonly(Path(path)) as conn:
        return _select_recent(conn, limit, after_seq, type)


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
    with _readonly(Path(path)) as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM events {where} ORDER BY seq DESC LIMIT ?", (*params, limit)
        ).fetchall()
    return [_event(row) for row in rows]


@contextlib.contextmanager
def _readonly(path: Path) -> Iterator[sqlite3.Connection]:
    try:
        conn = sqlite3.connect(
            path.absolute().as_uri() + "?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_S
        )
    except sqlite3.Error as exc:
        raise _error(LogOpenError, "open", path, exc) from exc
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if not 1 <= version <= SCHEMA_VERSION:
            raise LogOpenError(
                f"event log {path}: schema version {version} is not one this kiosk reads"
                f" (1 to {SCHEMA_VERSION})"
            )
        yield conn
    except sqlite3.Error as exc:
        raise _error(LogOpenError, "read", path, exc) from exc
    finally:
        conn.close()


def _open_writer(path: Path) -> sqlite3.Connection:
    """Connect with WAL, FULL sync and a busy timeout, then migrate the schema forward."""
    try:
        conn = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise _error(LogOpenError, "open", path, exc) from exc
    try:
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode != "wal":
            raise LogOpenError(f"event log {path}: cannot use WAL (journal_mode={mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_LIMIT_BYTES}")
        _migrate(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise _error(LogOpenError, "open", path, exc) from exc
    except LogOpenError:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise LogOpenError(
                f"event log {path}: schema version {version} is newer than this kiosk's"
                f" {SCHEMA_VERSION}; refusing to downgrade (upgrade the kiosk software)"
            )
        for statements in _MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if version < SCHEMA_VERSION:
        log.info("event log %s migrated from schema %d to %d", path, version, SCHEMA_VERSION)


def _select_recent(
    conn: sqlite3.Connection, limit: int, after_seq: int | None, type: str | None
) -> list[Event]:
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
    sql = f"SELECT {_COLUMNS} FROM events {where} ORDER BY seq {order} LIMIT ?"
    rows = conn.execute(sql, (*params, limit)).fetchall()
    if after_seq is None:
        rows.reverse()
    return [_event(row) for row in rows]


def _ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted inclusive runs of consecutive seqs: one UPDATE per run, not per event."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


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


def _error(cls: type[EventLogError], action: str, path: Path, exc: sqlite3.Error) -> EventLogError:
    """An error naming the file, what failed and why, with errno set when there is one."""
    code = getattr(exc, "sqlite_errorcode", None)
    number, cause = _cause(code & 0xFF if code is not None else None)
    name = getattr(exc, "sqlite_errorname", type(exc).__name__)
    err = cls(f"event log {fspath(path)}: {action} failed: {cause or name} ({name}: {exc})")
    err.errno = number
    return err


def _cause(primary_code: int | None) -> tuple[int | None, str | None]:
    match primary_code:
        case sqlite3.SQLITE_FULL:
            return errno.ENOSPC, "disk full"
        case sqlite3.SQLITE_READONLY:
            return errno.EROFS, "read-only"
        case sqlite3.SQLITE_IOERR:
            return errno.EIO, "I/O error"
        case sqlite3.SQLITE_BUSY | sqlite3.SQLITE_LOCKED:
            return errno.EBUSY, "locked by another connection"
        case sqlite3.SQLITE_CORRUPT | sqlite3.SQLITE_NOTADB:
            return None, "corrupt or not a database"
        case sqlite3.SQLITE_CANTOPEN:
            return None, "cannot open the file (missing directory or no permission?)"
    return None, None
