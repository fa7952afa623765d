"""The Raspberry Pi budget: the whole kiosk inside a share of one CPU core and 256 MB.

For each quota (100 %, 25 %, 10 % and 5 % of one core by default) the bench makes a group
limited to that share and to ``--memory-mb`` (cgroup v1, cgroup v2 or systemd-run: see
bench/cpulimit.py; the JSON names which), and runs in it the kiosk of bench/pibudget_kiosk.py:
the demo's wiring with its MQTT sync to a mosquitto the bench starts (outside the limit), the
status page in its child process, the real decoder reading a 640x480 simulated camera at
``--fps`` frames per second that shows an entrance's textured, noisy scene and, while someone
scans, a person holding up a phone. Measured per quota:

* ``busy_loop_share``: a pure-Python loop's speed in the group against outside it, and
  ``cpu_share``: the CPU seconds it got per second (what the quota really gives);
* ``ready_s``: from starting the process to its READY=1 on the notify socket (the bench's own
  datagram socket in ``NOTIFY_SOCKET``, as systemd's);
* ``page_ready_s``: until the status page answers (the people pass only from then on);
* ``fps_sustained``, ``frames_read``, ``frames_dropped`` (frames the camera made that the frame
  loop never read; ``frames_dropped_before``: before the page answered, while it started),
  ``frames_skipped_still`` (read, but not decoded: the scene had not changed),
  ``decode_ms_mean``;
* ``person_s`` (step up → relay energised) and ``decision_s`` (the kiosk's own work per person:
  the frame with the code to the gate acting, less the temperature protocol's sampling);
* ``peak_rss_mb`` (the kiosk's VmHWM), ``page_peak_rss_mb`` (the status page's process),
  ``group_peak_mb`` (the group's memory peak, page cache included).

Goals at 10 % (about one Cortex-A53 core of a Pi 3 or Zero 2 W): every frame decoded, person
median ≤ 1.0 s, READY ≤ 10 s, peak RSS ≤ 120 MB. Needs root for cgroups (or systemd); prints
why and exits 0 where no limit can be made. Prints a table, then one JSON line.
Run: ``sudo .venv/bin/python bench/pibudget.py [--quotas 100,25,10,5] [--people 10]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchlib import machine_info
from cpulimit import LimitUnavailableError, open_group

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
BUSY_LOOP_S = 2.0
BUSY_LOOP = (
    "import time\n"
    "end, n = time.monotonic() + {seconds}, 0\n"
    "while time.monotonic() < end: n += 1\n"
    "print(n, time.process_time())\n"
)
READY_TIMEOUT_S = 120.0
GOALS = {"quota": 10, "ready_s": 10.0, "person_median_s": 1.0, "peak_rss_mb": 120.0}


class NotifySocket:
    """A datagram socket standing in for systemd's: records when READY=1 arrives."""

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / "notify.sock")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.path)
        self._socket.settimeout(0.2)
        self.ready_at: float | None = None
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="notify", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._socket.recv(4096).decode("utf-8", "replace")
            except TimeoutError:
                continue
            if "READY=1" in message.splitlines() and not self.ready.is_set():
                self.ready_at = time.monotonic()
                self.ready.set()

    def close(self) -> None:
        """Stop listening and close the socket."""
        self._stop.set()
        self._thread.join()
        self._socket.close()


def busy_loop(command_prefix: list[str], join: Any = None) -> tuple[int, float]:
    """Iterations of a pure-Python loop in ``BUSY_LOOP_S`` and the CPU seconds it got."""
    code = BUSY_LOOP.format(seconds=BUSY_LOOP_S)
    out = subprocess.run(
        [*command_prefix, sys.executable, "-c", code],
        preexec_fn=join,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[0]), float(out[1])


def wait_for_page(port: int, started: float) -> float:
    """Seconds from ``started`` until the status page answers /healthz (any status)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
        except urllib.error.HTTPError:
            break  # it answered, with 503 while the kiosk has pushed no state yet
        except OSError:
            time.sleep(0.1)
            continue
        break
    else:
        raise RuntimeError(f"the status page did not answer within {READY_TIMEOUT_S:g} s")
    return round(time.monotonic() - started, 2)


def run_kiosk(
    args: argparse.Namespace, command: list[str], join: Any, site: dict[str, Any]
) -> dict[str, Any]:
    """Start the limited kiosk, time its READY, let it pass the people; its figures."""
    with tempfile.TemporaryDirectory(prefix="pibudget-") as scratch:
        directory = Path(scratch)
        notify = NotifySocket(directory)
        argv = [
            *command,
            sys.executable,
            str(BENCH / "pibudget_kiosk.py"),
            *("--state-dir", str(directory / "state")),
            *("--mqtt-port", str(site["port"]), "--mqtt-password", site["password"]),
            *("--web-port", str(site["web_port"]), "--decoder", args.decoder),
            *("--fps", str(args.fps), "--people", str(args.people)),
            *("--idle-s", str(args.idle_s)),
            *(["--every-frame"] if args.every_frame else []),
        ]
        (directory / "state").mkdir()
        env = os.environ | {"NOTIFY_SOCKET": notify.path, "PYTHONPATH": str(REPO)}
        started = time.monotonic()
        with (directory / "kiosk.log").open("w+") as log:
            process = subprocess.Popen(
                argv,
                env=env,
                preexec_fn=join,  # noqa: PLW1509 (it only writes a file: safe after fork)
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
            try:
                deadline = started + READY_TIMEOUT_S
                while not notify.ready.wait(0.1):
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"no READY=1 (exit status {process.returncode})")
                assert process.stdin is not None and notify.ready_at is not None
                page_ready_s = wait_for_page(site["web_port"], started)
                process.stdin.write("go\n")
                process.stdin.flush()
                out, _ = process.communicate(timeout=600)
            except BaseException:
                process.kill()
                process.wait()
                log.seek(0)
                sys.stderr.write(log.read()[-4000:])
                raise
            finally:
                notify.close()
        if process.returncode != 0:
            raise RuntimeError(f"the kiosk exited with {process.returncode}")
        figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        ready_s = round(notify.ready_at - started, 2)
        return {"ready_s": ready_s, "page_ready_s": page_ready_s} | figures


@contextlib.contextmanager
def local_site() -> Iterator[dict[str, Any]]:
    """mosquitto with the shipped config on free ports; the kiosk's port and password."""
    sys.path.insert(0, str(REPO))
    from tests.broker import DEFAULT_USERS, Broker, free_port

    passwords = {user: secrets.token_hex(16) for user in DEFAULT_USERS}
    with (
        tempfile.TemporaryDirectory(prefix="pibudget-broker-") as scratch,
        Broker(Path(scratch), passwords=passwords) as broker,
    ):
        yield {"port": broker.port, "password": passwords["k1"], "web_port": free_port()}


def measure(args: argparse.Namespace, quota: float, site: dict[str, Any]) -> dict[str, Any]:
    """Every figure at one quota."""
    name = f"kiosk-pibudget-{os.getpid()}-{quota:g}"
    with open_group(name, quota, args.memory_mb * 1024 * 1024) as group:
        join = group.join if group.directories else None
        free, _ = busy_loop([])  # just before, under the same load from other processes
        loops, cpu_s = busy_loop(group.command([]), join)
        figures = {
            "quota_percent": quota,
            "limit": group.kind,
            "busy_loop_share": round(loops / free, 3),
            "cpu_share": round(cpu_s / BUSY_LOOP_S, 3),
        }
        before = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
        figures |= run_kiosk(args, group.command([]), join, site)
        figures["group_cpu_s"] = round(
            sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]) - before, 2
        )
        figures["cpu_periods"] = group.throttled()
        peak = group.peak_memory_bytes()
        figures["group_peak_mb"] = None if peak is None else round(peak / 2**20, 1)
    return figures


def goals(row: dict[str, Any]) -> dict[str, bool]:
    """The goals, checked on the row measured at 10 %."""
    return {
        "every frame decoded": row["frames_dropped"] == 0,
        "person median <= 1.0 s": row["person_s"]["p50"] <= GOALS["person_median_s"],
        "READY <= 10 s": row["ready_s"] <= GOALS["ready_s"],
        "peak RSS <= 120 MB": (row["peak_rss_mb"] or 0) <= GOALS["peak_rss_mb"],
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per quota, for people."""
    print(
        "quota  cpu   ready_s  page_s  fps    read  skipped  dropped  "
        "person_p50  decision_p99  rss_mb"
    )
    for r in rows:
        print(
            f"{r['quota_percent']:>4g}%  {r['cpu_share']:.2f}  {r['ready_s']:>7.2f}  "
            f"{r['page_ready_s']:>6.2f}  {r['fps_sustained']:>5.2f}  {r['frames_read']:>4}  "
            f"{r['frames_skipped_still']:>7}  {r['frames_dropped']:>7}  "
            f"{r['person_s']['p50']:>10.3f}  {r['decision_s']['p99']:>12.3f}  {r['peak_rss_mb']:>6}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quotas", default="100,25,10,5", help="percent of one core, comma-separated"
    )
    parser.add_argument("--memory-mb", type=int, default=256)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--idle-s", type=float, default=2.0, help="empty scene before each person")
    parser.add_argument("--decoder", default="zxing-cpp")
    parser.add_argument("--every-frame", action="store_true", help="decode still frames too")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the groups and the broker
    quotas = [float(q) for q in args.quotas.split(",")]
    rows = []
    try:
        with local_site() as site:
            for quota in quotas:
                rows.append(measure(args, quota, site))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    except LimitUnavailableError as exc:
        print(f"pibudget: skipped, no CPU and memory limit can be made here: {exc}")
        return
    print_table(rows)
    result: dict[str, Any] = {
        "fps": args.fps,
        "every_frame": args.every_frame,
        "load_average_1min": round(os.getloadavg()[0], 1),
        "people": args.people,
        "decoder": args.decoder,
        "memory_mb": args.memory_mb,
        "rows": rows,
        "machine": machine_info(),
    }
    at_goal = [row for row in rows if row["quota_percent"] == GOALS["quota"]]
    if at_goal:
        result["goals_at_10_percent"] = goals(at_goal[0])
        for goal, met in result["goals_at_10_percent"].items():
            print(f"  goal at 10 %: {goal}: {'met' if met else 'MISSED'}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
