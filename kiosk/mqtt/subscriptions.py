"""The kiosk's MQTT subscriptions and the broker's answer to each: every SUBACK is checked.

A broker may refuse a subscription (SUBACK return code 0x80, or an MQTT 5 reason code of 0x80
or more): nats-server does when it cannot create the subscription's JetStream consumer in time
(docs/scale.md) or the user may not subscribe, mosquitto when an auth plugin denies it. A
refused filter is logged with its last topic level only, asked for again after about 1 s, 2 s,
4 s … up to 30 s (each delay spread by ±25 % at random, so that kiosks refused together by an
overloaded server do not all ask again in the same instant), and again on every reconnect, and
reported until the broker grants it: a kiosk without its receipts subscription would never hear
that its events arrived. A refusal is a warning the first time and then at most once every
10 minutes (with how often it was refused), the retries between those only at debug level.

:class:`Subscriptions` keeps the books; the uplink gives it the way to send a SUBSCRIBE and
hands it each SUBACK from paho's thread. No paho here.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

RESUBSCRIBE_MIN_S = 1.0  # a refused subscription is asked for again after this long,
RESUBSCRIBE_MAX_S = 30.0  # doubling after each refusal up to this
JITTER = 0.25  # each retry's delay is spread by up to this fraction either way
WARN_EVERY_S = 600.0  # a filter still refused is a warning again at most this often

Send = Callable[[tuple[str, ...]], "int | None"]  # one SUBSCRIBE: its mid, or None
Changed = Callable[[tuple[str, ...]], None]  # the refused filters' last levels, when they change


def jittered(delay: float) -> float:
    """``delay`` spread at random by up to :data:`JITTER` either way."""
    return delay * random.uniform(1.0 - JITTER, 1.0 + JITTER)


def leaf_of(topic: str) -> str:
    """A topic filter's last level: what the kiosk logs of it (no site or kiosk names)."""
    return topic.rsplit("/", 1)[-1]


class Subscriptions:
    """The filters wanted, those the broker granted and those it refused (with how often), the
    requests awaiting their SUBACK and the retry timer; thread-safe.

    :param send: sends one SUBSCRIBE for the filters, returns its mid (None: not connected,
        the next connect subscribes); called holding the lock, so that its SUBACK, handled in
        paho's thread, finds the request.
    :param changed: told the refused filters' last levels whenever that list changes.
    :param first_retry_s: the first retry's delay (before :func:`jittered`; tests shorten it).
    :param spread: turns a delay into the one waited (:func:`jittered`).
    """

    def __init__(
        self,
        send: Send,
        changed: Changed,
        *,
        first_retry_s: float = RESUBSCRIBE_MIN_S,
        spread: Callable[[float], float] = jittered,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send, self._changed = send, changed
        self._first_retry_s, self._spread, self._clock = first_retry_s, spread, clock
        self._lock = threading.Lock()
        self._wanted: tuple[str, ...] = ()
        self._granted: set[str] = set()
        self._refused: dict[str, int] = {}
        self._pending: dict[int, tuple[str, ...]] = {}
        self._retry_s = first_retry_s
        self._retry: threading.Timer | None = None
        self._retry_at = 0.0  # when the retry waiting fires (clock)
        self._warned: dict[str, float] = {}  # a refused filter's last warning (clock)
        self._reported: tuple[str, ...] = ()  # what ``changed`` was last told

    def subscribe(self, topics: Sequence[str]) -> None:
        """Ask for every filter (on every connect); a retry waiting is replaced by this. A
        refused filter no longer wanted is dropped from the refused ones (``changed`` told)."""
        with self._lock:
            self._cancel_retry()
            self._wanted = tuple(dict.fromkeys(topics))
            self._granted.clear()
            self._refused = {t: n for t, n in self._refused.items() if t in self._wanted}
            self._warned = {t: at for t, at in self._warned.items() if t in self._wanted}
            self._retry_s = self._first_retry_s
            self._request(self._wanted)
            now_refused, changed = self._report()
        if changed:
            self._changed(now_refused)

    def state(self) -> dict[str, Any]:
        """For the state document: ``refused_subscriptions``, the last levels of the filters
        the broker refused at its last answer, being asked for again (empty on a healthy
        kiosk; a request still awaiting its answer is not counted)."""
        with self._lock:
            return {"refused_subscriptions": list(self._refused_leaves())}

    @property
    def granted_all(self) -> bool:
        """Whether the broker granted every filter asked for on this connection."""
        with self._lock:
            return bool(self._wanted) and self._granted.issuperset(self._wanted)

    def forget(self) -> None:
        """The connection ends: no SUBACK will come for what is pending; the next connect
        subscribes to everything again."""
        with self._lock:
            self._cancel_retry()
            self._pending.clear()
            self._granted.clear()

    def answered(self, mid: int, codes: Sequence[Any]) -> None:
        """A SUBACK (paho's ``on_subscribe``): each code has ``is_failure`` (MQTT 3.1.1's
        return codes and MQTT 5's reason codes as paho gives them)."""
        with self._lock:
            topics = self._pending.pop(mid, None)
            if topics is None:  # a request of an earlier connection
                return
            refused, delay = self._record(topics, list(codes))
            warn = self._to_warn([t for t, _ in refused])
            times = max((self._refused[t] for t, _ in refused), default=0)
            now_refused, changed = self._report()
        if refused:
            log.log(
                logging.WARNING if warn else logging.DEBUG,
                "the broker refused the subscription to %s (%s, %d times so far); "
                "asking again in %.1f s",
                ", ".join(leaf_of(t) for t, _ in refused),
                ", ".join(sorted({code for _, code in refused})),
                times,
                delay,
            )
        if changed:
            self._changed(now_refused)

    # --- holding the lock ----------------------------------------------------------------

    def _refused_leaves(self) -> tuple[str, ...]:
        return tuple(leaf_of(t) for t in self._wanted if t in self._refused)

    def _report(self) -> tuple[tuple[str, ...], bool]:
        """The refused filters' last levels, and whether ``changed`` must be told them."""
        now_refused = self._refused_leaves()
        changed, self._reported = now_refused != self._reported, now_refused
        return now_refused, changed

    def _to_warn(self, refused: list[str]) -> bool:
        """Whether this refusal is a warning: a filter's first, or its first in
        :data:`WARN_EVERY_S`."""
        now = self._clock()
        due = [t for t in refused if now - self._warned.get(t, -WARN_EVERY_S) >= WARN_EVERY_S]
        for topic in due:
            self._warned[topic] = now
        return bool(due)

    def _request(self, topics: tuple[str, ...]) -> None:
        if topics:
            mid = self._send(topics)
            if mid is not None:
                self._pending[mid] = topics

    def _record(
        self, topics: tuple[str, ...], codes: list[Any]
    ) -> tuple[list[tuple[str, str]], float]:
        """Record a SUBACK's codes: the refused filters with their codes, and the delay
        before they are asked for again (it doubles each time, up to the maximum, spread at
        random; a retry already waiting is kept, and its remaining time given)."""
        refused = []
        for topic, code in zip(topics, codes, strict=False):
            if code.is_failure:
                self._granted.discard(topic)
                self._refused[topic] = self._refused.get(topic, 0) + 1
                refused.append((topic, str(code)))
            else:
                self._granted.add(topic)
                self._warned.pop(topic, None)
                times = self._refused.pop(topic, 0)
                if times:
                    log.info("subscription to %s granted after %d refusals", leaf_of(topic), times)
        for topic in topics[len(codes) :]:  # a SUBACK shorter than the request: ask again
            self._refused[topic] = self._refused.get(topic, 0) + 1
            refused.append((topic, "no return code"))
        if refused and self._retry is None:
            delay = self._spread(self._retry_s)
            timer = threading.Timer(delay, lambda: self._resubscribe(timer))
            timer.daemon = True
            self._retry, self._retry_at = timer, self._clock() + delay
            self._retry_s = min(self._retry_s * 2, RESUBSCRIBE_MAX_S)
            timer.start()
        return refused, max(0.0, self._retry_at - self._clock())

    def _resubscribe(self, timer: threading.Timer) -> None:
        """The retry timer's thread: ask again for the filters still refused."""
        try:
            with self._lock:
                if self._retry is not timer:  # cancelled or replaced meanwhile
                    return
                self._retry = None
                self._request(tuple(t for t in self._wanted if t in self._refused))
        except Exception:
            log.exception("asking again for a refused subscription failed")

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
