"""Shared test helpers: a kiosk config in tmp_path (parsed or as a file), polling with a
deadline, a kiosk running on simulated hardware, and an operator's request to a kiosk."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk.config import KioskConfig, parse_config
from kiosk.operator.actions import Action, ActionOutcome, Source, request
from kiosk.run.engine import DecisionRecord, Kiosk
from kiosk.run.runtime import open_kiosk
from kiosk.sensors.simulation import DEMO_ALLOWLIST, Scene

SALT = "test-salt-0123456789abcdef"
POLL_S = 0.005  # between two looks at a condition


def _sections(directory: Path, **sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The raw sections of a valid test config whose files live in ``directory`` (the demo
    allowlist is written there); ``sections`` override keys."""
    allowlist = directory / "allowlist.csv"
    allowlist.write_text(DEMO_ALLOWLIST, encoding="utf-8")
    raw: dict[str, dict[str, Any]] = {
        "kiosk": {"id": "test-1", "site": "lab", "state_dir": str(directory)},
        "credentials": {"allowlist": str(allowlist), "subject_salt": SALT},
        "web": {"enabled": False},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


def make_config(directory: Path, **sections: dict[str, Any]) -> KioskConfig:
    """A valid config whose files live in ``directory``; ``sections`` override keys."""
    return parse_config(_sections(directory, **sections), source="<test>")


def write_config(directory: Path, **sections: dict[str, Any]) -> Path:
    """``directory/kiosk.toml`` holding the config ``make_config`` would give; its path."""
    path = directory / "kiosk.toml"
    path.write_text(toml_text(_sections(directory, **sections)), encoding="utf-8")
    return path


def toml_text(sections: dict[str, dict[str, Any]]) -> str:
    """TOML for flat sections of strings, numbers, booleans and lists of them (JSON's
    spelling of these is valid TOML)."""
    return "".join(
        f"[{name}]\n"
        + "".join(
            f"{key} = {json.dumps(value, ensure_ascii=False)}\n" for key, value in keys.items()
        )
        for name, keys in sections.items()
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds.

    The default is generous on purpose: a passing test returns as soon as the condition holds,
    and only a loaded machine (CI's 2 cores beside other work) comes near it."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(POLL_S)


def holds_for(predicate: Callable[[], bool], seconds: float) -> bool:
    """Whether ``predicate`` stays true, polled for ``seconds``: for a state that must last
    (a relay held open past its pulse), where waiting out the time is the point."""
    deadline = time.monotonic() + seconds
    while predicate():
        if time.monotonic() > deadline:
            return True
        time.sleep(POLL_S)
    return False


class RunningKiosk:
    """A kiosk running its loops in a thread, with its decisions collected in a queue."""

    def __init__(self, kiosk: Kiosk, scene: Scene) -> None:
        self.kiosk = kiosk
        self.scene = scene
        self.decisions: queue.Queue[DecisionRecord] = queue.Queue()
        kiosk.add_observer(self.decisions.put)

    def next_decision(self, timeout: float = 10.0) -> DecisionRecord:
        """The next decision the kiosk makes."""
        try:
            return self.decisions.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no decision within {timeout} s")


@contextlib.contextmanager
def running(
    config: KioskConfig, *, attach: Callable[[Kiosk], None] | None = None, **kwargs: Any
) -> Iterator[RunningKiosk]:
    """Open a simulated kiosk for ``config``, run it in a thread, stop and close it after;
    ``attach`` adds parts (e.g. a status page with short timings) before it runs."""
    scene = Scene()
    with open_kiosk(config, simulate=True, scene=scene, **kwargs) as kiosk:
        if attach is not None:
            attach(kiosk)
        stop = threading.Event()
        thread = threading.Thread(target=kiosk.run, args=(stop,), daemon=True)
        thread.start()
        try:
            yield RunningKiosk(kiosk, scene)
        finally:
            stop.set()
            thread.join(timeout=10)
            assert not thread.is_alive(), "the kiosk did not stop"


def operate(kiosk: Kiosk, action: Action, **args: Any) -> ActionOutcome:
    """Ask ``kiosk`` to carry out ``action`` as an MQTT command would: logged, then done."""
    asked = request(action, args, operator="", source=Source.MQTT, request_id=f"t-{time.time_ns()}")
    return kiosk.perform(asked)


REPO = Path(__file__).resolve().parents[1]


def kill_9_when(child_module: str, directory: Path, ready: Callable[[], bool]) -> None:
    """Run ``python -m child_module directory``, SIGKILL it once ``ready()`` holds; fail the
    test with the child's stderr if it exits first."""
    child = subprocess.Popen(
        [sys.executable, "-m", child_module, str(directory)], cwd=REPO, stderr=subprocess.PIPE
    )
    assert child.stderr is not None  # stderr=PIPE
    try:
        wait_until(lambda: ready() or child.poll() is not None, timeout=60)
        if child.poll() is not None:
            pytest.fail(f"the kiosk exited early: {child.stderr.read().decode()[-2000:]}")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL


def in_ci() -> bool:
    """Whether CI runs the suite: there, a part the machine is meant to have (PostgreSQL, a
    tmpfs) failing is a failure, never a skip."""
    return bool(os.environ.get("CI"))
