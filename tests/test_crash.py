"""Crash safety: kill -9 the kiosk while people pass; nothing is lost or out of order."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kiosk.store.eventlog import EventLog
from tests.support import kill_9_when


def pulses(directory: Path) -> list[int]:
    path = directory / "pulses"
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().splitlines() if line.strip()]


def run_until_killed(directory: Path, at_least: int) -> None:
    """Start the kiosk, let ``at_least`` more relay pulses happen, then SIGKILL it."""
    target = len(pulses(directory)) + at_least
    kill_9_when("tests.crash_child", directory, lambda: len(pulses(directory)) >= target)


def check_log(directory: Path) -> list[tuple[int, str, str, str]]:
    db = directory / "events.db"
    with EventLog(db, boot_id="checker") as log:  # opening recovers the WAL
        assert log.stats().last_seq >= 1
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return conn.execute(
            "SELECT seq, boot_id, type, json_extract(data, '$.outcome') FROM events ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()


@pytest.mark.slow
def test_kill_9_loses_nothing_and_every_pulse_has_its_event(tmp_path: Path) -> None:
    run_until_killed(tmp_path, at_least=25)
    first = check_log(tmp_path)
    run_until_killed(tmp_path, at_least=25)
    rows = check_log(tmp_path)

    seqs = [row[0] for row in rows]
    assert seqs == list(range(1, len(seqs) + 1)), "the sequence has a gap"
    assert rows[: len(first)] == first, "the restart changed what was already logged"
    assert len({row[1] for row in rows if row[2] == "kiosk_started"}) == 2

    grants = {row[0] for row in rows if row[2] == "decision" and row[3] == "grant"}
    pulse_seqs = pulses(tmp_path)
    assert len(pulse_seqs) >= 50
    assert set(pulse_seqs) <= grants, "a relay pulse happened without its decision event"
    assert len(set(pulse_seqs)) == len(pulse_seqs), "two pulses for one logged decision"
