"""Central's declarations publisher: each site's signed snapshot and cumulative delta, retained.

A thread in ``kiosk central run``. Every :data:`POLL_S` it looks for declarations stored since
its last delta (the page runs in ``kiosk central web``, another process: the table is the only
link), so a burst becomes one delta within about a second. A snapshot (every declaration still
valid, newest per subject; new ``base``) is rebuilt at start, every [declarations]
snapshot_interval_min and when the delta passes :data:`MAX_DELTA_ENTRIES`, and an empty delta
follows it. Documents go out retained at QoS 1 on ``kiosk/v1/<site>/site/declarations`` and
``…/declarations-delta``; one that cannot be sent now is sent again at the next poll. Once a
day the declarations older than [declarations] retention_days are deleted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.client import MQTT_ERR_SUCCESS

from kiosk.central.declarations import store as declarations
from kiosk.central.declarations.store import DocumentState
from kiosk.central.ingest import IngestSettings
from kiosk.central.settings import CentralConfig
from kiosk.central.store import Store
from kiosk.credentials.declarations import DocumentKind, encode_declarations
from kiosk.credentials.issuing import read_private_key
from kiosk.mqtt.client import new_client, tls_context
from kiosk.mqtt.topics import SITE_DOCUMENTS, KioskTopics, Leaf

log = logging.getLogger(__name__)

POLL_S = 0.25
MAX_DELTA_ENTRIES = 1000
PRUNE_EVERY_S = 86_400.0
#: Sends ``payload`` retained at QoS 1 on ``topic``; False when it cannot now.
Send = Callable[[str, bytes], bool]


@dataclass
class _Site:
    state: DocumentState
    delta_last_id: int  # the last declaration row the published delta holds
    pending: list[tuple[str, bytes]]  # documents not yet handed to the broker, in order


class DeclarationsPublisher:
    """Publishes every configured site's declarations document; ``start()``, ``stop()``.

    Without a signing key it only deletes old declarations. ``connection`` is started and
    stopped with it.
    """

    def __init__(
        self,
        store: Store,
        config: CentralConfig,
        signing_key: Ed25519PrivateKey | None,
        send: Send,
        *,
        connection: BrokerSender | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._settings = config.declarations
        self._site_ids = sorted(config.sites)
        self._key = signing_key
        self._send = send
        self._connection = connection
        self._clock = clock
        self._sites: dict[str, _Site] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="central-declarations", daemon=True)
        self._pruned_at = 0.0

    def start(self) -> None:
        """Build each site's first snapshot and publish in the background."""
        if self._connection is not None:
            self._connection.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing (documents not yet sent are sent by the next start's snapshot)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._connection is not None:
            self._connection.stop()

    def poll(self) -> None:
        """One round: prune when due, then each site's snapshot or delta if due, then send."""
        now = self._clock()
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            keep = timedelta(days=self._settings.retention_days).total_seconds()
            deleted = declarations.prune(self._store, int((now - keep) * 1000))
            if deleted:
                log.info("deleted %d declarations older than the retention", deleted)
        key = self._key
        if key is None:
            return
        for site in self._site_ids:
            self._poll_site(key, site, now)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:
                log.exception("declarations publisher: round failed; trying again")
            self._stop.wait(POLL_S)

    def _poll_site(self, key: Ed25519PrivateKey, site: str, now: float) -> None:
        held = self._sites.get(site)
        interval = self._settings.snapshot_interval_min * 60
        if held is None or now * 1000 - held.state.built_at_ms >= interval * 1000:
            self._snapshot(key, site, now, held)
        else:
            self._delta(key, site, now, held)
        self._flush(self._sites[site])

    def _since_ms(self, now: float) -> int:
        return int((now - self._settings.validity_h * 3600) * 1000)

    def _snapshot(self, key: Ed25519PrivateKey, site: str, now: float, held: _Site | None) -> None:
        previous = held.state if held else declarations.document_state(self._store, site)
        version = (previous.version if previous else 0) + 1
        entries, last = declarations.entries_after(self._store, site, 0, self._since_ms(now))
        state = DocumentState(version, version, last, int(now * 1000))
        snapshot = self._sign(key, site, "snapshot", state, now, entries)
        state = DocumentState(version + 1, version, last, state.built_at_ms)
        empty = self._sign(key, site, "delta", state, now, [])
        declarations.save_document_state(self._store, site, state)
        pending = [(Leaf.DECLARATIONS, snapshot), (Leaf.DECLARATIONS_DELTA, empty)]
        self._sites[site] = _Site(
            state, last, [(self._topic(site, leaf), doc) for leaf, doc in pending]
        )
        log.info("declarations snapshot v%d of %s: %d entries", version, site, len(entries))

    def _delta(self, key: Ed25519PrivateKey, site: str, now: float, held: _Site) -> None:
        base = held.state
        entries, last = declarations.entries_after(
            self._store, site, base.base_id, self._since_ms(now)
        )
        if last == held.delta_last_id:
            return
        if len(entries) > MAX_DELTA_ENTRIES:
            self._snapshot(key, site, now, held)
            return
        state = DocumentState(base.version + 1, base.base, base.base_id, base.built_at_ms)
        document = self._sign(key, site, "delta", state, now, entries)
        declarations.save_document_state(self._store, site, state)
        held.state, held.delta_last_id = state, last
        topic = self._topic(site, Leaf.DECLARATIONS_DELTA)
        held.pending = [item for item in held.pending if item[0] != topic] + [(topic, document)]

    def _sign(
        self,
        key: Ed25519PrivateKey,
        site: str,
        kind: DocumentKind,
        state: DocumentState,
        now: float,
        entries: list[declarations.Entry],
    ) -> bytes:
        return encode_declarations(
            org=self._settings.org,
            site=site,
            version=state.version,
            issued_at=datetime.fromtimestamp(int(now), UTC),
            kind=kind,
            base=state.base,
            entries=entries,
            signing_key=key,
        )

    @staticmethod
    def _topic(site: str, leaf: Leaf) -> str:
        return KioskTopics(site, SITE_DOCUMENTS).topic(leaf)

    def _flush(self, held: _Site) -> None:
        while held.pending:
            topic, document = held.pending[0]
            if not self._send(topic, document):
                return
            held.pending.pop(0)


class BrokerSender:
    """The publisher's MQTT connection (``kiosk.mqtt.client.new_client``, central's [mqtt]
    settings with ``-declarations`` after its client id; MQTT 3.1.1 unless ``v5``, for a
    NATS cluster's MQTT listener); callable as a :data:`Send`."""

    def __init__(self, settings: IngestSettings, *, v5: bool = True) -> None:
        tls = (
            tls_context(settings.ca_file, settings.cert_file, settings.key_file)
            if settings.ca_file or settings.cert_file
            else None
        )
        self._settings = settings
        self._client = new_client(
            f"{settings.client_id}-declarations",
            username=settings.username,
            password=settings.password,
            tls=tls,
            v5=v5,
        )

    def start(self) -> None:
        """Connect in the background, retrying with backoff."""
        self._client.connect_async(
            self._settings.host, self._settings.port, keepalive=self._settings.keepalive_s
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()

    def __call__(self, topic: str, payload: bytes) -> bool:
        if not self._client.is_connected():
            return False
        info = self._client.publish(topic, payload, qos=1, retain=True)
        return info.rc == MQTT_ERR_SUCCESS


def declarations_publisher(
    store: Store, config: CentralConfig, settings: IngestSettings
) -> DeclarationsPublisher:
    """The publisher ``kiosk central run`` starts: signing with [declarations] signing_key_file
    over central's broker; without a key it only applies the retention, and says so."""
    path = config.declarations.signing_key_file
    if not path:
        log.warning("[declarations] signing_key_file is not set: declarations are not published")
        return DeclarationsPublisher(store, config, None, lambda topic, payload: False)
    connection = BrokerSender(settings, v5=config.speaks_mqtt_5)
    key = read_private_key(Path(path))
    return DeclarationsPublisher(store, config, key, connection, connection=connection)
