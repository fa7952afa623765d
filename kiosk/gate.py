"""Turnstile gate: relay, green and warning lights, buzzer, passage sensor and fire-alarm input.

Everything goes through gpiozero devices built on one injected pin factory. The relay is
energised only to release the turnstile; it is created with ``initial_value=False`` and is
de-energised by :meth:`Gate.close`, so it is never energised at construction (unless the fire
alarm is already active), on close, or after an exception in a ``with`` block.

Relay precedence, highest first: fire alarm (energised: egress for life safety beats lockdown),
lockdown (de-energised), emergency open (energised), a running admission (energised).

With a passage sensor each admission is a credit for one passage, good for
``hold_timeout_s``: a passage uses the oldest credit, and a passage with none is reported as
unauthorised (tailgating, or a forced turnstile) unless the fire alarm or an operator holds
the gate released. In hold mode the relay stays released while credits are left, and a credit
that expires unused is reported, so the person is not counted as inside.

The lights and buzzer, the admissions' credits and the gate's plain data (pins, timing, state)
live in :mod:`kiosk.gate_parts`; import them from here. The rest stays in one module on purpose,
longer than most: the relay, the admissions and the passages share one lock, and the precedence
above is only checkable when all of it is read together.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from contextlib import ExitStack, suppress
from time import monotonic
from types import TracebackType
from typing import Self

from gpiozero import DigitalInputDevice, GPIODeviceClosed, OutputDevice
from gpiozero.pins import Factory

from kiosk.gate_parts.admissions import Credit, Credits, GatePassage, PassageCause
from kiosk.gate_parts.data import GatePins, GateState, GateTiming
from kiosk.gate_parts.signals import Signal, SignalDevices

__all__ = [
    "Gate",
    "GatePassage",
    "GatePins",
    "GateState",
    "GateTiming",
    "PassageCause",
    "Signal",
    "force_relay_safe",
]

logger = logging.getLogger(__name__)


class Gate:
    """The turnstile and its signals, composed of gpiozero devices.

    ``on_passage()`` and ``on_fire_alarm(active)`` run on gpiozero's pin thread, without the
    gate's lock held; exceptions they raise are logged. ``on_fire_alarm`` is called on changes
    only: a fire alarm already active at construction shows in :meth:`state`.

        with Gate(pins, GateTiming("pulse"), pin_factory=factory) as gate:
            if not gate.open_for_person():
                gate.show(Signal.REFER)

    :param pins: GPIO numbers and polarities.
    :param timing: relay mode and durations.
    :param pin_factory: passed to every device; ``None`` means gpiozero's default factory.
    :param on_passage: called for each debounced passage.
    :param on_fire_alarm: called with ``True``/``False`` when the fire-alarm input changes.
    """

    def __init__(
        self,
        pins: GatePins,
        timing: GateTiming,
        *,
        pin_factory: Factory | None = None,
        on_passage: Callable[[], None] | None = None,
        on_fire_alarm: Callable[[bool], None] | None = None,
    ) -> None:
        if timing.relay_mode == "hold" and pins.passage_sensor is None:
            raise ValueError("relay_mode 'hold' needs a passage sensor")
        self._pins = pins
        self._timing = timing
        self._on_passage = on_passage
        self._on_fire_alarm = on_fire_alarm
        self._lock = threading.Lock()
        self._closed = False
        self._relay_on = False
        self._lockdown = False
        self._emergency_open = False
        self._fire_alarm = False
        self._admitted = False
        self._admission = 0
        self._timer: threading.Timer | None = None
        self._credits = Credits()
        self._watch_passage: Callable[[GatePassage], None] | None = None
        self._watch_unused: Callable[[object], None] | None = None
        self._passages = 0
        self._last_passage_edge = float("-inf")

        with ExitStack() as stack:
            self._relay = stack.enter_context(
                OutputDevice(
                    pins.relay,
                    active_high=pins.relay_active_high,
                    initial_value=False,
                    pin_factory=pin_factory,
                )
            )
            self._signals = SignalDevices(
                stack,
                green_light=pins.green_light,
                warning_light=pins.warning_light,
                buzzer=pins.buzzer,
                signal_s=timing.signal_s,
                pin_factory=pin_factory,
            )
            self._passage: DigitalInputDevice | None = None
            if pins.passage_sensor is not None:
                self._passage = stack.enter_context(
                    DigitalInputDevice(
                        pins.passage_sensor,
                        pull_up=pins.passage_active_low,
                        pin_factory=pin_factory,
                    )
                )
                self._passage.when_activated = self._passage_started
                self._passage.when_deactivated = self._passage_ended
            if pins.fire_alarm is not None:
                fire = stack.enter_context(
                    DigitalInputDevice(
                        pins.fire_alarm,
                        pull_up=pins.fire_alarm_active_low,
                        pin_factory=pin_factory,
                    )
                )
                fire.when_activated = lambda: self._fire_alarm_changed(True)
                fire.when_deactivated = lambda: self._fire_alarm_changed(False)
                with self._lock:
                    self._fire_alarm = bool(fire.is_active)
                    self._apply_relay()
                if self._fire_alarm:
                    logger.warning("fire alarm active at start: relay held energised")
            self._devices = stack.pop_all()
        logger.info("gate ready: %r", self)

    def open_for_person(self, grant: object | None = None) -> bool:
        """Release the turnstile for one person and show GRANTED; False in lockdown.

        ``grant`` tags the admission: the passage that uses it, or its expiry unused (hold
        mode), reports it back to the watcher (:meth:`watch_admissions`); None for a test.
        """
        with self._lock:
            self._check_open()
            if self._lockdown:
                logger.info("admission refused: lockdown")
                return False
            now = monotonic()
            unused = self._drop_expired(now)
            if self._passage is not None:
                self._credits.add(grant, now + self._timing.hold_timeout_s)
            self._admitted = True
            if self._timing.relay_mode == "hold":
                self._arm_hold_timer(now)
            else:
                self._cancel_timer()
                self._admission += 1
                self._start_timer(self._timing.pulse_s, self._admission_expired, self._admission)
            self._apply_relay()
            self._signals.show(Signal.GRANTED)
        self._report_unused(unused)
        return True

    def watch_admissions(
        self,
        on_passage: Callable[[GatePassage], None],
        on_unused: Callable[[object], None],
    ) -> None:
        """Report each passage with its cause, and each tagged grant that expired unused."""
        with self._lock:
            self._watch_passage, self._watch_unused = on_passage, on_unused

    def show(self, signal: Signal) -> None:
        """Show ``signal`` on the lights and buzzer; never touches the relay."""
        with self._lock:
            self._check_open()
            self._signals.show(signal)

    def emergency_open(self, on: bool) -> None:
        """Hold the relay energised until turned off (operator action; lockdown still wins)."""
        with self._lock:
            self._check_open()
            self._emergency_open = on
            self._apply_relay()
        logger.warning("emergency open %s", "on" if on else "off")

    def set_lockdown(self, on: bool) -> None:
        """Force the relay off and refuse admissions while on (the fire alarm still wins).

        In hold mode the pending admissions end unused: the relay is locked before they pass.
        """
        unused: list[Credit] = []
        with self._lock:
            self._check_open()
            self._lockdown = on
            if on:
                if self._timing.relay_mode == "hold":
                    unused = self._credits.take_all()
                self._end_admission()
            self._apply_relay()
        logger.warning("lockdown %s", "on" if on else "off")
        self._report_unused(unused)

    def state(self) -> GateState:
        """Return a consistent snapshot of the gate."""
        with self._lock:
            return GateState(
                relay_energised=self._relay_on,
                lockdown=self._lockdown,
                emergency_open=self._emergency_open,
                fire_alarm=self._fire_alarm,
                passages=self._passages,
            )

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        with self._lock:
            return self._closed

    def close(self) -> None:
        """De-energise the relay, cancel the timer and close every device; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._cancel_timer()
            self._credits.take_all()
            self._relay.off()
            self._relay_on = False
        # Outside the lock: closing an input may wait for its callback thread.
        self._devices.close()
        logger.info("gate closed")

    def force_relay_off(self) -> None:
        """De-energise the relay without the gate's lock, which a hung thread may hold: the
        last act of a process whose stop hung (it exits next). Nothing if already closed."""
        with suppress(GPIODeviceClosed):
            self._relay.off()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        head = f"<Gate relay=GPIO{self._pins.relay} mode={self._timing.relay_mode}"
        if self.closed:
            return f"{head} closed>"
        s = self.state()
        return (
            f"{head} energised={s.relay_energised} lockdown={s.lockdown} "
            f"emergency_open={s.emergency_open} fire_alarm={s.fire_alarm} passages={s.passages}>"
        )

    # Everything below runs with self._lock held, except the gpiozero and timer callbacks.

    def _check_open(self) -> None:
        if self._closed:
            raise GPIODeviceClosed("the gate is closed")

    def _apply_relay(self) -> None:
        on = self._fire_alarm or (not self._lockdown and (self._emergency_open or self._admitted))
        if on != self._relay_on:
            if on:
                self._relay.on()
            else:
                self._relay.off()
            self._relay_on = on
            logger.info("relay %s", "energised" if on else "de-energised")

    def _start_timer(self, seconds: float, callback: Callable[..., None], *args: object) -> None:
        timer = threading.Timer(max(0.0, seconds), callback, args=args)
        timer.name = "gate-admission"
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _arm_hold_timer(self, now: float) -> None:
        """Hold mode: release while credits are left; wake when the oldest expires."""
        self._cancel_timer()
        expiry = self._credits.next_expiry()
        self._admitted = expiry is not None
        if expiry is not None:
            self._start_timer(expiry - now, self._credits_expired)

    def _drop_expired(self, now: float) -> list[Credit]:
        """Remove expired credits; the ones to report unused (hold mode only)."""
        expired = self._credits.drop_expired(now)
        return expired if self._timing.relay_mode == "hold" else []

    def _report_unused(self, credits: list[Credit]) -> None:
        """Outside the lock: tell the watcher which tagged grants were not used."""
        watcher = self._watch_unused
        for credit in credits:
            grant = credit.grant
            if watcher is not None and grant is not None:
                _call_safely(functools.partial(watcher, grant))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _end_admission(self) -> None:
        self._cancel_timer()
        self._admitted = False
        self._apply_relay()

    def _credits_expired(self) -> None:
        with self._lock:
            if self._closed:
                return
            now = monotonic()
            unused = self._drop_expired(now)
            self._arm_hold_timer(now)
            self._apply_relay()
        self._report_unused(unused)

    def _admission_expired(self, admission: int) -> None:
        with self._lock:
            if not self._closed and self._admitted and admission == self._admission:
                self._end_admission()

    def _passage_started(self) -> None:
        with self._lock:
            now = monotonic()
            quiet = now - self._last_passage_edge >= self._timing.passage_debounce_s
            self._last_passage_edge = now
            if self._closed or not quiet:
                return
            self._passages += 1
            unused = self._drop_expired(now)
            passage = self._cause_of_passage()
            if self._timing.relay_mode == "hold":
                self._arm_hold_timer(now)
                self._apply_relay()
            watcher = self._watch_passage
        logger.info("passage: %s", passage.cause.value)
        self._report_unused(unused)
        if self._on_passage is not None:
            _call_safely(self._on_passage)
        if watcher is not None:
            _call_safely(lambda: watcher(passage))

    def _cause_of_passage(self) -> GatePassage:
        """Use the oldest credit, or say what else let the person through."""
        credit = self._credits.use_oldest()
        if credit is not None:
            cause = PassageCause.OPERATOR if credit.grant is None else PassageCause.GRANT
            return GatePassage(cause, credit.grant)
        if self._fire_alarm:
            return GatePassage(PassageCause.FIRE_ALARM)
        if self._emergency_open and not self._lockdown:
            return GatePassage(PassageCause.OPERATOR)
        return GatePassage(PassageCause.NONE)

    def _passage_ended(self) -> None:
        with self._lock:
            self._last_passage_edge = monotonic()

    def _fire_alarm_changed(self, active: bool) -> None:
        with self._lock:
            if self._closed or active == self._fire_alarm:
                return
            self._fire_alarm = active
            self._apply_relay()
        logger.warning("fire alarm %s", "active: relay held energised" if active else "cleared")
        if self._on_fire_alarm is not None:
            on_fire_alarm = self._on_fire_alarm
            _call_safely(lambda: on_fire_alarm(active))


def force_relay_safe(pins: GatePins, *, pin_factory: Factory | None = None) -> None:
    """Drive the relay pin to de-energised and release it (for an ExecStopPost script)."""
    OutputDevice(
        pins.relay, active_high=pins.relay_active_high, initial_value=False, pin_factory=pin_factory
    ).close()


def _call_safely(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        logger.exception("gate callback failed")
