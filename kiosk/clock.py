"""Is the system clock synchronised? Passes and event times depend on it."""

from __future__ import annotations

import ctypes
import ctypes.util

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


def clock_is_synchronised() -> bool:
    """True when the kernel says an NTP client (timesyncd, chrony) keeps the clock in sync."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        timex = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        state = libc.adjtimex(timex)
    except (OSError, AttributeError):
        return False
    return state not in (-1, TIME_ERROR)
