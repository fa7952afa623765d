"""Does a hammered status page slow the gate? Decision latency with and without web load.

A kiosk on simulated hardware serves its status page (waitress, in the web child process, as
``kiosk run`` does). People pass (thermometer off, as in bench/decide.py) while a second
process hammers the dashboard API, the display, /healthz and /metrics on 127.0.0.1 for 30 s
with 8 threads. Reported: frame with a code → relay pin high, p50/p95/p99, unloaded and
loaded. The unloaded figure is measured before and after the load and pooled, so that a
machine that drifts during the run does not pass for an effect of the load (both halves are
printed too); ``--bursts`` interleaves loaded and unloaded windows more finely. The CPU time
the hypervisor stole in each phase is printed: on a shared VM it explains outliers. Goal:
loaded p95 within 10 % of unloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from benchlib import TimedKiosk, badge, machine_info, percentiles, timed_kiosk

from kiosk.run.cpus import keep_first_cpu_for_the_gate, online_cpus
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.simulation import Person
from kiosk.web import hash_password

TOKEN = "bench-token-0123456789"
PATHS = (
    "/api/v1/status",
    "/api/v1/events?limit=50",
    "/api/v1/hourly",
    "/display/last.json",
    "/healthz",
    "/metrics",
)


def hammer(base: str, seconds: float, threads: int, cpus: str, niceness: int, load: str) -> None:
    """The load generator (run in its own process): GET the pages as fast as possible, or,
    for ``load`` "cpu", only spin one core, touching neither the page nor the network.

    ``cpus`` "others": off the gate's core, where deploy/install.sh puts every process but the
    kiosk; "any": a machine without that set-up. Either way it is a process of its own, not
    one that inherited the (pinned) kiosk's CPUs or niceness.
    """
    if cpus == "others":
        keep_first_cpu_for_the_gate()
    else:
        os.sched_setaffinity(0, online_cpus())
    os.setpriority(os.PRIO_PROCESS, 0, niceness)
    deadline = time.monotonic() + seconds
    if load == "cpu":
        while time.monotonic() < deadline:
            pass
        print(json.dumps({"requests": 0, "seconds": seconds}))
        return
    counts = [0] * threads

    def worker(index: int) -> None:
        while time.monotonic() < deadline:
            for path in PATHS:
                request = urllib.request.Request(
                    base + path, headers={"Authorization": f"Bearer {TOKEN}"}
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        response.read()
                except urllib.error.HTTPError as error:  # /healthz answers 503 when degraded
                    error.read()
                counts[index] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    print(json.dumps({"requests": sum(counts), "seconds": seconds}))


class StealMeter:
    """The share of CPU time the hypervisor took from this VM in each phase (/proc/stat):
    on a shared host, a phase with much stolen time measures the host, not the kiosk."""

    def __init__(self) -> None:
        self.percent: dict[str, float] = {}
        self._last = self._read()

    @staticmethod
    def _read() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:9]]
        return ticks[7], sum(ticks)

    def phase(self, name: str) -> None:
        """Close the phase that ends now."""
        (steal, total), (steal_before, total_before) = self._read(), self._last
        self.percent[name] = round(100 * (steal - steal_before) / max(total - total_before, 1), 1)
        self._last = (steal, total)


def latencies(kiosk: TimedKiosk, people: int, start: int) -> list[float]:
    """Frame → relay (ms) for ``people`` people, one after another."""
    measured = []
    for n in range(start, start + people):
        record, energised_at = kiosk.admit(Person("p", badge(n), sim.nobody(), "grant"))
        measured.append((energised_at - record.started_at) * 1000)
    return measured


def latencies_while(kiosk: TimedKiosk, busy: Callable[[], bool], start: int) -> list[float]:
    """Frame → relay (ms) for people passing in tens while ``busy()``."""
    measured: list[float] = []
    while busy():
        measured += latencies(kiosk, 10, start + len(measured))
    return measured


def hammered(
    kiosk: TimedKiosk, base: str, seconds: float, args: Any, start: int
) -> tuple[list[float], int]:
    """People pass while a load generator runs for ``seconds``: (latencies, requests served)."""
    load = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--hammer",
            base,
            str(seconds),
            str(args.threads),
            args.client_cpus,
            str(args.client_niceness),
            args.load,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    measured = latencies_while(kiosk, lambda: load.poll() is None, start)
    served = json.loads(load.stdout.read() if load.stdout else "{}")
    return measured, int(served.get("requests", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--people", type=int, default=300, help="people per unloaded half (before, after)"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of load in all")
    parser.add_argument(
        "--bursts",
        type=int,
        default=1,
        help="split the load into this many bursts, each followed by an unloaded pause as long"
        " (pooled with the unloaded figure): loaded and unloaded people then pass minutes apart"
        " at most, so a host whose speed drifts does not pass for the load's effect",
    )
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--port", type=int, default=28080)
    parser.add_argument(
        "--client-cpus",
        choices=("others", "any"),
        default="others",
        help="where the load generator runs: off the gate's core, as on an installed kiosk"
        " (default), or on any core",
    )
    parser.add_argument(
        "--client-niceness", type=int, default=0, help="the load generator's niceness"
    )
    parser.add_argument(
        "--load",
        choices=("web", "cpu"),
        default="web",
        help="web: hammer the page; cpu: the control, a process that only spins one core where"
        " the load generator would run (what a busy core costs the gate, page or no page)",
    )
    args = parser.parse_args()
    web = {
        "enabled": True,
        "port": args.port,
        "api_token": TOKEN,
        "password_hash": hash_password("bench-password"),
    }
    with timed_kiosk(thermometer={"enabled": False}, gate={"pulse_ms": 50}, web=web) as kiosk:
        base = f"http://127.0.0.1:{args.port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        latencies(kiosk, 100, 0)  # warm-up
        steal = StealMeter()
        before = latencies(kiosk, args.people, 100)
        steal.phase("before")
        loaded: list[float] = []
        between: list[float] = []  # unloaded, in the pauses between bursts
        requests = 0
        burst_s = args.seconds / args.bursts
        for burst in range(args.bursts):
            measured, served = hammered(kiosk, base, burst_s, args, 10_000 + 2_000 * burst)
            loaded, requests = loaded + measured, requests + served
            if burst < args.bursts - 1:
                pause_ends = time.monotonic() + burst_s
                between += latencies_while(
                    kiosk, lambda ends=pause_ends: time.monotonic() < ends, 30_000 + 2_000 * burst
                )
        steal.phase("loaded")
        after = latencies(kiosk, args.people, 50_000)
        steal.phase("after")
    figures = {
        "unloaded_ms": percentiles(before + between + after),
        "unloaded_before_ms": percentiles(before),
        "unloaded_after_ms": percentiles(after),
        "loaded_ms": percentiles(loaded),
        "loaded_people": len(loaded),
        "bursts": args.bursts,
        "web_requests": requests,
        "web_requests_per_s": round(requests / args.seconds),
        "client_cpus": args.client_cpus,
        "client_niceness": args.client_niceness,
        "load": args.load,
        "steal_percent": steal.percent,
        "machine": machine_info(),
    }
    ratio = figures["loaded_ms"]["p95"] / figures["unloaded_ms"]["p95"]
    figures["p95_ratio"] = round(ratio, 2)
    print(
        f"{args.load} load on {args.client_cpus} cores; decision latency, frame → relay (ms):"
        f" unloaded p50 {figures['unloaded_ms']['p50']}"
        f" p95 {figures['unloaded_ms']['p95']} (before {figures['unloaded_before_ms']['p95']},"
        f" after {figures['unloaded_after_ms']['p95']});"
        f" under load p50 {figures['loaded_ms']['p50']} p95 {figures['loaded_ms']['p95']}"
        f" ({len(loaded)} people,"
        f" {figures['web_requests_per_s']} web requests/s); p95 ratio {ratio:.2f}"
        f" (goal ≤ 1.10); CPU stolen by the hypervisor, before / loaded / after:"
        f" {' / '.join(f'{value}%' for value in steal.percent.values())}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--hammer":
        base, seconds, threads, cpus, niceness, load = sys.argv[2:8]
        hammer(base, float(seconds), int(threads), cpus, int(niceness), load)
    else:
        main()
