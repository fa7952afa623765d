"""Operator commands: validate a message from the ``cmd`` topic, log it, then carry it out.

Checks run in a fixed order and the first failure wins; each has a stable :class:`CommandError`:

1. ``malformed``: not a command (:func:`kiosk.mqtt.protocol.decode_command`), or an id that is empty
   or longer than :data:`MAX_ID_CHARS`;
2. ``unsigned`` / ``bad_signature``: only when a command key is configured (HMAC-SHA256);
3. ``expired`` / ``not_yet_valid`` / ``too_long_lived``: the validity window, against ``now_ms``
   with :data:`CLOCK_SKEW_MS` allowance and at most :data:`MAX_LIFETIME_MS`;
4. ``replayed``: the id was seen before (also before a restart, via ``seen_ids``);
5. ``unknown_command``, then ``bad_arguments`` (exact argument names, types and bounds);
6. ``not_allowed``: ``emergency_open`` while ``[mqtt] allow_emergency_open`` is false;
7. ``log_unavailable``: the command could not be logged, so it is not carried out;
8. ``failed``: the action raised an error (e.g. a bad allowlist file; the old one stays).

A command's id is used up once it is logged; refused commands leave it free for a fixed retry.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from kiosk.config import FEVER_MAX_C, FEVER_MIN_C
from kiosk.credentials import AllowlistError
from kiosk.mqtt.protocol import (
    Command,
    CommandName,
    ProtocolError,
    command_signature,
    decode_command,
    encode_result,
)
from kiosk.operator.state import OperatorStateError
from kiosk.store.eventlog import EventLogError, LogWriteError

log = logging.getLogger(__name__)

CLOCK_SKEW_MS = 60_000  # a command may be issued this far in our future (unsynced clocks)
MAX_LIFETIME_MS = 24 * 3600 * 1000  # longer-lived commands would outlast the replay memory
MAX_ID_CHARS = 128  # keeps the replay memory small


class CommandError(StrEnum):
    """Why a command was not carried out: stable codes for the ``result`` topic."""

    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    TOO_LONG_LIVED = "too_long_lived"
    REPLAYED = "replayed"
    UNKNOWN_COMMAND = "unknown_command"
    BAD_ARGUMENTS = "bad_arguments"
    NOT_ALLOWED = "not_allowed"
    LOG_UNAVAILABLE = "log_unavailable"
    FAILED = "failed"


class KioskActions(Protocol):
    """What commands can do to the kiosk."""

    def record_command(self, command: Command) -> None:
        """Log the accepted command as an event; raise LogWriteError if it is not durable."""
        ...

    def set_lockdown(self, on: bool) -> None:
        """Refuse everyone (on) or return to normal (off)."""
        ...

    def emergency_open(self, on: bool) -> None:
        """Hold the gate released (on) or return to normal (off)."""
        ...

    def reload_allowlist(self) -> int:
        """Read the allowlist file again; the badge count, or AllowlistError (old list kept)."""
        ...

    def set_fever_threshold(self, celsius: float) -> None:
        """Use this fever threshold from now on."""
        ...

    def resend_from(self, seq: int) -> None:
        """Send every logged event from ``seq`` on again."""
        ...


@dataclass(frozen=True)
class CommandOutcome:
    """What became of one command message: ``error`` is None when it was carried out."""

    command: Command | None
    error: CommandError | None
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The command was carried out."""
        return self.error is None


class ArgumentError(ValueError):
    """A command's arguments are missing, extra, of the wrong type or out of bounds."""


Action = Callable[[KioskActions], tuple[str, dict[str, Any]]]
"""A validated command, ready to run: returns the operator message and the result data."""

Handler = Callable[[Mapping[str, Any]], Action]
"""Validates a command's arguments (raising ArgumentError) and returns its action."""


def _expect(args: Mapping[str, Any], *names: str) -> None:
    if set(args) != set(names):
        wanted = ", ".join(names) or "none"
        raise ArgumentError(f"arguments must be exactly: {wanted} (got {sorted(args) or 'none'})")


def _flag(args: Mapping[str, Any]) -> bool:
    _expect(args, "on")
    if not isinstance(args["on"], bool):
        raise ArgumentError("'on' must be true or false")
    return args["on"]


def _lockdown(args: Mapping[str, Any]) -> Action:
    on = _flag(args)

    def act(kiosk: KioskActions) -> tuple[str, dict[str, Any]]:
        kiosk.set_lockdown(on)
        return f"lockdown {'on' if on else 'off'}", {"lockdown": on}

    return act


def _emergency_open(args: Mapping[str, Any]) -> Action:
    on = _flag(args)

    def act(kiosk: KioskActions) -> tuple[str, dict[str, Any]]:
        kiosk.emergency_open(on)
        return f"emergency open {'on' if on else 'off'}", {"emergency_open": on}

    return act


def _reload_allowlist(args: Mapping[str, Any]) -> Action:
    _expect(args)

    def act(kiosk: KioskActions) -> tuple[str, dict[str, Any]]:
        count = kiosk.reload_allowlist()
        return f"allowlist reloaded: {count} badges", {"badges": count}

    return act


def _set_fever_threshold(args: Mapping[str, Any]) -> Action:
    _expect(args, "celsius")
    value = args["celsius"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArgumentError("'celsius' must be a number")
    if not FEVER_MIN_C <= value <= FEVER_MAX_C:  # also refuses NaN and infinities
        raise ArgumentError(f"'celsius' must be from {FEVER_MIN_C:.1f} to {FEVER_MAX_C:.1f} °C")
    celsius = float(value)

    def act(kiosk: KioskActions) -> tuple[str, dict[str, Any]]:
        kiosk.set_fever_threshold(celsius)
        return f"fever threshold set to {celsius:g} °C", {"fever_threshold_c": celsius}

    return act


def _resend(args: Mapping[str, Any]) -> Action:
    _expect(args, "from_seq")
    seq = args["from_seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ArgumentError("'from_seq' must be a whole number of at least 1")

    def act(kiosk: KioskActions) -> tuple[str, dict[str, Any]]:
        kiosk.resend_from(seq)
        return f"sending events again from seq {seq}", {"from_seq": seq}

    return act


HANDLERS: Mapping[CommandName, Handler] = {
    CommandName.LOCKDOWN: _lockdown,
    CommandName.EMERGENCY_OPEN: _emergency_open,
    CommandName.RELOAD_ALLOWLIST: _reload_allowlist,
    CommandName.SET_FEVER_THRESHOLD: _set_fever_threshold,
    CommandName.RESEND: _resend,
}


class _RefusedError(Exception):
    """Internal: a check failed; carries the outcome to return."""

    def __init__(self, error: CommandError, message: str) -> None:
        super().__init__(message)
        self.error, self.message = error, message


class CommandProcessor:
    """Checks, logs and carries out commands, and remembers their ids against replays.

    Not thread-safe: call :meth:`handle` from one thread (the sync loop).

    Usage::

        processor = CommandProcessor(kiosk, kiosk_id="k1", key=None,
                                     allow_emergency_open=False, now_ms=wall_ms)
        outcome = processor.handle(message.payload)
        uplink.publish(Leaf.RESULT, processor.encode(outcome))

    :param actions: the kiosk the commands act on.
    :param kiosk_id: this kiosk's id, for the result payload.
    :param key: HMAC key; when set (not empty), unsigned or wrongly signed commands are refused.
    :param allow_emergency_open: accept ``emergency_open``.
    :param now_ms: wall clock in milliseconds since the epoch.
    :param seen_ids: ids of commands logged before a restart, oldest first.
    :param remember: how many recent ids to keep; older ids are forgotten.
    """

    def __init__(
        self,
        actions: KioskActions,
        *,
        kiosk_id: str,
        key: bytes | None,
        allow_emergency_open: bool,
        now_ms: Callable[[], int],
        seen_ids: Iterable[str] = (),
        remember: int = 10_000,
    ) -> None:
        if remember < 1:
            raise ValueError("remember must be at least 1")
        self._actions = actions
        self._kiosk_id = kiosk_id
        self._key = key or None
        self._allow_emergency_open = allow_emergency_open
        self._now_ms = now_ms
        self._remember = remember
        self._seen: dict[str, None] = {}  # insertion-ordered: the oldest id comes first
        for command_id in seen_ids:
            self._remember_id(command_id)

    def handle(self, payload: bytes) -> CommandOutcome:
        """Check, log and carry out one command message; never raises for a bad message."""
        command: Command | None = None
        try:
            command = self._decode(payload)
            action = self._check(command)
            outcome = self._run(command, action)
        except _RefusedError as refusal:
            outcome = CommandOutcome(command, refusal.error, refusal.message)
        if outcome.ok:
            log.info("command carried out: %s", outcome.message)
        else:
            log.warning("command not carried out: %s: %s", outcome.error, outcome.message)
        return outcome

    def encode(self, outcome: CommandOutcome) -> bytes:
        """The ``result`` payload for ``outcome``."""
        command_id = outcome.command.id if outcome.command else None
        return encode_result(
            self._kiosk_id, command_id, outcome.error, outcome.message, data=outcome.data
        )

    def _decode(self, payload: bytes) -> Command:
        try:
            command = decode_command(payload)
        except ProtocolError as exc:
            raise _RefusedError(CommandError.MALFORMED, str(exc)) from None
        if not 0 < len(command.id) <= MAX_ID_CHARS:
            raise _RefusedError(
                CommandError.MALFORMED, f"id must be 1 to {MAX_ID_CHARS} characters"
            )
        return command

    def _check(self, command: Command) -> Action:
        if self._key is not None:
            if command.sig is None:
                raise _RefusedError(
                    CommandError.UNSIGNED, "this kiosk accepts signed commands only"
                )
            expected = command_signature(self._key, command).encode()
            if not hmac.compare_digest(command.sig.encode(), expected):
                raise _RefusedError(CommandError.BAD_SIGNATURE, "the signature does not match")
        now = self._now_ms()
        if command.expires_at_ms <= now:
            raise _RefusedError(CommandError.EXPIRED, "the command has expired")
        if command.issued_at_ms > now + CLOCK_SKEW_MS:
            raise _RefusedError(CommandError.NOT_YET_VALID, "the command is issued in the future")
        if command.expires_at_ms - command.issued_at_ms > MAX_LIFETIME_MS:
            raise _RefusedError(CommandError.TOO_LONG_LIVED, "a command may live 24 hours at most")
        if command.id in self._seen:
            raise _RefusedError(
                CommandError.REPLAYED, "a command with this id was already received"
            )
        try:
            name = CommandName(command.command)
        except ValueError:
            known = ", ".join(CommandName)
            raise _RefusedError(
                CommandError.UNKNOWN_COMMAND, f"unknown command; known: {known}"
            ) from None
        try:
            action = HANDLERS[name](command.args)
        except ArgumentError as exc:
            raise _RefusedError(CommandError.BAD_ARGUMENTS, f"{name}: {exc}") from None
        if name is CommandName.EMERGENCY_OPEN and not self._allow_emergency_open:
            raise _RefusedError(
                CommandError.NOT_ALLOWED,
                "emergency_open is disabled on this kiosk ([mqtt] allow_emergency_open)",
            )
        return action

    def _run(self, command: Command, action: Action) -> CommandOutcome:
        try:
            self._actions.record_command(command)
        except LogWriteError as exc:
            raise _RefusedError(
                CommandError.LOG_UNAVAILABLE, f"not carried out: cannot log the command: {exc}"
            ) from None
        self._remember_id(command.id)
        try:
            message, data = action(self._actions)
        except (AllowlistError, EventLogError, OperatorStateError) as exc:
            raise _RefusedError(CommandError.FAILED, f"{command.command} failed: {exc}") from None
        except Exception as exc:  # a device or a bug: answered as a failure, never a crash
            error = type(exc).__name__
            raise _RefusedError(CommandError.FAILED, f"{command.command} failed: {error}") from None
        return CommandOutcome(command, None, message, data)

    def _remember_id(self, command_id: str) -> None:
        self._seen.pop(command_id, None)
        self._seen[command_id] = None
        while len(self._seen) > self._remember:
            del self._seen[next(iter(self._seen))]
