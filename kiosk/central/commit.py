"""Storing one batch: events, status and state updates, and the quarantine, never halting.

:func:`read_message` adds one received message to a batch (:class:`Work`); :func:`commit`
stores the batch. The ingest and ``kiosk central demo`` both go through these two.

A store error about a row makes the batch go again row by row, so only that row is
quarantined; any other error (connection lost, lock timeout, disk full) is retried with
backoff until it works or the caller stops.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

from kiosk.central.messages import Update, decode_update, read_events
from kiosk.central.quarantine import Quarantined, is_data_error, refusal
from kiosk.central.rows import EventRow, Stored
from kiosk.central.store import Store
from kiosk.mqtt.protocol import KioskTopics, Leaf, ProtocolError, parse_topic

log = logging.getLogger(__name__)


@dataclass
class Work:
    """One batch as read: rows to store, status/state updates (with their topic and bytes,
    should the store refuse them) and what is already refused."""

    now_ms: int
    rows: list[EventRow] = field(default_factory=list)
    updates: list[tuple[str, bytes, Update]] = field(default_factory=list)
    refused: list[Quarantined] = field(default_factory=list)


class Done(NamedTuple):
    """What a commit did."""

    new: int  # events stored for the first time
    refused: set[int]  # id() of the rows of Work.rows that were quarantined
    items: list[Quarantined]  # quarantined by the store, beyond Work.refused
    quarantined: int  # all quarantined in this batch


def read_message(work: Work, topic: str, payload: bytes, retain: bool) -> bool:
    """Add one received message's rows, update or refusals to ``work``; False when the
    message as a whole is refused (malformed: it goes to the quarantine with the batch)."""
    try:
        site, kiosk, leaf = parse_topic(topic)
        KioskTopics(site, kiosk)  # a valid id, usable in reply topics
        if leaf is Leaf.EVENTS:
            rows, refused = read_events(site, kiosk, payload, work.now_ms)
            work.rows += rows
            work.refused += [
                refusal(topic, r.payload, r.reason, work.now_ms, r.seq) for r in refused
            ]
        elif payload:  # an empty retained message clears the topic: nothing to do
            update = decode_update(site, kiosk, leaf, payload, retain, work.now_ms)
            work.updates.append((topic, payload, update))
    except (ProtocolError, ValueError) as exc:
        work.refused.append(refusal(topic, payload, str(exc), work.now_ms))
        return False
    except Exception as exc:  # a bug, not the message's fault: still never a halt
        log.exception("reading a message on %s failed", topic)
        reason = f"central could not read it: {type(exc).__name__}"
        work.refused.append(refusal(topic, payload, reason, work.now_ms))
        return False
    return True


def commit(store: Store, work: Work, stop: threading.Event) -> Done | None:
    """Store ``work`` and quarantine what cannot be stored; None if ``stop`` was set while
    waiting to retry (nothing may then be acknowledged)."""
    delay = 0.5
    one_by_one = False
    while True:
        try:
            done = _store_each(store, work) if one_by_one else _store_all(store, work)
        except Exception as exc:
            if is_data_error(exc) and not one_by_one:
                log.warning("the store refused a row (%s); storing row by row", _name(exc))
                one_by_one = True
                continue
            log.error("storing a batch failed (%s); retrying in %.1f s", _name(exc), delay)
            if stop.wait(delay):
                return None
            delay = min(delay * 2, 30.0)
            continue
        if done.quarantined:
            latest = (work.refused + done.items)[-1]
            log.warning(
                "quarantined %d messages or events; the last on %s: %s",
                done.quarantined,
                latest.topic,
                latest.reason,
            )
        return done


def _store_all(store: Store, work: Work) -> Done:
    stored = store.insert_batch(work.rows) if work.rows else Stored(0, [])
    for _topic, _payload, update in work.updates:
        _apply(store, update)
    items = [_refused_row(row, reason, work.now_ms) for row, reason in stored.conflicts]
    store.quarantine(work.refused + items)
    refused = {id(row) for row, _ in stored.conflicts}
    return Done(stored.new, refused, items, len(work.refused) + len(items))


def _store_each(store: Store, work: Work) -> Done:
    new, refused, items = 0, set[int](), list[Quarantined]()
    for row in work.rows:
        try:
            stored = store.insert_batch([row])
        except Exception as exc:
            if not is_data_error(exc):
                raise
            stored = Stored(0, [(row, f"the store refused it: {_store_reason(exc)}")])
        new += stored.new
        refused.update(id(r) for r, _ in stored.conflicts)
        items += [_refused_row(r, reason, work.now_ms) for r, reason in stored.conflicts]
    for topic, payload, update in work.updates:
        try:
            _apply(store, update)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            reason = f"the store refused it: {_store_reason(exc)}"
            items.append(refusal(topic, payload, reason, work.now_ms))
    store.quarantine(work.refused + items)
    return Done(new, refused, items, len(work.refused) + len(items))


def _apply(store: Store, update: Update) -> None:
    site, kiosk, leaf, value, seen_ms = update
    if leaf is Leaf.STATUS:
        store.set_availability(site, kiosk, value, seen_ms)
    else:
        store.set_state(site, kiosk, value, seen_ms)


def _name(exc: BaseException) -> str:
    return type(exc).__name__


def _store_reason(exc: BaseException) -> str:
    """The store's complaint, first line only: it may quote part of the row."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{_name(exc)}: {first[:200]}"


def _refused_row(row: EventRow, reason: str, now_ms: int) -> Quarantined:
    payload = json.dumps(row._asdict(), ensure_ascii=True).encode("ascii")
    topic = KioskTopics(row.site, row.kiosk).topic(Leaf.EVENTS)
    return refusal(topic, payload, reason, now_ms, row.seq)
