"""Durable whole-file replacement: the old file or the new, never a half, never a leftover."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from kiosk.store.durable import write_whole


def test_a_file_is_replaced_whole_and_nothing_is_left_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_whole(target, b"old")
    write_whole(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_failed_replace_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.mkdir()  # a directory cannot be replaced by a file
    with pytest.raises(OSError):
        write_whole(target, b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_pipe_is_written_to_and_stays_a_pipe(tmp_path: Path) -> None:
    """As ``-o /dev/null`` or ``-o /dev/stdout`` would be: renaming over them replaced the
    machine's /dev/null with a regular file once."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    write_whole(pipe, b"the list")
    reader.join(timeout=30)
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert received == [b"the list"]
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]
