"""Who is inside now, per site and area, from the passages of all the site's kiosks.

The rules are the kiosk's own (:mod:`kiosk.decide.area`), applied to what central stored: a
granted entry or exit with a subject is a passage, a ``grant_unused`` event puts the subject
back where they were, and each subject's newest passage per area wins, ordered by time and
then by the CRC-32 of the event id, as at every kiosk; a subject is inside an area when that
passage leaves them inside. The count starts afresh at midnight, in the site's time zone
(``[sites.<id>] timezone``): someone who entered yesterday and never scanned out is not inside
today. A passage dated more than :data:`~kiosk.decide.area.MAX_AHEAD_S` ahead of now is not
counted. A check-in kiosk's grants are entries into its area, as its neighbours count them.

Everything is read from ``subject_events`` (plain columns the ingest writes): on a day
without two passages of one subject in one millisecond (SQLite asks first; PostgreSQL's query
says it) one query per site for each subject's newest passage per area; on a day with one,
the full rows and those tied, as the kiosks need them; plus one on the roster for the names.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kiosk.central import roster
from kiosk.central.reports.daily import day_bounds, known_sites
from kiosk.central.roster import Person
from kiosk.central.settings import CentralConfig
from kiosk.central.store import Store
from kiosk.decide.area import MAX_AHEAD_S
from kiosk.events import EventType


class Present(NamedTuple):  # a tuple: who is inside makes thousands, quickly
    """One person inside an area: since their last passage, at which kiosk."""

    site: str
    area: str
    subject: str
    since: datetime  # local time of the site
    kiosk: str
    kind: str  # the roster's, else the credential's
    person: Person | None


@dataclass(frozen=True)
class AreaCount:
    """An area of a site that had passages today, with the people inside it now."""

    site: str
    area: str
    people: tuple[Present, ...]


_PASSAGES = (
    " FROM subject_events WHERE site = {p} AND ts_ms >= {p} AND ts_ms <= {p}"
    " AND direction IN ('entry', 'exit') AND (outcome = 'grant' OR type = {p})"
)
# Whether a subject has two passages in one millisecond today (rare): if none, no tie needs
# the kiosks' tie-break, and each (subject, area)'s newest passage is one row. SQLite asks
# first; PostgreSQL's newest rows say whether the next older passage is in the same
# millisecond, with the same sort (in bytes' order: quicker than the database's collation).
_ANY_TIE = f"SELECT 1{_PASSAGES} GROUP BY subject, ts_ms HAVING count(*) > 1 LIMIT 1"
# Whether a passage leaves its subject inside (:func:`inside_after`), in SQL.
INSIDE_SQL = f"(direction = 'entry') <> (type = '{EventType.GRANT_UNUSED.value}')"
_IN = INSIDE_SQL
_SHORT = (
    f"subject, area, ts_ms, {_IN}, CASE WHEN {_IN} THEN kiosk END, CASE WHEN {_IN} THEN kind END"
)
# An area stored as "" and one stored as NULL are one area (no area), as at the kiosks.
_GROUP = 'subject COLLATE "C", COALESCE(area, \'\') COLLATE "C"'
# One newest passage per (subject, area) (SQLite's bare columns come from the max() row): the
# subject, area, time, whether it leaves the subject inside, only then kiosk and kind, and
# whether it is tied.
_NEWEST = {
    "sqlite": f"SELECT {_SHORT.replace('ts_ms', 'max(ts_ms)', 1)}, 0{_PASSAGES}"
    " GROUP BY subject, COALESCE(area, '')",
    "postgresql": f"SELECT DISTINCT ON ({_GROUP}) {_SHORT},"
    f" ts_ms = lead(ts_ms) OVER (PARTITION BY {_GROUP} ORDER BY ts_ms DESC){_PASSAGES}"
    f" ORDER BY {_GROUP}, ts_ms DESC",
}
# With a tie today: the newest passages in full, and those that share their millisecond with
# another of the same subject and area; the kiosks' tie-break needs them all.
_COLUMNS = "subject, area, ts_ms, event_id, type, direction, kiosk, kind"
_NEWEST_FULL = {
    "sqlite": f"SELECT {_COLUMNS.replace('ts_ms', 'max(ts_ms)')}{_PASSAGES}"
    " GROUP BY subject, COALESCE(area, '')",
    "postgresql": f"SELECT DISTINCT ON (subject, COALESCE(area, '')) {_COLUMNS}{_PASSAGES}"
    " ORDER BY subject, COALESCE(area, ''), ts_ms DESC",
}
_TIED = (
    f"SELECT {_COLUMNS}{_PASSAGES} AND (subject, COALESCE(area, ''), ts_ms) IN"
    f" (SELECT subject, COALESCE(area, ''), ts_ms{_PASSAGES}"
    " GROUP BY subject, COALESCE(area, ''), ts_ms HAVING count(*) > 1)"
)


def _newest_rows(rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Each (subject, area)'s newest passage; a tie in one millisecond goes to the higher
    CRC-32 of the event id, as at the kiosks (``rows`` holds the newest passages and those
    tied with them, so only a tie needs a CRC)."""
    newest: dict[tuple[str, str], tuple[Any, ...]] = {}
    for row in rows:
        key = (row[0], str(row[1] or ""))
        held = newest.get(key)
        if held is None or zlib.crc32(row[3].encode()) > zlib.crc32(held[3].encode()):
            newest[key] = row
    return newest


UNUSED = EventType.GRANT_UNUSED.value  # a plain str: compared once per passage read


def inside_after(event_type: str, direction: str) -> bool:
    """Whether a passage leaves its subject inside; a withdrawn grant undoes its direction."""
    return (direction == "entry") != (event_type == UNUSED)


class _Pause:
    """The collector's pause, shared by every thread: how many hold it (under ``lock``), and
    whether the first of them found the collector on, so the last turns it back on."""

    lock = threading.Lock()
    holders = 0
    resume = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused: who is inside and the trace make thousands of
    small objects (no cycles) that live until they return, which the collector would
    otherwise walk again and again, with everything else the process holds (a fifth of a
    15,000-contact trace's time). Process-wide, as the collector is, so counted under a lock:
    the first of overlapping pauses (in any thread) notes whether the collector was on, and
    the last to end turns it back on if it was; left paused if it was off before them all."""
    with _Pause.lock:
        if _Pause.holders == 0:
            _Pause.resume = gc.isenabled()
            gc.disable()
        _Pause.holders += 1
    try:
        yield
    finally:
        with _Pause.lock:
            _Pause.holders -= 1
            if _Pause.holders == 0 and _Pause.resume:
                gc.enable()


def site_inside(store: Store, site: str, zone: ZoneInfo, now_s: float) -> list[AreaCount]:
    """The site's areas that had passages since its local midnight, with who is inside each
    at ``now_s`` (epoch seconds), by area, then name (or subject)."""
    today = datetime.fromtimestamp(now_s, zone).date()
    start_ms, _ = day_bounds(today, zone)
    until_ms = int((now_s + MAX_AHEAD_S) * 1000)
    p = store.dialect.param
    passages = (site, start_ms, until_ms, UNUSED)

    def work(cur: Any) -> tuple[list[tuple[Any, ...]], dict[str, Person]]:
        rows: list[tuple[Any, ...]] = []
        tied = False
        if store.dialect.name == "sqlite":
            cur.execute(_ANY_TIE.format(p=p), passages)
            tied = cur.fetchone() is not None
        if not tied:
            cur.execute(_NEWEST[store.dialect.name].format(p=p), passages)
            rows = cur.fetchall()
            tied = any(row[6] for row in rows)
        if tied:
            rows = _newest_with_ties(cur, store.dialect.name, p, passages)
        return rows, roster.people(cur, site, (row[0] for row in rows if row[3]))

    with collector_paused():
        return _by_area(site, zone, *store.transaction(work))


def _by_area(
    site: str, zone: ZoneInfo, rows: list[tuple[Any, ...]], people: dict[str, Person]
) -> list[AreaCount]:
    """The newest passages ``rows`` as areas with the people they leave inside."""
    areas: dict[str, list[Present]] = {}
    local: dict[int, datetime] = {}  # each moment made once: many share one
    for subject, area, ts_ms, inside, kiosk, kind, _ in rows:
        members = areas.setdefault(str(area or ""), [])
        if inside:
            person = people.get(subject)
            since = local.get(ts_ms)
            if since is None:
                since = local[ts_ms] = datetime.fromtimestamp(int(ts_ms) / 1000, zone)
            who = person.kind if person else str(kind or "")
            members.append(Present(site, str(area or ""), subject, since, kiosk, who, person))
    return [
        AreaCount(site, area, tuple(sorted(members, key=_order)))
        for area, members in sorted(areas.items())
    ]


def _newest_with_ties(
    cur: Any, dialect: str, p: str, passages: tuple[object, ...]
) -> list[tuple[Any, ...]]:
    """The newest passages as :data:`_NEWEST` reads them, each tie in one millisecond broken
    as the kiosks break it (:func:`_newest_rows`)."""
    cur.execute(_NEWEST_FULL[dialect].format(p=p), passages)
    found = cur.fetchall()
    cur.execute(_TIED.format(p=p), passages * 2)
    at = {(row[0], row[1] or ""): row[2] for row in found}
    found += [row for row in cur.fetchall() if at[(row[0], row[1] or "")] == row[2]]
    return [
        (subject, area, ts_ms, inside, kiosk if inside else None, kind if inside else None, 0)
        for subject, area, ts_ms, _, event_type, direction, kiosk, kind in (
            _newest_rows(found).values()
        )
        for inside in [inside_after(event_type, direction)]
    ]


def _order(present: Present) -> tuple[str, str]:
    return (present.person.name if present.person else "\uffff", present.subject)


def inside(
    store: Store, config: CentralConfig, site: str | None = None, now_s: float | None = None
) -> list[AreaCount]:
    """Who is inside now at ``site``, or at every site the config or the fleet names, each
    site in its own time zone; the dashboard's page and ``report inside`` show this."""
    now = time.time() if now_s is None else now_s
    sites = [site] if site is not None else known_sites(store, config)
    return [
        area
        for name in sites
        for area in site_inside(store, name, ZoneInfo(config.site(name).timezone), now)
    ]


class PeopleInsideCollector(Collector):
    """The gauge ``central_people_inside{site,area}``, read from the store at each scrape."""

    def __init__(self, store: Store, config: CentralConfig) -> None:
        self._store = store
        self._config = config

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """How many people are inside each area that had passages today."""
        gauge = GaugeMetricFamily(
            "central_people_inside", "People inside now, per site and area", labels=["site", "area"]
        )
        for area in inside(self._store, self._config):
            gauge.add_metric([area.site, area.area], len(area.people))
        yield gauge
