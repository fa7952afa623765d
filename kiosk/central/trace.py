"""The exposure trace: where and when a person passed, and who was near them.

For the index person (a subject of one site) between two moments: every decision that names
them (place, time, outcome), and as contacts every other subject who

- passed the same entrance (kiosk) within ``window`` of one of those decisions (``entrance``);
- was inside the same area while they were (``area``): stays run from a passage that leaves
  the subject inside to the next that takes them out, by the kiosks' rules
  (:mod:`kiosk.central.presence`), and end at the site's local midnight, when the kiosks'
  count starts afresh;
- checked in to the same meeting on the same local day (``meeting``).

Each contact is listed once per reason and occasion (the index person's passage, for an
entrance or a meeting; the local day, for an area), with names and kinds from the roster
where it has them. Everything is read from ``subject_events``, so no event's JSON is parsed.
A little over 350 lines: the three kinds of contact, their queries and their merging belong
together.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from kiosk.central import roster
from kiosk.central.presence import UNUSED, inside_after
from kiosk.central.reports.daily import day_bounds
from kiosk.central.roster import Entry, Person
from kiosk.central.store import Store
from kiosk.decide.decision import Outcome
from kiosk.events import EventType

Reason = Literal["entrance", "area", "meeting"]
_COLUMNS = "subject, kiosk, event_id, ts_ms, type, area, direction, outcome, kind, meeting"
GRANT = Outcome.GRANT.value  # a plain str, as UNUSED: compared once per row read


# Everyone inside the area at some moment from {since} to the stay's end: each passage that
# leaves a subject inside holds until their next passage there, or the stay's end (no later
# than its local midnight). The kiosks' rules, in SQL; a tie in one millisecond (the kiosks
# order it by the CRC-32 of the event ids) is ordered by the event id here.
_OVERLAPS = (
    "SELECT subject, kind, ts_ms, next_ms FROM (SELECT subject, kind, ts_ms, type, direction,"
    " LEAD(ts_ms, 1, {p}) OVER (PARTITION BY subject ORDER BY ts_ms, event_id) AS next_ms"
    " FROM subject_events WHERE site = {p} AND ts_ms >= {p} AND ts_ms < {p} AND area = {p}"
    f" AND direction IN ('entry', 'exit') AND (outcome = '{GRANT}' OR type = '{UNUSED}'))"
    f" AS passages WHERE (direction = 'entry') <> (type = '{UNUSED}') AND next_ms > {{p}}"
)


class Row(NamedTuple):
    """One subject_events row as the trace reads it."""

    subject: str
    kiosk: str
    event_id: str
    ts_ms: int
    type: str
    area: str | None
    direction: str | None
    outcome: str | None
    kind: str | None
    meeting: str | None

    def is_passage(self) -> bool:
        """A granted entry or exit, or a withdrawn grant: what moves a subject in or out."""
        moves = self.outcome == GRANT or self.type == UNUSED
        return moves and self.direction in ("entry", "exit")


@dataclass(frozen=True)
class Sighting:
    """A decision about the index person: where, when, which way, what outcome."""

    at: datetime
    kiosk: str
    area: str
    direction: str
    outcome: str
    meeting: str | None


@dataclass(frozen=True)
class Contact:
    """Another subject near the index person, why, and when."""

    subject: str
    person: Person | None
    kind: str
    reason: Reason
    at: datetime  # the contact's passage (entrance, meeting) or the start of the overlap (area)
    where: str  # the kiosk, the area or the meeting
    index_at: datetime  # the index person's passage, stay start or check-in it relates to
    detail: str


@dataclass(frozen=True)
class Trace:
    """The whole trace of one index subject at one site."""

    site: str
    subject: str
    person: Person | None
    start: datetime
    end: datetime
    window: timedelta
    sightings: list[Sighting]
    contacts: list[Contact]


class Stay(NamedTuple):
    """A subject inside an area from ``start_ms`` to ``end_ms``."""

    subject: str
    area: str
    start_ms: int
    end_ms: int
    kind: str | None


def find_people(store: Store, site: str, text: str) -> list[Entry]:
    """The site's roster rows whose name contains ``text``, ignoring accents and case."""
    return [e for e in roster.entries(store, site) if roster.name_matches(e.name, text)]


def stays(rows: Iterable[Row], zone: ZoneInfo, until_ms: int) -> list[Stay]:
    """The stays the passages in ``rows`` make, per subject and area (the newest passage
    wins, ties by the CRC-32 of the event id; a stay ends at local midnight or ``until_ms``)."""
    ordered = sorted(
        (r for r in rows if r.is_passage()),
        key=lambda r: (r.subject, r.area or "", r.ts_ms, zlib.crc32(r.event_id.encode())),
    )
    midnight_after = _midnights(zone)
    found: list[Stay] = []
    open_at: dict[tuple[str, str], tuple[Row, int]] = {}  # the entry, and its day's end
    for row in ordered:
        key = (row.subject, row.area or "")
        held = open_at.get(key)
        if held is not None and row.ts_ms >= held[1]:  # a new local day: the count restarted
            found.append(_stay(*held))
            del open_at[key]
            held = None
        if inside_after(row.type, row.direction or ""):
            if held is None:  # else already inside: the stay began earlier
                open_at[key] = (row, midnight_after(row.ts_ms))
        elif held is not None:
            found.append(_stay(held[0], row.ts_ms))
            del open_at[key]
    found += [_stay(entered, min(until_ms, end)) for entered, end in open_at.values()]
    return [stay for stay in found if stay.end_ms > stay.start_ms]


def _midnights(zone: ZoneInfo) -> Callable[[int], int]:
    """The local midnight after a moment (epoch ms), remembered per quarter of an hour (every
    zone's offset is a multiple of 15 minutes, so no quarter holds a midnight inside)."""
    known: dict[int, int] = {}

    def after(ts_ms: int) -> int:
        quarter = ts_ms // 900_000
        if quarter not in known:
            known[quarter] = day_bounds(_local_day(ts_ms, zone), zone)[1]
        return known[quarter]

    return after


def _stay(entered: Row, end_ms: int) -> Stay:
    return Stay(entered.subject, entered.area or "", entered.ts_ms, end_ms, entered.kind)


def _local_day(ts_ms: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts_ms / 1000, zone).date()


def trace(
    store: Store,
    site: str,
    subject: str,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    window: timedelta = timedelta(minutes=15),
    now: datetime | None = None,
) -> Trace:
    """The trace of ``subject`` at ``site`` from ``start`` to ``end``, read in one
    transaction; local times in ``zone``. A stay still open ends at ``end`` or ``now``,
    whichever is earlier (a trace through today does not place anyone inside until midnight)."""
    t0, t1 = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    cut_ms = t1 if now is None else min(t1, int(now.timestamp() * 1000))
    w = int(window.total_seconds() * 1000)
    p = store.dialect.param

    def rows(cur: Any, where: str, *params: object) -> list[Row]:
        cur.execute(
            f"SELECT {_COLUMNS} FROM subject_events WHERE site = {p} AND {where}", (site, *params)
        )
        return [Row(*row) for row in cur.fetchall()]

    def work(cur: Any) -> tuple[list[Row], list[_Near], dict[str, Person]]:
        day_start = day_bounds(_local_day(t0, zone), zone)[0]
        own = rows(cur, f"subject = {p} AND ts_ms >= {p} AND ts_ms < {p}", subject, day_start, t1)
        mine = [r for r in own if r.type == EventType.DECISION.value and r.ts_ms >= t0]
        found: list[_Near] = []
        for seen in mine:
            near = rows(
                cur,
                f"ts_ms >= {p} AND ts_ms <= {p} AND kiosk = {p} AND type = {p}",
                seen.ts_ms - w,
                seen.ts_ms + w,
                seen.kiosk,
                seen.type,
            )
            found += [
                _Near("entrance", r.subject, r.kind, r.ts_ms, seen.kiosk, seen.ts_ms, seen.ts_ms)
                for r in near
            ]
            if seen.meeting and seen.outcome == GRANT:
                first, after = day_bounds(_local_day(seen.ts_ms, zone), zone)
                met = rows(
                    cur,
                    f"ts_ms >= {p} AND ts_ms < {p} AND meeting = {p} AND outcome = '{GRANT}'",
                    first,
                    after,
                    seen.meeting,
                )
                found += [
                    _Near(
                        "meeting", r.subject, r.kind, r.ts_ms, seen.meeting, seen.ts_ms, seen.ts_ms
                    )
                    for r in met
                ]
        days: dict[tuple[int, str], list[Stay]] = {}  # the stays per local day and area
        for stay in stays(own, zone, cut_ms):
            if stay.end_ms > t0:
                first = day_bounds(_local_day(stay.start_ms, zone), zone)[0]
                days.setdefault((first, stay.area), []).append(stay)
        for (first, area), held in days.items():
            found += _shared(cur, p, site, first, area, held, t0)
        found = [near for near in found if near.subject != subject]
        names = roster.people(cur, site, [subject, *(near.subject for near in found)])
        return mine, found, names

    mine, found, names = store.transaction(work)
    return Trace(
        site,
        subject,
        names.get(subject),
        start,
        end,
        window,
        [_sighting(row, zone) for row in sorted(mine, key=lambda r: (r.ts_ms, r.kiosk))],
        _contacts(found, names, zone),
    )


def _shared(
    cur: Any, p: str, site: str, first: int, area: str, held: list[Stay], t0: int
) -> list[_Near]:
    """Everyone inside ``area`` during one of the index person's ``held`` stays of the local
    day that begins at ``first``, once each: from the first moment they shared it (and the
    earliest stay that met them) to the last. One query for the day, from the earliest stay's
    start (or ``t0``) to the latest's end; each overlap is then cut to each stay it meets."""
    end = max(stay.end_ms for stay in held)
    since = max(min(stay.start_ms for stay in held), t0)
    cur.execute(_OVERLAPS.format(p=p), (end, site, first, end, area, since))
    overlaps = cur.fetchall()
    spans: dict[str, list[Any]] = {}  # subject: [kind, from, stay start, until]
    for stay in held:
        since, until = max(stay.start_ms, t0), stay.end_ms
        for other, kind, entered, left in overlaps:
            if entered < until and left > since:
                span = spans.get(other)
                if span is None:
                    spans[other] = [kind, max(entered, since), stay.start_ms, min(left, until)]
                else:
                    span[1] = min(span[1], max(entered, since))
                    span[2] = min(span[2], stay.start_ms)
                    span[3] = max(span[3], min(left, until))
    return [
        _Near("area", other, kind, at_ms, area, index_ms, first, until_ms)
        for other, (kind, at_ms, index_ms, until_ms) in spans.items()
    ]


class _Near(NamedTuple):
    """A contact as found: who, why, when, where, and the index occasion it relates to."""

    reason: Reason
    subject: str
    kind: str | None
    at_ms: int
    where: str
    index_ms: int
    occasion: int  # what one contact row stands for: the index passage, or the area's day
    until_ms: int | None = None  # area: the end of the overlap


def _sighting(row: Row, zone: ZoneInfo) -> Sighting:
    return Sighting(
        datetime.fromtimestamp(row.ts_ms / 1000, zone),
        row.kiosk,
        row.area or "",
        row.direction or "",
        row.outcome or "",
        row.meeting,
    )


def _contacts(found: list[_Near], names: dict[str, Person], zone: ZoneInfo) -> list[Contact]:
    """One contact per subject, reason, place and occasion: at an entrance or a meeting the
    closest in time to the index person's passage (an area's come one per subject and local
    day already, :func:`_shared`)."""
    best: dict[tuple[str, str, str, int], _Near] = {}
    for near in found:
        key = (near.subject, near.reason, near.where, near.occasion)
        held = best.get(key)
        if held is None or abs(near.at_ms - near.index_ms) < abs(held.at_ms - held.index_ms):
            best[key] = near
    local: dict[int, datetime] = {}

    def at(ts_ms: int) -> datetime:
        if ts_ms not in local:
            local[ts_ms] = datetime.fromtimestamp(ts_ms / 1000, zone)
        return local[ts_ms]

    # An area's words name a local minute: the same for a place and a minute since the epoch
    # (every zone's offset is a whole number of minutes), so worded once per place and minute.
    said: dict[tuple[str, int], str] = {}
    contacts = []
    for near in sorted(best.values(), key=lambda n: (n.index_ms, n.at_ms, n.reason, n.subject)):
        person = names.get(near.subject)
        kind = person.kind if person else near.kind or ""
        where, index_at = near.where, at(near.index_ms)
        if near.reason != "area":
            detail = _detail(near, at)
        else:
            minute = (where, (near.until_ms or near.at_ms) // 60_000)
            if minute not in said:
                said[minute] = _detail(near, at)
            detail = said[minute]
        contacts.append(
            Contact(
                near.subject, person, kind, near.reason, at(near.at_ms), where, index_at, detail
            )
        )
    return contacts


def _detail(near: _Near, at: Callable[[int], datetime]) -> str:
    """Why the contact is listed, in words."""
    if near.reason == "entrance":
        minutes = abs(near.at_ms - near.index_ms) / 60_000
        return f"passed {near.where} {minutes:.0f} min from the index person"
    if near.reason == "meeting":
        return f"checked in to {near.where} the same day"
    return (
        f"inside {near.where} with the index person until {at(near.until_ms or near.at_ms):%H:%M}"
    )
