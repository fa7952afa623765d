"""Event sync to central servers over MQTT: the outbox interface it drains.

The MQTT client itself arrives with the sync issue; this module fixes the
contract between it and the event log, which :class:`kiosk.store.EventLog`
implements: read unconfirmed events in sequence order, mark them sent when the
broker acknowledges them, confirm them when central's receipt says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from kiosk.store import Event


class Outbox(Protocol):
    """What the sync needs from the event log."""

    def pending(self, limit: int, after_seq: int = 0) -> list[Event]:
        """Unconfirmed events after ``after_seq``, oldest first."""
        ...

    def mark_sent(self, seqs: Iterable[int]) -> None:
        """The broker acknowledged these events (they may still need a re-send)."""
        ...

    def confirm_through(self, seq: int) -> int:
        """Central's receipt covers every event up to ``seq``; returns how many were new."""
        ...
