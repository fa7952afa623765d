"""Logging never blocks the caller: lines go out through a writer thread, and when stderr
stops being read they are dropped and counted, not waited for."""

from __future__ import annotations

import fcntl
import logging
import os
import time

from kiosk.run.logs import BackgroundHandler, JournalFormatter


def test_a_stderr_nobody_reads_drops_lines_instead_of_blocking_and_says_so() -> None:
    reader, writer = os.pipe()
    fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 4096)
    handler = BackgroundHandler(writer, backlog=100)
    handler.setFormatter(JournalFormatter("k1", prefix=False))
    logger = logging.getLogger("test_logs")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        started = time.monotonic()
        for n in range(200):
            logger.warning("line %03d %s", n, "x" * 100)  # 200 × ~130 bytes: far over 4 KiB
        assert time.monotonic() - started < 5.0  # not one wait for the pipe
        assert not handler.drain(0.2)  # the writer is stuck on the full pipe...
        received = b""
        while not handler.drain(0.05):  # ... until someone reads it
            received += os.read(reader, 65536)
    finally:
        logger.removeHandler(handler)
        os.close(writer)
    received += os.read(reader, 65536)
    os.close(reader)
    lines = received.decode().splitlines()
    assert lines[0] == f"WARNING test_logs kiosk=k1 line 000 {'x' * 100}"
    notes = [line for line in lines if "log lines dropped" in line]
    assert notes
    written = [line for line in lines if "line " in line]
    assert written == sorted(written)
    assert len(written) + sum(int(note.split()[3]) for note in notes) == 200  # written or counted
