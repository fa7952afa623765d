"""The sending half of the event sync: outbox → broker, through a bounded window.

:class:`Sender` keeps the window: the events handed to paho (*in flight*) under the message
that carries them, and a cursor into the outbox. Each round it refills the window in sequence
order, packing a backlog into messages of up to ``batch_max`` events and ``max_message_bytes``
bytes (:func:`pack`); marks events sent on PUBACK (batched) and confirmed on central's receipt
(or on PUBACK, ``mqtt.confirm = "puback"``); and sends again what waited too long, waiting
twice as long after each resend no receipt answered (up to :data:`RESEND_BACKOFF_MAX` times
``resend_after_s``), so that an absent or stalled central is not buried in resends. With each
events message go the alerts its events raise (:func:`kiosk.events.alert_for`) and its
passages for the site's other kiosks. :class:`kiosk.sync.Sync` runs it in its one thread.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from kiosk.events import EventType, alert_for, may_alert
from kiosk.mqtt.protocol import (
    MAX_MESSAGE_BYTES,
    Leaf,
    WireEvent,
    WirePassage,
    encode_alert,
    encode_passages,
    event_json,
    events_message,
    passage_of,
)
from kiosk.mqtt.uplink import Published, Uplink
from kiosk.store.eventlog import EventLogError, OutboxEvent

log = logging.getLogger(__name__)

HISTORICAL_AFTER_MS = 10_000  # an event that waited longer than this is sent as historical
BACKLOG_FOR_BATCHING = 20  # pack events together once more than this many wait
RESEND_BACKOFF_MAX = 4  # unanswered resends stretch the wait up to this many resend_after_s
# The types whose events carry a passage, as plain str: reading an enum member costs more than
# the rest of the test on each event sent.
_DECISION, _GRANT_UNUSED = EventType.DECISION.value, EventType.GRANT_UNUSED.value


class Outbox(Protocol):
    """What the sync needs from the event log (:class:`kiosk.store.eventlog.EventLog` is one)."""

    def pending_json(self, limit: int, after_seq: int = 0) -> list[OutboxEvent]:
        """Unconfirmed events after ``after_seq``, oldest first, data as stored JSON."""
        ...

    def mark_sent(self, seqs: Iterable[int]) -> None:
        """The broker acknowledged these events (they may still need a re-send)."""
        ...

    def mark_confirmed(self, seqs: Iterable[int]) -> int:
        """Central stored these events; returns how many were newly confirmed."""
        ...


@dataclass
class SyncStats:
    """Counters for the state topic, the status page and the tests."""

    connected: bool = False
    published_events: int = 0
    confirmed_events: int = 0
    resent_events: int = 0
    refused_publishes: int = 0
    ignored_messages: int = 0  # received messages whose handling failed (logged, skipped)
    unsendable_events: int = 0  # events too large for any message (kept in the log, unsent)
    runs: int = 0  # times :meth:`Sync.run` started: more than one means it crashed
    last_error: str = ""
    last_receipt_ms: int | None = None


class Sender:
    """The window of events in flight and everything that fills and empties it.

    Runs in the sync's thread; :meth:`resend_from` may also come from another thread, hence
    the lock around the window.
    """

    def __init__(
        self,
        uplink: Uplink,
        outbox: Outbox,
        stats: SyncStats,
        *,
        confirm_on_puback: bool,
        window: int,
        batch_max: int,
        max_message_bytes: int,
        resend_after_s: float,
        now_ms: Callable[[], int],
    ) -> None:
        self.uplink, self.outbox, self.stats = uplink, outbox, stats
        self._confirm_on_puback = confirm_on_puback
        self._window, self._batch_max = window, batch_max
        self._max_bytes = max_message_bytes
        self._resend_after_s = resend_after_s
        self._resend_delay_s = resend_after_s
        self._now_ms = now_ms
        self._envelope = len(events_message(uplink.topics.site, uplink.topics.kiosk, []))
        self._unsendable: set[int] = set()  # seqs of events no message can carry
        # seq -> (mid, handed at, the wait for its receipt: the resend delay when handed)
        self._in_flight: dict[int, tuple[int | None, float, float]] = {}
        self._by_mid: dict[int, list[int]] = {}  # mid -> seqs in that message
        self._cursor = 0  # highest seq handed to paho since the last reset
        self._acked: list[int] = []
        self._lock = threading.Lock()

    @property
    def resend_delay_s(self) -> float:
        """How long an event in flight waits for its receipt before it is sent again:
        ``resend_after_s``, doubled by each resend that no receipt answered (up to
        :data:`RESEND_BACKOFF_MAX` times), and back to ``resend_after_s`` at the next receipt."""
        return self._resend_delay_s

    @property
    def in_flight(self) -> int:
        """Events handed to the broker and not yet confirmed."""
        return len(self._in_flight)

    def fill_window(self, now: float) -> None:
        """Hand paho the next unconfirmed events after the cursor, as far as the window allows."""
        room = self._window - len(self._in_flight)
        if room <= 0:
            return
        try:
            events = self.outbox.pending_json(min(room, 5000), after_seq=self._cursor)
        except EventLogError as exc:
            self.stats.last_error = str(exc)
            log.error("cannot read the outbox: %s", exc)
            return
        events = [
            e for e in events if e.seq not in self._in_flight and e.seq not in self._unsendable
        ][:room]
        now_ms = self._now_ms()
        wire, items, too_large = [], [], []
        for event in events:
            pair = (
                _wire(event, historical=now_ms - event.ts_ms > HISTORICAL_AFTER_MS),
                event.data_json,
            )
            item = event_json(*pair)
            if self._envelope + len(item) > MAX_MESSAGE_BYTES:
                too_large.append(event.seq)
            else:
                wire.append(pair)
                items.append(item)
        if too_large:
            self._unsendable.update(too_large)
            self.stats.unsendable_events += len(too_large)
            self.stats.last_error = (
                f"events over {MAX_MESSAGE_BYTES} bytes, unsent: seq {too_large}"
            )
            log.error("%s (they stay in the log)", self.stats.last_error)
        count = self._batch_max if len(items) > BACKLOG_FOR_BATCHING else 1
        start = 0
        for length in pack([len(item) for item in items], count, self._max_bytes - self._envelope):
            end = start + length
            if not self._send(wire[start:end], items[start:end], now):
                break
            start = end
        else:
            if too_large:  # everything around them went: never read them again each round
                with self._lock:
                    self._cursor = max(self._cursor, *too_large)

    def _send(self, wire: list[tuple[WireEvent, str]], items: list[bytes], now: float) -> bool:
        topics = self.uplink.topics
        payload = events_message(topics.site, topics.kiosk, items)
        if len(payload) > self._max_bytes:
            log.warning(
                "event seq %d is %d bytes, over mqtt.max_message_bytes (%d): sent alone",
                wire[0][0].seq,
                len(payload),
                self._max_bytes,
            )
        mid = self.uplink.publish(Leaf.EVENTS, payload)
        if mid is None:
            self.stats.refused_publishes += 1
            return False
        seqs = [item.seq for item, _ in wire]
        with self._lock:
            self._by_mid[mid] = seqs
            for seq in seqs:
                self._in_flight[seq] = (mid, now, self._resend_delay_s)
            self._cursor = max(self._cursor, seqs[-1])
        self.stats.published_events += len(seqs)
        passages = []
        for item, data_json in wire:
            alerting = may_alert(item.type, data_json)
            sharing = item.type == _GRANT_UNUSED or (
                item.type == _DECISION and '"grant"' in data_json
            )
            if not (alerting or sharing):
                continue  # cheap tests first: only these need their data parsed
            data = json.loads(data_json)
            if alerting:
                full = dataclasses.replace(item, data=data)
                alert = alert_for(full)
                if alert is not None:
                    self.uplink.publish(
                        Leaf.ALERTS, encode_alert(topics.kiosk, alert[0], full, alert[1])
                    )
            passage = passage_of(item.type, item.event_id, item.seq, item.ts_ms, data)
            if passage is not None:
                passages.append(passage)
        if passages:
            self._share(passages)
        return True

    def _share(self, passages: list[WirePassage]) -> None:
        """Tell the site's other kiosks the passages of an events message just handed over.

        They travel with each sending of their events, re-sends included, so a neighbour
        learns them as surely as central gets the events (its session keeps them while it is
        offline); learning one twice changes nothing."""
        topics = self.uplink.topics
        payload = encode_passages(topics.site, topics.kiosk, passages)
        if self.uplink.publish(Leaf.PASSAGES, payload) is None:
            self.stats.refused_publishes += 1
            log.error("the MQTT client refused %d passages for the site's kiosks", len(passages))

    def published(self, event: Published) -> None:
        """The broker acknowledged (or refused) a message: its events are sent (or retried)."""
        with self._lock:
            seqs = self._by_mid.pop(event.mid, None)
        if seqs is None:  # passages, an alert, the state, or a message from before a reset
            if not event.ok:
                log.error(
                    "the broker refused a message (%s): does its ACL grant this kiosk's"
                    " topics? (deploy/mosquitto/acl)",
                    event.reason,
                )
            return
        if not event.ok:
            self.stats.last_error = f"broker refused events: {event.reason}"
            log.error(
                "broker refused %d events (%s); they are retried after %.0f s",
                len(seqs),
                event.reason,
                self._resend_delay_s,
            )
            return
        if self._confirm_on_puback:
            self.confirm(seqs)
        else:
            self._acked.extend(seqs)

    def flush_marks(self) -> None:
        """Mark the events the broker acknowledged since the last flush sent, in one write."""
        if not self._acked:
            return
        acked, self._acked = self._acked, []
        try:
            self.outbox.mark_sent(acked)
        except EventLogError as exc:
            log.warning("could not mark %d events sent (they will be resent): %s", len(acked), exc)

    def confirm(self, seqs: list[int]) -> None:
        """Central stored these events: mark them confirmed and take them out of the window."""
        try:
            self.stats.confirmed_events += self.outbox.mark_confirmed(seqs)
        except EventLogError as exc:
            log.warning("could not mark events confirmed (a receipt will come again): %s", exc)
            return
        with self._lock:
            answered = [seq for seq in seqs if self._in_flight.pop(seq, None) is not None]
        if answered:
            self._resend_delay_s = self._resend_after_s

    @property
    def marks_waiting(self) -> bool:
        """Whether acknowledged events wait for :meth:`flush_marks`."""
        return bool(self._acked)

    def resend_overdue(self, now: float) -> float | None:
        """Send again everything from the oldest event in flight longer than the wait it was
        handed with (:attr:`resend_delay_s` then, which doubles now, up to its limit, until a
        receipt comes).

        Returns when the next event still in flight falls overdue (None: none is)."""
        overdue, waited = [], 0.0
        with self._lock:
            for seq, (_, handed, wait) in self._in_flight.items():
                if now - handed >= wait:
                    overdue.append(seq)
                    waited = max(waited, wait)
        if overdue:
            self._resend_delay_s = min(
                self._resend_delay_s * 2, self._resend_after_s * RESEND_BACKOFF_MAX
            )
            log.warning(
                "%d events not confirmed after %.0f s: sending them again (then again after"
                " %.0f s if still unconfirmed)",
                len(overdue),
                waited,
                self._resend_delay_s,
            )
            self.stats.resent_events += len(overdue)
            self.resend_from(min(overdue))  # takes every event after the oldest overdue one
        with self._lock:
            dues = [handed + wait for _, handed, wait in self._in_flight.values()]
        return min(dues, default=None)

    def resend_from(self, seq: int) -> None:
        """Send every unconfirmed event from ``seq`` on again (central asked, or overdue)."""
        with self._lock:
            for pending in [s for s in self._in_flight if s >= seq]:
                del self._in_flight[pending]
            self._cursor = min(self._cursor, seq - 1)

    def forget_in_flight(self) -> None:
        """The broker lost the session: everything unconfirmed goes again from the start, with
        the first resend delay again."""
        with self._lock:
            self._in_flight.clear()
            self._by_mid.clear()
            self._cursor = 0
        self._resend_delay_s = self._resend_after_s


def pack(sizes: Sequence[int], count: int, budget: int) -> list[int]:
    """Cut items of these encoded sizes, in order, into batches of at most ``count`` items
    whose sizes, plus one separator byte between two, add up to at most ``budget``; an item
    over ``budget`` makes a batch of its own. Returns the length of each batch."""
    batches: list[int] = []
    length = used = 0
    for size in sizes:
        if length and (length == count or used + 1 + size > budget):
            batches.append(length)
            length = used = 0
        used += size + (1 if length else 0)
        length += 1
    if length:
        batches.append(length)
    return batches


def _wire(event: OutboxEvent, *, historical: bool) -> WireEvent:
    """The event's envelope; its data travels as the stored JSON text (see Sender._send)."""
    return WireEvent(
        event.event_id,
        event.seq,
        event.boot_id,
        event.ts_ms,
        event.clock_synced,
        event.type,
        {},
        historical=historical,
    )
