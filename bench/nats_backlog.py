"""Central workers draining a backlog already in the NATS JetStream stream into PostgreSQL:
the workers' own rate, with no kiosk publishing at the same time (bench/fleet.py's drain
measures kiosks and workers together).

    python bench/nats_backlog.py --events 1000000 --workers 1,2,4

For each worker count: a fresh three-node cluster (bench/fleet_cluster.py, R3 MQTT streams)
and a fresh PostgreSQL schema; the workers' shared consumer is created, then the backlog is
published straight into ``$MQTT_msgs`` as kiosks' events messages (``--per-message`` decisions
each, kiosks interleaved, seqs from 1), exactly what the MQTT listener would have stored;
then ``--workers`` real ``kiosk central run`` processes start. Timed from their start until
every event is stored. One JSON line per worker count: events_per_s (wall, from the workers'
start), commit_span_per_s (first to last commit), CPU seconds of the workers, their
PostgreSQL backends and the nats-servers during the drain, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from fleet_cluster import Cluster, environment  # noqa: E402
from ingest import make_payloads  # noqa: E402

from kiosk.central.nats.worker import (  # noqa: E402
    STREAM,
    STREAM_PREFIX,
    NatsSettings,
    consumer_config,
    nats_subject,
)

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
APP = "nats-backlog-bench"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def messages(events: int, kiosks: int, per_message: int) -> list[tuple[str, bytes]]:
    """(subject, payload) of every events message, kiosks interleaved: bench/ingest.py's
    backlog, each topic as nats-server's MQTT listener stores it in ``$MQTT_msgs``."""
    return [
        (STREAM_PREFIX + nats_subject(topic), payload)
        for topic, payload in make_payloads(events, per_message, kiosks)
    ]


async def fill(cluster: Cluster, payloads: list[tuple[str, bytes]]) -> None:
    """Create the workers' consumer on the MQTT stream, then publish the backlog into it."""
    import nats
    import paho.mqtt.client as mqtt

    probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, "backlog-probe", protocol=mqtt.MQTTv311)
    probe.connect("127.0.0.1", cluster.mqtt_ports[0])  # the listener creates its streams
    probe.loop_start()
    nc = await nats.connect(cluster.nats_urls)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + 60
        while True:
            try:
                await js.add_consumer(STREAM, consumer_config(NatsSettings()))
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        window = 256
        for at in range(0, len(payloads), window):
            acks = [js.publish(subject, data) for subject, data in payloads[at : at + window]]
            await asyncio.gather(*acks)
        deadline = time.monotonic() + 60
        while True:  # the consumer's count follows the stream's replicas a little later
            info = await js.consumer_info(STREAM, NatsSettings().durable)
            if info.num_pending == len(payloads):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{info.num_pending} messages pending, not {len(payloads)}")
            await asyncio.sleep(0.5)
    finally:
        await nc.close()
        probe.disconnect()
        probe.loop_stop()


def config(root: Path, db_url: str, cluster: Cluster, batch_max: int) -> Path:
    servers = ", ".join(f'"{url}"' for url in cluster.nats_urls)
    path = root / "central.toml"
    path.write_text(
        f'[store]\ndb = "{db_url}"\n\n[mqtt]\nhost = "127.0.0.1"\nport = {cluster.mqtt_ports[0]}'
        f'\n\n[central]\ntransport = "nats"\n\n[nats]\nservers = [{servers}]\n'
        f"batch_max = {batch_max}\n",
        encoding="utf-8",
    )
    return path


def watch(conn: Any, app: str, total: int, deadline: float) -> dict[int, float]:
    """Sample until ``total`` events are stored (or the deadline); the CPU seconds of each
    PostgreSQL backend of the workers (``application_name`` ``app``)."""
    import psycopg

    backends: dict[int, float] = {}
    stored = 0
    while stored < total and time.monotonic() < deadline:
        time.sleep(0.2)  # a sampling period, not a synchronisation
        try:
            row = conn.execute("SELECT coalesce(sum(event_count), 0) FROM kiosks").fetchone()
        except psycopg.errors.UndefinedTable:  # the workers have not created it yet
            continue
        stored = int(row[0]) if row else 0
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,)
        ).fetchall()
        for (pid,) in pids:
            if pid != conn.info.backend_pid:
                backends[pid] = cpu_s(pid)
    return backends


def drain(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """One drain with ``workers`` workers on a fresh cluster and schema."""
    import psycopg

    schema = f"backlog_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(args.db, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    db_url = f"{args.db}?options=-csearch_path%3D{schema}&application_name={APP}-{schema}"
    payloads = messages(args.events, args.kiosks, args.per_message)
    total = sum(len(json.loads(data)["events"]) for _, data in payloads)
    with tempfile.TemporaryDirectory(prefix="backlog-") as tmp:
        root = Path(tmp)
        cluster = Cluster(root / "nats")
        cluster.start()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            t0 = time.monotonic()
            asyncio.run(fill(cluster, payloads))
            fill_s = time.monotonic() - t0
            path = config(root, db_url, cluster, args.batch_max)
            nats_pids = [p.pid for p in cluster.procs if p is not None]
            nats_cpu0 = sum(cpu_s(pid) for pid in nats_pids)
            load0 = os.getloadavg()
            start = time.monotonic()
            kiosk = Path(sys.executable).parent / "kiosk"
            for i in range(workers):
                command = [str(kiosk), "central", "--config", str(path), "run"]
                command += ["--client-id", f"central-w{i + 1}"]
                with open(root / f"worker{i + 1}.log", "ab") as log:
                    procs.append(
                        subprocess.Popen(command, stdout=log, stderr=log, env=environment())
                    )
            with psycopg.connect(db_url, autocommit=True) as conn:
                backends = watch(conn, f"{APP}-{schema}", total, start + args.timeout_s)
                elapsed = time.monotonic() - start
                load1 = os.getloadavg()
                workers_cpu = sum(cpu_s(p.pid) for p in procs)
                nats_cpu = sum(cpu_s(pid) for pid in nats_pids) - nats_cpu0
                span = conn.execute(
                    "SELECT (max(received_at_ms) - min(received_at_ms)) / 1000.0, count(*),"
                    " (SELECT count(*) FROM subject_events) FROM events"
                ).fetchone()
            assert span is not None
            return {
                "workers": workers,
                "events": total,
                "messages": len(payloads),
                "per_message": args.per_message,
                "batch_max": args.batch_max,
                "stored": int(span[1]),
                "subject_events": int(span[2]),
                "fill_s": round(fill_s, 1),
                "drain_s": round(elapsed, 1),
                "events_per_s": round(int(span[1]) / elapsed),
                "commit_span_per_s": round(int(span[1]) / float(span[0])) if span[0] else 0,
                "cpu_s": {
                    "workers": round(workers_cpu, 1),
                    "postgres_backends": round(sum(backends.values()), 1),
                    "nats": round(nats_cpu, 1),
                },
                "loadavg_start": [round(x, 2) for x in load0],
                "loadavg_end": [round(x, 2) for x in load1],
            }
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            cluster.stop()
            with psycopg.connect(args.db, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--kiosks", type=int, default=100)
    parser.add_argument("--per-message", type=int, default=100, help="events per message")
    parser.add_argument("--workers", default="1", help="worker counts, e.g. 1,2,4")
    parser.add_argument("--batch-max", type=int, default=500, help="[nats] batch_max")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--db", default=PG_URL, help="PostgreSQL server URL")
    args = parser.parse_args()
    for n in (int(x) for x in args.workers.split(",")):
        print(json.dumps(drain(args, n)), flush=True)


if __name__ == "__main__":
    main()
