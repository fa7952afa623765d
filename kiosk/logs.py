"""Logging set-up: one line per record, with a syslog priority prefix journald understands."""

from __future__ import annotations

import logging
import os
import sys

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


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


def setup_logging(kiosk_id: str, *, level: int = logging.INFO) -> None:
    """Send logs to stderr: journald-prefixed when systemd connects stderr to the journal."""
    handler = logging.StreamHandler(sys.stderr)
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    handler.setFormatter(JournalFormatter(kiosk_id, prefix=under_journald))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
