"""Event sync: drain the SQLite outbox to MQTT, confirm on central's receipts, resend the rest.

The outbox (the event log) is the only durable store: paho keeps its queue in memory. The
sync loop feeds paho from the outbox through a bounded window, in sequence order:

- an event handed to paho is *in flight*; the broker's PUBACK marks it *sent* (batched
  writes); central's receipt marks it *confirmed* (``mqtt.confirm = "receipt"``), or the
  PUBACK does (``"puback"``, for sites whose subscriber sends no receipts);
- an event in flight for ``resend_after_s`` without a receipt is sent again, and so is
  everything when the broker has lost the kiosk's session;
- a backlog is packed into messages of up to ``batch_max`` events and ``max_message_bytes``
  bytes, flagged ``historical``; an event over that size goes alone, and one over the size
  central accepts (:data:`~kiosk.mqtt.protocol.MAX_MESSAGE_BYTES`) is reported and left in the log
  rather than sent, so it never holds up the events behind it;
- with each events message goes a ``passages`` message for the site's other kiosks: the
  grants and withdrawn grants in it, cut down to what a neighbour needs
  (:func:`~kiosk.mqtt.protocol.passage_of`).

Everything runs in one thread reading :attr:`Uplink.inbox`; a watchdog restarts a paho client
whose network thread died. No message received can stop the loop: whatever handling one
raises is logged in one line (topic and error type, no content), counted and skipped.

The module is longer than most: the window, the cursor and the in-flight map are the state of
one loop in one thread, and splitting them over modules would only spread it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kiosk.mqtt.protocol import (
    DEFAULT_MESSAGE_BYTES,
    MAX_MESSAGE_BYTES,
    Availability,
    Leaf,
    ProtocolError,
    WireEvent,
    WirePassage,
    decode_receipt,
    encode_alert,
    encode_passages,
    encode_result,
    encode_state,
    event_json,
    events_message,
    passage_of,
)
from kiosk.mqtt.uplink import (
    Connected,
    ConnectFailed,
    Disconnected,
    Published,
    Received,
    Uplink,
    UplinkEvent,
)
from kiosk.operator.commands import CommandError
from kiosk.store.eventlog import EventLogError, OutboxEvent

log = logging.getLogger(__name__)

HISTORICAL_AFTER_MS = 10_000  # an event that waited longer than this is sent as historical
MARK_EVERY_S = 0.05  # sent-marks are written in one transaction at most this often
WATCHDOG_EVERY_S = 5.0
BACKLOG_FOR_BATCHING = 20  # pack events together once more than this many wait
IGNORED_LOG_LINES = 20  # lines about ignored messages per minute; the rest are only counted


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


CommandHandler = Callable[[Received], None]


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


# The event types alert_for reads, and a word their data must contain to raise an alert.
ALERTING_TYPES = {
    "decision": "fever",
    "health": "false",
    "fire_alarm": "true",
    "document": "false",
    "passage": '"none"',
}


def alert_for(event: WireEvent) -> tuple[str, str] | None:
    """The alert (name, detail) an event raises, or None."""
    data = event.data
    if event.type == "decision" and data.get("reason") == "fever":
        return "fever", "fever confirmed on retest"
    if event.type == "health" and data.get("ok") is False:
        part = data.get("part")
        name = "log_near_capacity" if part == "log_capacity" else "sensor_fault"
        return name, f"{part}: {data.get('detail', '')}"
    if event.type == "passage" and data.get("by") == "none":
        return "tailgating", "a passage nobody was granted: tailgating or a forced turnstile"
    if event.type == "fire_alarm" and data.get("active"):
        return "fire_alarm", "fire alarm active: gate released"
    if event.type == "document" and data.get("accepted") is False:
        return "document_refused", f"{data.get('kind')} list refused: {data.get('reason')}"
    return None


class Sync:
    """Drains the outbox to the broker; run :meth:`run` in its own thread."""

    def __init__(
        self,
        uplink: Uplink,
        outbox: Outbox,
        *,
        confirm: str = "receipt",
        window: int = 5000,
        batch_max: int = 100,
        max_message_bytes: int = DEFAULT_MESSAGE_BYTES,
        resend_after_s: float = 600.0,
        state_interval_s: float = 30.0,
        state: Callable[[], dict[str, Any]] = dict,
        on_command: CommandHandler | None = None,
        announce: Iterable[tuple[str, bytes]] = (),
        listen: Iterable[str] = (),
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uplink = uplink
        self.outbox = outbox
        self.stats = SyncStats()
        self._confirm_on_puback = confirm == "puback"
        self._window, self._batch_max = window, batch_max
        self._max_bytes = max_message_bytes
        self._envelope = len(events_message(uplink.topics.site, uplink.topics.kiosk, []))
        self._unsendable: set[int] = set()  # seqs of events no message can carry
        self._resend_after_s, self._state_interval_s = resend_after_s, state_interval_s
        self._state = state
        self.on_command = on_command
        self.on_message: CommandHandler | None = None  # messages on the ``listen`` filters
        self._announce = list(announce)
        self._listen = list(listen)
        self._now_ms, self._clock = now_ms, clock
        self._in_flight: dict[int, tuple[int | None, float]] = {}  # seq -> (mid, handed at)
        self._by_mid: dict[int, list[int]] = {}  # mid -> seqs in that message
        self._cursor = 0  # highest seq handed to paho since the last reset
        self._acked: list[int] = []
        self._last_mark = 0.0
        self._last_state = 0.0
        self._last_watchdog = 0.0
        self._ignored_logged, self._ignored_since = 0, 0.0  # log lines in this minute
        self._state_requested = threading.Event()
        self._lock = threading.Lock()

    # --- the loop --------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Connect and sync until ``stop`` is set; then say ``stopped`` and disconnect.

        If the loop itself crashes, the kiosk is not stopped: the connection ends with the
        will (``offline``) and whoever runs the loop starts it again."""
        self.stats.runs += 1
        self.uplink.start()
        clean = False
        try:
            while not stop.is_set():
                self.step(timeout=0.02)
            clean = True
        finally:
            self._flush_marks()
            self.uplink.stop(clean=clean)

    def step(self, timeout: float = 0.0) -> None:
        """One round: handle what paho reported, refill the window, housekeeping."""
        try:
            self._handle(self.uplink.inbox.get(timeout=timeout))
            while True:
                self._handle(self.uplink.inbox.get_nowait())
        except queue.Empty:
            pass
        now = self._clock()
        if self.uplink.connected:
            self._resend_overdue(now)
            self._fill_window(now)
            due = now - self._last_state >= self._state_interval_s
            if due or self._state_requested.is_set():
                self.publish_state()
        if now - self._last_mark >= MARK_EVERY_S:
            self._flush_marks()
        if now - self._last_watchdog >= WATCHDOG_EVERY_S:
            self._last_watchdog = now
            if not self.uplink.is_alive():
                self.uplink.restart()

    def _handle(self, event: UplinkEvent) -> None:
        if isinstance(event, Published):
            self._published(event)
        elif isinstance(event, Received):
            self._received(event)
        elif isinstance(event, Connected):
            self._connected(event)
        elif isinstance(event, Disconnected):
            self.stats.connected = False
            log.warning("MQTT disconnected: %s", event.reason)
        elif isinstance(event, ConnectFailed):
            self.stats.connected = False
            self.stats.last_error = event.reason
            log.error("MQTT connection failed: %s", event.reason)

    def _connected(self, event: Connected) -> None:
        self.stats.connected = True
        self.stats.last_error = ""
        log.info("MQTT connected (session %s)", "resumed" if event.session_present else "new")
        topics = self.uplink.topics
        self.uplink.subscribe(topics.topic(Leaf.CMD), topics.topic(Leaf.RECEIPTS), *self._listen)
        self.uplink.publish(Leaf.STATUS, Availability.ONLINE.value.encode(), retain=True)
        for topic, payload in self._announce:  # e.g. Home Assistant discovery
            self.uplink.publish(Leaf.STATE, payload, retain=True, topic=topic)
        self.publish_state()
        if not event.session_present:
            self._forget_in_flight()  # the broker lost what it had: send it all again

    # --- outbox → broker ---------------------------------------------------------------

    def _fill_window(self, now: float) -> None:
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
                self._in_flight[seq] = (mid, now)
            self._cursor = max(self._cursor, seqs[-1])
        self.stats.published_events += len(seqs)
        passages = []
        for item, data_json in wire:
            alerting = ALERTING_TYPES.get(item.type, "\0") in data_json
            sharing = item.type == "grant_unused" or (
                item.type == "decision" and '"grant"' in data_json
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

    def _published(self, event: Published) -> None:
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
                self._resend_after_s,
            )
            return
        if self._confirm_on_puback:
            self._confirm(seqs)
        else:
            self._acked.extend(seqs)

    def _flush_marks(self) -> None:
        self._last_mark = self._clock()
        if not self._acked:
            return
        acked, self._acked = self._acked, []
        try:
            self.outbox.mark_sent(acked)
        except EventLogError as exc:
            log.warning("could not mark %d events sent (they will be resent): %s", len(acked), exc)

    def _resend_overdue(self, now: float) -> None:
        with self._lock:
            overdue = [
                seq
                for seq, (_, handed) in self._in_flight.items()
                if now - handed >= self._resend_after_s
            ]
        if overdue:
            log.warning(
                "%d events not confirmed after %.0f s: sending them again",
                len(overdue),
                self._resend_after_s,
            )
            self.stats.resent_events += len(overdue)
            self.resend_from(min(overdue))

    def resend_from(self, seq: int) -> None:
        """Send every unconfirmed event from ``seq`` on again (central asked, or overdue)."""
        with self._lock:
            for pending in [s for s in self._in_flight if s >= seq]:
                del self._in_flight[pending]
            self._cursor = min(self._cursor, seq - 1)

    def _forget_in_flight(self) -> None:
        with self._lock:
            self._in_flight.clear()
            self._by_mid.clear()
            self._cursor = 0

    # --- broker → kiosk ----------------------------------------------------------------

    def _received(self, message: Received) -> None:
        """Handle one message; whatever it raises is logged, counted and goes no further."""
        try:
            self._dispatch(message)
        except ProtocolError as exc:  # our own words, at most a few digits of the content
            self._ignored(message, str(exc)[:200])
        except Exception as exc:  # anything else: only its type, which carries no content
            self._ignored(message, type(exc).__name__)
            if message.topic == self.uplink.topics.topic(Leaf.CMD):
                self._reply_failed(message, type(exc).__name__)

    def _dispatch(self, message: Received) -> None:
        topics = self.uplink.topics
        if message.topic == topics.topic(Leaf.RECEIPTS):
            seqs = decode_receipt(message.payload)
            self.stats.last_receipt_ms = self._now_ms()
            self._confirm(seqs)
        elif message.topic == topics.topic(Leaf.CMD):
            if self.on_command is not None:
                self.on_command(message)
        elif self.on_message is not None:
            self.on_message(message)

    def _ignored(self, message: Received, reason: str) -> None:
        """Log (at most IGNORED_LOG_LINES a minute) and count a message that was not used."""
        self.stats.ignored_messages += 1
        now = self._clock()
        if now - self._ignored_since >= 60.0:
            self._ignored_since, self._ignored_logged = now, 0
        self._ignored_logged += 1
        if self._ignored_logged <= IGNORED_LOG_LINES:
            log.warning(
                "ignored a message on %s (%d bytes): %s%s",
                message.topic,
                len(message.payload),
                reason,
                " (further ones this minute are only counted)"
                if self._ignored_logged == IGNORED_LOG_LINES
                else "",
            )

    def _reply_failed(self, request: Received, error: str) -> None:
        message = f"the kiosk could not handle this command ({error})"
        try:
            kiosk = self.uplink.topics.kiosk
            self.reply(request, encode_result(kiosk, None, CommandError.FAILED, message))
        except Exception as exc:
            log.error("could not answer a command that failed: %s", type(exc).__name__)

    def _confirm(self, seqs: list[int]) -> None:
        try:
            self.stats.confirmed_events += self.outbox.mark_confirmed(seqs)
        except EventLogError as exc:
            log.warning("could not mark events confirmed (a receipt will come again): %s", exc)
            return
        with self._lock:
            for seq in seqs:
                self._in_flight.pop(seq, None)

    # --- state -------------------------------------------------------------------------

    def request_state(self) -> None:
        """Ask for the state to be published soon (a part failed or recovered); thread-safe."""
        self._state_requested.set()

    def publish_state(self) -> None:
        """Publish the retained health state now (from the sync thread)."""
        self._state_requested.clear()
        self._last_state = self._clock()
        state = self._state() | {"mqtt": self.mqtt_state()}
        self.uplink.publish(Leaf.STATE, encode_state(state), retain=True)

    def mqtt_state(self) -> dict[str, Any]:
        """The sync's part of the state document: link up, events in flight, last receipt,
        messages ignored, events too large to send, restarts of the loop after a crash."""
        return {
            "connected": self.stats.connected,
            "in_flight": len(self._in_flight),
            "last_receipt_ms": self.stats.last_receipt_ms,
            "ignored_messages": self.stats.ignored_messages,
            "unsendable_events": self.stats.unsendable_events,
            "restarts": max(self.stats.runs - 1, 0),
        }

    def publish_activity(self, payload: bytes) -> None:
        """A live decision for dashboards and Home Assistant (QoS 0, not retained)."""
        if self.uplink.connected:
            self.uplink.publish(Leaf.ACTIVITY, payload, qos=0)

    def reply(self, request: Received, payload: bytes) -> None:
        """A command's result, on the kiosk's ``result`` topic with the request's correlation data.

        A requested MQTT 5 response topic is not used: the broker's ACL lets a kiosk write
        only under its own prefix, so results always go to ``…/result``.
        """
        self.uplink.publish(Leaf.RESULT, payload, correlation_data=request.correlation_data)

    @property
    def in_flight(self) -> int:
        """Events handed to the broker and not yet confirmed."""
        return len(self._in_flight)


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
    """The event's envelope; its data travels as the stored JSON text (see _send)."""
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
