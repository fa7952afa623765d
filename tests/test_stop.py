"""Stopping is bounded: SIGTERM ends a kiosk process within its stop deadline with the relay
released, even with a part that never returns or a stderr that nobody reads."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from tests.support import wait_until

REPO = Path(__file__).resolve().parents[1]


def start(
    directory: Path, hang: str, deadline_s: float, stderr: int | IO[bytes]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.stop_child", str(directory), hang, str(deadline_s)],
        cwd=REPO,
        stderr=stderr,
    )


def relay_levels(directory: Path) -> list[str]:
    """The relay output's changes, in order: "1" energised, "0" released."""
    path = directory / "relay"
    return path.read_text().split() if path.exists() else []


def wait_for(child: subprocess.Popen[bytes], marker: Path) -> None:
    wait_until(lambda: marker.exists() or child.poll() is not None, timeout=60)
    assert child.poll() is None, f"the kiosk exited early ({child.returncode})"


@pytest.mark.slow
def test_a_hung_part_cannot_keep_the_kiosk_from_stopping(tmp_path: Path) -> None:
    deadline_s = 3.0
    with (tmp_path / "stderr").open("wb") as stderr:
        child = start(tmp_path, "thermometer", deadline_s, stderr)
    try:
        wait_for(child, tmp_path / "hung")  # the decision loop is stuck reading the thermometer
        held_open = relay_levels(tmp_path)
        assert held_open[-1:] == ["1"]
        child.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = child.wait(timeout=deadline_s + 60)
        took_s = time.monotonic() - signalled
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    log = (tmp_path / "stderr").read_text()
    assert code == 70, log
    assert took_s >= deadline_s  # it was the deadline that ended it, nothing earlier
    assert (
        "stop took longer than 3 s; still running: decision loop in HangingThermometer.read"
        " (tests/stop_child.py:"
    ) in log
    assert "relay released; exiting with status 70" in log
    assert relay_levels(tmp_path) == [*held_open, "0"]


@pytest.mark.slow
def test_a_stderr_nobody_reads_stops_neither_the_gate_nor_the_stop(tmp_path: Path) -> None:
    reader, writer = os.pipe()
    fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 4096)
    os.set_blocking(writer, False)
    with pytest.raises(BlockingIOError):
        while True:
            os.write(writer, b"x" * 512)
    os.set_blocking(writer, True)
    try:
        child = start(tmp_path, "none", 10.0, writer)
        os.close(writer)
        try:
            wait_for(child, tmp_path / "granted")
            child.send_signal(signal.SIGTERM)
            code = child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    finally:
        os.close(reader)
    assert code == 0
    assert "1" in relay_levels(tmp_path)  # the person got through
    assert relay_levels(tmp_path)[-1] == "0"
