"""The operator actions, defined once: their names, their arguments, a request and its outcome.

The same vocabulary serves the MQTT ``cmd`` topic and the status page's buttons: both build an
:class:`ActionRequest` and hand it to one :class:`Operator`, which logs the request as a
``command`` event and only then acts (:meth:`Operator.perform`). It imports nothing but the
standard library and the config, so that the status page's child process can use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from kiosk.config import FEVER_MAX_C, FEVER_MIN_C


class Action(StrEnum):
    """Everything an operator can do to a running kiosk (the names on the ``cmd`` topic)."""

    EMERGENCY_OPEN = "emergency_open"  # args: {"on": bool}
    LOCKDOWN = "lockdown"  # args: {"on": bool}
    RELOAD_ALLOWLIST = "reload_allowlist"  # args: {}
    SET_FEVER_THRESHOLD = "set_fever_threshold"  # args: {"celsius": float}
    RESEND = "resend"  # args: {"from_seq": int}: send every event from this seq again
    TEST_RELAY = "test_relay"  # args: {}: release the turnstile once, as for a person


class Source(StrEnum):
    """Where a request came from (logged with it)."""

    MQTT = "mqtt"
    WEB = "web"


class ActionError(StrEnum):
    """Why a request was not carried out (the same codes as the ``result`` topic's)."""

    LOG_UNAVAILABLE = "log_unavailable"  # the request could not be logged, so nothing was done
    BAD_ARGUMENTS = "bad_arguments"  # a request built without :func:`request`'s check
    NOT_ALLOWED = "not_allowed"  # refused as things are (e.g. the relay test in lockdown)
    FAILED = "failed"  # the action raised an error (a bad allowlist file, a device)


class ArgumentError(ValueError):
    """An action's arguments are missing, extra, of the wrong type or out of bounds."""


@dataclass(frozen=True)
class ActionRequest:
    """One validated request: build it with :func:`request`."""

    action: Action
    args: Mapping[str, Any]
    operator: str
    source: Source
    request_id: str


@dataclass(frozen=True)
class ActionOutcome:
    """What became of a request: ``error`` (an :class:`ActionError` value) is None when it
    was carried out."""

    message: str
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The action was carried out."""
        return self.error is None


class Operator(Protocol):
    """Carries out requests: logs each as a ``command`` event, then acts."""

    def perform(self, request: ActionRequest) -> ActionOutcome:
        """Log the request durably, then act; never raises for a refusal or a fault."""
        ...


def request(
    action: Action | str,
    args: Mapping[str, Any],
    *,
    operator: str,
    source: Source,
    request_id: str,
) -> ActionRequest:
    """A request with its arguments checked; raises :class:`ArgumentError` (or ValueError
    for an unknown action name) with a sentence an operator can act on."""
    name = Action(action)
    return ActionRequest(name, check_arguments(name, args), operator, source, request_id)


def check_arguments(action: Action, args: Mapping[str, Any]) -> dict[str, Any]:
    """``action``'s arguments, checked and normalised (a whole-number threshold becomes a
    float); raises :class:`ArgumentError`."""
    return _ARGUMENTS[action](args)


def _expect(args: Mapping[str, Any], *names: str) -> None:
    if set(args) != set(names):
        wanted = ", ".join(names) or "none"
        raise ArgumentError(f"arguments must be exactly: {wanted} (got {sorted(args) or 'none'})")


def _none(args: Mapping[str, Any]) -> dict[str, Any]:
    _expect(args)
    return {}


def _flag(args: Mapping[str, Any]) -> dict[str, Any]:
    _expect(args, "on")
    if not isinstance(args["on"], bool):
        raise ArgumentError("'on' must be true or false")
    return {"on": args["on"]}


_FEVER_RANGE = f"{FEVER_MIN_C:.1f} to {FEVER_MAX_C:.1f} °C"


def _celsius(args: Mapping[str, Any]) -> dict[str, Any]:
    _expect(args, "celsius")
    value = args["celsius"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ArgumentError(f"'celsius' must be a number from {_FEVER_RANGE}")
    if not FEVER_MIN_C <= value <= FEVER_MAX_C:
        raise ArgumentError(f"'celsius' must be from {_FEVER_RANGE}")
    return {"celsius": float(value)}


def _from_seq(args: Mapping[str, Any]) -> dict[str, Any]:
    _expect(args, "from_seq")
    seq = args["from_seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq < 2**63:
        raise ArgumentError("'from_seq' must be a whole number of at least 1")
    return {"from_seq": seq}


_ARGUMENTS = {
    Action.LOCKDOWN: _flag,
    Action.EMERGENCY_OPEN: _flag,
    Action.RELOAD_ALLOWLIST: _none,
    Action.SET_FEVER_THRESHOLD: _celsius,
    Action.RESEND: _from_seq,
    Action.TEST_RELAY: _none,
}
