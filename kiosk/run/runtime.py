"""Wiring: config → event log, credentials, hardware → a ready :class:`~kiosk.run.engine.Kiosk`."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiosk import __version__
from kiosk.config import KioskConfig
from kiosk.credentials import Allowlist, AllowlistError, parse_allowlist
from kiosk.credentials.checker import Credentials
from kiosk.credentials.dcc.gate import build_dcc_check, open_dcc_trust
from kiosk.credentials.dcc.trustlist import DccTrustStore
from kiosk.credentials.declared import DeclaredStore, open_declarations
from kiosk.credentials.trust import TrustStore
from kiosk.decide.entrance import Entrance
from kiosk.decide.privacy import Pseudonymizer, load_or_create_salt
from kiosk.events import EventType
from kiosk.hardware import build_hardware
from kiosk.mqtt.homeassistant import discovery_messages
from kiosk.mqtt.protocol import (
    SITE_DOCUMENTS,
    KioskTopics,
    Leaf,
    ProtocolError,
    decode_passages,
    encode_activity,
    parse_topic,
    subscription,
)
from kiosk.mqtt.uplink import Received, Uplink, client_id
from kiosk.operator.commands import CommandProcessor
from kiosk.run.clock import clock_is_synchronised
from kiosk.run.engine import DecisionRecord, Kiosk
from kiosk.sensors.simulation import Scene
from kiosk.store.eventlog import (
    LOG_RESERVE_BYTES,
    EventLog,
    EventLogError,
    Retention,
)
from kiosk.sync import Sync

log = logging.getLogger(__name__)


class FireAlarms:
    """Hands the gate's fire-alarm changes to the kiosk's pipeline, which logs them as it logs
    passages (:meth:`kiosk.decide.pipeline.Pipeline.on_fire_alarm`).

    The gate is built before the kiosk: a change in between is kept, and handed over in order
    when the pipeline is attached.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[bool] = []
        self._report: Callable[[bool], None] | None = None

    def changed(self, active: bool) -> None:
        """The fire-alarm input changed (gpiozero's thread)."""
        with self._lock:
            report = self._report
            if report is None:
                self._pending.append(active)
                return
        report(active)

    def attach(self, report: Callable[[bool], None]) -> None:
        """From now on hand each change to ``report``, the ones kept so far first."""
        with self._lock:
            for active in self._pending:
                report(active)
            self._pending.clear()
            self._report = report


def build_sync(
    config: KioskConfig,
    event_log: EventLog,
    trust: TrustStore,
    *,
    state: Callable[[], dict[str, Any]],
    dcc_trust: DccTrustStore | None = None,
) -> Sync:
    """The MQTT sync of the kiosk's events, built before the kiosk (whose ``resend`` action it
    serves) and connected to it by :func:`attach_sync`; ``state`` is the kiosk's document.
    With ``dcc_trust`` it also listens for the site's DCC trust list."""
    topics = KioskTopics(config.kiosk.site, config.kiosk.id)
    mqtt = config.mqtt
    announce = []
    if mqtt.homeassistant:
        announce = discovery_messages(
            topics,
            prefix=mqtt.discovery_prefix,
            version=__version__,
            allow_emergency_open=mqtt.allow_emergency_open,
            signed_commands=bool(mqtt.command_key),
            occupancy=config.kiosk.mode == "gate",
        )
    site_documents = KioskTopics(config.kiosk.site, SITE_DOCUMENTS)
    listen = [subscription(Leaf.PASSAGES, site=config.kiosk.site)]
    if trust.enabled:
        listen += [
            site_documents.topic(leaf)
            for leaf in (Leaf.TRUST, Leaf.REVOCATION, Leaf.DECLARATIONS, Leaf.DECLARATIONS_DELTA)
        ]
    if dcc_trust is not None:
        listen.append(site_documents.topic(Leaf.DCC_TRUST))
    return Sync(
        Uplink(mqtt, topics, client_id(topics)),
        event_log,
        confirm=mqtt.confirm,
        window=mqtt.window,
        batch_max=mqtt.batch_max,
        max_message_bytes=mqtt.max_message_bytes,
        resend_after_s=mqtt.resend_after_s,
        state_interval_s=mqtt.state_interval_s,
        state=state,
        announce=announce,
        listen=listen,
    )


def attach_sync(
    kiosk: Kiosk,
    sync: Sync,
    config: KioskConfig,
    trust: TrustStore,
    declared: DeclaredStore | None = None,
    dcc_trust: DccTrustStore | None = None,
) -> None:
    """Take commands, share passages, signed lists and health declarations, and send the
    kiosk's events over MQTT, in a thread of :meth:`Kiosk.run`."""
    mqtt = config.mqtt

    def used_ids() -> list[str]:
        used = kiosk.event_log.recent(10_000, type=EventType.COMMAND.value)
        return [str(event.data.get("id")) for event in used]

    seen: list[str] = []
    later: Callable[[], list[str]] | None = None
    try:
        seen = used_ids()
    except EventLogError as exc:  # down at start: the processor reads them once it opens
        log.warning("command ids already used could not be read yet: %s", exc)
        later = used_ids
    processor = CommandProcessor(
        kiosk,
        kiosk_id=config.kiosk.id,
        key=mqtt.command_key.encode() if mqtt.command_key else None,
        allow_emergency_open=mqtt.allow_emergency_open,
        now_ms=lambda: int(time.time() * 1000),
        seen_ids=seen,
        load_seen_ids=later,
    )

    def on_command(request: Received) -> None:
        outcome = processor.handle(request.payload)
        name = outcome.command.command if outcome.command else "?"
        log.info("command %s: %s", name, outcome.error or "done")
        sync.reply(request, processor.encode(outcome))

    def on_decision(record: DecisionRecord) -> None:
        measurement = record.measurement
        sync.publish_activity(
            encode_activity(
                record.decision.outcome.value,
                record.decision.reason.value,
                None
                if measurement is None or measurement.celsius is None
                else round(measurement.celsius, 1),
            )
        )

    def on_message(message: Received) -> None:
        try:
            site, sender, leaf = parse_topic(message.topic)
        except ProtocolError:
            return
        if leaf is Leaf.PASSAGES and sender != config.kiosk.id:
            learn_from_neighbour(kiosk, KioskTopics(site, sender), message.payload)
        elif leaf in (Leaf.TRUST, Leaf.REVOCATION) and message.payload:
            update = trust.offer(leaf.value, message.payload)
            kiosk.apply_trust_update(
                update.kind, update.accepted, update.version, update.reason, trust.verifier()
            )
        elif leaf in (Leaf.DECLARATIONS, Leaf.DECLARATIONS_DELTA) and declared and message.payload:
            update = declared.offer(leaf.value, message.payload)
            kiosk.record_document(update.kind, update.accepted, update.version, update.reason)
        elif leaf is Leaf.DCC_TRUST and dcc_trust is not None and message.payload:
            update = dcc_trust.receive(message.payload)  # the DCC check reads it at each scan
            kiosk.record_document(update.kind, update.accepted, update.version, update.reason)

    sync.on_command = on_command
    sync.on_message = on_message
    kiosk.add_background(sync.run)
    kiosk.add_health_observer(sync.request_state)
    kiosk.add_observer(on_decision)


def build_entrance(
    config: KioskConfig,
    salt: bytes,
    trust: TrustStore | None = None,
    declared: DeclaredStore | None = None,
    dcc_trust: DccTrustStore | None = None,
) -> Entrance:
    """The credential checks, entry rules and area state for ``config``; with ``[dcc]`` on,
    the DCC trust list ``dcc_trust`` (when not given, opened here with the anchor of ``trust``,
    else of the configured anchor)."""
    if dcc_trust is None and config.dcc.enabled:
        dcc_trust = open_dcc_trust(config, (trust or TrustStore.open(config)).anchor)
    credentials = Credentials(
        allowlist=load_allowlist(config),
        verifier=None if trust is None else trust.verifier(),
        national_salt=salt,
        dcc=build_dcc_check(config, dcc_trust, salt),
    )
    return Entrance(
        config,
        credentials,
        Pseudonymizer(salt),
        datetime.now(UTC),
        declarations=None if declared is None else declared.lookup,
    )


def learn_from_neighbour(kiosk: Kiosk, sender: KioskTopics, payload: bytes) -> None:
    """Another kiosk of the site granted or withdrew passages: share occupancy, anti-passback
    and attendance.

    A malformed message, or one naming another kiosk than the topic it came on, raises
    ProtocolError, which the sync logs and counts; nothing of it is learnt."""
    site, name, passages = decode_passages(payload)
    if (site, name) != (sender.site, sender.kiosk):
        raise ProtocolError("passages message names another site or kiosk than its topic")
    for p in passages:  # granted decisions, and grants withdrawn unused
        kiosk.entrance.learn_event(p.type, p.event_id, p.ts_ms, p.data)


def _backlog(event_log: EventLog) -> float:
    """Unconfirmed events for the metrics; NaN while the log cannot be read."""
    try:
        return event_log.stats().unconfirmed
    except EventLogError:
        return float("nan")


def load_allowlist(config: KioskConfig) -> Allowlist | None:
    """Read the configured allowlist (None when legacy badges are off); a missing or bad
    file raises AllowlistError."""
    if not config.credentials.allowlist:
        return None
    path = Path(config.credentials.allowlist)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AllowlistError(f"{path}: cannot read the allowlist: {exc.strerror}") from None
    return parse_allowlist(text, str(path))


@contextlib.contextmanager
def open_kiosk(
    config: KioskConfig,
    *,
    simulate: bool = False,
    scene: Scene | None = None,
    boot_id: str | None = None,
    pin_factory: Any = None,
) -> Iterator[Kiosk]:
    """Open the log and the devices for ``config`` and yield a kiosk; close all on exit.

    On exit, by any path (return, exception, SIGTERM turned into an exception),
    the relay is released to its safe, de-energised state and the log closed.
    """
    state_dir = Path(config.kiosk.state_dir)
    credentials = config.credentials
    salt = load_or_create_salt(credentials.subject_salt, credentials.subject_salt_file, state_dir)
    trust = TrustStore.open(config)
    declared = open_declarations(config, trust.anchor)
    dcc_trust = open_dcc_trust(config, trust.anchor) if config.dcc.enabled else None
    config.log_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        event_log = stack.enter_context(
            EventLog(
                config.log_path,
                boot_id=boot_id or str(uuid.uuid4()),
                capacity=config.log.capacity,
                warn_ratio=config.log.warn_ratio,
                retention=Retention(
                    awaits_confirmation=config.mqtt.enabled,
                    max_age_days=config.log.max_age_days,
                    unconfirmed_max_age_days=config.log.unconfirmed_max_age_days,
                ),
                clock_synced=clock_is_synchronised,
                wait_for_disk=True,  # a full disk at start: refer everyone until it opens
                reserve_bytes=LOG_RESERVE_BYTES,
            )
        )
        fire_alarms = FireAlarms()
        hardware = build_hardware(
            config,
            simulate=simulate,
            scene=scene,
            on_fire_alarm=fire_alarms.changed,
            pin_factory=pin_factory,
        )
        stack.callback(hardware.close)
        entrance = build_entrance(config, salt, trust, declared, dcc_trust)

        def state() -> dict[str, Any]:  # the sync asks once running, after the kiosk is built
            document = kiosk.state()
            if declared is not None:
                document["declarations"] = declared.state()
            return document

        sync = None
        if config.mqtt.enabled:
            sync = build_sync(config, event_log, trust, state=state, dcc_trust=dcc_trust)
        kiosk = Kiosk(
            config,
            hardware,
            event_log,
            entrance,
            allowlist_loader=lambda: load_allowlist(config),
            clock_synced=clock_is_synchronised,
            resender=None if sync is None else sync.resend_from,
        )
        fire_alarms.attach(kiosk.pipeline.on_fire_alarm)
        kiosk.metrics.watch_backlog(lambda: _backlog(event_log))
        if sync is not None:
            attach_sync(kiosk, sync, config, trust, declared, dcc_trust)
        if config.web.enabled:
            from kiosk.run.statuspage import attach_web

            attach_web(kiosk, config, sync)
        yield kiosk
