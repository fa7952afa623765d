"""Central ingest: MQTT events → store (idempotent) → ack → receipts; resend requests on gaps.

paho's callbacks only enqueue. One worker thread takes a batch of messages, stores it in one
transaction, commits, and only then acknowledges every message (``manual_ack``) and publishes
one receipt per kiosk. A crash between commit and ack makes the broker redeliver, and the
store ignores what it already has. What can never be stored (a malformed message, an event
outside the schema's ranges, a row the database refuses) is quarantined and acknowledged
(``kiosk.central.commit``), so no message can halt ingest; it gets no receipt. Retention is
not the ingest's: :mod:`kiosk.central.retention` prunes old events and quarantine rows.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from kiosk.central.commit import Done, Work, commit, read_message
from kiosk.central.gaps import GapTracker, Key
from kiosk.central.messages import resend_command
from kiosk.central.store import Store
from kiosk.mqtt.client import new_client, tls_context
from kiosk.mqtt.protocol import (
    KioskTopics,
    Leaf,
    encode_command,
    encode_receipt,
    subscription,
)

log = logging.getLogger(__name__)

_Message = tuple[str, bytes, int, int, bool, int]  # topic, payload, mid, qos, retain, generation


@dataclass(frozen=True)
class IngestSettings:
    """How central ingest connects and batches. ``client_id`` must be unique per instance."""

    host: str = "localhost"
    port: int = 8883
    client_id: str = "central-ingest"
    share_group: str = "ingest"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    command_key: bytes | None = field(default=None, repr=False)  # HMAC key for commands
    session_expiry_s: int = 300  # short: offline share-group members still get their share
    keepalive_s: int = 30
    batch_max: int = 100  # messages per transaction
    batch_wait_s: float = 0.03  # longest wait for a batch to fill
    gap_grace_s: float = 30.0
    resend_expiry_s: int = 300


BATCH_LULL_S = 0.002  # no new message for this long: store the batch now


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Ingest:
    """One ingest consumer: ``start()``, ``stop()``; ``stats()`` counts messages and events.

    Counters: received (messages), stored and duplicates (events), malformed (messages
    refused as a whole), quarantined (messages and single events put in the quarantine, the
    malformed ones included), receipts_sent, resend_requests.
    """

    def __init__(self, settings: IngestSettings, store: Store) -> None:
        self.settings = settings
        self._store = store
        self._inbox: queue.Queue[_Message] = queue.Queue()
        self._counts: Counter[str] = Counter()
        self._unsettled = 0
        self._idle = threading.Condition()
        self._generation = 0  # +1 per connection: message ids are only valid on their own
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._gaps = GapTracker(settings.gap_grace_s)
        self._receipts: list[mqtt.MQTTMessageInfo] = []
        self._worker = threading.Thread(target=self._run, name="central-ingest", daemon=True)
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        tls = tls_context(s.ca_file, s.cert_file, s.key_file) if s.ca_file or s.cert_file else None
        client = new_client(
            s.client_id, username=s.username, password=s.password, tls=tls, manual_ack=True
        )
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        """Connect in the background (retrying with backoff) and start the worker."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        props.ReceiveMaximum = 2 * self.settings.batch_max  # next batch arrives during a commit
        self._worker.start()
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until connected and subscribed."""
        return self._ready.wait(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every received message is stored, acked and receipted."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unsettled == 0, timeout)

    def stats(self) -> dict[str, int]:
        """Counters since start (see the class docstring)."""
        names = ("received", "stored", "duplicates", "malformed", "quarantined", "receipts_sent")
        return {name: self._counts[name] for name in (*names, "resend_requests")}

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the current batch, let the last receipts go out, then disconnect.

        Messages still queued are not acked: the broker sends them again next time.
        """
        self._stop.set()
        if self._worker.is_alive():
            self._worker.join(timeout)
        for info in self._receipts:
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(1.0)
        self._client.disconnect()
        self._client.loop_stop()

    # --- paho callbacks (network thread): hand over, never raise ---

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        try:
            if reason.is_failure:
                log.error("broker refused the connection: %s", reason)
                return
            self._generation += 1
            log.info("connected (session present: %s)", flags.session_present)
            events = subscription(Leaf.EVENTS, share=self.settings.share_group)
            topics = [events, subscription(Leaf.STATUS), subscription(Leaf.STATE)]
            client.subscribe([(topic, SubscribeOptions(qos=1)) for topic in topics])
        except Exception:
            log.exception("on_connect failed")

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, codes: list[Any], props: Any
    ) -> None:
        try:
            refused = [str(code) for code in codes if code.is_failure]
            if refused:
                log.error("subscription refused: %s", ", ".join(refused))
            else:
                self._ready.set()
        except Exception:
            log.exception("on_subscribe failed")

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        try:
            self._ready.clear()
            self._generation += 1
            if not self._stop.is_set():
                log.warning("disconnected (%s); reconnecting", reason)
        except Exception:
            log.exception("on_disconnect failed")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            with self._idle:
                self._unsettled += 1
            self._counts["received"] += 1
            item = (msg.topic, bytes(msg.payload), msg.mid, msg.qos, msg.retain, self._generation)
            self._inbox.put(item)
        except Exception:
            log.exception("on_message failed")

    # --- worker thread ---

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._take()
                if batch:
                    self._handle(batch)
                self._check_gaps()
            except Exception:
                log.exception("ingest worker error; continuing")

    def _take(self) -> list[_Message]:
        try:
            batch = [self._inbox.get(timeout=0.1)]
        except queue.Empty:
            return []
        # Fill the batch while messages keep coming; a short lull ends it, so a kiosk
        # waiting for its receipt is never kept waiting for a batch that cannot fill.
        deadline = time.monotonic() + self.settings.batch_wait_s
        while len(batch) < self.settings.batch_max:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._inbox.get(timeout=max(0.0, min(remaining, BATCH_LULL_S))))
            except queue.Empty:
                break
        return batch

    def _handle(self, batch: list[_Message]) -> None:
        try:
            self._store_and_settle(batch)
        finally:
            with self._idle:
                self._unsettled -= len(batch)
                self._idle.notify_all()

    def _store_and_settle(self, batch: list[_Message]) -> None:
        work = Work(_now_ms())
        for topic, payload, _mid, _qos, retain, _gen in batch:
            self._read(work, topic, payload, retain)
        done = self._commit(work)
        if done is None:
            return  # stopping before the commit: nothing is acked, the broker resends
        generation = self._generation
        for _topic, _payload, mid, qos, _retain, gen in batch:
            if gen == generation:  # else the broker resends it on the new connection
                self._client.ack(mid, qos)
        seqs: dict[Key, list[int]] = {}
        for row in work.rows:
            if id(row) not in done.refused:  # a refused event gets no receipt: it stays unsent
                seqs.setdefault((row.site, row.kiosk), []).append(row.seq)
        self._receipts = [info for info in self._receipts if _unconfirmed(info)]
        for (site, kiosk), kiosk_seqs in seqs.items():
            topic = KioskTopics(site, kiosk).topic(Leaf.RECEIPTS)
            self._receipts.append(self._client.publish(topic, encode_receipt(kiosk_seqs), qos=1))
        received = sum(len(kiosk_seqs) for kiosk_seqs in seqs.values())
        self._counts.update(stored=done.new, duplicates=received - done.new)
        self._counts.update(receipts_sent=len(seqs), quarantined=done.quarantined)
        self._track(seqs)

    def _read(self, work: Work, topic: str, payload: bytes, retain: bool) -> None:
        """Add one message's rows, update or refusals to ``work``; count it if malformed."""
        if not read_message(work, topic, payload, retain):
            self._counts["malformed"] += 1

    def _commit(self, work: Work) -> Done | None:
        """Store ``work`` (see :func:`kiosk.central.commit.commit`); None if stopping first."""
        return commit(self._store, work, self._stop)

    def _track(self, seqs: dict[Key, list[int]]) -> None:
        now = time.monotonic()
        for key, kiosk_seqs in seqs.items():
            if self._gaps.known(key):
                self._gaps.seen(key, kiosk_seqs, now)
            else:
                self._gaps.seed(key, self._store.highest_seq(*key), self._store.gaps(*key), now)

    def _check_gaps(self) -> None:
        now = time.monotonic()
        for site, kiosk in self._gaps.due(now):
            key = (site, kiosk)
            missing = self._store.gaps(site, kiosk, after=self._gaps.floor(key))
            from_seq = self._gaps.settle(key, self._store.highest_seq(site, kiosk), missing, now)
            if from_seq is not None:
                self._request_resend(site, kiosk, from_seq)

    def _request_resend(self, site: str, kiosk: str, from_seq: int) -> None:
        s, now_ms = self.settings, _now_ms()
        command = resend_command(from_seq, s.command_key, s.resend_expiry_s, now_ms)
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = s.resend_expiry_s
        topic = KioskTopics(site, kiosk).topic(Leaf.CMD)
        self._store.record_resend(site, kiosk, from_seq, now_ms)
        self._client.publish(topic, encode_command(command), qos=1, properties=props)
        self._counts["resend_requests"] += 1
        log.warning("asked %s/%s to send again from seq %d", site, kiosk, from_seq)


def _unconfirmed(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return not info.is_published()
    except (RuntimeError, ValueError):  # queued while disconnected, or dropped
        return False
