"""A full disk at start or a small partition: the gate stays safe, people are referred, and the
log recovers by itself. On a real 2 MiB tmpfs (the tests need root to mount it; they are
skipped without it, except under CI=true where they must run)."""

from __future__ import annotations

import contextlib
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from kiosk.decide.decision import Outcome, Reason
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.simulation import Person
from kiosk.store.eventlog import (
    LOG_RESERVE_BYTES,
    EventLog,
    LogOpenError,
    LogWriteError,
    Retention,
    read_events,
)
from tests.support import in_ci, make_config, running, wait_until, write_config

PAD = {"pad": "x" * 300}
KIOSK = [sys.executable, "-c", "from kiosk.cli.main import main; main()"]


@pytest.fixture
def small_partition(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        if in_ci():
            pytest.fail(f"cannot mount a tmpfs under CI: {done.stderr}")
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * size)
    return filler


def test_a_log_that_filled_its_small_partition_recovers_once_central_confirms(
    small_partition: Path,
) -> None:
    log = EventLog(
        small_partition / "events.db",
        boot_id="b",
        capacity=100_000,
        reserve_bytes=LOG_RESERVE_BYTES,
    )
    with log:
        written = 0
        with pytest.raises(LogWriteError, match="disk full"):  # central down: nothing prunable
            while True:
                log.append("decision", PAD)
                written += 1
        for first in range(1, written + 1, 100):  # receipts still get written: the reserve
            log.mark_confirmed(range(first, first + 100))
        for n in range(3000):  # more than the partition holds: confirmed rows make room
            log.append("decision", PAD)
            if n % 100 == 99:
                log.mark_confirmed(range(1, log.stats().last_seq + 1))
        stats = log.stats()
    assert stats.last_seq == written + 1 + 3000  # +1: the "writable again" health event
    assert stats.rows < written + 1


def test_a_full_partition_drops_the_oldest_unconfirmed_events_once_past_their_age(
    small_partition: Path,
) -> None:
    now = [1_700_000_000_000]
    log = EventLog(
        small_partition / "events.db",
        boot_id="b",
        capacity=100_000,
        reserve_bytes=LOG_RESERVE_BYTES,
        retention=Retention(unconfirmed_max_age_days=30),
        now_ms=lambda: now[0],
    )
    with log:
        with pytest.raises(LogWriteError, match="disk full"):  # central down for good
            while True:
                log.append("decision", PAD)
        with pytest.raises(LogWriteError, match="disk full"):  # young events are kept
            log.append("decision", PAD)
        now[0] += 31 * 86_400_000
        for _ in range(1000):
            log.append("decision", PAD)
        alerts = [e for e in log.recent(10_000, type="health") if e.data["ok"] is False]
        dropped = log.stats().dropped_unconfirmed
    assert dropped > 0
    assert alerts and alerts[-1].data["detail"].endswith(f"({dropped} in all)")


def test_a_log_that_cannot_be_opened_is_down_until_it_can(small_partition: Path) -> None:
    fill(small_partition)
    with pytest.raises(LogOpenError, match=r"disk full|I/O error"):
        EventLog(small_partition / "events.db", boot_id="b")  # as before, without waiting
    clock = [0.0]
    log = EventLog(
        small_partition / "events.db",
        boot_id="b",
        wait_for_disk=True,
        monotonic=lambda: clock[0],
        reopen_after_s=2.0,
    )
    with log:
        for _ in range(3):
            with pytest.raises(LogWriteError, match="not opened yet"):
                log.append("decision", {"n": 1})
        (small_partition / "filler").unlink()
        with pytest.raises(LogWriteError):  # not retried before reopen_after_s
            log.append("passage", {})
        clock[0] = 2.0
        event = log.append("decision", {"n": 2})
        first, second = log.recent(10)
    assert (first.type, first.data["part"], first.data["ok"]) == ("health", "log", True)
    assert first.data["detail"].startswith(
        "4 event(s) could not be written (3 decision, 1 passage) over 2 s;"
    )
    assert (second.seq, second.event_id) == (2, event.event_id)


STAFF = Person("staff", b"S-0001", sim.nobody(), "grant")


def test_a_kiosk_started_on_a_full_disk_refers_everyone_then_recovers(
    tmp_path: Path, small_partition: Path
) -> None:
    config = make_config(
        tmp_path, kiosk={"state_dir": str(small_partition)}, thermometer={"enabled": False}
    )
    filler = fill(small_partition)
    with running(config) as kiosk:
        kiosk.scene.step_up(STAFF)
        record = kiosk.next_decision()
        assert (record.decision.outcome, record.decision.reason) == (
            Outcome.REFER,
            Reason.LOG_UNAVAILABLE,
        )
        assert not kiosk.kiosk.health().ok("log")
        relay = kiosk.kiosk.hardware.pin_factory.pin(config.gate.relay_pin)
        assert [state.state for state in relay.states][1:] == [True]  # never energised

        filler.unlink()
        wait_until(lambda: kiosk.kiosk.health().ok("log"), timeout=15)
        kiosk.scene.leave()
        kiosk.scene.step_up(Person("staff", b"S-0002", sim.nobody(), "grant"))
        record = kiosk.next_decision()
        assert record.decision.outcome is Outcome.GRANT and record.event is not None
    recovered = [e for e in read_events(config.log_path, 100) if e.data.get("part") == "log"]
    assert len(recovered) == 1 and recovered[0].data["ok"] is True
    assert "1 decision" in recovered[0].data["detail"]
    assert "referred to the guard" in recovered[0].data["detail"]


def test_kiosk_run_on_a_full_disk_keeps_running_instead_of_exiting(
    tmp_path: Path, small_partition: Path
) -> None:
    config_file = write_config(tmp_path, kiosk={"state_dir": str(small_partition)})
    fill(small_partition)
    child = subprocess.Popen(
        [*KIOSK, "run", "--simulate", "--config", str(config_file)],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def forward(stream: IO[str]) -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=forward, args=(child.stderr,), daemon=True).start()
    seen: list[str] = []

    def said(words: str) -> bool:
        with contextlib.suppress(queue.Empty):
            while True:
                seen.append(lines.get_nowait())
        return any(words in line for line in seen)

    try:
        wait_until(lambda: said("refers everyone to the guard") or child.poll() is not None, 60)
        assert child.poll() is None, "".join(seen)
        (small_partition / "filler").unlink()
        wait_until(lambda: said("opened after"), timeout=30)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=15) == 0
    finally:
        if child.poll() is None:
            child.kill()
    types = [e.type for e in read_events(small_partition / "events.db", 10)]
    assert types[-1] == "kiosk_stopped"
