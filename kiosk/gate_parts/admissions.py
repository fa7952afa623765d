"""Admissions waiting for a passage: each grant is a credit for one passage, good until it
expires; a passage uses the oldest. Plain data, no devices and no lock: :class:`kiosk.gate.Gate`
keeps it under its own lock, and passes the time in."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum


class PassageCause(StrEnum):
    """What let a person through, as the gate saw it."""

    GRANT = "grant"  # a decision's grant, used by this passage
    OPERATOR = "operator"  # an operator released the gate (emergency open, relay test)
    FIRE_ALARM = "fire_alarm"
    NONE = "none"  # nothing: tailgating, or the turnstile forced


@dataclass(frozen=True)
class GatePassage:
    """One debounced passage and what allowed it; ``grant`` is the tag of the grant used."""

    cause: PassageCause
    grant: object | None = None


@dataclass(frozen=True)
class Credit:
    """One admission not yet used: the tag given to ``Gate.open_for_person`` and its expiry."""

    grant: object | None
    expires_at: float  # monotonic


class Credits:
    """The admissions not yet used, oldest first."""

    def __init__(self) -> None:
        self._credits: deque[Credit] = deque()

    def __bool__(self) -> bool:
        return bool(self._credits)

    def add(self, grant: object | None, expires_at: float) -> None:
        """Admit one more person until ``expires_at``."""
        self._credits.append(Credit(grant, expires_at))

    def next_expiry(self) -> float | None:
        """When the oldest credit expires; None if there is none."""
        return self._credits[0].expires_at if self._credits else None

    def drop_expired(self, now: float) -> list[Credit]:
        """Remove and return the credits expired at ``now``."""
        expired = []
        while self._credits and self._credits[0].expires_at <= now:
            expired.append(self._credits.popleft())
        return expired

    def use_oldest(self) -> Credit | None:
        """Remove and return the oldest credit, for a passage; None if there is none."""
        return self._credits.popleft() if self._credits else None

    def take_all(self) -> list[Credit]:
        """Remove and return every credit."""
        taken = list(self._credits)
        self._credits.clear()
        return taken
