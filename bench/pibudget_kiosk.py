"""The kiosk that bench/pibudget.py runs inside a CPU and memory limit; not run by hand.

The demo's wiring (:func:`kiosk.run.runtime.open_kiosk` on simulated hardware) with the MQTT
sync to the bench's broker and the status page on, and a simulated camera at the camera's frame
rate showing an entrance's textured scene, where a person holds a phone up when they scan. The
relay output is wired back to an input pin, so the instant it energises is recorded by
gpiozero. With ``--every-frame`` the frame loop decodes still frames too (as the kiosk did
before StillSceneDecoder).
It tells systemd's notify socket (the bench's) READY=1 like ``kiosk run``, waits for a line on
its standard input, then passes ``--people`` people with ``--idle-s`` of empty scene before
each, and prints one JSON object with what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchlib import FEEDBACK_PIN, percentiles
from gpiozero import DigitalInputDevice

from kiosk.config import KioskConfig, parse_config
from kiosk.hardware import ShortHistoryConnectedPin, simulated_pin_factory
from kiosk.run.engine import DecisionRecord, Kiosk
from kiosk.run.runtime import open_kiosk
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.frames import GeneratedFrameSource
from kiosk.sensors.qr import make_decoder
from kiosk.sensors.simulation import Person, Scene

STAFF = 1000  # badges on the allowlist: an office's staff


def config_for(args: argparse.Namespace) -> KioskConfig:
    """The kiosk's config: a small office's allowlist, sync to the bench's broker, the page on."""
    directory = Path(args.state_dir)
    allowlist = directory / "allowlist.csv"
    allowlist.write_text("".join(f"P-{n:06d},staff,\n" for n in range(STAFF)))
    raw: dict[str, dict[str, Any]] = {
        "kiosk": {"id": "k1", "site": "bench", "state_dir": str(directory)},
        "credentials": {"allowlist": str(allowlist), "subject_salt": "bench-salt-0123456789"},
        "camera": {"decoder": args.decoder},
        "mqtt": {
            "enabled": True,
            "host": "127.0.0.1",
            "port": args.mqtt_port,
            "tls": False,
            "password": args.mqtt_password,
        },
        "web": {"enabled": True, "host": "127.0.0.1", "port": args.web_port},
    }
    return parse_config(raw, source="<pibudget>")


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """A process's peak resident memory (VmHWM), or None once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def children() -> list[int]:
    """The process ids of this process's children (the status page)."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids += [int(pid) for pid in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


def cpu_seconds(stat_path: Path) -> float:
    """User plus system CPU seconds of a process or thread, from its ``stat`` file."""
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_part() -> dict[str, float]:
    """CPU seconds so far of each of this process's threads (by name) and of the page's process."""
    seconds: dict[str, float] = {}
    for thread in threading.enumerate():
        stat = Path(f"/proc/self/task/{thread.native_id}/stat")
        with contextlib.suppress(OSError):
            seconds[thread.name] = cpu_seconds(stat)
    for pid in children():
        with contextlib.suppress(OSError):
            seconds["status page process"] = cpu_seconds(Path(f"/proc/{pid}/stat"))
    return seconds


def pass_people(kiosk: Kiosk, scene: Scene, args: argparse.Namespace) -> dict[str, Any]:
    """Step ``args.people`` people up one after another; their times and the frames meanwhile."""
    decisions: queue.Queue[DecisionRecord] = queue.Queue()
    energised: queue.Queue[float] = queue.Queue()
    kiosk.add_observer(decisions.put)
    feedback = DigitalInputDevice(
        FEEDBACK_PIN,
        pull_up=None,
        active_state=kiosk.config.gate.relay_active_high,
        pin_factory=kiosk.hardware.pin_factory,
    )
    feedback.when_activated = lambda: energised.put(time.monotonic())
    source = kiosk.hardware.frames
    assert isinstance(source, GeneratedFrameSource)
    delivered, dropped = source.delivered, source.dropped
    skipped = getattr(kiosk.hardware.decoder, "skipped", 0)
    cpu_at_start = cpu_by_part()
    cpu_before, started = time.process_time(), time.monotonic()
    person_s, decision_s, outcomes = [], [], []
    dropped_idle = 0
    try:
        for n in range(args.people):
            before_idle = source.dropped
            time.sleep(args.idle_s)  # nobody in view: the camera shows the empty entrance
            dropped_idle += source.dropped - before_idle
            body = sim.person(36.0 + (n % 12) / 10, noise_c=0.05, seed=n)
            stepped_up = time.monotonic()
            scene.step_up(Person("p", f"P-{n % STAFF:06d}".encode(), body, "grant"))
            record = decisions.get(timeout=60)
            outcomes.append(record.decision.outcome.value)
            measuring = record.measurement.duration_s if record.measurement else 0.0
            decision_s.append(record.gate_moved_at - record.started_at - measuring)
            person_s.append(energised.get(timeout=10) - stepped_up)
            while kiosk.gate.state().relay_energised:  # the person walks through
                time.sleep(0.01)
            scene.leave()
    finally:
        feedback.close()
    elapsed = time.monotonic() - started
    read = source.delivered - delivered
    decoder = kiosk.hardware.decoder
    metrics = kiosk.metrics.registry
    decodes = metrics.get_sample_value("kiosk_decode_seconds_count") or 0.0
    decode_sum = metrics.get_sample_value("kiosk_decode_seconds_sum") or 0.0
    cpu_at_end = cpu_by_part()
    return {
        "startup_cpu_s": round(sum(cpu_at_start.values()), 2),
        "cpu_share_by_part": {
            part: round((seconds - cpu_at_start.get(part, 0.0)) / elapsed, 3)
            for part, seconds in cpu_at_end.items()
        },
        "seconds": round(elapsed, 1),
        "frames_read": read,
        "frames_dropped": source.dropped - dropped,
        "frames_dropped_nobody_in_view": dropped_idle,
        "frames_dropped_before": dropped,  # from the first frame until the page answered
        "fps_sustained": round(read / elapsed, 2),
        "frames_skipped_still": getattr(decoder, "skipped", 0) - skipped,
        "decode_ms_mean": round(1000 * decode_sum / decodes, 2) if decodes else None,
        "person_s": percentiles(person_s),
        "decision_s": percentiles(decision_s),
        "outcomes": sorted(set(outcomes)),
        "kiosk_cpu_share": round((time.process_time() - cpu_before) / elapsed, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--mqtt-port", type=int, required=True)
    parser.add_argument("--mqtt-password", required=True)
    parser.add_argument("--web-port", type=int, required=True)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--idle-s", type=float, default=2.0)
    parser.add_argument("--decoder", default="zxing-cpp")
    parser.add_argument("--every-frame", action="store_true", help="decode still frames too")
    args = parser.parse_args()
    config = config_for(args)
    factory = simulated_pin_factory()
    factory.pin(
        config.gate.relay_pin,
        pin_class=ShortHistoryConnectedPin,
        input_pin=factory.pin(FEEDBACK_PIN),
    )
    scene = Scene()
    with open_kiosk(config, simulate=True, scene=scene, pin_factory=factory) as kiosk:
        kiosk.hardware.frames.close()
        kiosk.hardware.frames = GeneratedFrameSource(scene.payload, fps=args.fps)
        kiosk.hardware.frames.start()
        if args.every_frame:
            kiosk.hardware.decoder = make_decoder(args.decoder)
        stop = threading.Event()
        runner = threading.Thread(target=kiosk.run, args=(stop,), name="kiosk", daemon=True)
        runner.start()
        sys.stdin.readline()  # the bench saw READY
        figures = pass_people(kiosk, scene, args)
        figures["page_peak_rss_mb"] = max(
            (peak_rss_mb(pid) or 0.0 for pid in children()), default=None
        )
        stop.set()
        runner.join(timeout=30)
    figures["peak_rss_mb"] = peak_rss_mb()
    figures["cpu_s"] = round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 2)
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
