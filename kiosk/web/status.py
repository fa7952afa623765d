"""What the status page reads in its own process: the kiosk's pushed state and last decision
(a :class:`KioskView`, the child's mirror of the kiosk) and the event log, through read-only
SQLite connections of its own."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol

from kiosk.decide.decision import Outcome, Reason
from kiosk.events import EventType
from kiosk.store.eventlog import query_events


class KioskView(Protocol):
    """What the status page reads from the kiosk besides the log (in the page's process, its
    mirror of the kiosk)."""

    def state(self) -> dict[str, Any]: ...

    def last_decision(self) -> dict[str, Any] | None: ...

    @property
    def fever_threshold_c(self) -> float: ...


_COUNTED = {Outcome.GRANT: "granted", Outcome.DENY: "denied", Outcome.REFER: "referred"}


class KioskStatus:
    """What the web app reads: the state document, the log, the last decision."""

    def __init__(self, view: KioskView, log_path: Path) -> None:
        self._view = view
        self._log_path = log_path

    def state(self) -> dict[str, Any]:
        """The retained state document."""
        return self._view.state()

    def events(
        self,
        *,
        limit: int,
        before_seq: int | None,
        after_seq: int | None,
        type: str | None,
        outcome: str | None,
    ) -> list[dict[str, Any]]:
        """Logged events, newest first."""
        found = query_events(
            self._log_path,
            limit=limit,
            before_seq=before_seq,
            after_seq=after_seq,
            type=type,
            outcome=outcome,
        )
        return [{"seq": e.seq, "ts_ms": e.ts_ms, "type": e.type, "data": e.data} for e in found]

    def hourly(self, day: date) -> list[dict[str, Any]]:
        """Decisions per local hour of ``day``."""
        start = datetime.combine(day, time.min).astimezone()
        end = start + timedelta(days=1)
        rows = [
            {"hour": hour, "granted": 0, "denied": 0, "referred": 0, "fevers": 0}
            for hour in range(24)
        ]
        decisions = query_events(
            self._log_path,
            limit=1_000_000,
            type=EventType.DECISION,
            since_ms=int(start.timestamp() * 1000),
            until_ms=int(end.timestamp() * 1000),
        )
        for event in decisions:
            row = rows[datetime.fromtimestamp(event.ts_ms / 1000).astimezone().hour]
            row[_COUNTED[Outcome(event.data["outcome"])]] += 1
            row["fevers"] += event.data.get("reason") == Reason.FEVER
        return rows

    def last_decision(self) -> dict[str, Any] | None:
        """The newest decision, for the display."""
        return self._view.last_decision()

    def fever_threshold_c(self) -> float:
        """The fever threshold in force."""
        return self._view.fever_threshold_c
