"""The kiosks' side of bench/fleet.py: one process running many simulated kiosks, each the
real ``Sync`` + ``Uplink`` (MQTT 3.1.1) over its own ``EventLog``, with people passing.

``python bench/fleet_kiosks.py SPEC_JSON``: SPEC has dir, kiosks (ids), sites and ports (one
each per kiosk), seconds, rate (passages per kiosk per second), drain_s, resend_after_s,
subscriptions_qos and backlog (events put in each log before its kiosk connects). Each kiosk
subscribes to its site's passages as a real one does. Prints one JSON line:
``{"kiosks": {id: [appended, unconfirmed]}, "confirmed_s": seconds after traffic ended}`` and
totals: events resent, messages ignored, kiosks that had a receipt, kiosks whose subscriptions
the broker all granted (at the end), passages messages received from the site's kiosks.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drain_kiosk import build_backlog, decision_data

TICK_S = 0.1
POLL_S = 0.5


class SimKiosk:
    """One kiosk: its log, its sync thread, and how many events it appended."""

    def __init__(self, spec: dict[str, Any], kiosk: str, site: str, port: int) -> None:
        from kiosk.config import parse_config
        from kiosk.mqtt.protocol import KioskTopics, Leaf, subscription
        from kiosk.mqtt.uplink import Uplink, client_id
        from kiosk.store.eventlog import EventLog
        from kiosk.sync import Sync

        path = Path(spec["dir"]) / f"{kiosk}.db"
        self.appended = spec["backlog"]
        if self.appended:
            build_backlog(path, self.appended)
        mqtt = {
            "enabled": True,
            "host": "127.0.0.1",
            "port": port,
            "tls": False,
            "protocol": "3.1.1",
            "resend_after_s": spec["resend_after_s"],
            "subscriptions_qos": spec["subscriptions_qos"],
        }
        settings = parse_config({"mqtt": mqtt}).mqtt
        self.log = EventLog(path, boot_id=f"fleet-{kiosk}", capacity=10_000_000)
        topics = KioskTopics(site, kiosk)
        self.sync = Sync(
            Uplink(settings, topics, client_id(topics)),
            self.log,
            confirm=settings.confirm,
            window=settings.window,
            batch_max=settings.batch_max,
            resend_after_s=settings.resend_after_s,
            state_interval_s=settings.state_interval_s,
            listen=[subscription(Leaf.PASSAGES, site=site)],
        )
        self.passages_received = 0
        self.sync.on_message = self._passages
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sync.run, args=(self.stop,), daemon=True)

    def _passages(self, message: Any) -> None:
        self.passages_received += 1

    def pass_people(self, n: int) -> None:
        """``n`` people pass: one decision event each, committed to the log."""
        for _ in range(n):
            self.appended += 1
            self.log.append("decision", decision_data(self.appended))


def traffic(kiosks: list[SimKiosk], rate: float, seconds: float) -> None:
    """People pass at ``rate`` per kiosk per second (Poisson arrivals) for ``seconds``."""
    rng = random.Random(1)
    owed = [rng.random() for _ in kiosks]
    end = time.monotonic() + seconds
    next_tick = time.monotonic()
    while time.monotonic() < end:
        for i, one in enumerate(kiosks):
            owed[i] += rng.expovariate(1.0) * rate * TICK_S
            whole = int(owed[i])
            if whole:
                owed[i] -= whole
                one.pass_people(whole)
        next_tick += TICK_S
        time.sleep(max(0.0, next_tick - time.monotonic()))


def main(spec: dict[str, Any]) -> None:
    """Run the kiosks, the traffic and the drain; print the result line."""
    kiosks = [
        SimKiosk(spec, kiosk, site, port)
        for kiosk, site, port in zip(spec["kiosks"], spec["sites"], spec["ports"], strict=True)
    ]
    for one in kiosks:
        one.thread.start()
    traffic(kiosks, spec["rate"], spec["seconds"])
    ended = time.monotonic()
    deadline = ended + spec["drain_s"]
    while time.monotonic() < deadline:
        if all(one.log.stats().unconfirmed == 0 for one in kiosks):
            break
        time.sleep(POLL_S)
    confirmed_s = time.monotonic() - ended
    subscribed = sum(1 for one in kiosks if one.sync.uplink.subscribed)  # before they stop
    result: dict[str, list[int]] = {}
    for one in kiosks:
        result[one.sync.uplink.topics.kiosk] = [one.appended, one.log.stats().unconfirmed]
        one.stop.set()
    for one in kiosks:
        one.thread.join(10)
        one.log.close()
    stats = [one.sync.stats for one in kiosks]
    totals = {
        "resent_events": sum(st.resent_events for st in stats),
        "ignored_messages": sum(st.ignored_messages for st in stats),
        "kiosks_receipted": sum(1 for st in stats if st.last_receipt_ms),
        "kiosks_subscribed": subscribed,
        "passages_received": sum(one.passages_received for one in kiosks),
    }
    print(
        json.dumps({"kiosks": result, "confirmed_s": round(confirmed_s, 2), **totals}), flush=True
    )


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
