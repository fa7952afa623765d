"""A thermometer switched off in the config is not a fault: start event, systemd, state, probe."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from kiosk.run.health import state_document
from kiosk.web.api import problems
from tests.support import make_config, running, wait_until


def ready_status(sock: socket.socket, timeout: float = 20) -> str:
    """The STATUS= text of the READY=1 datagram the kiosk sends systemd."""
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        message = sock.recv(4096).decode()
        if "READY=1" in message:
            return message.split("STATUS=", 1)[1].splitlines()[0]


def test_a_switched_off_thermometer_is_not_reported_degraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    config = make_config(tmp_path, thermometer={"enabled": False})
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        with running(config) as kiosk:
            assert ready_status(sock) == "ready"
            wait_until(lambda: bool(kiosk.kiosk.event_log.recent(5, type="kiosk_started")))
            started = kiosk.kiosk.event_log.recent(5, type="kiosk_started")[0]
            state = state_document(config, kiosk.kiosk.health(), 0)
    assert started.data["degraded"] == []
    assert state["thermometer"] == {
        "ok": True,
        "detail": "disabled in config",
        "ambient_c": None,
        "object_c": None,
    }
    assert problems(state) == []  # /healthz answers 200, not 503 "thermometer: disabled"
