"""Wiring: config → event log, credentials, hardware → a ready :class:`~kiosk.engine.Kiosk`."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kiosk.clock import clock_is_synchronised
from kiosk.config import KioskConfig
from kiosk.credentials import Allowlist, AllowlistError, parse_allowlist
from kiosk.engine import Kiosk
from kiosk.events import EventType
from kiosk.hardware import build_hardware
from kiosk.privacy import Pseudonymizer, load_or_create_salt
from kiosk.simulation import Scene
from kiosk.store import EventLog, LogWriteError

log = logging.getLogger(__name__)


class GateEventRecorder:
    """Logs what the gate's inputs report: passages and fire-alarm changes."""

    def __init__(self, event_log: EventLog) -> None:
        self._event_log = event_log

    def passage(self) -> None:
        """The passage sensor saw someone go through."""
        self._append(EventType.PASSAGE, {})

    def fire_alarm(self, active: bool) -> None:
        """The fire-alarm input changed; the gate already released or re-locked itself."""
        log.warning("fire alarm %s", "active: gate released" if active else "cleared")
        self._append(EventType.FIRE_ALARM, {"active": active})

    def _append(self, event_type: EventType, data: dict[str, bool]) -> None:
        try:
            self._event_log.append(event_type.value, data)
        except LogWriteError as exc:
            log.error("could not log %s: %s", event_type.value, exc)


def load_allowlist(config: KioskConfig) -> Allowlist:
    """Read the configured allowlist; a missing or bad file raises AllowlistError."""
    path = Path(config.credentials.allowlist)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AllowlistError(f"{path}: cannot read the allowlist: {exc.strerror}") from None
    return parse_allowlist(text, str(path))


@contextlib.contextmanager
def open_kiosk(
    config: KioskConfig,
    *,
    simulate: bool = False,
    scene: Scene | None = None,
    boot_id: str | None = None,
    pin_factory: Any = None,
) -> Iterator[Kiosk]:
    """Open the log and the devices for ``config`` and yield a kiosk; close all on exit.

    On exit, by any path (return, exception, SIGTERM turned into an exception),
    the relay is released to its safe, de-energised state and the log closed.
    """
    allowlist = load_allowlist(config)
    state_dir = Path(config.kiosk.state_dir)
    pseudonymizer = Pseudonymizer(load_or_create_salt(config.credentials.subject_salt, state_dir))
    config.log_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        event_log = stack.enter_context(
            EventLog(
                config.log_path,
                boot_id=boot_id or str(uuid.uuid4()),
                capacity=config.log.capacity,
                warn_ratio=config.log.warn_ratio,
                clock_synced=clock_is_synchronised,
            )
        )
        recorder = GateEventRecorder(event_log)
        hardware = build_hardware(
            config,
            simulate=simulate,
            scene=scene,
            on_passage=recorder.passage,
            on_fire_alarm=recorder.fire_alarm,
            pin_factory=pin_factory,
        )
        stack.callback(hardware.close)
        kiosk = Kiosk(
            config,
            hardware,
            event_log,
            allowlist,
            pseudonymizer,
            clock_synced=clock_is_synchronised,
        )
        yield kiosk
