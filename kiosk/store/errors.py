"""The event log's errors, each naming the file, the operation and the cause."""

from __future__ import annotations

import errno
import sqlite3
from os import fspath
from pathlib import Path


class EventLogError(OSError):
    """The event log failed; the message names the file, the operation and the cause."""


class LogOpenError(EventLogError):
    """The log cannot be opened: missing, not a database, corrupt, or a newer schema."""


class LogWriteError(EventLogError):
    """A write was not made durable (disk full, I/O error, read-only, corrupt database).

    For :meth:`~kiosk.store.eventlog.EventLog.append` this means the event is not recorded: the
    engine refers the person to the guard and keeps the gate shut. ``errno`` is ENOSPC, EROFS,
    EIO or EBUSY when the cause is one of those, else None.
    """


def sqlite_error(
    cls: type[EventLogError], action: str, path: Path, exc: sqlite3.Error
) -> EventLogError:
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
