"""``kiosk central demo``: a central store full of realistic traffic, through the real ingest.

The traffic (:mod:`kiosk.central.demotraffic`) happens at simulated kiosks that record it with
the kiosk's own code (:mod:`kiosk.central.demokiosks`). Their events travel as MQTT messages
encoded by :mod:`kiosk.mqtt.protocol` and are stored by central's own reading and commit
(:func:`kiosk.central.commit.read_message`, :func:`~kiosk.central.commit.commit`), a kiosk's
hour of events per message and the ingest's batch of messages per transaction, so nothing is
stored that central would not store from a broker; then each kiosk's status and retained
state. The roster is written as a roster file and imported as ``kiosk central roster import``
does; the site's salt file and a ``central.toml`` naming both are written beside the store.

What the store shows now: the busiest kiosk has a few events in flight (its backlog), the lab's
kiosk lost its link two hours ago (offline; its later events have not arrived), the meeting
room's kiosk restarted this morning without a time server, and the side door's thermometer
failed 35 minutes ago.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from kiosk.central import roster
from kiosk.central.commit import Work, commit, read_message
from kiosk.central.demokiosks import Kiosk, Site, layout, ms
from kiosk.central.demotraffic import LAB, MEETING, Model, Person
from kiosk.central.ingest import IngestSettings
from kiosk.central.rosterfile import read_roster
from kiosk.central.store import Store
from kiosk.mqtt.protocol import (
    Availability,
    KioskTopics,
    Leaf,
    WireEvent,
    encode_events,
    encode_state,
)

log = logging.getLogger(__name__)

EVENTS_PER_MESSAGE = 50
BATCH_MAX = IngestSettings().batch_max  # messages per transaction, as the ingest
BACKLOG_EVENTS = 3  # at most this many of the busiest kiosk's last events are in flight
BACKLOG_FOR = timedelta(hours=1)
OFFLINE_FOR = timedelta(hours=2)  # the lab's kiosk lost its link this long ago
DEMO_BY = "kiosk central demo"
CONFIG_FILE = "central.toml"
_MARK = "# Written by kiosk central demo: the demo store and its site."


class DemoError(Exception):
    """The demo cannot fill this store (it already holds events or a roster) or would
    overwrite a central.toml it did not write."""


@dataclass(frozen=True)
class DemoResult:
    """What :func:`fill` did."""

    events: int
    quarantined: int
    kiosks: list[str]
    people: int
    days: int
    seconds: float  # wall-clock time
    cpu_seconds: float  # this process's processor time: what a busy machine does not stretch
    config_file: Path


def _batches(
    site: str, kiosks: list[Kiosk], held: dict[str, int]
) -> Iterable[tuple[int, list[tuple[str, bytes]]]]:
    """Events messages as kiosks send them, each kiosk's events of an hour together (at most
    :data:`EVENTS_PER_MESSAGE` per message), stored as the ingest stores them, at most its
    ``batch_max`` messages per transaction: (when central receives the batch, [(topic,
    payload)])."""
    hours: dict[int, dict[str, list[WireEvent]]] = defaultdict(lambda: defaultdict(list))
    for kiosk in kiosks:
        for event in kiosk.events[: len(kiosk.events) - held.get(kiosk.id, 0)]:
            hours[event.ts_ms // 3_600_000][kiosk.id].append(event)
    batch: list[tuple[str, bytes]] = []
    last = 0
    for hour in sorted(hours):
        for kiosk_id, events in hours[hour].items():
            topic = KioskTopics(site, kiosk_id).topic(Leaf.EVENTS)
            for at in range(0, len(events), EVENTS_PER_MESSAGE):
                chunk = events[at : at + EVENTS_PER_MESSAGE]
                batch.append((topic, encode_events(site, kiosk_id, chunk)))
                last = max(last, chunk[-1].ts_ms)
                if len(batch) == BATCH_MAX:
                    yield last + 1500, batch
                    batch = []
    if batch:
        yield last + 1500, batch


def _store(store: Store, now_ms: int, messages: Iterable[tuple[str, bytes]]) -> tuple[int, int]:
    """Central's reading and commit of one batch; (events stored, quarantined)."""
    work = Work(now_ms)
    for topic, payload in messages:
        read_message(work, topic, payload, retain=False)
    done = commit(store, work, threading.Event())
    assert done is not None  # never stopped: commit only returns None when asked to stop
    return done.new, done.quarantined


def existing(store: Store) -> tuple[int, int]:
    """How many events and roster rows the store holds."""

    def count(cur: Any) -> tuple[int, int]:
        cur.execute("SELECT count(*) FROM events")
        events = int(cur.fetchone()[0])
        cur.execute("SELECT count(*) FROM roster")
        return events, int(cur.fetchone()[0])

    result: tuple[int, int] = store.transaction(count)
    return result


def empty(store: Store) -> None:
    """Delete every row of every central table (the schema's version stays)."""
    if store.dialect.name == "sqlite":
        listing = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
    else:
        listing = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"

    def work(cur: Any) -> None:
        cur.execute(listing)
        for (table,) in cur.fetchall():
            if table != "central_schema":
                cur.execute(f'DELETE FROM "{table}"')

    store.transaction(work)


def _toml(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)


def check_folder(folder: Path) -> None:
    """DemoError if ``folder`` holds a central.toml that the demo did not write."""
    path = folder / CONFIG_FILE
    try:
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError) as exc:
        raise DemoError(f"{path}: cannot read it: {exc}") from None
    if first != _MARK:
        raise DemoError(f"{path} was not written by the demo; give --files another folder")


def write_files(
    folder: Path, site: str, db_url: str, tz: str, salt: bytes, people: list[Person]
) -> tuple[Path, Path]:
    """The salt (mode 0600), the roster file and central.toml naming both; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    salt_file = folder / f"{site}.salt"
    salt_file.unlink(missing_ok=True)
    fd = os.open(salt_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(salt + b"\n")
    roster_file = folder / f"roster-{site}.csv"
    with roster_file.open("w", encoding="utf-8-sig", newline="") as handle:
        handle.write("badge,name,unit,kind,phone\r\n")
        for p in people:
            handle.write(f'{p.badge},{p.name},"{p.unit}",{p.kind},{p.phone or ""}\r\n')
    config_file = folder / CONFIG_FILE
    account = db_url.split("@", maxsplit=1)[0].rsplit("//", maxsplit=1)[-1]
    password = "@" in db_url and ":" in account  # never in the file: give --db instead
    store = "" if password else f"[store]\ndb = {_toml(db_url)}\n\n"
    config_file.write_text(
        f"{_MARK}\n{store}[sites.{site}]\n"
        'name = "Trụ sở chính (demo)"\n'
        f"timezone = {_toml(tz)}\n"
        f"subject_salt_file = {_toml(str(salt_file.resolve()))}\n"
        'language = "vi"\n',
        encoding="utf-8",
    )
    return roster_file, config_file


def fill(
    store: Store,
    db_url: str,
    folder: Path,
    *,
    site: str = "hq",
    kiosks: int = 5,
    days: int = 30,
    seed: int = 1,
    tz: str = "Asia/Ho_Chi_Minh",
    now: datetime | None = None,
    replace: bool = False,
) -> DemoResult:
    """Fill ``store`` with ``days`` days of a site's traffic ending ``now`` (default: the
    present), and write the salt, roster file and central.toml into ``folder``. DemoError if
    the store already holds events or a roster, unless ``replace``."""
    started, cpu_started = time.perf_counter(), time.process_time()
    check_folder(folder)
    held_events, held_roster = existing(store)
    if held_events or held_roster:
        if not replace:
            raise DemoError(
                f"the store already holds {held_events:,} events and {held_roster:,} roster "
                "rows; give --replace to empty it and fill it again"
            )
        empty(store)
    zone = ZoneInfo(tz)
    now = (now or datetime.now(zone)).astimezone(zone)
    rng = random.Random(seed)
    salt = f"demo-{rng.getrandbits(128):032x}".encode()
    first = now.date() - timedelta(days=days - 1)
    traffic = Model(seed, kiosks, zone).run(first, now)
    roster_file, config_file = write_files(folder, site, db_url, tz, salt, traffic.people)
    simulated = Site(site, layout(site, kiosks), traffic.people, salt, zone, rng)
    _simulate(simulated, traffic.happenings, first, now)
    stored, quarantined = _deliver(store, simulated, now)
    holders = read_roster(roster_file, simulated.subjects)
    roster.replace(store, site, "import", holders, DEMO_BY, ms(now))
    log.info("demo: %d events stored, %d quarantined, %d people", stored, quarantined, len(holders))
    ids = [k.id for k in simulated.kiosks]
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return DemoResult(stored, quarantined, ids, len(holders), days, seconds, cpu, config_file)


def _simulate(site: Site, happenings: Iterable[Any], first: Any, now: datetime) -> None:
    """The kiosks start on the first day and record every happening; the meeting room's
    kiosk restarts at 07:30 today, without a time server since."""
    zone = site.tz
    site.start(datetime.combine(first, datetime.min.time(), zone) + timedelta(hours=5))
    morning = datetime.combine(now.date(), datetime.min.time(), zone) + timedelta(hours=7.5)
    restart = next((k for k in site.kiosks if k.door == MEETING), None)
    for happening in happenings:
        if restart is not None and happening.at >= morning:
            site.restart(restart, morning, clock_synced=False)
            restart = None
        site.happen(happening)


def _deliver(store: Store, site: Site, now: datetime) -> tuple[int, int]:
    """Every kiosk's events (but the backlog and the offline kiosk's latest), then its status
    and state, through central's ingest; (events stored, quarantined)."""
    offline = next((k for k in site.kiosks if k.door == LAB), None)
    link_lost = now - OFFLINE_FOR
    held = _backlog(site.kiosks, now)
    if offline is not None:
        held[offline.id] = sum(e.ts_ms >= ms(link_lost) for e in offline.events)
    stored = quarantined = 0
    for received_ms, messages in _batches(site.site, site.kiosks, held):
        new, refused = _store(store, min(received_ms, ms(now)), messages)
        stored, quarantined = stored + new, quarantined + refused
    for kiosk in site.kiosks:
        topics = KioskTopics(site.site, kiosk.id)
        unconfirmed = kiosk.events[len(kiosk.events) - held.get(kiosk.id, 0) :]
        at, status = now, Availability.ONLINE
        if kiosk is offline:  # its will said offline; its state is the last before that
            at, status, unconfirmed = link_lost, Availability.OFFLINE, []
        state = encode_state(site.state(kiosk, at, unconfirmed))
        updates = [
            (topics.topic(Leaf.STATUS), status.value.encode()),
            (topics.topic(Leaf.STATE), state),
        ]
        quarantined += _store(store, ms(at), updates)[1]
    return stored, quarantined


def _backlog(kiosks: list[Kiosk], now: datetime) -> dict[str, int]:
    """Events not at central yet: the busiest kiosk's of the last minutes, in flight (their
    receipt not back yet), as {kiosk id: how many of its last events}."""
    recent = [k for k in kiosks if k.events and k.door != LAB]
    if not recent:
        return {}
    busiest = max(recent, key=lambda k: k.events[-1].ts_ms)
    since = ms(now - BACKLOG_FOR)
    return {busiest.id: sum(e.ts_ms >= since for e in busiest.events[-BACKLOG_EVENTS:])}
