"""The daily entry list: one row per entry decision of a site's local day, named from the
roster, and its summary.

:func:`entry_rows` and :func:`summarise` are pure (events and roster in, rows out);
:func:`daily_list` reads one site's day with one query on the events (by site, type and time)
and one on the roster, in one transaction. A day is the site's local day: from its midnight
to the next, in the site's time zone (``[sites.<id>] timezone``), so a day of a zone with
daylight saving time is 23 or 25 hours long.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from kiosk.central import roster
from kiosk.central.roster import Person
from kiosk.central.settings import CentralConfig
from kiosk.central.store import Store
from kiosk.events import EventType


class Decided(NamedTuple):
    """A decision event as the list reads it: when, which kiosk, its data."""

    ts_ms: int
    kiosk: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class DailyRow:
    """One entry decision; ``name``/``unit`` are the roster's (None: not in the roster)."""

    local_time: datetime
    site: str
    site_name: str
    kiosk: str
    area: str
    subject: str | None
    name: str | None
    unit: str | None
    kind: str
    outcome: str
    reason: str
    celsius: float | None


@dataclass(frozen=True)
class Summary:
    """The day in numbers."""

    decisions: int  # rows
    entries: int  # granted
    people: int  # distinct subjects granted
    denials: dict[str, int]  # reason code → denials, most frequent first
    fevers: int
    referrals: int


@dataclass(frozen=True)
class DailyList:
    """A day's list of one or more sites."""

    day: date
    sites: tuple[str, ...]
    rows: list[DailyRow]
    summary: Summary


class UnknownSiteError(LookupError):
    """A site neither the config nor any kiosk names."""


def day_bounds(day: date, zone: ZoneInfo) -> tuple[int, int]:
    """The local day as ``[start_ms, end_ms)`` in UTC epoch milliseconds."""

    def midnight(d: date) -> int:
        return int(datetime.combine(d, time(0), zone).timestamp() * 1000)

    return midnight(day), midnight(day + timedelta(days=1))


def is_entry(data: Mapping[str, Any]) -> bool:
    """Whether a decision's data is an entry (gate or screen mode; not an exit or a
    meeting check-in)."""
    return data.get("direction") != "exit" and data.get("mode") != "checkin"


def entry_rows(
    events: Iterable[Decided],
    people: Mapping[str, Person],
    zone: ZoneInfo,
    site: str,
    site_name: str = "",
) -> list[DailyRow]:
    """The list's rows of one site's decision events, in their order."""
    rows = []
    for event in events:
        data = event.data
        if not is_entry(data):
            continue
        subject = data.get("subject") if isinstance(data.get("subject"), str) else None
        person = people.get(subject) if subject else None
        credential = data.get("credential") or {}
        temperature = data.get("temperature") or {}
        celsius = temperature.get("celsius")
        rows.append(
            DailyRow(
                local_time=datetime.fromtimestamp(event.ts_ms / 1000, zone),
                site=site,
                site_name=site_name or site,
                kiosk=event.kiosk,
                area=str(data.get("area") or ""),
                subject=subject,
                name=person.name if person else None,
                unit=person.unit if person else None,
                kind=person.kind if person else str(credential.get("kind") or ""),
                outcome=str(data.get("outcome", "")),
                reason=str(data.get("reason", "")),
                celsius=float(celsius) if isinstance(celsius, int | float) else None,
            )
        )
    return rows


def summarise(rows: Sequence[DailyRow]) -> Summary:
    """Entries, distinct people let in, denials by reason, fevers and referrals."""
    granted = [row for row in rows if row.outcome == "grant"]
    denials = Counter(row.reason for row in rows if row.outcome == "deny")
    return Summary(
        decisions=len(rows),
        entries=len(granted),
        people=len({(row.site, row.subject) for row in granted if row.subject}),
        denials=dict(denials.most_common()),
        fevers=sum(row.reason == "fever" for row in rows),
        referrals=sum(row.outcome == "refer" for row in rows),
    )


def known_sites(store: Store, config: CentralConfig) -> list[str]:
    """The sites the config names and those central has heard kiosks of, sorted."""
    heard = {status.site for status in store.fleet()}
    return sorted(heard | set(config.sites))


def site_day(store: Store, config: CentralConfig, site: str, day: date) -> list[DailyRow]:
    """One site's rows of ``day``, named from its roster, in one transaction."""
    section = config.site(site)
    zone = ZoneInfo(section.timezone)
    start, end = day_bounds(day, zone)
    p = store.dialect.param

    def work(cur: Any) -> tuple[list[Decided], dict[str, Person]]:
        cur.execute(
            f"SELECT ts_ms, kiosk, data FROM events WHERE site = {p} AND type = {p}"
            f" AND ts_ms >= {p} AND ts_ms < {p} ORDER BY ts_ms, kiosk, seq",
            (site, EventType.DECISION.value, start, end),
        )
        events = [
            Decided(int(ts), kiosk, json.loads(data) if isinstance(data, str) else data)
            for ts, kiosk, data in cur.fetchall()
        ]
        subjects = (e.data.get("subject") for e in events)
        return events, roster.people(cur, site, (s for s in subjects if isinstance(s, str)))

    events, people = store.transaction(work)
    return entry_rows(events, people, zone, site, section.name)


def daily_list(
    store: Store, config: CentralConfig, day: date, site: str | None = None
) -> DailyList:
    """The list of ``day`` for ``site``, or for every known site (each in its own local day);
    :class:`UnknownSiteError` for a site neither the config nor any kiosk names."""
    sites = known_sites(store, config)
    if site is not None:
        if site not in sites:
            raise UnknownSiteError(site)
        sites = [site]
    rows = [row for name in sites for row in site_day(store, config, name, day)]
    rows.sort(key=lambda row: (row.local_time.timestamp(), row.site, row.kiosk))
    return DailyList(day, tuple(sites), rows, summarise(rows))
