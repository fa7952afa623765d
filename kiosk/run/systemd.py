"""Living under systemd: the sd_notify protocol (READY, STATUS, WATCHDOG, STOPPING), written
out as a datagram to the socket systemd names in ``NOTIFY_SOCKET`` (nothing happens when not
run by systemd), and the stop deadline that ends a stop which hangs before the unit's
``TimeoutStopSec`` does."""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

STOP_DEADLINE_S = 10.0
"""How long ``kiosk run`` may take to stop before it exits anyway: shorter than the unit's
``TimeoutStopSec`` (15 s; tests/test_systemd.py checks), so that the kiosk itself, not
systemd's SIGKILL, releases the relay and says which part hung."""
EX_STOP_HUNG = 70  # sysexits.h EX_SOFTWARE: the stop did not finish on its own
BACKSTOP_S = 3.0  # SIGALRM this long after the deadline, if no Python code could run at all

_STDLIB = sysconfig.get_paths()["stdlib"]


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1\\nSTATUS=…"``) to systemd; False when not under it."""
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(1.0)  # a full notify queue must not stall the caller
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


class StopDeadline:
    """Ends the process when stopping takes longer than ``deadline_s``.

    :meth:`watch` starts a daemon thread that waits for ``stop``. If the process still runs
    ``deadline_s`` later (a part that never returns, a close that waits for ever, an exit that
    waits for a child or for a full stderr), it calls ``make_safe`` (release the relay), logs
    which of ``parts()`` still run and where, and ends the process with status 70. A process
    that ends in time never hears of it. The backstop (SIGALRM, whose default action ends the
    process) fires ``backstop_s`` later still, in case no Python code can run any more.

    :param parts: the threads to report, by the name of the part each one runs.
    :param exit: ends the process (``os._exit``: no clean-up left that could hang again).
    """

    def __init__(
        self,
        deadline_s: float,
        *,
        make_safe: Callable[[], None],
        parts: Callable[[], Mapping[str, threading.Thread]],
        exit: Callable[[int], object] = os._exit,
        backstop_s: float | None = BACKSTOP_S,
    ) -> None:
        if not deadline_s > 0:
            raise ValueError(f"the stop deadline must be positive, not {deadline_s}")
        self.deadline_s = deadline_s
        self._make_safe = make_safe
        self._parts = parts
        self._exit = exit
        self._backstop_s = backstop_s

    def watch(self, stop: threading.Event) -> None:
        """Start counting when ``stop`` is set."""
        counter = threading.Thread(target=self._count, args=(stop,), name="stop-deadline")
        counter.daemon = True  # a process that ends in time does not wait for it
        counter.start()

    def _count(self, stop: threading.Event) -> None:
        stop.wait()
        if self._backstop_s is not None and signal.getsignal(signal.SIGALRM) == signal.SIG_DFL:
            signal.alarm(math.ceil(self.deadline_s + self._backstop_s))
        time.sleep(self.deadline_s)
        self.expire()

    def expire(self) -> None:
        """Release the relay, say what still runs, end the process."""
        try:
            self._make_safe()
            safe = "relay released"
        except Exception as exc:  # the hardware's pull and `kiosk relay-safe` remain
            safe = f"relay NOT released ({type(exc).__name__}: {exc})"
        running = [f"{name} in {where(t)}" for name, t in self._parts().items() if t.is_alive()]
        message = (
            f"stop took longer than {self.deadline_s:g} s; still running: "
            f"{'; '.join(running) or 'nothing the kiosk started (an exit handler)'}; "
            f"{safe}; exiting with status {EX_STOP_HUNG}"
        )
        _within(2.0, lambda: _say(message))
        self._exit(EX_STOP_HUNG)


def where(thread: threading.Thread) -> str:
    """Where ``thread`` is now: its innermost frame outside the standard library."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None and frame.f_code.co_filename.startswith(_STDLIB):
        frame = frame.f_back
    if frame is None:
        return "the standard library"
    path = Path(frame.f_code.co_filename)
    return f"{frame.f_code.co_qualname} ({path.parent.name}/{path.name}:{frame.f_lineno})"


def _say(message: str) -> None:
    log.critical("%s", message)
    notify(f"STATUS={message}")
    for handler in logging.getLogger().handlers:
        handler.flush()


def _within(timeout_s: float, action: Callable[[], None]) -> None:
    """Run ``action`` in a thread of its own and wait for it at most ``timeout_s``: a log
    handler stuck on a full pipe must not keep the process alive."""
    worker = threading.Thread(target=action, name="stop-deadline-report", daemon=True)
    worker.start()
    worker.join(timeout_s)
