"""Event sync: drain the SQLite outbox to MQTT, confirm on central's receipts, resend the rest.

The outbox (the event log) is the only durable store: paho keeps its queue in memory. The
sync loop feeds paho from the outbox through a bounded window, in sequence order
(:class:`kiosk.sync_send.Sender`, the sending half):

- an event handed to paho is *in flight*; the broker's PUBACK marks it *sent* (batched
  writes); central's receipt marks it *confirmed* (``mqtt.confirm = "receipt"``), or the
  PUBACK does (``"puback"``, for sites whose subscriber sends no receipts);
- an event in flight for ``resend_after_s`` without a receipt is sent again (each further
  unanswered resend waits twice as long, up to 4 × ``resend_after_s``), and so is everything
  when the broker has lost the kiosk's session;
- a backlog is packed into messages of up to ``batch_max`` events and ``max_message_bytes``
  bytes, flagged ``historical``; an event over that size goes alone, and one over the size
  central accepts (:data:`~kiosk.mqtt.protocol.MAX_MESSAGE_BYTES`) is reported and left in the log
  rather than sent, so it never holds up the events behind it;
- with each events message go the alerts its events raise (:func:`kiosk.events.alert_for`) and
  a ``passages`` message for the site's other kiosks: the grants and withdrawn grants in it,
  cut down to what a neighbour needs (:func:`~kiosk.mqtt.protocol.passage_of`).

This module is the loop and the receiving half: everything runs in one thread reading
:attr:`Uplink.inbox`; a watchdog restarts a paho client whose network thread died. No message
received can stop the loop: whatever handling one raises is logged in one line (topic and
error type, no content), counted and skipped. It also publishes the kiosk's state.

An idle loop sleeps: it blocks on the inbox until paho reports something, the event log says
an event was appended (:meth:`Sync.wake`, which the log calls through
``add_append_observer``), another thread asks for the state or a resend, or the next thing
falls due (a resend, the state, the sent-marks, the watchdog), or ``stop`` is set; at the
latest after ``poll_s`` (1 s), which also finds events another process appended.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

from kiosk.mqtt.protocol import (
    DEFAULT_MESSAGE_BYTES,
    Availability,
    Leaf,
    ProtocolError,
    decode_receipt,
    encode_result,
    encode_state,
)
from kiosk.mqtt.uplink import (
    Connected,
    ConnectFailed,
    Disconnected,
    Published,
    Received,
    SubscriptionsChanged,
    Uplink,
    UplinkEvent,
)
from kiosk.operator.commands import CommandError
from kiosk.sync_send import Outbox, Sender, SyncStats

log = logging.getLogger(__name__)

MARK_EVERY_S = 0.05  # sent-marks are written in one transaction at most this often
WATCHDOG_EVERY_S = 5.0
IGNORED_LOG_LINES = 20  # lines about ignored messages per minute; the rest are only counted
POLL_S = 1.0  # an idle loop looks at the outbox at least this often (other processes' appends)
_WAKE = object()  # put on the inbox by Sync.wake: "look at the outbox" (never from paho)


CommandHandler = Callable[[Received], None]


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
        poll_s: float = POLL_S,
        watchdog_s: float = WATCHDOG_EVERY_S,
    ) -> None:
        for name, value in (("poll_s", poll_s), ("watchdog_s", watchdog_s)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"Sync: {name} must be a finite number of seconds above 0")
        self.uplink = uplink
        self.stats = SyncStats()
        self._sender = Sender(
            uplink,
            outbox,
            self.stats,
            confirm_on_puback=confirm == "puback",
            window=window,
            batch_max=batch_max,
            max_message_bytes=max_message_bytes,
            resend_after_s=resend_after_s,
            now_ms=now_ms,
        )
        self._state_interval_s = state_interval_s
        self._state = state
        self.on_command = on_command
        self.on_message: CommandHandler | None = None  # messages on the ``listen`` filters
        self._announce = list(announce)
        self._listen = list(listen)
        self._now_ms, self._clock = now_ms, clock
        self._last_mark = 0.0
        self._last_state = 0.0
        self._last_watchdog = 0.0
        self._ignored_logged, self._ignored_since = 0, 0.0  # log lines in this minute
        self._state_requested = threading.Event()
        self._poll_s, self._watchdog_s = poll_s, watchdog_s
        self._stop_watched: threading.Event | None = None  # wakes the loop when set
        self._resend_at: float | None = None  # when the oldest event in flight is overdue
        self._wake_queued = False  # a _WAKE is on the inbox, not handled yet
        self.rounds = 0  # times the loop woke (tests count them: an idle loop sleeps)
        watch = getattr(outbox, "add_append_observer", None)  # EventLog has it; fakes may not
        if watch is not None:
            watch(self.wake)

    # --- the loop --------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Connect and sync until ``stop`` is set; then say ``stopped`` and disconnect.

        If the loop itself crashes, the kiosk is not stopped: the connection ends with the
        will (``offline``) and whoever runs the loop starts it again."""
        self.stats.runs += 1
        self._wake_on(stop)
        self.uplink.start()
        clean = False
        try:
            while not stop.is_set():
                self.step(timeout=self._sleep_s())
            clean = True
        finally:
            self._flush_marks()
            self.uplink.stop(clean=clean)

    def step(self, timeout: float = 0.0) -> None:
        """One round: wait up to ``timeout`` for what paho reported (or a wake-up), handle
        it, refill the window, housekeeping."""
        try:
            self._handle(self.uplink.inbox.get(timeout=timeout))
            while True:
                self._handle(self.uplink.inbox.get_nowait())
        except queue.Empty:
            pass
        self.rounds += 1
        now = self._clock()
        if self.uplink.connected:
            self._resend_at = self._sender.resend_overdue(now)
            self._sender.fill_window(now)
            if self._resend_at is None and self._sender.in_flight:  # all handed just now
                self._resend_at = now + self._sender.resend_delay_s
            due = now - self._last_state >= self._state_interval_s
            if due or self._state_requested.is_set():
                self.publish_state()
        if now - self._last_mark >= MARK_EVERY_S:
            self._flush_marks()
        if now - self._last_watchdog >= self._watchdog_s:
            self._last_watchdog = now
            if not self.uplink.is_alive():
                self.uplink.restart()

    def wake(self) -> None:
        """Look at the outbox soon (an event was appended); thread-safe and cheap: at most
        one wake-up waits on the inbox at a time."""
        if not self._wake_queued:
            self._wake_queued = True
            self.uplink.inbox.put(cast(UplinkEvent, _WAKE))

    def _wake_on(self, stop: threading.Event) -> None:
        """Wake the loop when ``stop`` is set, so that a stop is noticed at once: one thread
        blocked on the event (kept for the next run after a crash, which gets the same)."""
        if self._stop_watched is stop:
            return
        self._stop_watched = stop

        def watch() -> None:
            stop.wait()
            self.wake()

        threading.Thread(target=watch, name="sync-stop", daemon=True).start()

    def _sleep_s(self) -> float:
        """How long the loop may wait for the inbox: until the next thing falls due."""
        now = self._clock()
        due = [now + self._poll_s, self._last_watchdog + self._watchdog_s]
        if self._sender.marks_waiting:
            due.append(self._last_mark + MARK_EVERY_S)
        if self.uplink.connected:
            state_at = self._last_state + self._state_interval_s
            due.append(now if self._state_requested.is_set() else state_at)
            if self._resend_at is not None:
                due.append(self._resend_at)
        return max(0.0, min(due) - now)

    def _handle(self, event: UplinkEvent) -> None:
        if event is _WAKE:
            self._wake_queued = False  # handled before the window is refilled below
        elif isinstance(event, Published):
            self._sender.published(event)
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
        elif isinstance(event, SubscriptionsChanged):
            self.request_state()  # a refused subscription shows in the state soon

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
            self._sender.forget_in_flight()  # the broker lost what it had: send it all again

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
            self._sender.confirm(seqs)
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

    # --- state -------------------------------------------------------------------------

    def request_state(self) -> None:
        """Ask for the state to be published soon (a part failed or recovered); thread-safe."""
        self._state_requested.set()
        self.wake()

    def publish_state(self) -> None:
        """Publish the retained health state now (from the sync thread)."""
        self._state_requested.clear()
        self._last_state = self._clock()
        state = self._state() | {"mqtt": self.mqtt_state()}
        self.uplink.publish(Leaf.STATE, encode_state(state), retain=True)

    def mqtt_state(self) -> dict[str, Any]:
        """The sync's part of the state document: link up, events in flight, last receipt,
        messages ignored, events too large to send, restarts of the loop after a crash, and
        the subscriptions the broker refused (:meth:`Uplink.subscription_state`)."""
        return {
            "connected": self.stats.connected,
            "in_flight": self._sender.in_flight,
            "last_receipt_ms": self.stats.last_receipt_ms,
            "ignored_messages": self.stats.ignored_messages,
            "unsendable_events": self.stats.unsendable_events,
            "restarts": max(self.stats.runs - 1, 0),
        } | self._subscriptions()

    def _subscriptions(self) -> dict[str, Any]:
        """The uplink's ``refused_subscriptions`` (test fakes have none)."""
        state = getattr(self.uplink, "subscription_state", None)
        return state() if state is not None else {}

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

    def resend_from(self, seq: int) -> None:
        """Send every unconfirmed event from ``seq`` on again (central asked, or overdue)."""
        self._sender.resend_from(seq)
        self.wake()

    @property
    def in_flight(self) -> int:
        """Events handed to the broker and not yet confirmed."""
        return self._sender.in_flight

    def _flush_marks(self) -> None:
        self._last_mark = self._clock()
        self._sender.flush_marks()
