"""The kiosk's side of the operator actions: log each request, then carry it out.

:class:`OperatorDesk` is the one place where an operator's request (an MQTT command or a
button on the status page) changes the running kiosk. It keeps what operators set (lockdown,
emergency open, the fever threshold) in the operator state file, saved before the action
takes effect where that is the safe order, and restores it before the first decision.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from kiosk.config import KioskConfig
from kiosk.credentials import Allowlist, AllowlistError
from kiosk.events import EventType, Part
from kiosk.gate import Gate
from kiosk.operator.actions import (
    Action,
    ActionError,
    ActionOutcome,
    ActionRequest,
    ArgumentError,
    Source,
    check_arguments,
)
from kiosk.operator.state import OperatorState, OperatorStateError, OperatorStateStore, restore
from kiosk.store.eventlog import Event, EventLogError, LogWriteError

log = logging.getLogger(__name__)


class Journal(Protocol):
    """Where the desk logs requests and reports the operator state file
    (:class:`kiosk.run.parts.Monitor`)."""

    def append(self, event_type: EventType, data: dict[str, Any]) -> Event:
        """Append an event durably; LogWriteError if not."""
        ...

    def set(self, part: Part, ok: bool, detail: str) -> None:
        """A part works or failed."""
        ...

    def failed_at_start(self, part: Part, detail: str) -> None:
        """A part found broken while the kiosk is built."""
        ...

    def changed(self) -> None:
        """The health changed (the gate's overrides)."""
        ...


class OperatorDesk:
    """Carries out operator requests on one kiosk (an :class:`~kiosk.operator.actions.Operator`).

    :meth:`perform` is the only way in: it logs each request, then carries it out; the acts
    behind it log nothing and raise on failure.

    :param allowlist_loader: reads the allowlist file again (None: the kiosk has none).
    :param use_allowlist: puts a reloaded allowlist in force.
    :param resender: sends every event from a seq again (the sync's; None: MQTT is off).
    """

    def __init__(
        self,
        config: KioskConfig,
        gate: Gate,
        journal: Journal,
        store: OperatorStateStore,
        *,
        allowlist_loader: Callable[[], Allowlist | None] | None,
        use_allowlist: Callable[[Allowlist | None], None],
        resender: Callable[[int], None] | None = None,
    ) -> None:
        self._resender = resender
        self._config = config
        self._gate = gate
        self._journal = journal
        self._store = store
        self._allowlist_loader = allowlist_loader
        self._use_allowlist = use_allowlist
        self._lock = threading.Lock()
        self._fever_threshold_c = config.thermometer.fever_threshold_c
        self._state = self._restore()

    @property
    def fever_threshold_c(self) -> float:
        """The fever threshold in force."""
        return self._fever_threshold_c

    def perform(self, request: ActionRequest) -> ActionOutcome:
        """Log ``request`` as a ``command`` event, then carry it out; a refusal or a failure
        is an outcome with an :class:`~kiosk.operator.actions.ActionError`, never an exception.

        The arguments are checked again (:func:`~kiosk.operator.actions.check_arguments`): a
        request built by hand, not by :func:`~kiosk.operator.actions.request`, is refused
        rather than, say, setting a threshold nobody can pass.
        """
        try:
            args = check_arguments(request.action, request.args)
        except ArgumentError as exc:
            return ActionOutcome(f"{request.action} refused: {exc}", ActionError.BAD_ARGUMENTS)
        data: dict[str, Any] = {
            "id": request.request_id,
            "command": request.action.value,
            "args": args,
        }
        if request.source is Source.WEB:  # an operator account's login name, never a visitor's
            data["operator"] = request.operator
        try:
            self._journal.append(EventType.COMMAND, data)
        except LogWriteError as exc:
            return ActionOutcome(
                f"not carried out: cannot log the command: {exc}", ActionError.LOG_UNAVAILABLE
            )
        try:
            return self._act(request.action, args)
        except (AllowlistError, EventLogError, OperatorStateError) as exc:
            return ActionOutcome(f"{request.action} failed: {exc}", ActionError.FAILED)
        except Exception as exc:  # a device or a bug: answered as a failure, never a crash
            log.exception("operator action %s failed", request.action)
            return ActionOutcome(
                f"{request.action} failed: {type(exc).__name__}", ActionError.FAILED
            )

    def _act(self, action: Action, args: Mapping[str, Any]) -> ActionOutcome:
        if action is Action.LOCKDOWN:
            self._set_lockdown(args["on"])
            return ActionOutcome(f"lockdown {_on_off(args)}", data={"lockdown": args["on"]})
        if action is Action.EMERGENCY_OPEN:
            self._emergency_open(args["on"])
            return ActionOutcome(
                f"emergency open {_on_off(args)}", data={"emergency_open": args["on"]}
            )
        if action is Action.RELOAD_ALLOWLIST:
            count = self._reload_allowlist()
            return ActionOutcome(f"allowlist reloaded: {count} badges", data={"badges": count})
        if action is Action.SET_FEVER_THRESHOLD:
            celsius = args["celsius"]
            self._set_fever_threshold(celsius)
            return ActionOutcome(
                f"fever threshold set to {celsius:g} °C", data={"fever_threshold_c": celsius}
            )
        if action is Action.RESEND:
            if self._resender is None:
                return ActionOutcome("this kiosk sends no events (MQTT is off)", ActionError.FAILED)
            self._resender(args["from_seq"])
            seq = args["from_seq"]
            return ActionOutcome(f"sending events again from seq {seq}", data={"from_seq": seq})
        if not self._gate.open_for_person():  # Action.TEST_RELAY
            return ActionOutcome("relay not released: lockdown is on", ActionError.NOT_ALLOWED)
        return ActionOutcome("relay released once")

    def _set_lockdown(self, on: bool) -> None:
        """Close the entrance (refuse everyone) or open it again, saved before this returns.

        :raises OperatorStateError: not saved. Lockdown on is in force even so (it would not
            survive a restart); lockdown stays on when ending it could not be saved.
        """
        with self._lock:
            if on:
                self._gate.set_lockdown(True)
                self._journal.changed()
            try:
                self._save(lockdown=on)
            except OperatorStateError as exc:
                now = "on, but a restart would end it" if on else "still on: ending it failed"
                raise OperatorStateError(f"lockdown is {now}: {exc}") from None
            if not on:
                self._gate.set_lockdown(False)
                self._journal.changed()

    def _emergency_open(self, on: bool) -> None:
        """Hold the gate released until turned off (saved, but never restored at start).

        :raises OperatorStateError: turning it on could not be saved, so it was not done.
        """
        with self._lock:
            if not on:
                self._gate.emergency_open(False)
                self._journal.changed()
            self._save(emergency_open=on)
            if on:
                self._gate.emergency_open(True)
                self._journal.changed()

    def _reload_allowlist(self) -> int:
        """Read the allowlist again; a bad file raises AllowlistError and the old list stays."""
        if self._allowlist_loader is None:
            raise AllowlistError("this kiosk has no allowlist file to reload")
        allowlist = self._allowlist_loader()
        self._use_allowlist(allowlist)
        return 0 if allowlist is None else len(allowlist)

    def _set_fever_threshold(self, celsius: float) -> None:
        """Change the fever threshold from the next measurement on (checked in bounds)."""
        with self._lock:
            configured = self._config.thermometer.fever_threshold_c
            self._save(fever_threshold_c=celsius, config_fever_c=configured)
            self._fever_threshold_c = celsius

    def _save(self, **changes: Any) -> None:
        """Save the operator state with ``changes`` durably (lock held); the gate's lockdown
        and emergency open are saved as they are now unless changed.

        :raises OperatorStateError: not saved; the part ``operator_state`` then fails.
        """
        gate = self._gate.state()
        state = dataclasses.replace(
            self._state,
            **{"lockdown": gate.lockdown, "emergency_open": gate.emergency_open, **changes},
        )
        try:
            self._store.save(state)
        except OperatorStateError as exc:
            self._journal.set(Part.OPERATOR_STATE, False, str(exc))
            raise
        self._state = state
        self._journal.set(Part.OPERATOR_STATE, True, "ok")

    def _restore(self) -> OperatorState:
        """Before the first decision: put back what operators set; fail secure if unusable."""
        restored = restore(self._store, self._config.thermometer.fever_threshold_c)
        state = restored.state
        if state.lockdown:
            self._gate.set_lockdown(True)
        if state.fever_threshold_c is not None:
            self._fever_threshold_c = state.fever_threshold_c
        if restored.problem is not None:
            self._journal.failed_at_start(Part.OPERATOR_STATE, restored.problem)
        return state


def _on_off(args: Mapping[str, Any]) -> str:
    return "on" if args["on"] else "off"
