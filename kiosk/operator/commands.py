"""Operator commands: check a message from the ``cmd`` topic, then hand it to the kiosk's
:class:`~kiosk.operator.actions.Operator`, which logs it and only then carries it out.

Checks run in a fixed order and the first failure wins; each has a stable :class:`CommandError`:

1. ``malformed``: not a command (:func:`kiosk.mqtt.protocol.decode_command`), or an id that is empty
   or longer than :data:`MAX_ID_CHARS`;
2. ``unsigned`` / ``bad_signature``: only when a command key is configured (HMAC-SHA256);
3. ``expired`` / ``not_yet_valid`` / ``too_long_lived``: the validity window, against ``now_ms``
   with :data:`CLOCK_SKEW_MS` allowance and at most :data:`MAX_LIFETIME_MS`;
4. ``replayed``: the id was seen before (also before a restart, via ``seen_ids``);
5. ``unknown_command``, then ``bad_arguments`` (exact argument names, types and bounds);
6. ``not_allowed``: ``emergency_open`` or ``test_relay`` (both release the gate) while
   ``[mqtt] allow_emergency_open`` is false;
7. the operator's own refusals (:class:`~kiosk.operator.actions.ActionError`, the same codes):
   ``log_unavailable`` (the command could not be logged, so it is not carried out),
   ``not_allowed`` (the relay test in lockdown), ``failed`` (e.g. a bad allowlist file; the old
   one stays).

A command's id is used up once it is logged; refused commands leave it free for a fixed retry.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kiosk.mqtt.protocol import (
    Command,
    ProtocolError,
    command_signature,
    decode_command,
    encode_result,
)
from kiosk.operator.actions import (
    Action,
    ActionError,
    ActionRequest,
    ArgumentError,
    Operator,
    Source,
    request,
)
from kiosk.store.eventlog import EventLogError

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


class _RefusedError(Exception):
    """Internal: a check failed; carries the outcome to return."""

    def __init__(self, error: CommandError, message: str) -> None:
        super().__init__(message)
        self.error, self.message = error, message


class CommandProcessor:
    """Checks commands, hands each to the kiosk's operator (which logs it, then acts), and
    remembers their ids against replays.

    Not thread-safe: call :meth:`handle` from one thread (the sync loop).

    Usage::

        processor = CommandProcessor(kiosk, kiosk_id="k1", key=None,
                                     allow_emergency_open=False, now_ms=wall_ms)
        outcome = processor.handle(message.payload)
        uplink.publish(Leaf.RESULT, processor.encode(outcome))

    :param operator: carries the commands out (the kiosk).
    :param kiosk_id: this kiosk's id, for the result payload.
    :param key: HMAC key; when set (not empty), unsigned or wrongly signed commands are refused.
    :param allow_emergency_open: accept ``emergency_open`` and ``test_relay``.
    :param now_ms: wall clock in milliseconds since the epoch.
    :param seen_ids: ids of commands logged before a restart, oldest first.
    :param load_seen_ids: instead of ``seen_ids`` when the log could not be read at start:
        reads them at the first command (raising EventLogError while the log is still down,
        which refuses the command as ``log_unavailable``).
    :param remember: how many recent ids to keep; older ids are forgotten.
    """

    def __init__(
        self,
        operator: Operator,
        *,
        kiosk_id: str,
        key: bytes | None,
        allow_emergency_open: bool,
        now_ms: Callable[[], int],
        seen_ids: Iterable[str] = (),
        load_seen_ids: Callable[[], Iterable[str]] | None = None,
        remember: int = 10_000,
    ) -> None:
        if remember < 1:
            raise ValueError("remember must be at least 1")
        self._operator = operator
        self._kiosk_id = kiosk_id
        self._key = key or None
        self._allow_emergency_open = allow_emergency_open
        self._now_ms = now_ms
        self._load_seen_ids = load_seen_ids
        self._remember = remember
        self._seen: dict[str, None] = {}  # insertion-ordered: the oldest id comes first
        for command_id in seen_ids:
            self._remember_id(command_id)

    def handle(self, payload: bytes) -> CommandOutcome:
        """Check, log and carry out one command message; never raises for a bad message."""
        command: Command | None = None
        try:
            command = self._decode(payload)
            outcome = self._run(command, self._check(command))
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

    def _check(self, command: Command) -> ActionRequest:
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
        self._load_pending_ids()
        if command.id in self._seen:
            raise _RefusedError(
                CommandError.REPLAYED, "a command with this id was already received"
            )
        try:
            name = Action(command.command)
        except ValueError:
            known = ", ".join(Action)
            raise _RefusedError(
                CommandError.UNKNOWN_COMMAND, f"unknown command; known: {known}"
            ) from None
        try:
            checked = request(
                name,
                command.args,
                operator=Source.MQTT.value,
                source=Source.MQTT,
                request_id=command.id,
            )
        except ArgumentError as exc:
            raise _RefusedError(CommandError.BAD_ARGUMENTS, f"{name}: {exc}") from None
        if name in (Action.EMERGENCY_OPEN, Action.TEST_RELAY) and not self._allow_emergency_open:
            raise _RefusedError(
                CommandError.NOT_ALLOWED,
                f"{name} is disabled on this kiosk ([mqtt] allow_emergency_open)",
            )
        return checked

    def _load_pending_ids(self) -> None:
        """The ids used before this start, once the log can be read (see ``load_seen_ids``)."""
        if self._load_seen_ids is None:
            return
        try:
            used = list(self._load_seen_ids())
        except EventLogError as exc:
            raise _RefusedError(
                CommandError.LOG_UNAVAILABLE,
                f"not carried out: the ids already used cannot be read: {exc}",
            ) from None
        self._load_seen_ids = None
        for command_id in used:
            self._remember_id(command_id)

    def _run(self, command: Command, checked: ActionRequest) -> CommandOutcome:
        outcome = self._operator.perform(checked)
        if outcome.error != ActionError.LOG_UNAVAILABLE:  # logged: the id is used up
            self._remember_id(command.id)
        error = None if outcome.error is None else CommandError(outcome.error)
        return CommandOutcome(command, error, outcome.message, outcome.data)

    def _remember_id(self, command_id: str) -> None:
        self._seen.pop(command_id, None)
        self._seen[command_id] = None
        while len(self._seen) > self._remember:
            del self._seen[next(iter(self._seen))]
