"""Run a process in a group limited to a share of one CPU core and an amount of memory.

Three ways, tried in order:

* **cgroup v1** (``/sys/fs/cgroup/cpu`` and ``/sys/fs/cgroup/memory``, as root): a new group
  under this process's own group in each hierarchy, ``cpu.cfs_quota_us`` of
  ``cpu.cfs_period_us`` and ``memory.limit_in_bytes``; its peak is ``memory.max_usage_in_bytes``.
* **cgroup v2** (``/sys/fs/cgroup/cgroup.controllers``): a new group beside this process with
  ``cpu.max`` and ``memory.max``; its peak is ``memory.peak`` (kernel 5.19+).
* **systemd-run** (a machine booted with systemd, as on a Raspberry Pi):
  ``systemd-run --scope -p CPUQuota=N% -p MemoryMax=…``.

Where none is allowed :func:`open_group` raises :class:`LimitUnavailableError` saying why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


class LimitUnavailableError(RuntimeError):
    """No way to limit a process's CPU and memory on this machine, or not as this user."""


class Group:
    """A CPU- and memory-limited group that processes join (see :func:`open_group`).

    :param kind: how the limit is made: ``cgroup v1``, ``cgroup v2`` or ``systemd-run``.
    :param directories: the group's directories, one per hierarchy (none for systemd-run).
    :param prefix: what to put before a command so that it runs inside the limit.
    :param peak_file: the file holding the group's peak memory in bytes, if the kernel keeps one.
    """

    def __init__(
        self,
        kind: str,
        directories: Sequence[Path],
        prefix: Sequence[str] = (),
        peak_file: Path | None = None,
    ) -> None:
        self.kind = kind
        self.directories = list(directories)
        self.prefix = list(prefix)
        self.peak_file = peak_file

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as a command that runs inside the limit."""
        return [*self.prefix, *argv]

    def join(self) -> None:
        """Move the calling process into the group (a ``preexec_fn`` for subprocess)."""
        for directory in self.directories:
            (directory / "cgroup.procs").write_text("0")

    def peak_memory_bytes(self) -> int | None:
        """The group's peak memory (page cache included), or None when the kernel keeps none."""
        if self.peak_file is None:
            return None
        try:
            return int(self.peak_file.read_text())
        except (OSError, ValueError):
            return None

    def throttled(self) -> dict[str, int]:
        """The CPU controller's counts: periods, periods throttled (empty for systemd-run)."""
        for directory in self.directories:
            with contextlib.suppress(OSError):
                lines = (directory / "cpu.stat").read_text().splitlines()
                stat = dict(line.split() for line in lines)
                return {key: int(stat[key]) for key in ("nr_periods", "nr_throttled")}
        return {}

    def close(self) -> None:
        """Remove the group's directories (its processes must have ended)."""
        for directory in self.directories:
            with contextlib.suppress(OSError):
                directory.rmdir()


def own_cgroup(controller: str, proc_cgroup: str | None = None) -> str | None:
    """This process's group in the v1 hierarchy of ``controller`` ("" for v2), or None."""
    text = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return None


@contextlib.contextmanager
def open_group(name: str, cpu_percent: float, memory_bytes: int) -> Iterator[Group]:
    """A group named ``name`` limited to ``cpu_percent`` of one core and ``memory_bytes``."""
    reasons = []
    for make in (_cgroup_v1, _cgroup_v2, _systemd_run):
        try:
            group = make(name, cpu_percent, memory_bytes)
        except LimitUnavailableError as exc:
            reasons.append(str(exc))
            continue
        try:
            yield group
        finally:
            group.close()
        return
    raise LimitUnavailableError("; ".join(reasons))


def _cgroup_v1(name: str, cpu_percent: float, memory_bytes: int) -> Group:
    cpu_path, memory_path = own_cgroup("cpu"), own_cgroup("memory")
    cpu_root, memory_root = CGROUP / "cpu", CGROUP / "memory"
    if cpu_path is None or memory_path is None or not (cpu_root / "cpu.cfs_quota_us").exists():
        raise LimitUnavailableError("cgroup v1: no cpu and memory hierarchies under /sys/fs/cgroup")
    cpu = cpu_root / cpu_path.lstrip("/") / name
    memory = memory_root / memory_path.lstrip("/") / name
    try:
        cpu.mkdir()
        memory.mkdir()
        (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(round(PERIOD_US * cpu_percent / 100)))
        (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
    except OSError as exc:
        Group("", [cpu, memory]).close()
        raise LimitUnavailableError(f"cgroup v1: cannot make a group ({exc}; run as root)") from exc
    return Group("cgroup v1", [cpu, memory], peak_file=memory / "memory.max_usage_in_bytes")


def _cgroup_v2(name: str, cpu_percent: float, memory_bytes: int) -> Group:
    own = own_cgroup("")
    if own is None or not (CGROUP / "cgroup.controllers").exists():
        raise LimitUnavailableError("cgroup v2: /sys/fs/cgroup is not a unified hierarchy")
    group = CGROUP / own.lstrip("/") / name
    try:
        group.mkdir()
        (group / "cpu.max").write_text(f"{round(PERIOD_US * cpu_percent / 100)} {PERIOD_US}")
        (group / "memory.max").write_text(str(memory_bytes))
    except OSError as exc:
        Group("", [group]).close()
        raise LimitUnavailableError(
            f"cgroup v2: cannot make a group with cpu and memory limits under {own} ({exc}; "
            "it needs root or a delegated group with the cpu and memory controllers enabled)"
        ) from exc
    return Group("cgroup v2", [group], peak_file=group / "memory.peak")


def _systemd_run(name: str, cpu_percent: float, memory_bytes: int) -> Group:
    if shutil.which("systemd-run") is None or not Path("/run/systemd/system").is_dir():
        raise LimitUnavailableError("systemd-run: this machine was not booted with systemd")
    prefix = ["systemd-run", "--scope", "--quiet", f"--unit={name}"]
    if os.geteuid() != 0:
        prefix.append("--user")
    prefix += ["-p", f"CPUQuota={cpu_percent:g}%", "-p", f"MemoryMax={memory_bytes}", "--"]
    return Group("systemd-run", [], prefix=prefix)
