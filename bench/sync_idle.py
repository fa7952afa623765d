"""The sync loop's cost when idle and its append → publish latency, old tick against new wake.

    python bench/sync_idle.py                      # both loops, 60 s idle + 200 events each
    python bench/sync_idle.py --loops wake --idle-s 10 --events 50

One kiosk's ``Sync`` over its own event log, connected to a private mosquitto (bench/ingest.py's,
anonymous, persistence off), ``mqtt.confirm = "puback"`` (no central needed). Two loops:

- ``tick``: the loop as it was, ``step(timeout=0.02)`` over and over, the log not telling the
  sync of appends (found by the next tick);
- ``wake``: :meth:`Sync.run` as it is: asleep on the inbox until something happens or falls
  due (fallback poll ``POLL_S``), woken by the log on each append.

Idle: the sync thread's CPU time (its own thread clock) and the loop's rounds over
``--idle-s`` seconds after the connection settled. Latency: ``--events`` events appended one
every 50–150 ms; each one's time from ``append`` returning to a subscriber on the broker
receiving it. One JSON line per loop.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import percentiles
from ingest import mosquitto

from kiosk.mqtt.protocol import Leaf
from kiosk.store.eventlog import EventLog, OutboxEvent


class SilentOutbox:
    """The log as the sync's outbox, without its append hook (the ``tick`` loop's)."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    def pending_json(self, limit: int, after_seq: int = 0) -> list[OutboxEvent]:
        return self._log.pending_json(limit, after_seq)

    def mark_sent(self, seqs: Iterable[int]) -> None:
        self._log.mark_sent(seqs)

    def mark_confirmed(self, seqs: Iterable[int]) -> int:
        return self._log.mark_confirmed(seqs)


def open_sync(loop: str, port: int, log: EventLog) -> Any:
    """A kiosk's Sync on the bench's broker (the ``tick`` loop's without the append hook)."""
    from kiosk.config import parse_config
    from kiosk.mqtt.protocol import KioskTopics
    from kiosk.mqtt.uplink import Uplink, client_id
    from kiosk.sync import Sync

    topics = KioskTopics("bench", f"idle-{loop}")
    mqtt = {"enabled": True, "host": "127.0.0.1", "port": port, "tls": False}
    settings = parse_config({"mqtt": mqtt | {"protocol": "3.1.1"}}).mqtt
    outbox = log if loop == "wake" else SilentOutbox(log)
    return Sync(
        Uplink(settings, topics, client_id(topics)),
        outbox,
        confirm="puback",
        state_interval_s=settings.state_interval_s,
    )


def run_loop(loop: str, sync: Any, stop: threading.Event) -> None:
    """The sync's loop until ``stop``: :meth:`Sync.run`, or the old 20 ms tick."""
    if loop == "wake":
        sync.run(stop)
        return
    sync.uplink.start()
    try:
        while not stop.is_set():
            sync.step(timeout=0.02)
    finally:
        sync.uplink.stop(clean=True)


def idle_figures(sync: Any, thread: threading.Thread, seconds: float) -> dict[str, Any]:
    """The sync thread's CPU time, its rounds and the process's CPU time over ``seconds``."""
    assert thread.ident is not None
    cpu_clock = time.pthread_getcpuclockid(thread.ident)
    cpu0, rounds0, process0 = time.clock_gettime(cpu_clock), sync.rounds, os.times()
    threading.Event().wait(seconds)
    cpu, process = time.clock_gettime(cpu_clock) - cpu0, os.times()
    return {
        "seconds": seconds,
        "sync_thread_cpu_ms": round(cpu * 1000, 1),
        "rounds": sync.rounds - rounds0,
        "process_cpu_ms": round(
            (process.user + process.system - process0.user - process0.system) * 1000
        ),
    }


def latencies(log: EventLog, arrived: queue.Queue[tuple[float, bytes]], events: int) -> list[float]:
    """Append ``events`` events 50–150 ms apart; each one's append → arrival in ms."""
    rng = random.Random(1)
    appended: dict[int, float] = {}
    for n in range(events):
        event = log.append("decision", {"outcome": "grant", "reason": "ok", "n": n})
        appended[event.seq] = time.monotonic()
        threading.Event().wait(rng.uniform(0.05, 0.15))
    lags: dict[int, float] = {}
    deadline = time.monotonic() + 30
    while len(lags) < events and time.monotonic() < deadline:
        try:
            at, payload = arrived.get(timeout=1)
        except queue.Empty:
            continue
        for wire in json.loads(payload)["events"]:
            lags.setdefault(wire["seq"], (at - appended[wire["seq"]]) * 1000)
    return list(lags.values())


def measure(loop: str, port: int, folder: Path, idle_s: float, events: int) -> dict[str, Any]:
    """One loop's idle CPU, rounds and latency."""
    import paho.mqtt.client as mqtt

    log = EventLog(folder / f"{loop}.db", boot_id=loop)
    sync = open_sync(loop, port, log)
    arrived: queue.Queue[tuple[float, bytes]] = queue.Queue()
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, f"watch-{loop}")
    watcher.on_message = lambda _c, _u, msg: arrived.put((time.monotonic(), bytes(msg.payload)))
    watcher.connect("127.0.0.1", port)
    watcher.subscribe(sync.uplink.topics.topic(Leaf.EVENTS), qos=1)
    watcher.loop_start()
    stop = threading.Event()
    thread = threading.Thread(target=run_loop, args=(loop, sync, stop), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not sync.stats.connected:
            if time.monotonic() > deadline:
                raise RuntimeError("the kiosk did not connect")
            stop.wait(0.1)
        stop.wait(2.0)  # the connection's own messages and their PUBACKs
        idle = idle_figures(sync, thread, idle_s)
        lags = latencies(log, arrived, events)
        return {
            "loop": loop,
            "idle": idle,
            "append_to_publish_ms": percentiles(lags, 2),
            "events": events,
            "received": len(lags),
        }
    finally:
        stop.set()
        thread.join(10)
        watcher.loop_stop()
        watcher.disconnect()
        log.close()


def main() -> None:
    """Parse the options, run each loop, print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", default="tick,wake", help="tick, wake or both, by commas")
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sync-idle-") as tmp, mosquitto(Path(tmp)) as port:
        for loop in args.loops.split(","):
            result = measure(loop, port, Path(tmp), args.idle_s, args.events)
            print(json.dumps(result | {"loadavg": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
