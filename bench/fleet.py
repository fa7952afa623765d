"""Fleet simulator: kiosks → a three-node NATS JetStream cluster (MQTT) → central workers →
PostgreSQL, with nodes and workers killed -9 on the way; one JSON line at the end.

    python bench/fleet.py --quick                 # 100 kiosks, 30 s, one node and one worker kill
    python bench/fleet.py --kiosks 1000 --seconds 120 --node-kill-s 0 --worker-kill-s 0
    python bench/fleet.py --kiosks 1000 --seconds 120            # kills every 30 s and 20 s
    python bench/fleet.py --kiosks 100 --backlog 10000 --seconds 0 --workers 4  # a drain

The cluster (bench/fleet_cluster.py) runs on free loopback ports; each worker is a real
``kiosk central run`` with ``[central] transport = "nats"``; the kiosks are the project's
``Sync`` over their own event logs, 50 per process (``--per-process``; bench/fleet_kiosks.py),
spread over the three nodes' MQTT listeners. The result: kiosks, workers, events (appended by
the kiosks), stored, lost, duplicated (rows stored twice for one kiosk and seq), unconfirmed
(events a kiosk still had no receipt for at the end), events_per_s (stored ÷ from the first to
the last central commit), lag_ms p50/p99 (an event's commit in its kiosk's log to central's
read of its batch), node_kills, worker_kills, confirmed_s (traffic end to every kiosk
confirmed), cpu_s (CPU seconds of the nats-servers, the workers and the kiosk processes over
the run) and the machine's 1-minute load average (the highest sampled, and at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from fleet_cluster import Cluster, environment  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SITE = "fleet"  # the sites are fleet-0000, fleet-0001, … (--kiosks-per-site kiosks each)
SITES = f"{SITE}-%"  # LIKE pattern
NODE_DOWN_S = 5.0  # a killed node is started again after this long
LAG_WINDOW_MS = 30_000  # lag_p99_ms_per_30s: the p99 of each window of this many ms


def central_config(root: Path, db_url: str, cluster: Cluster) -> Path:
    """A central.toml for the workers: PostgreSQL, transport nats, the cluster's URLs."""
    servers = ", ".join(f'"{url}"' for url in cluster.nats_urls)
    text = f"""[store]
db = "{db_url}"

[mqtt]
host = "127.0.0.1"
port = {cluster.mqtt_ports[0]}

[central]
transport = "nats"

[nats]
servers = [{servers}]
ack_wait_s = 5.0
"""
    path = root / "central.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Workers:
    """N ``kiosk central run`` processes; ``kill_one`` kills -9 and restarts one of them."""

    def __init__(self, n: int, config: Path, root: Path) -> None:
        self.config, self.root = config, root
        self.procs: list[subprocess.Popen[bytes]] = [self._start(i) for i in range(n)]
        self.kills = 0

    def _start(self, i: int) -> subprocess.Popen[bytes]:
        kiosk = Path(sys.executable).parent / "kiosk"
        command = [str(kiosk), "central", "--config", str(self.config), "run"]
        command += ["--client-id", f"central-w{i + 1}"]
        with open(self.root / f"worker{i + 1}.log", "ab") as log:
            return subprocess.Popen(command, stdout=log, stderr=log, env=environment())

    def kill_one(self) -> None:
        """SIGKILL the next worker, then start it again."""
        i = self.kills % len(self.procs)
        self.procs[i].kill()
        self.procs[i].wait()
        self.procs[i] = self._start(i)
        self.kills += 1

    def stop(self) -> None:
        """SIGTERM every worker and wait (SIGKILL after 20 s)."""
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def fresh_schema(base_url: str) -> tuple[str, str]:
    """A new PostgreSQL schema; returns (its name, the URL that uses it)."""
    import psycopg

    schema = f"fleet_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    return schema, f"{base_url}?options=-csearch_path%3D{schema}"


def drop_schema(base_url: str, schema: str) -> None:
    """Drop the run's schema."""
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


def wait_consumer(cluster: Cluster, timeout: float) -> None:
    """Wait until the workers' durable consumer exists (the stream's retention is by interest:
    kiosks publishing before it would wait for their resend). An MQTT connection makes
    nats-server create its streams."""
    import asyncio

    import nats
    import paho.mqtt.client as mqtt

    probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, "fleet-probe", protocol=mqtt.MQTTv311)
    probe.connect("127.0.0.1", cluster.mqtt_ports[0])
    probe.loop_start()

    async def poll() -> None:
        nc = await nats.connect(cluster.nats_urls)
        try:
            js = nc.jetstream()
            deadline = time.monotonic() + timeout
            while True:
                try:
                    await js.consumer_info("$MQTT_msgs", "central-ingest")
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)
        finally:
            await nc.close()

    try:
        asyncio.run(poll())
    finally:
        probe.disconnect()
        probe.loop_stop()


def run_kiosks(args: argparse.Namespace, cluster: Cluster, root: Path) -> list[Any]:
    """Start the kiosk processes (``--per-process`` kiosks each); returns them."""
    ids = [f"k{i:05d}" for i in range(args.kiosks)]
    sites = [f"{SITE}-{i // args.kiosks_per_site:04d}" for i in range(args.kiosks)]
    ports = [cluster.mqtt_ports[i % 3] for i in range(args.kiosks)]
    procs = []
    per = args.per_process
    for first in range(0, args.kiosks, per):
        folder = root / f"kiosks{first}"
        folder.mkdir()
        spec = {
            "dir": str(folder),
            "kiosks": ids[first : first + per],
            "sites": sites[first : first + per],
            "ports": ports[first : first + per],
            "seconds": args.seconds,
            "rate": args.rate,
            "drain_s": args.drain_s,
            "resend_after_s": args.resend_after_s,
            "subscriptions_qos": args.subscriptions_qos,
            "backlog": args.backlog,
        }
        command = [sys.executable, str(BENCH / "fleet_kiosks.py"), json.dumps(spec)]
        with open(root / f"kiosks{first}.log", "ab") as log:
            procs.append(
                subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env=environment())
            )
    return procs


def chaos(
    args: argparse.Namespace, cluster: Cluster, workers: Workers, stop: threading.Event
) -> tuple[threading.Thread, dict[str, int]]:
    """Kill -9 a node every ``node_kill_s`` (restarted after NODE_DOWN_S) and a worker every
    ``worker_kill_s`` while people pass (the first kills at a third and half of the traffic
    when that is sooner); returns the thread and its node-kill count holder."""
    counts = {"node_kills": 0}

    def loop() -> None:
        start = time.monotonic()
        next_node = min(args.node_kill_s, args.seconds / 3) if args.node_kill_s else None
        next_worker = min(args.worker_kill_s, args.seconds / 2) if args.worker_kill_s else None
        while not stop.wait(0.2):
            now = time.monotonic() - start
            if now >= args.seconds:
                return
            if next_node is not None and now >= next_node:
                i = counts["node_kills"] % 3
                cluster.kill(i)
                counts["node_kills"] += 1
                stop.wait(NODE_DOWN_S)
                cluster.restart(i)
                next_node += args.node_kill_s
            if next_worker is not None and now >= next_worker:
                workers.kill_one()
                next_worker += args.worker_kill_s

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread, counts


class CpuMeter:
    """Samples the CPU time (user + system) of each role's processes every second while the
    run lasts, and the machine's load average: what carried the load, and how loaded it was.
    A killed process keeps what it had at its last sample."""

    def __init__(self, roles: dict[str, Callable[[], list[int]]]) -> None:
        self.roles = roles
        self.seen: dict[str, dict[int, float]] = {role: {} for role in roles}
        self.load_max = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")
        self._thread.start()

    def _cpu_s(self, pid: int) -> float | None:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / self._tick  # utime, stime

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self.load_max = max(self.load_max, os.getloadavg()[0])
            for role, pids in self.roles.items():
                for pid in pids():
                    cpu = self._cpu_s(pid)
                    if cpu is not None:
                        self.seen[role][pid] = cpu

    def result(self) -> dict[str, Any]:
        """Stop sampling; CPU seconds per role, the highest and the last 1-minute load."""
        self._stop.set()
        self._thread.join()
        return {
            "cpu_s": {role: round(sum(seen.values()), 1) for role, seen in self.seen.items()},
            "loadavg_max": round(self.load_max, 1),
            "loadavg_end": [round(x, 1) for x in os.getloadavg()],
        }


def measure(db_url: str, appended: dict[str, int]) -> dict[str, Any]:
    """Stored, lost, duplicated, the commit span's rate and the lag percentiles (overall, and
    the p99 of each 30 s of traffic, by the events' kiosk commit time)."""
    import psycopg

    with psycopg.connect(db_url) as conn:
        per_kiosk = conn.execute(
            "SELECT kiosk, count(*), count(DISTINCT seq) FROM events WHERE site LIKE %s"
            " GROUP BY kiosk",
            (SITES,),
        ).fetchall()
        summary = conn.execute(
            "SELECT (max(received_at_ms) - min(received_at_ms)) / 1000.0,"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY received_at_ms - ts_ms),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY received_at_ms - ts_ms)"
            " FROM events WHERE site LIKE %s",
            (SITES,),
        ).fetchone()
        windows = conn.execute(
            "SELECT (ts_ms - first.ts) / %s AS w,"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY received_at_ms - ts_ms)"
            " FROM events, (SELECT min(ts_ms) AS ts FROM events WHERE site LIKE %s) AS first"
            " WHERE site LIKE %s GROUP BY w ORDER BY w",
            (LAG_WINDOW_MS, SITES, SITES),
        ).fetchall()
    assert summary is not None  # an aggregate always has its row
    span, p50, p99 = summary
    rows = {kiosk: (total, distinct) for kiosk, total, distinct in per_kiosk}
    stored = sum(distinct for _, distinct in rows.values())
    lost = sum(max(0, n - rows.get(k, (0, 0))[1]) for k, n in appended.items())
    duplicated = sum(total - distinct for total, distinct in rows.values())
    return {
        "stored": stored,
        "lost": lost,
        "duplicated": duplicated,
        "events_per_s": round(stored / float(span), 1) if span else 0.0,
        "lag_ms": {"p50": round(float(p50 or 0)), "p99": round(float(p99 or 0))},
        "lag_p99_ms_per_30s": [round(float(p99_in)) for _, p99_in in windows],
    }


def keep_logs(root: Path, into: Path) -> None:
    """Copy the run's logs (nodes, workers, kiosk processes) into ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    for log in [*root.glob("*.log"), *root.glob("nats/*.log")]:
        shutil.copy(log, into / log.name)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One fleet run; the result dictionary."""
    schema, db_url = fresh_schema(args.db)
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        root = Path(tmp)
        cluster = Cluster(root / "nats")
        cluster.start()
        workers = None
        try:
            workers = Workers(args.workers, central_config(root, db_url, cluster), root)
            wait_consumer(cluster, 60)
            stop = threading.Event()
            kiosks = run_kiosks(args, cluster, root)
            meter = CpuMeter(
                {
                    "nats": lambda: [p.pid for p in cluster.procs if p is not None],
                    "workers": lambda: [p.pid for p in workers.procs] if workers else [],
                    "kiosks": lambda: [p.pid for p in kiosks],
                }
            )
            thread, counts = chaos(args, cluster, workers, stop)
            results = [json.loads(proc.communicate()[0].splitlines()[-1]) for proc in kiosks]
            stop.set()
            thread.join()
            machine = meter.result()
            appended: dict[str, int] = {}
            unconfirmed = 0
            for result in results:
                for kiosk, (n, left) in result["kiosks"].items():
                    appended[kiosk] = n
                    unconfirmed += left
            worker_kills = workers.kills
            workers.stop()
            workers = None
            return {
                "kiosks": args.kiosks,
                "per_process": args.per_process,
                "rate": args.rate,
                "kiosks_per_site": args.kiosks_per_site,
                "subscriptions_qos": args.subscriptions_qos,
                "seconds": args.seconds,
                "workers": args.workers,
                "events": sum(appended.values()),
                **measure(db_url, appended),
                "unconfirmed": unconfirmed,
                "confirmed_s": max(result["confirmed_s"] for result in results),
                **{
                    name: sum(result[name] for result in results)
                    for name in (
                        "resent_events",
                        "ignored_messages",
                        "kiosks_receipted",
                        "kiosks_subscribed",
                        "passages_received",
                    )
                },
                "node_kills": counts["node_kills"],
                "worker_kills": worker_kills,
                **machine,
            }
        finally:
            if workers is not None:
                workers.stop()
            cluster.stop()
            drop_schema(args.db, schema)
            if args.keep_logs:
                keep_logs(root, Path(args.keep_logs))


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text} is not 1 or more")
    return number


def main() -> None:
    """Parse the options, run, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiosks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--per-process", type=int, default=50, help="kiosks per process")
    parser.add_argument("--seconds", type=float, default=120.0, help="traffic duration")
    parser.add_argument("--rate", type=float, default=0.2, help="passages per kiosk per second")
    parser.add_argument("--backlog", type=int, default=0, help="events per kiosk log at start")
    parser.add_argument("--node-kill-s", type=float, default=30.0, help="0: no node kills")
    parser.add_argument("--worker-kill-s", type=float, default=20.0, help="0: no worker kills")
    parser.add_argument("--drain-s", type=float, default=120.0, help="longest wait for receipts")
    parser.add_argument("--resend-after-s", type=float, default=15.0, help="the kiosks' setting")
    parser.add_argument(
        "--kiosks-per-site", type=positive, default=10, help="each site's kiosks (1 or more)"
    )
    parser.add_argument(
        "--subscriptions-qos", type=int, choices=(0, 1), default=0, help="mqtt.subscriptions_qos"
    )
    parser.add_argument("--keep-logs", default="", help="copy the run's logs into this folder")
    parser.add_argument("--db", default=PG_URL, help="PostgreSQL URL (a schema is made in it)")
    parser.add_argument("--quick", action="store_true", help="100 kiosks, 30 s, 1+1 kills")
    args = parser.parse_args()
    if args.quick:
        args.kiosks, args.seconds, args.node_kill_s, args.worker_kill_s = 100, 30.0, 30.0, 20.0
        args.rate = 1.0
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
