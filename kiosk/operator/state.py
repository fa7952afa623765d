"""What operators set at run time, kept in ``<state_dir>/operator-state.json`` across restarts.

Lockdown and the fever threshold are written durably (a temporary file, fsync, rename, fsync
of the directory) before an operator's action is acknowledged, and read back before the first
decision. Emergency open is saved too but never restored: a kiosk that restarts unattended
must not come back held open (the fire-alarm input, read at start, releases the gate by
itself). A file that exists but cannot be read or trusted fails secure: the caller starts in
lockdown and says why (see docs/operator-state.md).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kiosk.config import FEVER_MAX_C, FEVER_MIN_C
from kiosk.mqtt import boundedjson
from kiosk.store.durable import write_whole

log = logging.getLogger(__name__)

FILE_NAME = "operator-state.json"
VERSION = 1
MAX_BYTES = 4096
_KEYS = frozenset({"v", "lockdown", "emergency_open", "fever_threshold_c", "config_fever_c"})


class OperatorStateError(OSError):
    """The saved operator state cannot be read, trusted or written; the text says why."""


@dataclass(frozen=True)
class OperatorState:
    """The settings an operator changed at run time (None: the config's value is in force).

    ``config_fever_c`` is the configured threshold when the operator set theirs: if the
    config has changed since, the newer configured value wins.
    """

    lockdown: bool = False
    emergency_open: bool = False
    fever_threshold_c: float | None = None
    config_fever_c: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON document, with its version."""
        return {
            "v": VERSION,
            "lockdown": self.lockdown,
            "emergency_open": self.emergency_open,
            "fever_threshold_c": self.fever_threshold_c,
            "config_fever_c": self.config_fever_c,
        }


def parse(raw: bytes) -> OperatorState:
    """The state in ``raw``; OperatorStateError (saying why) for anything not exactly right."""
    try:
        document = boundedjson.loads(raw, max_bytes=MAX_BYTES, max_depth=2)
    except ValueError as exc:
        raise OperatorStateError(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict) or set(document) != _KEYS:
        raise OperatorStateError(f"expected exactly the keys {sorted(_KEYS)}")
    if document["v"] != VERSION or isinstance(document["v"], bool):
        raise OperatorStateError(f"version {document['v']!r} is not {VERSION}")
    for key in ("lockdown", "emergency_open"):
        if not isinstance(document[key], bool):
            raise OperatorStateError(f"{key} must be true or false")
    for key in ("fever_threshold_c", "config_fever_c"):
        value = document[key]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OperatorStateError(f"{key} must be a number or null")
        if key == "fever_threshold_c" and not FEVER_MIN_C <= value <= FEVER_MAX_C:
            raise OperatorStateError(f"{key} {value} is outside {FEVER_MIN_C}..{FEVER_MAX_C} °C")
    return OperatorState(
        lockdown=document["lockdown"],
        emergency_open=document["emergency_open"],
        fever_threshold_c=_float(document["fever_threshold_c"]),
        config_fever_c=_float(document["config_fever_c"]),
    )


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


class OperatorStateStore:
    """The operator state file in ``directory``; one writer (the kiosk process)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME

    def load(self) -> OperatorState | None:
        """The saved state; None when nothing was ever saved. OperatorStateError if the file
        exists but cannot be read or is not a valid state (the caller must fail secure)."""
        try:
            with self.path.open("rb") as file:
                raw = file.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise OperatorStateError(f"{self.path}: cannot read: {exc.strerror}") from None
        try:
            return parse(raw)
        except OperatorStateError as exc:
            raise OperatorStateError(f"{self.path}: {exc}") from None

    def save(self, state: OperatorState) -> None:
        """Replace the file atomically and durably; OperatorStateError if that failed (the
        old file is then still whole)."""
        data = json.dumps(state.as_dict(), separators=(",", ":")).encode()
        try:
            write_whole(self.path, data)
        except OSError as exc:
            raise OperatorStateError(
                f"{self.path}: cannot save the operator state: {exc.strerror or exc}"
            ) from None


@dataclass(frozen=True)
class Restored:
    """What to put back at start: the state in force, and why it is not what was saved.

    ``problem`` is set when the file was unusable: the state is then lockdown (fail secure).
    """

    state: OperatorState
    problem: str | None = None


def restore(store: OperatorStateStore, configured_fever_c: float) -> Restored:
    """The operator state to start with (before the first decision), logging what it decides:
    lockdown and the fever threshold come back, emergency open never does, and an unusable
    file means lockdown."""
    try:
        saved = store.load()
    except OperatorStateError as exc:
        problem = f"lockdown on until an operator ends it: saved state unusable: {exc}"
        log.error("operator state: %s", problem)
        return Restored(OperatorState(lockdown=True), problem)
    if saved is None:
        return Restored(OperatorState())
    if saved.lockdown:
        log.warning("lockdown restored: it was on when the kiosk stopped")
    if saved.emergency_open:
        log.warning("emergency open was on when the kiosk stopped: not restored")
    state = replace(saved, emergency_open=False)
    threshold = saved.fever_threshold_c
    if threshold is not None and saved.config_fever_c != configured_fever_c:
        log.warning(
            "fever threshold %.2f °C set by an operator not restored: the configured"
            " threshold changed since, to %.2f °C",
            threshold,
            configured_fever_c,
        )
        state = replace(state, fever_threshold_c=None, config_fever_c=None)
    elif threshold is not None:
        log.info("fever threshold %.2f °C restored (set by an operator)", threshold)
    return Restored(state)
