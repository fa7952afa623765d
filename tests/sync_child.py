"""A kiosk process that logs a stream of events and syncs them; the tests kill it with -9.

Usage: python -m tests.sync_child DB PORT [APPEND_N]: logs APPEND_N events one by one
(as people pass) while syncing, then keeps syncing until killed.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from kiosk.mqtt.protocol import KioskTopics
from kiosk.mqtt.uplink import Uplink, client_id
from kiosk.store.eventlog import EventLog
from kiosk.sync import Sync
from tests.test_sync import mqtt_settings


def main(db: Path, port: int, append: int) -> None:
    """Sync until killed."""
    topics = KioskTopics("s1", "k1")
    with EventLog(db, boot_id="child") as log:
        uplink = Uplink(mqtt_settings(port), topics, client_id(topics))
        sync = Sync(uplink, log, resend_after_s=2.0)
        threading.Thread(target=sync.run, args=(threading.Event(),), daemon=True).start()
        pace = threading.Event()
        for n in range(append):
            log.append("decision", {"n": n})
            pace.wait(0.001)  # people arrive one after another, not all at once
        pace.wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
