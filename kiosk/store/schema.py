"""The event log's SQLite schema, its forward migrations and how a connection is opened.

A writer gets WAL, ``synchronous=FULL``, a bounded WAL and the schema migrated forward; a
reader (another process) gets a read-only connection that never creates or migrates a file.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from kiosk.store.errors import LogOpenError, sqlite_error

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 2.0
# The WAL is checkpointed every this many pages (512 KiB) and cut back to JOURNAL_LIMIT_BYTES, so a
# small partition never holds a WAL too big to checkpoint (SQLite's default is 4 MiB).
WAL_AUTOCHECKPOINT_PAGES = 128
JOURNAL_LIMIT_BYTES = 1024 * 1024
COLUMNS = "seq, event_id, boot_id, ts_ms, clock_synced, type, data, sent_at_ms, confirmed_at_ms"

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
RETENTION_TABLE = """CREATE TABLE IF NOT EXISTS retention (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    dropped_unconfirmed INTEGER NOT NULL
)"""


def open_writer(path: Path) -> sqlite3.Connection:
    """Connect with WAL, FULL sync and a busy timeout, then migrate the schema forward.

    :raises LogOpenError: the file cannot be opened or migrated, or its schema is newer.
    """
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise sqlite_error(LogOpenError, "open", path, exc) from exc
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
        raise sqlite_error(LogOpenError, "open", path, exc) from exc
    except LogOpenError:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def open_readonly(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to an existing log of a schema this kiosk reads, closed after.

    :raises LogOpenError: no log at ``path``, not a database, or an unknown schema version.
    """
    try:
        conn = sqlite3.connect(
            path.absolute().as_uri() + "?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S
        )
    except sqlite3.Error as exc:
        raise sqlite_error(LogOpenError, "open", path, exc) from exc
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if not 1 <= version <= SCHEMA_VERSION:
            raise LogOpenError(
                f"event log {path}: schema version {version} is not one this kiosk reads"
                f" (1 to {SCHEMA_VERSION})"
            )
        yield conn
    except sqlite3.Error as exc:
        raise sqlite_error(LogOpenError, "read", path, exc) from exc
    finally:
        conn.close()


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
