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
About 450 lines: the three kinds of contact, their queries and their merging belong
together.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from operator import itemgetter
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from kiosk.central import roster
from kiosk.central.presence import INSIDE_SQL, UNUSED, collector_paused, inside_after
from kiosk.central.reports.daily import day_bounds
from kiosk.central.roster import Entry, Person
from kiosk.central.store import Store
from kiosk.decide.decision import Outcome
from kiosk.events import EventType

Reason = Literal["entrance", "area", "meeting"]
_COLUMNS = "subject, kiosk, event_id, ts_ms, type, area, direction, outcome, kind, meeting"
GRANT = Outcome.GRANT.value  # a plain str, as UNUSED: compared once per row read


# The passages into and out of an area in time order, each with whether it leaves its subject
# inside (the kiosks' rules, :func:`~kiosk.central.presence.inside_after`); ``{order}`` is
# ``ts_ms`` (the key's order: nothing to sort) or, when one subject has two passages in one
# millisecond, ``ts_ms, event_id`` (the kiosks order such a tie by the CRC-32 of the event ids;
# here by the event id).
_PASSAGES = (  # the kind only of a passage that leaves its subject inside: fewer strings to read
    f"SELECT subject, ts_ms, {INSIDE_SQL}, CASE WHEN {INSIDE_SQL} THEN kind END"
    " FROM subject_events WHERE site = {p} AND ts_ms >= {p} AND ts_ms < {p} AND area = {p}"
    f" AND direction IN ('entry', 'exit') AND (outcome = '{GRANT}' OR type = '{UNUSED}')"
    " ORDER BY {order}"
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


class Contact(NamedTuple):  # a tuple: a trace makes thousands, quickly
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

    def who(cur: Any, where: str, *params: object) -> list[tuple[str, str | None, int]]:
        """subject, kind and ts_ms of the rows ``where`` says (the contacts' only columns)."""
        sql = (
            f"SELECT subject, kind, ts_ms FROM subject_events WHERE site = {p} AND {where}"
            f" ORDER BY ts_ms, {_EVENT_ORDER[store.dialect.name]}"
        )
        cur.execute(sql, (site, *params))
        return list(cur.fetchall())

    def work(cur: Any) -> tuple[list[Row], list[_Near], list[_Near], dict[str, Person]]:
        day_start = day_bounds(_local_day(t0, zone), zone)[0]
        own = rows(cur, f"subject = {p} AND ts_ms >= {p} AND ts_ms < {p}", subject, day_start, t1)
        mine = [r for r in own if r.type == EventType.DECISION.value and r.ts_ms >= t0]
        found: list[_Near] = []
        near = _entrances(cur, store.dialect.name, site, mine, w)
        for i, seen in enumerate(mine):
            found += [
                _Near("entrance", other, kind, ts_ms, seen.kiosk, seen.ts_ms, seen.ts_ms)
                for other, kind, ts_ms in near.get(i, ())
            ]
            if seen.meeting and seen.outcome == GRANT:
                first, after = day_bounds(_local_day(seen.ts_ms, zone), zone)
                met = who(
                    cur,
                    f"ts_ms >= {p} AND ts_ms < {p} AND meeting = {p} AND outcome = '{GRANT}'",
                    first,
                    after,
                    seen.meeting,
                )
                found += [
                    _Near("meeting", other, kind, ts_ms, seen.meeting, seen.ts_ms, seen.ts_ms)
                    for other, kind, ts_ms in met
                ]
        days: dict[tuple[int, str], list[Stay]] = {}  # the stays per local day and area
        for stay in stays(own, zone, cut_ms):
            if stay.end_ms > t0:
                first = day_bounds(_local_day(stay.start_ms, zone), zone)[0]
                days.setdefault((first, stay.area), []).append(stay)
        shared: list[_Near] = []  # in an area: one per subject and local day already
        for (first, area), held in days.items():
            shared += _shared(cur, p, site, first, area, held, t0, subject)
        found = [near for near in found if near.subject != subject]
        names = roster.people(cur, site, [subject, *(near.subject for near in found + shared)])
        return mine, found, shared, names

    with collector_paused():
        mine, found, shared, names = store.transaction(work)
        contacts = _contacts(found, shared, names, zone)
    return Trace(
        site,
        subject,
        names.get(subject),
        start,
        end,
        window,
        [_sighting(row, zone) for row in sorted(mine, key=lambda r: (r.ts_ms, r.kiosk))],
        contacts,
    )


# The windows of :func:`_entrances` as one JSON parameter (a parameter each would pass the
# databases' limits: PostgreSQL's 65,535 at 13,108 decisions, SQLite's 32,766 sooner), each
# window [its place, from, to, kiosk, type]; ``{p}`` the parameter, ``{c}`` a collation.
_WINDOWS = {
    "sqlite": "SELECT json_extract(value, '$[0]') AS i, json_extract(value, '$[1]') AS lo,"
    " json_extract(value, '$[2]') AS hi, json_extract(value, '$[3]') AS kiosk,"
    " json_extract(value, '$[4]') AS type FROM json_each({p})",
    "postgresql": "SELECT (e->>0)::int AS i, (e->>1)::bigint AS lo, (e->>2)::bigint AS hi,"
    " e->>3 AS kiosk, e->>4 AS type FROM json_array_elements({p}::json) AS e",
}
_EVENT_ORDER = {"sqlite": "event_id", "postgresql": 'event_id COLLATE "C"'}


def _entrances(
    cur: Any, dialect: str, site: str, mine: list[Row], w: int
) -> dict[int, list[tuple[str, str | None, int]]]:
    """Who passed the kiosk of each of the index person's decisions ``mine`` within ``w`` ms
    of it (subject, kind, ts_ms), by the decision's place in ``mine``, in time order, then
    by event id (so the same row wins on every store): one query for all, the windows in one
    JSON parameter."""
    if not mine:
        return {}
    p = "?" if dialect == "sqlite" else "%s"
    windows = json.dumps(
        [[i, r.ts_ms - w, r.ts_ms + w, r.kiosk, r.type] for i, r in enumerate(mine)]
    )
    cur.execute(
        f"WITH w AS ({_WINDOWS[dialect].format(p=p)})"
        " SELECT w.i, s.subject, s.kind, s.ts_ms FROM w JOIN subject_events s"
        f" ON s.site = {p} AND s.ts_ms >= w.lo AND s.ts_ms <= w.hi AND s.kiosk = w.kiosk"
        f" AND s.type = w.type ORDER BY w.i, s.ts_ms, s.{_EVENT_ORDER[dialect]}",
        (windows, site),
    )
    near: dict[int, list[tuple[str, str | None, int]]] = {}
    for i, subject, kind, ts_ms in cur.fetchall():
        near.setdefault(i, []).append((subject, kind, ts_ms))
    return near


def _shared(
    cur: Any, p: str, site: str, first: int, area: str, held: list[Stay], t0: int, index: str
) -> list[_Near]:
    """Everyone but ``index`` inside ``area`` during one of their ``held`` stays of the local
    day that begins at ``first``, once each: from the first moment they shared it (and the
    earliest stay that met them) to the last. One query for the day's passages there up to
    the latest stay's end, in time order (:func:`_spans`)."""
    end = max(stay.end_ms for stay in held)
    cuts = [(max(stay.start_ms, t0), stay.end_ms, stay.start_ms) for stay in held]
    cur.execute(_PASSAGES.format(p=p, order="ts_ms"), (site, first, end, area))
    try:
        spans = _spans(_inside(cur.fetchall(), end, cuts, ties=False), cuts)
    except _TiedError:  # one subject's passages in one millisecond: read them in event-id order
        cur.execute(_PASSAGES.format(p=p, order="ts_ms, event_id"), (site, first, end, area))
        spans = _spans(_inside(cur.fetchall(), end, cuts, ties=True), cuts)
    spans.pop(index, None)
    return [
        _Near("area", other, kind, at_ms, area, index_ms, first, until_ms)
        for other, (kind, at_ms, index_ms, until_ms, _) in spans.items()
    ]


class _TiedError(Exception):
    """A subject's two passages in one millisecond, read in the key's order, not the tie's."""


def _inside(
    rows: Iterable[tuple[str, int, Any, str | None]],
    end: int,
    cuts: list[tuple[int, int, int]],
    ties: bool,
) -> Iterator[tuple[str, str | None, int, int]]:
    """(subject, kind, from, until) for each of ``rows`` (passages in time order: subject,
    ts_ms, whether it leaves the subject inside, kind) that leaves its subject inside, held
    until their next passage or ``end``, if it lasts past the earliest of ``cuts``' starts.
    Raises :class:`_TiedError` if a subject has two passages in one millisecond, unless
    ``ties`` says the rows come in the tie's order."""
    since = min(cut[0] for cut in cuts)
    last: dict[str, tuple[int, Any, str | None]] = {}  # subject: their latest passage
    for subject, ts_ms, inside, kind in rows:
        held = last.get(subject)
        if held is not None:
            if held[0] == ts_ms and not ties:
                raise _TiedError
            if held[1] and ts_ms > since:
                yield subject, held[2], held[0], ts_ms
        last[subject] = (ts_ms, inside, kind)
    if end > since:
        for subject, (ts_ms, inside, kind) in last.items():
            if inside:
                yield subject, kind, ts_ms, end


def _spans(
    found: Iterable[tuple[str, str | None, int, int]], cuts: list[tuple[int, int, int]]
) -> dict[str, list[Any]]:
    """Per subject, the span of what was ``found`` inside during the index person's stays,
    ``cuts`` (from, until, the stay's start; in time order): [kind, from, the earliest met
    stay's start, until, that stay's place in ``cuts``], the kind of the subject's first
    passage to meet that stay."""
    spans: dict[str, list[Any]] = {}
    if len(cuts) == 1:  # the usual day: one stay, its start, and the spans come in time order
        ((start, until, stay),) = cuts
        for subject, kind, entered, left in found:
            if entered < until and left > start:
                span = spans.get(subject)
                if span is None:
                    spans[subject] = [kind, max(entered, start), stay, min(left, until), 0]
                else:
                    span[3] = max(span[3], min(left, until))
        return spans
    for subject, kind, entered, left in found:
        for place, (start, until, stay) in enumerate(cuts):
            if entered < until and left > start:
                span = spans.get(subject)
                if span is None:
                    spans[subject] = [kind, max(entered, start), stay, min(left, until), place]
                    continue
                if place < span[4]:
                    span[0], span[4] = kind, place
                span[1] = min(span[1], max(entered, start))
                span[2] = min(span[2], stay)
                span[3] = max(span[3], min(left, until))
    return spans


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


def _contacts(
    found: list[_Near], shared: list[_Near], names: dict[str, Person], zone: ZoneInfo
) -> list[Contact]:
    """One contact per subject, reason, place and occasion: of those ``found`` at an entrance
    or a meeting the closest in time to the index person's passage (the earlier of two as
    close, the first read of two in one millisecond); those ``shared`` in an
    area come one per subject and local day already (:func:`_shared`)."""
    best: dict[tuple[str, str, str, int], _Near] = {}
    for near in found:  # read in time order, then event id: the first of a tie stays
        key = (near.subject, near.reason, near.where, near.occasion)
        held = best.get(key)
        if held is None or (abs(near.at_ms - near.index_ms), near.at_ms) < (
            abs(held.at_ms - held.index_ms),
            held.at_ms,
        ):
            best[key] = near
    local: dict[int, datetime] = {}

    def at(ts_ms: int) -> datetime:
        when = local.get(ts_ms)
        if when is None:
            when = local[ts_ms] = datetime.fromtimestamp(ts_ms / 1000, zone)
        return when

    # An area's words name a local minute: the same for a place and a minute since the epoch
    # (every zone's offset is a whole number of minutes), so worded once per place and minute.
    said: dict[tuple[str, int], str] = {}
    contacts = []
    for near in sorted([*best.values(), *shared], key=_CONTACT_ORDER):
        reason, other, kind, at_ms, where, index_ms, _, until_ms = near
        person = names.get(other)
        if reason != "area":
            detail = _detail(near, at)
        else:
            minute = (where, (until_ms or at_ms) // 60_000)
            detail = said.get(minute) or said.setdefault(minute, _detail(near, at))
        contacts.append(
            Contact(
                other,
                person,
                person.kind if person else kind or "",
                reason,
                local.get(at_ms) or at(at_ms),
                where,
                local.get(index_ms) or at(index_ms),
                detail,
            )
        )
    return contacts


_CONTACT_ORDER = itemgetter(5, 3, 0, 1)  # a _Near's index_ms, at_ms, reason, subject


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
