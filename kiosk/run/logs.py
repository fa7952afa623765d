"""Logging set-up: one line per record on stderr, with a syslog priority prefix journald
understands, written by a thread of its own so that no caller ever waits for stderr."""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import threading

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
BACKLOG = 10_000  # log lines waiting for stderr before new ones are dropped
FLUSH_S = 2.0  # how long a flush (at exit, say) waits for the backlog to be written
STDERR = 2


class JournalFormatter(logging.Formatter):
    """Prefix ``<N>`` so journald sets PRIORITY; keeps the kiosk id in every line."""

    def __init__(self, kiosk_id: str, *, prefix: bool) -> None:
        super().__init__(f"%(name)s kiosk={kiosk_id} %(message)s")
        self._prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if self._prefix:
            return f"<{_PRIORITY.get(record.levelno, 6)}>{text}"
        return f"{record.levelname:<7} {text}"


class BackgroundHandler(logging.handlers.QueueHandler):
    """Formats each record in the caller's thread and queues the line for a writer thread,
    which writes it to file descriptor ``fd``.

    A stderr that nobody reads (a pipe whose reader stopped, a journal that stalls) would
    otherwise block the first thread that logs, the decision loop included, and every stop
    after it. The writer uses ``os.write``: no buffer or lock that the interpreter or
    ``logging.shutdown`` would wait for at exit while the writer is stuck. With ``backlog``
    lines waiting, new ones are dropped and counted; the writer says how many once it catches
    up.
    """

    def __init__(self, fd: int = STDERR, backlog: int = BACKLOG) -> None:
        self._lines: queue.Queue[logging.LogRecord | str | threading.Event] = queue.Queue(backlog)
        super().__init__(self._lines)
        self.fd = fd
        self._dropped = 0
        self._lock = threading.Lock()
        writer = threading.Thread(target=self._write, name="log-writer")
        writer.daemon = True  # stuck on a full pipe, it must not keep the process alive
        writer.start()

    def enqueue(self, record: logging.LogRecord) -> None:
        """Queue the formatted line, or count it as dropped when the backlog is full."""
        with self._lock:  # producers one at a time: the room checked is there to fill
            if self._room() < (2 if self._dropped else 1):
                self._dropped += 1
                return
            if self._dropped:  # where lines went missing: before this one
                self._lines.put_nowait(self._dropped_note())
            self._lines.put_nowait(record)

    def flush(self) -> None:
        """Wait (at most ``FLUSH_S``) until what was logged so far has been written."""
        self.drain(FLUSH_S)

    def drain(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the lines queued so far to be written; False if not."""
        written = threading.Event()
        with self._lock:
            if self._room() < 1:
                return False
            self._lines.put_nowait(written)
        return written.wait(timeout_s)

    def _room(self) -> int:
        return self._lines.maxsize - self._lines.qsize()

    def _write(self) -> None:
        while True:
            item = self._lines.get()
            if not isinstance(item, threading.Event):
                self._put(item if isinstance(item, str) else item.getMessage())
            if self._lines.empty():  # caught up: say what was dropped since
                with self._lock:
                    note = self._dropped_note() if self._dropped else None
                if note is not None:
                    self._put(note)
            if isinstance(item, threading.Event):
                item.set()

    def _dropped_note(self) -> str:
        """The line that reports the dropped lines (and resets their count); lock held."""
        text = f"{self._dropped} log lines dropped: the log output fell behind"
        self._dropped = 0
        record = {"name": __name__, "msg": text, "levelno": logging.WARNING}
        return self.format(logging.makeLogRecord(record | {"levelname": "WARNING"}))

    def _put(self, line: str) -> None:
        data = memoryview((line + "\n").encode("utf-8", "backslashreplace"))
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            pass  # stderr closed: nowhere left to say it


def setup_logging(kiosk_id: str, *, level: int = logging.INFO) -> None:
    """Send logs to stderr: journald-prefixed when systemd connects stderr to the journal."""
    root = logging.getLogger()
    writer = next((h for h in root.handlers if isinstance(h, BackgroundHandler)), None)
    if writer is None:
        writer = BackgroundHandler()
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    writer.setFormatter(JournalFormatter(kiosk_id, prefix=under_journald))
    root.handlers[:] = [writer]  # set up again (the tests do): still one writer thread
    root.setLevel(level)
