"""The sd_notify protocol (READY, STATUS, WATCHDOG, STOPPING), written out: a datagram to the
socket systemd names in ``NOTIFY_SOCKET``. Does nothing when not run by systemd."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1\\nSTATUS=…"``) to systemd; False when not under it."""
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        log.warning("could not notify systemd: %s", exc)
        return False
    return True


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Half of ``WatchdogSec=`` (how often to ping), or None when no watchdog is set."""
    env = os.environ if env is None else env
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2


def watchdog_loop(
    alive: Callable[[float], bool], interval_s: float
) -> Callable[[threading.Event], None]:
    """A background loop that pings the watchdog only while ``alive(max_age_s)`` holds.

    ``alive`` tells whether the kiosk's frame and decision loops both made progress within
    ``max_age_s``; when one hangs, the pings stop and systemd restarts the service.
    """

    def loop(stop: threading.Event) -> None:
        while not stop.wait(interval_s):
            if alive(interval_s * 2):
                notify("WATCHDOG=1")
            else:
                log.error("a kiosk loop stopped making progress: not pinging the watchdog")

    return loop
