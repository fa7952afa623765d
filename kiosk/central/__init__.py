"""Reference central server: MQTT ingest into SQLite or PostgreSQL, receipts, fleet status."""

from kiosk.central.cli import print_status, run_central, with_env_secrets
from kiosk.central.fleet import format_fleet
from kiosk.central.ingest import Ingest, IngestSettings
from kiosk.central.quarantine import Quarantined
from kiosk.central.rows import EventRow, KioskStatus
from kiosk.central.store import Store, open_store

__all__ = [
    "EventRow",
    "Ingest",
    "IngestSettings",
    "KioskStatus",
    "Quarantined",
    "Store",
    "format_fleet",
    "open_store",
    "print_status",
    "run_central",
    "with_env_secrets",
]
