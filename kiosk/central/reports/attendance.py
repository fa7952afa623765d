"""A meeting's check-in report at central, with names from the roster.

The rules are the kiosk's own (:func:`kiosk.store.reports.attendance`: granted check-ins in
checkin mode for that meeting, once per subject, in order of arrival), applied to the events
of every kiosk of the site; the time is the site's local time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from kiosk.central import roster
from kiosk.central.roster import Person
from kiosk.central.settings import CentralConfig
from kiosk.central.store import Store
from kiosk.events import EventType
from kiosk.store.records import Event
from kiosk.store.reports import attendance


@dataclass(frozen=True)
class Attended:
    """One person checked in to the meeting: when first, and who, if the roster knows."""

    site: str
    subject: str
    kind: str | None
    first_seen: datetime  # the site's local time
    person: Person | None


def meeting_attendance(
    store: Store, config: CentralConfig, meeting: str, sites: list[str]
) -> list[Attended]:
    """Who checked in to ``meeting`` at each of ``sites``, site by site in order of arrival."""
    found: list[Attended] = []
    for site in sites:
        zone = ZoneInfo(config.site(site).timezone)
        events, people = _read(store, site, meeting)
        for attendee in attendance(events, meeting):
            found.append(
                Attended(
                    site,
                    attendee.subject,
                    attendee.kind,
                    attendee.first_seen.astimezone(zone),
                    people.get(attendee.subject),
                )
            )
    return found


def _read(store: Store, site: str, meeting: str) -> tuple[list[Event], dict[str, Person]]:
    """The site's check-ins to the meeting and the roster's people among them, in one
    transaction."""
    result: tuple[list[Event], dict[str, Person]] = store.transaction(
        lambda cur: _query(store, cur, site, meeting)
    )
    return result


def _query(
    store: Store, cur: Any, site: str, meeting: str
) -> tuple[list[Event], dict[str, Person]]:
    p = store.dialect.param
    field = (
        "json_extract(data, '$.meeting')" if store.dialect.name == "sqlite" else "data->>'meeting'"
    )
    cur.execute(
        "SELECT event_id, seq, boot_id, ts_ms, clock_synced, data FROM events"
        f" WHERE site = {p} AND type = {p} AND {field} = {p} ORDER BY ts_ms, kiosk, seq",
        (site, EventType.DECISION.value, meeting),
    )
    events = [
        Event(
            event_id,
            int(seq),
            boot_id,
            int(ts_ms),
            bool(synced),
            EventType.DECISION.value,
            json.loads(data) if isinstance(data, str) else data,
        )
        for event_id, seq, boot_id, ts_ms, synced, data in cur.fetchall()
    ]
    subjects = (e.data.get("subject") for e in events)
    return events, roster.people(cur, site, (s for s in subjects if isinstance(s, str)))
