"""Which core runs what: the kiosk keeps the first core for its decisions.

One Python process runs on about one core anyway. ``kiosk run`` pins its own threads to the
first core and runs the status page's process on the others, niced once it serves
(kiosk/run/statuspage.py);
deploy/install.sh keeps every other process off the first core too. Measured in
docs/performance.md: a hammered status page then leaves the decision latency's p95 within
10 % (on a VM whose host is quiet).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

WEB_NICENESS = 10  # the status page's process, relative to the kiosk


def online_cpus() -> list[int]:
    """The machine's online CPUs, whatever this process happens to be pinned to."""
    try:
        text = Path("/sys/devices/system/cpu/online").read_text(encoding="ascii").strip()
    except OSError:
        return sorted(os.sched_getaffinity(0))
    cpus: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def keep_first_cpu_for_the_gate() -> None:
    """Run this process niced and, on a multi-core Pi, off the first core, which the kiosk's
    decision loop then has to itself.

    Placed from the machine's CPUs, not from the mask this process inherited: a web process
    restarted by an already pinned kiosk would otherwise stay on the gate's core.
    """
    cpus = online_cpus()
    niceness = min(os.getpriority(os.PRIO_PROCESS, 0) + WEB_NICENESS, 19)
    _place_this_process(set(cpus[1:]) if len(cpus) > 1 else None, niceness)


def move_off_the_gate_core(pid: int) -> None:
    """Move the process ``pid``, just started (one thread, whose later threads inherit its
    mask), off the first core at once: a page restarted by a pinned kiosk must not spend its
    start-up on the gate's core. It is niced later, once it serves (a niced start-up behind
    busy neighbours took longer than a kiosk waits for its page)."""
    cpus = online_cpus()
    if len(cpus) > 1:
        try:
            os.sched_setaffinity(pid, set(cpus[1:]))
        except OSError as exc:  # gone already, or CPUs a container does not allow
            log.debug("could not place process %s: %s", pid, exc)


def give_the_gate_the_first_cpu() -> None:
    """Pin every thread of the kiosk process to the first core (new threads inherit it).

    One Python process runs on about one core anyway; pinned, the decision loop never waits
    for a core taken by the web process, which runs on the others.
    """
    cpus = online_cpus()
    if len(cpus) > 1:
        _place_this_process({cpus[0]}, None)


def _place_this_process(cpus: set[int] | None, niceness: int | None) -> None:
    """Move every thread of this process onto ``cpus`` and give it ``niceness`` (``None``:
    leave as is); threads started later inherit both from the thread that starts them."""
    for task in os.listdir("/proc/self/task"):
        thread_id = int(task)
        try:
            if niceness is not None:
                os.setpriority(os.PRIO_PROCESS, thread_id, niceness)
            if cpus is not None:
                os.sched_setaffinity(thread_id, cpus)
        except OSError as exc:  # a thread that has ended, or CPUs a container does not allow
            log.debug("could not place thread %s: %s", thread_id, exc)
