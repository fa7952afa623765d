"""The gate's lights and buzzer: what each :class:`Signal` looks and sounds like."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal, TypeVar

from gpiozero import LED, Buzzer
from gpiozero.pins import Factory

_D = TypeVar("_D", LED, Buzzer)


class Signal(StrEnum):
    """What the lights and buzzer tell the person at the gate."""

    GRANTED = "granted"
    DENIED = "denied"
    REFER = "refer"  # refer to the guard, e.g. a sensor fault
    FEVER = "fever"


@dataclass(frozen=True)
class _Pattern:
    beeps: int
    beep_on_s: float
    beep_off_s: float
    light: Literal["green", "warning"]
    blink_s: float | None  # light on/off half-period; None = steady for signal_s


_PATTERNS: Final[Mapping[Signal, _Pattern]] = MappingProxyType(
    {
        Signal.GRANTED: _Pattern(1, 0.1, 0.1, "green", None),
        Signal.DENIED: _Pattern(2, 0.2, 0.1, "warning", None),
        Signal.REFER: _Pattern(3, 0.1, 0.1, "warning", None),
        Signal.FEVER: _Pattern(3, 0.5, 0.25, "warning", 0.25),
    }
)


class SignalDevices:
    """The green light, the warning light and the buzzer, each optional (``None``: not fitted).

    The devices are entered on ``stack``, which closes them. Not locked: the gate calls
    :meth:`show` under its own lock.
    """

    def __init__(
        self,
        stack: ExitStack,
        *,
        green_light: int | None,
        warning_light: int | None,
        buzzer: int | None,
        signal_s: float,
        pin_factory: Factory | None,
    ) -> None:
        self._green = _optional(stack, LED, green_light, pin_factory)
        self._warning = _optional(stack, LED, warning_light, pin_factory)
        self._buzzer = _optional(stack, Buzzer, buzzer, pin_factory)
        self._signal_s = signal_s

    def show(self, signal: Signal) -> None:
        """Light the signal's light for ``signal_s`` (the other one off) and beep its pattern."""
        pattern = _PATTERNS[signal]
        for light in (self._green, self._warning):
            if light is not None:
                light.off()
        light = self._green if pattern.light == "green" else self._warning
        if light is not None:
            if pattern.blink_s is None:
                light.blink(on_time=self._signal_s, off_time=0, n=1)
            else:
                n = max(1, round(self._signal_s / (2 * pattern.blink_s)))
                light.blink(on_time=pattern.blink_s, off_time=pattern.blink_s, n=n)
        if self._buzzer is not None:
            self._buzzer.beep(
                on_time=pattern.beep_on_s, off_time=pattern.beep_off_s, n=pattern.beeps
            )


def _optional(
    stack: ExitStack, cls: type[_D], pin: int | None, pin_factory: Factory | None
) -> _D | None:
    return None if pin is None else stack.enter_context(cls(pin, pin_factory=pin_factory))
