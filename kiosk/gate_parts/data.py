"""The gate's plain data: its wiring, its timing and a snapshot of its state. No gpiozero, so
that health and status code can use them without loading the GPIO library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from kiosk.config import RelayMode


@dataclass(frozen=True)
class GatePins:
    """BCM GPIO numbers and polarities; ``None`` means the part is not fitted."""

    relay: int
    relay_active_high: bool
    green_light: int | None
    warning_light: int | None
    buzzer: int | None
    passage_sensor: int | None
    passage_active_low: bool  # True: input pulled up, a broken beam pulls it low
    fire_alarm: int | None
    fire_alarm_active_low: bool


@dataclass(frozen=True)
class GateTiming:
    """How long the relay stays energised and how long a signal is shown, in seconds."""

    relay_mode: RelayMode
    pulse_s: float = 0.5
    hold_timeout_s: float = 8.0
    signal_s: float = 3.0
    passage_debounce_s: float = 0.3

    def __post_init__(self) -> None:
        if self.relay_mode not in get_args(RelayMode):
            raise ValueError(f"relay_mode must be 'pulse' or 'hold', not {self.relay_mode!r}")
        for name in ("pulse_s", "hold_timeout_s", "signal_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.passage_debounce_s < 0:
            raise ValueError("passage_debounce_s must not be negative")


@dataclass(frozen=True)
class GateState:
    """A snapshot for health and status pages."""

    relay_energised: bool
    lockdown: bool
    emergency_open: bool
    fire_alarm: bool
    passages: int
