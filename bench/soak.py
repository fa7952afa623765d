"""Memory over a long run: does a kiosk's resident memory level off? Goal: growth ≤ 2 MB.

Run: ``.venv/bin/python bench/soak.py [--people 20000] [--quick] [--tracemalloc]``
(20,000 people: about 25 minutes; ``--quick``, 3,000 people: under 4 minutes on 2 cores).

A kiosk with everything on runs in this process on simulated hardware, as ``kiosk run
--simulate`` would: the thermometer (the real MLX90614 driver over the simulated bus, the
measurement protocol with its waits at their shortest), the MQTT sync to a real mosquitto
running the shipped deploy/mosquitto config and ACL (tests/broker.py), ``kiosk central run`` on
SQLite receipting every event, and the status page in its child process. Its event log first
gets ``--prefill`` copies of a real decision, as a kiosk some days old has, so SQLite's page
cache is full. Then people step up one after another, each waiting for the decision: a site's
staff of ``--population`` badges entering again and again (what is kept per person and day,
such as who is inside, is bounded by the people a site has), one in five showing a code on no
list.

The resident set of this process (``/proc/self/statm``) is sampled every ``--every`` people,
with SQLite's heap and glibc malloc's (in use, free but held). The warm-up lasts at least
``--warmup`` people and 3,000 camera frames: zxing-cpp keeps about 0.95 MB more once it has
decoded 1,500 to 3,000 frames, then no more (measured alone: flat up to 12,000). Growth is the
last sample minus the one at the end of the warm-up; the slope is a least-squares fit over the
samples after it. The web child is reported on its own.
``--tracemalloc`` prints the largest Python allocation growths after the warm-up (slower, and
its own memory shows in the figures). Prints progress, then one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import json
import os
import queue
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchlib import badge, bench_config, machine_info, running_kiosk

from kiosk.run.engine import DecisionRecord, Kiosk
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.simulation import Person, Scene

REPO = Path(__file__).resolve().parents[1]
GOAL_GROWTH_MB = 2.0
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
WARM_FRAMES = 3_000  # zxing-cpp keeps ~0.95 MB more after its first 1,500-3,000 decodes
FAST_THERMOMETER = {  # the protocol as configured, its waits at their shortest
    "sample_interval_s": 0.02,
    "stable_count": 3,
    "retest_pause_s": 0.0,
}


class Heaps:
    """Where the process's memory sits, as the C libraries report it: SQLite's heap (page
    caches, statements) and glibc malloc's (in use, and free but still held)."""

    def __init__(self) -> None:
        self._sqlite = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
        self._sqlite.sqlite3_memory_used.restype = ctypes.c_int64
        self._sqlite.sqlite3_memory_highwater.restype = ctypes.c_int64
        self._libc = ctypes.CDLL(None)
        self._libc.mallinfo2.restype = _MallInfo2

    def sqlite_peak_mb(self) -> float:
        """The most SQLite's heap has held at once since the process started, MB."""
        return float(self._sqlite.sqlite3_memory_highwater(0)) / 2**20

    def sample(self) -> dict[str, float]:
        """SQLite's heap, malloc's bytes in use and malloc's free bytes, in MB."""
        info = self._libc.mallinfo2()
        return {
            "sqlite": self._sqlite.sqlite3_memory_used() / 2**20,
            "malloc_used": (info.uordblks + info.hblkhd) / 2**20,
            "malloc_free": info.fordblks / 2**20,
        }


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            *("arena", "ordblks", "smblks", "hblks", "hblkhd"),
            *("usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"),
        )
    ]


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process, MB."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_MB


def web_child() -> int | None:
    """The status page's process: the child started by multiprocessing's spawn."""
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return int(pid)
    return None


def person(n: int, population: int) -> Person:
    """The n-th person in the queue (from 0): one in five shows a code on no list, the others
    are the site's staff in turn."""
    if n % 5 == 4:
        return Person("stranger", f"X-{n:06d}".encode(), sim.nobody(), "deny")
    body = sim.person(36.0 + (n % 12) / 10, arrive_s=-5.0)  # settled in front of the sensor
    return Person("staff", badge((n - (n + 1) // 5) % population), body, "grant")


def prefill(kiosk: Kiosk, record: DecisionRecord, count: int) -> None:
    """Append ``count`` copies of a real decision through the kiosk's own log: the log of a
    kiosk some days old, whose SQLite page cache (2 MB by default) is full."""
    if record.event is None:
        raise RuntimeError("the first decision was not logged")
    for _ in range(count):
        kiosk.event_log.append(record.event.type, record.event.data)


@contextlib.contextmanager
def site(directory: Path) -> Iterator[dict[str, dict[str, Any]]]:
    """mosquitto (shipped config) and ``kiosk central run``; yields the kiosk's mqtt and web
    config sections."""
    sys.path.insert(0, str(REPO))
    from tests.broker import DEFAULT_USERS, Broker, free_port

    passwords = {user: secrets.token_hex(16) for user in DEFAULT_USERS}
    with Broker(directory / "broker", passwords=passwords) as broker:
        command = [
            sys.executable,
            "-c",
            "from kiosk.cli.main import main; main()",
            "central",
            "run",
        ]
        command += ["--db", str(directory / "central.db"), "--host", broker.host]
        command += ["--port", str(broker.port), "--client-id", "central-soak"]
        env = os.environ | {"KIOSK_CENTRAL_MQTT_PASSWORD": passwords["central"]}
        with (directory / "central.log").open("wb") as log:
            central = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        try:
            yield {
                "mqtt": {
                    "enabled": True,
                    "host": broker.host,
                    "port": broker.port,
                    "tls": False,
                    "password": passwords["k1"],
                },
                "web": {"enabled": True, "host": "127.0.0.1", "port": free_port()},
            }
        finally:
            central.terminate()
            central.wait(timeout=30)


def soak(kiosk: Kiosk, scene: Scene, args: argparse.Namespace) -> dict[str, Any]:
    """Pass the people; sample memory; return the figures."""
    decisions: queue.Queue[DecisionRecord] = queue.Queue()
    kiosk.add_observer(decisions.put)
    outcomes: Counter[str] = Counter()
    heaps = Heaps()
    samples: list[dict[str, float]] = []
    warmed_up: int | None = None  # people at the end of the warm-up
    snapshot = None
    if args.tracemalloc:
        tracemalloc.start(12)
    scene.step_up(person(0, args.population))
    prefill(kiosk, decisions.get(timeout=30), args.prefill)
    started = time.monotonic()
    for n in range(1, args.people + 1):
        scene.step_up(person(n, args.population))
        outcomes[decisions.get(timeout=30).decision.outcome.value] += 1
        if n % args.every:
            continue
        page = web_child()
        web = 0.0 if page is None else rss_mb(page)
        samples.append({"people": n, "rss": rss_mb(), "web": web} | heaps.sample())
        if warmed_up is None and n >= args.warmup and kiosk.health().frames_read >= WARM_FRAMES:
            warmed_up = n
            if args.tracemalloc:
                snapshot = tracemalloc.take_snapshot()
        print(
            "  ".join(f"{key} {value:g}" for key, value in samples[-1].items()),
            file=sys.stderr,
            flush=True,
        )
    seconds = time.monotonic() - started  # the people, without setting up and the prefill
    if snapshot is not None:
        print_growth(snapshot)
    if warmed_up is None or warmed_up == args.people:
        raise SystemExit("soak: the run ended within the warm-up; pass more --people")
    measured = [sample for sample in samples if sample["people"] >= warmed_up]
    first, last = measured[0], measured[-1]
    slope = statistics.linear_regression(
        [sample["people"] for sample in measured], [sample["rss"] for sample in measured]
    ).slope
    stats = kiosk.event_log.stats()
    return {
        "people": args.people,
        "warmup": warmed_up,
        "prefill": args.prefill,
        "population": args.population,
        "rss_start_mb": round(first["rss"], 1),
        "rss_end_mb": round(last["rss"], 1),
        "rss_growth_mb": round(last["rss"] - first["rss"], 2),
        "rss_max_mb": round(max(sample["rss"] for sample in measured), 1),
        "sqlite_heap_mb": round(last["sqlite"], 2),
        "sqlite_heap_peak_mb": round(heaps.sqlite_peak_mb(), 2),
        "rss_slope_mb_per_1000": round(slope * 1000, 3),
        "of_which_mb": {  # growth by where it sits
            key: round(last[key] - first[key], 2)
            for key in ("sqlite", "malloc_used", "malloc_free")
        },
        "web_rss_start_mb": round(first["web"], 1),
        "web_rss_end_mb": round(last["web"], 1),
        "seconds": round(seconds, 1),
        "people_per_s": round(args.people / seconds, 1),
        "outcomes": dict(outcomes),
        "log_rows": stats.rows,
        "unconfirmed": stats.unconfirmed,
        "goal_growth_mb": GOAL_GROWTH_MB,
        "machine": machine_info(),
    }


def print_growth(since: tracemalloc.Snapshot, top: int = 12) -> None:
    """The ``top`` Python allocation growths since ``since``, with where they were made."""
    for stat in tracemalloc.take_snapshot().compare_to(since, "traceback")[:top]:
        print(f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks", file=sys.stderr)
        for line in stat.traceback.format(most_recent_first=True):
            print(f"      {line}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="3,000 people")
    parser.add_argument(
        "--warmup", type=int, help="people at least (default: a tenth, at least the population)"
    )
    parser.add_argument("--population", type=int, default=500)
    parser.add_argument("--every", type=int, default=250, help="sample memory this often")
    parser.add_argument("--prefill", type=int, default=5_000, help="events logged before")
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.people = 3_000
    args.warmup = args.warmup or max(args.population, args.people // 10)
    if not 0 < args.warmup < args.people or args.every < 1:
        parser.error("the warm-up must be shorter than the run, --every at least 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("soak: stopped by SIGTERM"))  # clean up
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kiosk-soak-") as scratch, site(Path(scratch)) as net:
        config = bench_config(
            Path(scratch),
            kiosk={"id": "k1", "site": "soak"},
            thermometer=FAST_THERMOMETER,
            gate={"pulse_ms": 50},
            **net,
        )
        scene = Scene()
        with running_kiosk(config, scene) as kiosk:
            figures = soak(kiosk, scene, args)
    figures["wall_seconds"] = round(time.monotonic() - started, 1)
    print(
        f"{figures['people']} people in {figures['wall_seconds']} s: resident memory "
        f"{figures['rss_start_mb']} → {figures['rss_end_mb']} MB after {figures['warmup']} "
        f"warm-up (growth {figures['rss_growth_mb']} MB, goal ≤ {GOAL_GROWTH_MB} MB; "
        f"{figures['rss_slope_mb_per_1000']} MB per 1,000 people)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
