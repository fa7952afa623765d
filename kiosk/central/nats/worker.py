"""A central worker on NATS JetStream: fetch → decode → commit → ack → receipts.

nats-server's MQTT listener keeps every QoS 1 publish of a kiosk in the ``$MQTT_msgs`` stream
(subject ``$MQTT.msgs.`` + the topic with ``/`` as ``.``), replicated as the listener's
``stream_replicas`` says. That stream's retention is by interest, so the workers' durable pull
consumer (one, shared by every worker on every machine: a work queue) must exist before kiosks
publish; :meth:`NatsWorker.start` creates it. Each batch is read and stored with the MQTT
ingest's own code (:func:`kiosk.central.commit.read_message` and
:func:`~kiosk.central.commit.commit`), and only then acknowledged. A worker killed mid-batch
loses nothing (the server redelivers after ``ack_wait_s``) and duplicates nothing (the store is
idempotent per kiosk and seq). The next batch is fetched and read while the last is being
stored (at most two batches held), so on a backlog decoding and the database overlap.

Receipts go out as plain NATS publishes on ``kiosk.v1.<site>.<kiosk>.receipts``, which the
MQTT listener hands to a connected subscriber at QoS 0. A kiosk that was offline, or missed
one, gets a catch-up receipt when its retained ``status`` says ``online`` again: the seqs stored
for it in the last :data:`CATCH_UP_SEQS` (minus the gaps); older ones it sends again after its
``resend_after_s`` and the duplicate is receipted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from kiosk.central.commit import Done, Work, commit, read_message
from kiosk.central.store import Store
from kiosk.mqtt.protocol import Availability, KioskTopics, Leaf, encode_receipt

log = logging.getLogger(__name__)

STREAM = "$MQTT_msgs"
STREAM_PREFIX = "$MQTT.msgs."
CATCH_UP_SEQS = 20_000  # the newest stored seqs a kiosk coming back online is receipted
RETRY_S = 1.0
BACKLOG_WAIT_S = 2.0  # a fetch's longest wait for a whole batch while a backlog waits


@dataclass(frozen=True)
class NatsSettings:
    """Where the workers connect and how they batch; every worker uses the same ``durable``."""

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    durable: str = "central-ingest"
    batch_max: int = 500  # messages per fetch and transaction
    fetch_wait_s: float = 0.05  # longest wait for a fetch to fill
    ack_wait_s: float = 30.0  # unacknowledged this long: delivered to another worker
    max_ack_pending: int = 20_000
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    creds_file: str | None = None
    ca_file: str | None = None
    name: str = "central-worker"


def nats_subject(topic: str) -> str:
    """The NATS subject nats-server gives an MQTT topic (``/`` → ``.``, ``.`` → ``//``)."""
    return ".".join(level.replace(".", "//") for level in topic.split("/"))


def mqtt_topic(subject: str) -> str:
    """The MQTT topic of a subject in ``$MQTT_msgs`` (or a plain one)."""
    subject = subject.removeprefix(STREAM_PREFIX)
    return "/".join(token.replace("//", ".") for token in subject.split("."))


def _filters() -> list[str]:
    leaves = (Leaf.EVENTS, Leaf.STATUS, Leaf.STATE)
    return [f"{STREAM_PREFIX}kiosk.v1.*.*.{leaf.value}" for leaf in leaves]


def consumer_config(settings: NatsSettings) -> Any:
    """The shared durable consumer every worker binds to (``nats.js.api.ConsumerConfig``)."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    return ConsumerConfig(
        durable_name=settings.durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=settings.ack_wait_s,
        max_ack_pending=settings.max_ack_pending,
        max_deliver=-1,
        filter_subjects=_filters(),
    )


def _pending(msg: Any) -> int:
    """How many messages the consumer held beyond ``msg`` when it was delivered."""
    try:
        return int(msg.metadata.num_pending)
    except Exception:  # not a JetStream message (no metadata to read)
        return 0


async def _connection_error(exc: Exception) -> None:
    """nats-py's report of a connection problem: one line, no traceback (it reconnects)."""
    log.warning("NATS connection: %s", type(exc).__name__)


class _Read(NamedTuple):
    """A fetched batch as read: its messages (to acknowledge), what to store, and the kiosks
    whose status said online (to receipt what central holds of them)."""

    batch: list[Any]
    work: Work
    online: list[tuple[str, str]]


class NatsWorker:
    """One worker: ``start()``, ``stop()``; ``stats()`` counts as :class:`~kiosk.central.Ingest`.

    Runs an asyncio loop in its own thread; reading a batch and store calls run in two further
    threads, so neither a big batch nor a slow or retrying commit stalls the connection (its
    heartbeats, and the reading of its socket: a client that stops reading is cut off by the
    server as a slow consumer).
    """

    def __init__(self, settings: NatsSettings, store: Store) -> None:
        self.settings = settings
        self._store = store
        self._counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="central-store")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="central-read")
        self._backlog = False  # the last fetch left messages pending
        self._thread = threading.Thread(target=self._main, name="central-nats", daemon=True)

    def start(self) -> None:
        """Connect (retrying), create the shared consumer if missing, and consume."""
        self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until connected and bound to the consumer."""
        return self._ready.wait(timeout)

    def stats(self) -> dict[str, int]:
        """Counters since start: received, stored, duplicates, malformed, quarantined,
        receipts_sent, resend_requests (always 0 here: kiosks resend on their own)."""
        names = ("received", "stored", "duplicates", "malformed", "quarantined", "receipts_sent")
        return {name: self._counts[name] for name in (*names, "resend_requests")}

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current batch and disconnect; what is unacknowledged is redelivered."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._db.shutdown(wait=True)
        self._reader.shutdown(wait=True)

    # --- the loop thread ---

    def _main(self) -> None:
        asyncio.run(self._consume())

    async def _consume(self) -> None:
        import nats

        s = self.settings
        options: dict[str, Any] = {
            "servers": list(s.servers),
            "name": s.name,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": RETRY_S,
            "error_cb": _connection_error,
        }
        if s.user:
            options |= {"user": s.user, "password": s.password}
        if s.creds_file:
            options["user_credentials"] = s.creds_file
        if s.ca_file:
            import ssl

            options["tls"] = ssl.create_default_context(cafile=s.ca_file)
        nc = None
        while nc is None and not self._stop.is_set():
            try:
                nc = await nats.connect(**options)
            except Exception as exc:
                log.warning("cannot connect to NATS (%s); retrying", type(exc).__name__)
                await asyncio.sleep(RETRY_S)
        if nc is None:
            return
        loop = asyncio.get_running_loop()
        storing: asyncio.Task[None] | None = None  # the batch being stored, then acked
        try:
            js = nc.jetstream()
            sub = await self._bind(js)
            while sub is not None and not self._stop.is_set():
                # The next batch is fetched and read while the last one is stored: on a
                # backlog the reading and the database work at the same time.
                read = None
                try:
                    batch = await self._fetch(sub)
                    if batch:  # read in a thread: the loop keeps reading the socket
                        read = await loop.run_in_executor(self._reader, self._read, batch)
                except TimeoutError:  # nothing to fetch (nats' TimeoutError is one too)
                    pass
                except Exception as exc:
                    log.warning("fetch failed (%s); retrying", type(exc).__name__)
                    await asyncio.sleep(RETRY_S / 4)
                if storing is not None and (read is not None or storing.done()):
                    await storing
                    storing = None
                if read is not None:
                    storing = asyncio.create_task(self._commit(nc, read))
        finally:
            if storing is not None:
                await storing  # stored and acked, or (stopped while retrying) not acked
            await nc.close()  # what is fetched and unacknowledged is redelivered

    async def _bind(self, js: Any) -> Any:
        """The pull subscription on the shared consumer, created when missing; None if
        stopped first. The stream appears when the first MQTT client connects."""
        s = self.settings
        config = consumer_config(s)
        while not self._stop.is_set():
            try:
                await js.add_consumer(STREAM, config)
                sub = await js.pull_subscribe_bind(s.durable, STREAM)
                self._ready.set()
                log.info("bound to the consumer %s of %s", s.durable, STREAM)
                return sub
            except Exception as exc:
                log.info("waiting for %s (%s)", STREAM, type(exc).__name__)
                await asyncio.sleep(RETRY_S)
        return None

    async def _fetch(self, sub: Any) -> list[Any]:
        """Up to ``batch_max`` messages. nats-py asks for a batch with no wait: the server
        sends what it holds at once, and the fetch returns what came before its wait ended.
        While a backlog waits (the consumer said more were pending) the wait is long enough
        for a whole batch to come, so batches are full and there is one request at a time
        (fetching again at once asked for more while the first were still on their way,
        and the server cut the worker off as a slow consumer); live traffic keeps the short
        wait."""
        s = self.settings
        wait = max(s.fetch_wait_s, BACKLOG_WAIT_S) if self._backlog else s.fetch_wait_s
        self._backlog = False
        batch: list[Any] = await sub.fetch(s.batch_max, timeout=wait)
        self._backlog = bool(batch) and _pending(batch[-1]) > 0
        return batch

    def _read(self, batch: list[Any]) -> _Read:
        work = Work(time.time_ns() // 1_000_000)
        online: list[tuple[str, str]] = []
        for msg in batch:
            topic = mqtt_topic(msg.subject)
            if not read_message(work, topic, msg.data, False):
                self._counts["malformed"] += 1
        for _topic, _payload, update in work.updates:
            site, kiosk, leaf, value, _seen = update
            if leaf is Leaf.STATUS and value == Availability.ONLINE:
                online.append((site, kiosk))
        self._counts["received"] += len(batch)
        return _Read(batch, work, online)

    async def _commit(self, nc: Any, read: _Read) -> None:
        """Commit a batch read, then acknowledge its messages and send its receipts. Never
        raises: whatever fails is logged by its type, and a message not acknowledged comes
        again after ``ack_wait_s`` (the store ignores what it has); a receipt not sent costs
        the kiosk a resend."""
        loop = asyncio.get_running_loop()
        try:
            done = await loop.run_in_executor(self._db, commit, self._store, read.work, self._stop)
            if done is None:
                return  # stopping: nothing acknowledged, all of it comes again
            for msg in read.batch:
                await msg.ack()
            await self._receipts(nc, read.work, done)
            for site, kiosk in read.online:
                await self._catch_up(nc, site, kiosk)
        except Exception as exc:
            log.warning(
                "a batch of %d messages was not finished (%s); what is not acknowledged "
                "comes again",
                len(read.batch),
                type(exc).__name__,
            )

    async def _receipts(self, nc: Any, work: Work, done: Done) -> None:
        seqs: dict[tuple[str, str], list[int]] = {}
        for row in work.rows:
            if id(row) not in done.refused:
                seqs.setdefault((row.site, row.kiosk), []).append(row.seq)
        for (site, kiosk), kiosk_seqs in seqs.items():
            await self._publish_receipt(nc, site, kiosk, kiosk_seqs)
        received = sum(len(kiosk_seqs) for kiosk_seqs in seqs.values())
        self._counts.update(stored=done.new, duplicates=received - done.new)
        self._counts.update(quarantined=done.quarantined)

    async def _catch_up(self, nc: Any, site: str, kiosk: str) -> None:
        """Receipt the newest stored seqs of a kiosk that came back online."""
        loop = asyncio.get_running_loop()
        highest, gaps = await loop.run_in_executor(self._db, self._stored_span, site, kiosk)
        if not highest:
            return
        missing = {seq for first, last in gaps for seq in range(first, last + 1)}
        low = max(1, highest - CATCH_UP_SEQS + 1)
        seqs = [seq for seq in range(low, highest + 1) if seq not in missing]
        if seqs:
            await self._publish_receipt(nc, site, kiosk, seqs)

    def _stored_span(self, site: str, kiosk: str) -> tuple[int, list[list[int]]]:
        highest = self._store.highest_seq(site, kiosk)
        return highest, self._store.gaps(site, kiosk, after=max(0, highest - CATCH_UP_SEQS))

    async def _publish_receipt(self, nc: Any, site: str, kiosk: str, seqs: list[int]) -> None:
        subject = nats_subject(KioskTopics(site, kiosk).topic(Leaf.RECEIPTS))
        await nc.publish(subject, encode_receipt(seqs))
        self._counts["receipts_sent"] += 1
