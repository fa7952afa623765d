"""Plain functions behind ``kiosk central run`` and ``kiosk central status``."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
from collections.abc import Mapping
from typing import TextIO

from kiosk.central.declarations.publisher import declarations_publisher
from kiosk.central.fleet import format_fleet, format_quarantine
from kiosk.central.ingest import Ingest, IngestSettings
from kiosk.central.nats import NatsSettings, NatsWorker
from kiosk.central.reports.deliveries import delivery_alerts, format_alerts
from kiosk.central.reports.delivery import delivery_job
from kiosk.central.retention import RetentionJob
from kiosk.central.settings import CentralConfig, StoreSection
from kiosk.central.store import open_store

log = logging.getLogger(__name__)

PASSWORD_ENV = "KIOSK_CENTRAL_MQTT_PASSWORD"
COMMAND_KEY_ENV = "KIOSK_CENTRAL_COMMAND_KEY"  # the kiosks' [mqtt] command_key
NATS_PASSWORD_ENV = "KIOSK_CENTRAL_NATS_PASSWORD"


def with_env_secrets(settings: IngestSettings, environ: Mapping[str, str]) -> IngestSettings:
    """``settings`` with the MQTT password and the command key taken from the environment."""
    password = environ.get(PASSWORD_ENV) or settings.password
    key = environ.get(COMMAND_KEY_ENV)
    return dataclasses.replace(
        settings,
        password=password,
        command_key=key.encode("utf-8") if key else settings.command_key,
    )


def run_central(
    settings: IngestSettings,
    db_url: str,
    stop: threading.Event,
    stats_every_s: float = 300,
    policy: StoreSection | None = None,
    reports: CentralConfig | None = None,
    nats: NatsSettings | None = None,
) -> dict[str, int]:
    """Ingest until ``stop`` is set, applying the retention ``policy`` (default: the
    config's defaults) at start and daily, delivering the daily list as ``reports``'
    [report] says (when it names a folder or recipients) and publishing the sites' signed
    declarations documents as its [declarations] says; logs the counters now and then and
    returns them. With ``nats``, a JetStream worker (:mod:`kiosk.central.nats`) ingests
    instead of the MQTT consumer; ``settings`` still name the MQTT listener documents go to."""
    settings = with_env_secrets(settings, os.environ)
    store = open_store(db_url)
    policy = policy or StoreSection()
    store.quarantine_max_rows = policy.quarantine_max_rows
    ingest: Ingest | NatsWorker = NatsWorker(nats, store) if nats else Ingest(settings, store)
    folder = reports.report.folder if reports else ""
    retention = RetentionJob(store, policy, report_folder=folder)
    delivery = delivery_job(store, reports) if reports else None
    declarations = declarations_publisher(store, reports or CentralConfig(), settings)
    log.info("central ingest %s starting: %s:%d", settings.client_id, settings.host, settings.port)
    ingest.start()
    retention.start()
    if delivery:
        delivery.start()
    declarations.start()
    try:
        while not stop.wait(stats_every_s):
            log.info("ingest counters: %s", ingest.stats())
    finally:
        declarations.stop()
        if delivery:
            delivery.stop()
        retention.stop()
        ingest.stop()
        store.close()
    log.info("central ingest stopped: %s", ingest.stats())
    return ingest.stats()


def print_status(db_url: str, out: TextIO | None = None, reasons: int = 5) -> None:
    """Print the fleet table from the store at ``db_url`` (to ``out``, default standard
    output), then the quarantine's count and its ``reasons`` latest rows, then the daily
    lists whose delivery failed."""
    out = out or sys.stdout
    store = open_store(db_url)
    try:
        print(format_fleet(store.fleet()), file=out)
        print(format_quarantine(store.quarantined_count(), store.quarantined(reasons)), file=out)
        failing = format_alerts(delivery_alerts(store))
        if failing:
            print(failing, file=out)
    finally:
        store.close()
