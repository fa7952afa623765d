"""Is the system clock synchronised? Passes and event times depend on it."""

from __future__ import annotations

import ctypes
import functools
from typing import Any

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


@functools.cache
def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)  # the C library the interpreter already loaded


def clock_is_synchronised() -> bool:
    """True when the kernel says an NTP client (timesyncd, chrony) keeps the clock in sync.

    Cheap (one system call): it is asked for every event written.
    """
    try:
        timex = ctypes.create_string_buffer(512)  # struct timex with modes = 0: read only
        state = _libc().adjtimex(timex)
    except (OSError, AttributeError):
        return False
    return bool(state not in (-1, TIME_ERROR))
