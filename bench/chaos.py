"""Chaos suite: crash, poison and starve the real processes, then check central against the log.

Run: ``.venv/bin/python bench/chaos.py [--quick] [--seed N]`` (as root for the disk-full phase).

Each round (SQLite, then PostgreSQL when 127.0.0.1:5432/test answers) starts, on 127.0.0.1 only:
mosquitto with the shipped deploy/mosquitto config and ACL (tests/broker.py, TLS listener),
``kiosk central run`` on a fresh store, and a kiosk process (this file with ``--kiosk-child``:
the real ``open_kiosk`` on simulated hardware, sync on, people passing one after another, a
fifth of them with a badge that is on no list). Then, in this order:

1. kill -9 of the kiosk, the broker and central at random moments while people pass;
2. a signed lockdown, kill -9 of the kiosk, people pass, the lockdown lifted;
3. disk full (root only: the kiosk's state directory is a small tmpfs that is filled), a kill -9
   and a restart while full, then the space freed;
4. the poison set, published with kiosk k2's own credential, each followed by a normal event
   ("canary") that must be stored and receipted within ``--halt-bound-s``, else the case counts
   as an ingest halt (central is then killed, its broker session wiped and restarted, so the
   next cases are measured on their own);
5. people stop, the kiosk drains, and its log is compared with central's store.

The kiosk child notes each relay pulse (who stood there, the newest logged decision) and each
decision in append-only files beside the log, so the checks rest on what the relay did, not
on what the kiosk believes. The last line printed is one JSON object (totals, then per round).
Every process is ended and the tmpfs unmounted on exit, Ctrl-C included.

Exit status 1 when a guarantee broke (anything lost, duplicated, unconfirmed, a wrong grant, a
relay pulse without its event, an ingest halt, a kiosk writing on another's topic or reading
another's events).

One file on purpose (about 1,000 lines): the command, its kiosk child and its checks belong
together, and nothing in the package imports them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import random
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SITE, KIOSK, NEIGHBOUR = "lab", "k1", "k2"
CENTRAL_ID = "central-chaos"
SALT = "chaos-salt-0123456789abcdef"
PEOPLE = 10_000  # badges P-000000 … on the allowlist; X-… badges are on no list
REFUSED_SHARE = 0.2
TMPFS_SIZE = "64m"
BROKER_START_S = 30.0  # mosquitto reloading its persistence on a loaded machine


class ChaosError(RuntimeError):
    """The suite could not run a step (a process that never came up); the text says which."""


@dataclass(frozen=True)
class Plan:
    """How much chaos one round does."""

    kiosk_kills: int
    broker_kills: int
    central_kills: int
    phases: frozenset[str]
    halt_bound_s: float
    drain_s: float
    pause_s: tuple[float, float] = (1.0, 4.0)  # people pass this long between two kills


PHASES = frozenset({"lockdown", "disk-full", "poison"})


# --- the kiosk child -------------------------------------------------------------------------


def relay_recorder(config: Any, directory: Path, in_front: list[str]) -> Any:
    """A mock pin factory whose relay output is wired to an input that notes every pulse in
    ``directory/pulses``: the time, who stood in front, the newest logged decision's seq."""
    from benchlib import FEEDBACK_PIN
    from gpiozero import DigitalInputDevice
    from gpiozero.pins.mock import MockConnectedPin, MockFactory

    from kiosk.store.eventlog import read_events

    factory = MockFactory()
    relay = config.gate.relay_pin
    factory.pin(relay, pin_class=MockConnectedPin, input_pin=factory.pin(FEEDBACK_PIN))
    feedback = DigitalInputDevice(
        FEEDBACK_PIN, pull_up=None, active_state=config.gate.relay_active_high, pin_factory=factory
    )
    pulses = os.open(directory / "pulses", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def on_energised() -> None:
        try:
            newest = read_events(config.log_path, 1, type="decision")
            seq = newest[0].seq if newest else 0
        except Exception:  # the log unreadable: the pulse still counts, against no event
            seq = -1
        os.write(pulses, f"{time.time():.3f} {in_front[0]} {seq}\n".encode())

    feedback.when_activated = on_energised
    factory.feedback = feedback  # kept alive with the factory
    return factory


def kiosk_child(config_path: str, side: str, seed: str) -> None:
    """A kiosk on simulated hardware with people passing until killed (or paused)."""
    from kiosk.config import load_config
    from kiosk.run.engine import DecisionRecord
    from kiosk.run.logs import setup_logging
    from kiosk.run.runtime import open_kiosk
    from kiosk.sensors import simulated_mlx90614 as sim
    from kiosk.sensors.simulation import Person, Scene

    config = load_config(Path(config_path))
    setup_logging(config.kiosk.id)
    directory = Path(side)
    in_front = ["valid"]
    factory = relay_recorder(config, directory, in_front)
    decisions = os.open(directory / "decisions", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    rng = random.Random(seed)
    valid, refused = rng.randrange(PEOPLE), rng.randrange(10**6)
    scene = Scene()
    records: queue.Queue[DecisionRecord] = queue.Queue()
    pause = directory / "pause"
    with open_kiosk(config, simulate=True, scene=scene, pin_factory=factory) as kiosk:
        kiosk.add_observer(records.put)
        stop = threading.Event()
        threading.Thread(target=kiosk.run, args=(stop,), daemon=True).start()
        while True:
            if pause.exists():  # between two people: nobody is in front, the relay is at rest
                (directory / "paused").touch()
                stop.wait(0.05)
                continue
            kind = "refused" if rng.random() < REFUSED_SHARE else "valid"
            code = f"P-{valid % PEOPLE:06d}" if kind == "valid" else f"X-{refused:06d}"
            valid, refused = valid + (kind == "valid"), refused + (kind == "refused")
            in_front[0] = kind
            scene.step_up(Person(kind, code.encode(), sim.nobody(), kind))
            try:
                record = records.get(timeout=30)
            except queue.Empty:
                continue
            seq = record.event.seq if record.event else 0
            line = f"{time.time():.3f} {kind} {record.decision.outcome.value} {seq}\n"
            os.write(decisions, line.encode())
            deadline = time.monotonic() + 10
            while kiosk.gate.state().relay_energised and time.monotonic() < deadline:
                stop.wait(0.005)  # the person walks through


# --- processes -------------------------------------------------------------------------------


class Child:
    """A process that can be killed with -9 and started again; output goes to ``log``."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.command, self.log, self.env = command, log, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (it must not be running)."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, cwd=REPO, stdout=out, stderr=out, env=self.env
            )

    def alive(self) -> bool:
        """Whether it runs."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> bool:
        """SIGKILL; True if it was running."""
        if not self.alive():
            return False
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        return True

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        """The end of its output."""
        return self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""


def lines(path: Path) -> list[list[str]]:
    """The complete lines of an append-only side file, split into fields."""
    if not path.exists():
        return []
    text = path.read_text(errors="replace")
    return [line.split() for line in text[: text.rfind("\n") + 1].splitlines() if line]


class KioskChild(Child):
    """The kiosk process with its side files (pulses, decisions, pause)."""

    def __init__(self, config: Path, side: Path, seed: int, env: dict[str, str]) -> None:
        self.side, self.seed, self.starts = side, seed, 0
        super().__init__([], side / "kiosk.log", env)
        self.config = config

    def start(self) -> None:
        self.starts += 1
        self.command = [sys.executable, str(Path(__file__).resolve()), "--kiosk-child"]
        self.command += [str(self.config), str(self.side), f"{self.seed}-{self.starts}"]
        super().start()

    def decisions(self) -> list[list[str]]:
        """``[time, kind, outcome, seq]`` per decision, every incarnation."""
        return lines(self.side / "decisions")

    def wait_deciding(self, count: int = 1, timeout: float = 60.0) -> bool:
        """Wait for ``count`` more decisions; False if it exits or the time runs out."""
        target = len(self.decisions()) + count
        deadline = time.monotonic() + timeout
        while len(self.decisions()) < target:
            if not self.alive() or time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def ensure_running(self, attempts: int = 3) -> int:
        """Start it until it decides; returns the failed starts. ChaosError after ``attempts``."""
        failures = 0
        while True:
            if not self.alive():
                self.start()
            if self.wait_deciding(timeout=60):
                return failures
            failures += 1
            self.kill()
            if failures >= attempts:
                raise ChaosError(f"the kiosk does not start:\n{self.tail()}")


# --- MQTT clients of the suite (operator, hostile neighbour) ----------------------------------


def wire_event(seq: int | str, *, kiosk: str = NEIGHBOUR, **raw: str) -> bytes:
    """An events message with one event, as JSON text; ``raw`` replaces fields verbatim."""
    fields = {
        "event_id": json.dumps(str(uuid.uuid4())),
        "seq": str(seq),
        "boot_id": '"chaos"',
        "ts_ms": str(time.time_ns() // 1_000_000),
        "clock_synced": "true",
        "type": '"decision"',
        "historical": "false",
        "schema": "1",
        "data": '{"outcome":"refuse","reason":"unknown"}',
    } | raw
    event = ",".join(f'"{name}":{value}' for name, value in fields.items())
    head = f'{{"v":1,"site":"{SITE}","kiosk":"{kiosk}","events":[{{{event}}}]}}'
    return head.encode()


def topic(kiosk: str, leaf: str) -> str:
    """A per-kiosk topic of the test site."""
    return f"kiosk/v1/{SITE}/{kiosk}/{leaf}"


class Client:
    """A logged-in paho client (tests/broker.py) and what it receives, waited on with bounds."""

    def __init__(self, broker: Any, user: str, subscribe: str) -> None:
        from tests.broker import Collector, mqtt_client

        self.inbox = Collector()
        self.closed = threading.Event()
        self.client = mqtt_client(broker, user, tls=True, collector=self.inbox)
        self.client.on_disconnect = lambda *_: self.closed.set()
        self.inbox.subscribe(subscribe)

    def send(self, topic_name: str, payload: bytes, timeout: float, retain: bool = False) -> str:
        """Publish at QoS 1; the broker's reason code, or why there was none."""
        import pytest

        info = self.client.publish(topic_name, payload, qos=1, retain=retain)
        if info.rc:
            return f"not sent: {mqtt_error(info.rc)}"
        deadline = time.monotonic() + timeout
        while not self.closed.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(pytest.fail.Exception):  # not yet: look again
                return str(self.client.wait_ack(info.mid, 0.2)[0])
        return "no PUBACK: the connection was closed" if self.closed.is_set() else "no PUBACK"

    def received(self, timeout: float, match: Callable[[bytes], bool]) -> bool:
        """Wait for a message whose payload ``match``es."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                if match(self.inbox.messages.get(timeout=left).payload):
                    return True
            except queue.Empty:
                break
        return False

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_error(rc: int) -> str:
    """paho's text for an error number."""
    import paho.mqtt.client as mqtt

    return str(mqtt.error_string(rc))


ACCEPTED = ("Success", "No matching subscribers")


def command(name: str, args: dict[str, Any], key: bytes) -> tuple[str, bytes]:
    """A signed command's id and payload."""
    from kiosk.mqtt.protocol import Command, command_signature, encode_command

    now = time.time_ns() // 1_000_000
    cmd = Command(str(uuid.uuid4()), name, args, now, now + 60_000)
    signed = Command(**{**cmd.__dict__, "sig": command_signature(key, cmd)})
    return cmd.id, encode_command(signed)


def result_of(command_id: str) -> Callable[[bytes], bool]:
    """Matches the successful result of the command ``command_id``."""

    def match(payload: bytes) -> bool:
        with contextlib.suppress(ValueError):
            result = json.loads(payload)
            return bool(result.get("id") == command_id and result.get("ok"))
        return False

    return match


def receipt_covering(seq: int) -> Callable[[bytes], bool]:
    """Matches a receipt that covers ``seq``."""

    def match(payload: bytes) -> bool:
        from kiosk.mqtt.protocol import ProtocolError, decode_receipt

        with contextlib.suppress(ProtocolError):
            return seq in decode_receipt(payload)
        return False

    return match


# --- stores ----------------------------------------------------------------------------------


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on central's store (a connection of its own, read only)."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            return list(conn.execute(sql).fetchall())
    path = url.removeprefix("sqlite:///")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def quarantined(url: str) -> int | None:
    """Rows in central's quarantine table; None while the store has none."""
    try:
        return int(query(url, "SELECT count(*) FROM quarantine")[0][0])
    except Exception as exc:  # sqlite3 or psycopg: no such table
        if "quarantine" in str(exc):
            return None
        raise


def kiosk_rows(db: Path) -> list[tuple[int, str, bool, str, str | None, int, int | None]]:
    """``(seq, event_id, confirmed, type, outcome, ts_ms, lockdown)`` of every event in the
    kiosk's log; ``lockdown`` is 1 or 0 for a lockdown command, else None."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(
            "SELECT seq, event_id, confirmed_at_ms IS NOT NULL, type,"
            " json_extract(data, '$.outcome'), ts_ms,"
            " CASE WHEN type = 'command' AND json_extract(data, '$.command') = 'lockdown'"
            " THEN json_extract(data, '$.args.on') END FROM events ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()


@contextlib.contextmanager
def state_directory(path: Path, disk_full: bool) -> Iterator[str | None]:
    """The kiosk's state directory: a small tmpfs when the disk-full phase runs (root only).

    Yields None when it is a tmpfs, else why the disk-full phase is skipped."""
    path.mkdir()
    if not disk_full:
        yield "not asked for"
        return
    if os.geteuid() != 0:
        yield "skipped: needs root to mount a tmpfs"
        return
    mount = ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "chaos", str(path)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode:
        yield f"skipped: mount failed: {done.stderr.strip()}"
        return
    try:
        yield None
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(path)], check=False)


# --- one round -------------------------------------------------------------------------------


@dataclass
class Round:
    """Everything one round started and counted."""

    store: str
    url: str
    plan: Plan
    rng: random.Random
    work: Path
    broker: Any = None
    kiosk: KioskChild = field(init=False)
    central: Child = field(init=False)
    key: bytes = field(default_factory=lambda: secrets.token_hex(16).encode())
    counts: Counter[str] = field(default_factory=Counter)
    lockdowns: list[tuple[float, float]] = field(default_factory=list)
    forged: list[tuple[str, int]] = field(default_factory=list)  # k1 events k2 claimed
    logged: dict[int, tuple[Any, ...]] = field(default_factory=dict)  # log rows seen, by seq
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def log_db(self) -> Path:
        return self.work / "state" / "events.db"

    def kill(self, victim: str) -> None:
        """kill -9 ``victim`` (kiosk, broker or central), count it, start it again."""
        if victim == "broker":
            self.broker.kill()
        elif not (self.kiosk if victim == "kiosk" else self.central).kill():
            return
        self.counts[f"{victim}_kills"] += 1
        time.sleep(self.rng.uniform(0.0, 1.5))  # down for a moment, as after a crash
        if victim == "broker":
            self.broker.start(timeout=BROKER_START_S)
        elif victim == "central":
            self.central.start()
        else:
            self.counts["kiosk_start_failures"] += self.kiosk.ensure_running()

    def people_pass(self) -> None:
        """Let people pass for a random while (the kiosk restarted if it died on its own)."""
        self.counts["kiosk_start_failures"] += self.kiosk.ensure_running()
        time.sleep(self.rng.uniform(*self.plan.pause_s))

    def remember_log(self) -> None:
        """Note the log's rows: the kiosk prunes confirmed rows (early on a full disk)."""
        self.logged.update((row[0], row) for row in kiosk_rows(self.log_db))

    def log_rows(self) -> tuple[list[tuple[Any, ...]], int]:
        """Every row seen in the log, in seq order (pruned ones as confirmed: only confirmed
        rows are pruned), and how many were pruned."""
        now = {row[0]: row for row in kiosk_rows(self.log_db)}
        pruned = {seq: (*row[:2], True, *row[3:]) for seq, row in self.logged.items()}
        pruned = {seq: row for seq, row in pruned.items() if seq not in now}
        return [row for _, row in sorted((pruned | now).items())], len(pruned)

    def say(self, text: str) -> None:
        print(f"[{self.store}] {text}", file=sys.stderr, flush=True)


def close_broker(broker: Any) -> None:
    """Stop the broker; after Ctrl-C it may have gone already."""
    from tests.broker import BrokerError

    with contextlib.suppress(BrokerError):
        broker.close()


def start_round(r: Round, stack: contextlib.ExitStack) -> None:
    """Broker, central and the kiosk, each with its files under ``r.work``."""
    from tests.broker import DEFAULT_USERS, Broker

    passwords = {user: secrets.token_hex(16) for user in DEFAULT_USERS}
    r.broker = Broker(r.work / "broker", passwords=passwords)
    r.broker.start(timeout=BROKER_START_S)
    stack.callback(close_broker, r.broker)
    why = stack.enter_context(state_directory(r.work / "state", "disk-full" in r.plan.phases))
    if why:
        r.report["disk_full"] = why
    side = r.work / "kiosk"
    side.mkdir()
    allowlist = side / "allowlist.csv"
    allowlist.write_text("".join(f"P-{n:06d},staff,\n" for n in range(PEOPLE)))
    password = side / "mqtt-password"
    password.write_text(passwords[KIOSK])
    password.chmod(0o600)
    settings = {
        "kiosk": {"id": KIOSK, "site": SITE, "state_dir": str(r.work / "state")},
        "credentials": {"allowlist": str(allowlist), "subject_salt": SALT},
        "thermometer": {"enabled": False},
        "gate": {"pulse_ms": 50},
        "web": {"enabled": False},
        "mqtt": {
            "enabled": True,
            "host": "127.0.0.1",
            "port": r.broker.tls_port,
            "ca_file": r.broker.ca_file,
            "password_file": str(password),
            "command_key": r.key.decode(),
            "resend_after_s": 15.0,  # the broker's kill -9 loses what it had not saved
        },
    }
    config = side / "kiosk.toml"
    config.write_text(
        "".join(
            f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
            for name, keys in settings.items()
        )
    )
    env = os.environ | {
        "KIOSK_CENTRAL_MQTT_PASSWORD": passwords["central"],
        "KIOSK_CENTRAL_COMMAND_KEY": r.key.decode(),
    }
    central = [sys.executable, "-c", "from kiosk.cli.main import main; main()", "central", "run"]
    central += ["--db", r.url, "--host", "127.0.0.1", "--port", str(r.broker.tls_port)]
    central += ["--ca-file", r.broker.ca_file, "--client-id", CENTRAL_ID, "--gap-grace-s", "5"]
    r.central = Child(central, r.work / "central.log", env)
    r.central.start()
    stack.callback(r.central.stop)
    r.kiosk = KioskChild(config, side, r.rng.randrange(2**32), dict(os.environ))
    stack.callback(r.kiosk.stop)
    r.kiosk.ensure_running()


def chaos_kills(r: Round) -> None:
    """kill -9 at random moments while people pass, in a seeded random order."""
    plan = r.plan
    victims = ["kiosk"] * plan.kiosk_kills + ["broker"] * plan.broker_kills
    victims += ["central"] * plan.central_kills
    r.rng.shuffle(victims)
    for n, victim in enumerate(victims, 1):
        r.people_pass()
        r.kill(victim)
        if n % 10 == 0 or n == len(victims):
            r.say(f"{n}/{len(victims)} kills")


def lockdown(r: Round) -> None:
    """Lockdown by a signed command, kill -9, people pass; nobody may be granted until lifted."""
    operator = Client(r.broker, "operator", topic(KIOSK, "result"))
    try:
        command_id, payload = command("lockdown", {"on": True}, r.key)
        operator.send(topic(KIOSK, "cmd"), payload, 10)
        if not operator.received(30, result_of(command_id)):
            r.report["lockdown"] = "the kiosk did not confirm the lockdown"
            return
        locked_at = time.time()
        r.people_pass()
        r.kill("kiosk")
        r.kiosk.wait_deciding(20, timeout=60)
        command_id, payload = command("lockdown", {"on": False}, r.key)
        lifting_at = time.time()
        operator.send(topic(KIOSK, "cmd"), payload, 10)
        lifted = operator.received(30, result_of(command_id))
        r.lockdowns.append((locked_at, lifting_at))
        r.report["lockdown"] = {"seconds": round(lifting_at - locked_at, 1), "lifted": lifted}
    finally:
        operator.close()


def disk_full(r: Round) -> None:
    """Fill the kiosk's tmpfs, let people pass, kill -9 and restart while full, then free it."""
    filler = r.work / "state" / "filler"
    r.remember_log()
    before = len(r.kiosk.decisions())
    with filler.open("wb", buffering=0) as out:
        for chunk in (1 << 20, 4096, 64):
            with contextlib.suppress(OSError):
                while out.write(b"\0" * chunk):
                    pass
    full_at = time.time()
    r.kiosk.wait_deciding(10, timeout=60)
    r.kiosk.kill()
    r.counts["kiosk_kills"] += 1
    r.kiosk.start()
    started = r.kiosk.wait_deciding(5, timeout=60)
    filler.unlink()
    freed_at = time.time()
    r.counts["kiosk_start_failures"] += r.kiosk.ensure_running(attempts=5)
    logged_again = False
    for _ in range(20):  # every decision refused until the log writes again
        r.kiosk.wait_deciding(timeout=30)
        logged_again = any(float(d[0]) > freed_at and d[3] != "0" for d in r.kiosk.decisions())
        if logged_again:
            break
    full = [d for d in r.kiosk.decisions()[before:] if full_at <= float(d[0]) < freed_at]
    r.report["disk_full"] = {
        "decisions_while_full": len(full),
        "granted_while_full": sum(d[2] == "grant" for d in full),
        "unlogged_while_full": sum(d[3] == "0" for d in full),
        "started_while_full": started,
        "logging_resumed": logged_again,
    }


# --- the poison set --------------------------------------------------------------------------

DEEP = 10_000
NESTED = '{"d":' + "[" * DEEP + "]" * DEEP + "}"
BIG = 10 * 1024 * 1024


def poison_set() -> list[tuple[str, str, bytes, bool]]:
    """``(case, topic, payload, retain)``, published with kiosk k2's credential."""
    state, events = topic(NEIGHBOUR, "state"), topic(NEIGHBOUR, "events")
    return [
        ("nan_in_data", events, wire_event("{seq}", data='{"t":NaN}'), False),
        ("infinity_in_data", events, wire_event("{seq}", data='{"t":Infinity}'), False),
        ("nul_in_data", events, wire_event("{seq}", data='{"s":"a\\u0000b"}'), False),
        ("surrogate_in_data", events, wire_event("{seq}", data='{"s":"\\ud800"}'), False),
        ("nul_in_event_id", events, wire_event("{seq}", event_id='"a\\u0000b"'), False),
        ("seq_2_63", events, wire_event(str(2**63)), False),
        ("ts_ms_1e30", events, wire_event("{seq}", ts_ms=str(10**30)), False),
        ("state_nan", state, b'{"v":1,"backlog":NaN}', True),
        ("state_surrogate", state, b'{"v":1,"note":"\\udc00"}', True),
        ("nesting_10000", events, wire_event("{seq}", data=NESTED), False),
        ("message_10mb", events, wire_event("{seq}", data=f'{{"x":"{"x" * BIG}"}}'), False),
        ("names_other_kiosk", events, wire_event("{seq}", kiosk=KIOSK), False),
        ("other_kiosks_topic", topic(KIOSK, "events"), wire_event(1, kiosk=KIOSK), False),
    ]


class Neighbour:
    """Kiosk k2's credential in hostile hands: poison, then a normal event that must get through."""

    def __init__(self, r: Round) -> None:
        self.r, self.seq = r, 0
        self.client = Client(r.broker, NEIGHBOUR, topic(NEIGHBOUR, "receipts"))
        self.round_trips: list[float] = []  # of the canaries that got through
        self.reply = ""  # the broker's answer to the last canary

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def reconnect(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        self.client = Client(self.r.broker, NEIGHBOUR, topic(NEIGHBOUR, "receipts"))

    def canary(self) -> bool:
        """A normal event; True when central's receipt for it comes within the bound.

        "No matching subscribers" means central is between connecting and subscribing (its
        session lost with the broker's): not yet a halt, so the canary goes again."""
        deadline = time.monotonic() + self.r.plan.halt_bound_s
        while (left := deadline - time.monotonic()) > 0:
            seq, started = self.next_seq(), time.monotonic()
            self.reply = self.client.send(topic(NEIGHBOUR, "events"), wire_event(seq), left)
            if self.reply == "No matching subscribers":
                time.sleep(0.2)
            elif self.reply != "Success":
                self.reconnect()
            elif self.client.received(deadline - time.monotonic(), receipt_covering(seq)):
                self.round_trips.append(time.monotonic() - started)
                return True
        return False

    def case(self, name: str, where: str, payload: bytes, retain: bool) -> dict[str, Any]:
        """Publish one poison message and check that ingest goes on."""
        r = self.r
        before = quarantined(r.url)
        payload = payload.replace(b'"seq":{seq}', f'"seq":{self.next_seq()}'.encode())
        broker_reply = self.client.send(where, payload, 15, retain=retain)
        if broker_reply not in ACCEPTED:
            self.reconnect()
        if retain:  # a retained poison would come back at every start of central
            self.client.send(where, b"", 10, retain=True)
        halted = not self.canary()
        result: dict[str, Any] = {"broker": broker_reply, "halted": halted}
        if where == topic(KIOSK, "events") and broker_reply in ACCEPTED:
            r.counts["acl_breaches"] += 1  # the ACL let k2 write on k1's topic
        if halted:
            r.counts["ingest_halts"] += 1
            result |= {"canary": self.reply, "recovered": self.recover()}
        after = quarantined(r.url)
        if before is not None and after is not None:
            result["quarantined"] = after - before
        r.counts["poison_cases"] += 1
        return result

    def recover(self) -> bool:
        """After a halt: kill central, drop its broker session (and what is queued), restart.

        The kiosk sends again what central never confirmed (resend_after_s)."""
        from tests.broker import mqtt_client

        r = self.r
        r.central.kill()
        wipe = mqtt_client(r.broker, "central", tls=True, client_id=CENTRAL_ID, clean_start=True)
        wipe.disconnect()
        wipe.loop_stop()
        r.central.start()
        return self.canary() or self.canary()

    def forge_event_id(self) -> dict[str, Any]:
        """While the broker is down, the kiosk logs events it cannot send; k2 claims the newest
        one's event id as its own the moment the broker is back."""
        r = self.r
        central_connections = connections(r.broker, CENTRAL_ID)
        r.broker.kill()
        r.counts["broker_kills"] += 1
        r.kiosk.wait_deciding(3, timeout=30)
        stored = {
            row[0] for row in query(r.url, f"SELECT event_id FROM events WHERE kiosk = '{KIOSK}'")
        }
        waiting = [row for row in kiosk_rows(r.log_db) if not row[2] and row[1] not in stored]
        r.broker.start(timeout=BROKER_START_S)
        self.reconnect()
        if not waiting:
            return {"skipped": "no unsent kiosk event"}
        seq, event_id = waiting[-1][0], waiting[-1][1]
        reply = self.client.send(
            topic(NEIGHBOUR, "events"),
            wire_event(self.next_seq(), event_id=json.dumps(event_id)),
            10,
        )
        r.forged.append((event_id, seq))
        deadline = time.monotonic() + 90  # central's reconnect backs off up to a minute
        while connections(r.broker, CENTRAL_ID) <= central_connections:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        halted = not self.canary()
        if halted:
            r.counts["ingest_halts"] += 1
        r.counts["poison_cases"] += 1
        return {"broker": reply, "halted": halted} | ({"canary": self.reply} if halted else {})


def connections(broker: Any, client_id: str) -> int:
    """How often ``client_id`` has connected, by the broker's log (connection_messages)."""
    return int(broker.log_text().count(f" as {client_id} "))


def poison(r: Round) -> None:
    """Every poison case, one after another, each checked for a halt."""
    reader = Client(r.broker, NEIGHBOUR, topic(KIOSK, "events"))
    try:  # the ACL must keep k1's events from k2 (it reads passages only)
        r.report["neighbour_reads_events"] = reader.received(10, lambda _: True)
    finally:
        reader.close()
    r.counts["acl_breaches"] += r.report["neighbour_reads_events"]
    neighbour = Neighbour(r)
    results: dict[str, Any] = {}
    try:
        if not neighbour.canary():
            results["before"] = {"halted": True, "recovered": neighbour.recover()}
        for name, where, payload, retain in poison_set():
            results[name] = neighbour.case(name, where, payload, retain)
            r.say(f"poison {name}: {results[name]}")
        results["other_kiosks_event_id"] = neighbour.forge_event_id()
    finally:
        neighbour.client.close()
    r.report["poison"] = results
    if neighbour.round_trips:
        r.report["canary_round_trip_s"] = {
            "median": round(statistics.median(neighbour.round_trips), 3),
            "max": round(max(neighbour.round_trips), 3),
        }


# --- the checks ------------------------------------------------------------------------------


def drain(r: Round) -> None:
    """People stop; wait (bounded) until central confirmed every logged event."""
    (r.kiosk.side / "paused").unlink(missing_ok=True)
    (r.kiosk.side / "pause").touch()
    from tests.broker import BrokerError

    with contextlib.suppress(BrokerError):  # it is already running
        r.broker.start(timeout=BROKER_START_S)
    for child in (r.central, r.kiosk):
        if not child.alive():
            child.start()
    deadline = time.monotonic() + r.plan.drain_s
    while time.monotonic() < deadline:
        paused = (r.kiosk.side / "paused").exists()
        if paused and all(row[2] for row in kiosk_rows(r.log_db)):
            return
        time.sleep(0.5)


def lockdown_windows(rows: list[tuple[Any, ...]]) -> list[tuple[int, float]]:
    """``(first, last)`` seqs of the kiosk's log between each lockdown and its lifting."""
    windows: list[tuple[int, float]] = []
    for seq, *_, lockdown_on in rows:
        open_window = bool(windows) and windows[-1][1] == float("inf")
        if lockdown_on == 1 and not open_window:
            windows.append((seq, float("inf")))
        elif lockdown_on == 0 and open_window:
            windows[-1] = (windows[-1][0], seq)
    return windows


def wrong_grants(r: Round, rows: list[tuple[Any, ...]]) -> set[str]:
    """Grants nobody should have had: the relay moved for a badge on no list, or a grant was
    logged or pulsed between a lockdown and its lifting (kiosk restarts included)."""
    locked = lockdown_windows(rows)

    def in_lockdown(seq: int) -> bool:
        return any(first < seq < last for first, last in locked)

    wrong = {str(row[0]) for row in rows if row[4] == "grant" and in_lockdown(row[0])}
    for at, kind, seq in lines(r.kiosk.side / "pulses"):
        if seq == "-1":  # the log could not be read at that moment: judge by the time
            if kind == "refused" or any(a <= float(at) <= b for a, b in r.lockdowns):
                wrong.add(f"t{at}")
        elif kind == "refused" or in_lockdown(int(seq)):
            wrong.add(seq)
    return wrong


def central_events(url: str) -> dict[int, list[tuple[str, str | None]]]:
    """Kiosk k1's events at central: ``seq -> [(event_id, outcome)]`` (a list, to see doubles)."""
    found: dict[int, list[tuple[str, str | None]]] = {}
    rows = query(
        url, f"SELECT event_id, seq, data FROM events WHERE site = '{SITE}' AND kiosk = '{KIOSK}'"
    )
    for event_id, seq, data in rows:
        loaded = json.loads(data) if isinstance(data, str) else data
        outcome = loaded.get("outcome") if isinstance(loaded, dict) else None
        found.setdefault(int(seq), []).append((event_id, outcome))
    return found


def check(r: Round) -> dict[str, Any]:
    """Central against the kiosk's log and the relay's own record.

    Seqs are gapless from 1, so a seq this suite never saw in the log was pruned (confirmed)
    before it looked: such an event is judged by central's copy alone."""
    rows, pruned = r.log_rows()
    central = central_events(r.url)
    seen = {row[0] for row in rows}
    unseen = [seq for seq in range(1, max(seen, default=0) + 1) if seq not in seen]
    lost = [seq for seq in unseen if seq not in central]
    lost += [s for s, e, confirmed, *_ in rows if confirmed and e not in dict(central.get(s, []))]
    grants = {row[0] for row in rows if row[3] == "decision" and row[4] == "grant"}
    grants |= {seq for seq in unseen if any(o == "grant" for _, o in central.get(seq, []))}
    pulse_seqs = [int(fields[2]) for fields in lines(r.kiosk.side / "pulses")]
    without_event = sorted(s for s in pulse_seqs if s not in grants)
    without_event += sorted(s for s in set(pulse_seqs) if pulse_seqs.count(s) > 1)
    return {
        "store": r.store,
        "kiosk_kills": r.counts["kiosk_kills"],
        "broker_kills": r.counts["broker_kills"],
        "central_kills": r.counts["central_kills"],
        "events": max(seen, default=0),
        "pruned": pruned + len(unseen),
        "people": len(r.kiosk.decisions()),
        "lost": len(lost),
        "duplicated": sum(len(copies) - 1 for copies in central.values()),
        "unconfirmed": sum(1 for row in rows if not row[2]),
        "wrong_grants": len(wrong_grants(r, rows)),
        "relay_without_event": len(without_event),
        "ingest_halts": r.counts["ingest_halts"],
        "poison_cases": r.counts["poison_cases"],
        "quarantined": quarantined(r.url),
        "acl_breaches": r.counts["acl_breaches"],
        "forged_id_lost": sum(1 for e, s in r.forged if e not in dict(central.get(s, []))),
        "kiosk_start_failures": r.counts["kiosk_start_failures"],
        "examples": {"lost": lost[:10], "relay_without_event": without_event[:10]},
        **r.report,
    }


def copy_log(db: Path, to: Path) -> None:
    """A consistent copy of the kiosk's log."""
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def run_round(store: str, url: str, plan: Plan, seed: int, work: Path) -> dict[str, Any]:
    """Start everything, run the phases of ``plan``, check, end everything."""
    r = Round(store, url, plan, random.Random(seed), work)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        start_round(r, stack)
        r.say("running: kiosk, broker, central")
        chaos_kills(r)
        r.remember_log()
        if "lockdown" in plan.phases:
            lockdown(r)
            r.remember_log()
        if "disk-full" in plan.phases and "disk_full" not in r.report:
            disk_full(r)
        if "poison" in plan.phases:
            poison(r)
        drain(r)
        result = check(r)
        copy_log(r.log_db, r.kiosk.side / "events.db")  # the tmpfs goes; --keep keeps this
    result["seconds"] = round(time.monotonic() - started)
    r.say(json.dumps(result))
    return result


# --- main ------------------------------------------------------------------------------------

TOTALS = ("kiosk_kills", "broker_kills", "central_kills", "events", "people", "lost")
TOTALS += ("duplicated", "unconfirmed", "wrong_grants", "relay_without_event", "ingest_halts")
TOTALS += ("poison_cases", "acl_breaches", "forged_id_lost", "kiosk_start_failures")
BROKEN = ("lost", "duplicated", "unconfirmed", "wrong_grants", "relay_without_event")
BROKEN += ("ingest_halts", "acl_breaches", "forged_id_lost")


def summary(rounds: list[dict[str, Any]], seed: int, quick: bool, seconds: float) -> dict[str, Any]:
    """Totals over the rounds, then the rounds themselves."""
    from benchlib import machine_info

    totals: dict[str, Any] = {name: sum(r[name] for r in rounds) for name in TOTALS}
    counts = [r["quarantined"] for r in rounds]
    totals["quarantined"] = None if None in counts else sum(counts)
    if None in counts:
        totals["quarantine"] = "quarantine not available"
    return {
        "bench": "chaos",
        **totals,
        "broken": [name for name in BROKEN if totals[name]],
        "seed": seed,
        "quick": quick,
        "seconds": round(seconds),
        "rounds": rounds,
        "machine": machine_info(),
    }


def arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few kills of each: ~4 minutes")
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--kiosk-kills", type=int, help="per run, split over the rounds (100)")
    parser.add_argument("--broker-kills", type=int, help="likewise (20)")
    parser.add_argument("--central-kills", type=int, help="likewise (20)")
    parser.add_argument("--skip", default="", help=f"comma-separated, of {sorted(PHASES)}")
    parser.add_argument("--stores", default="sqlite,postgresql", help="sqlite and/or postgresql")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--halt-bound-s",
        type=float,
        help="a normal event must be receipted this soon after a poison message (10; full: 20)",
    )
    parser.add_argument("--keep", type=Path, help="work in this new directory and keep it")
    args = parser.parse_args()
    args.skip = {name for name in args.skip.split(",") if name}
    if args.skip - PHASES:
        parser.error(f"--skip: unknown phases {sorted(args.skip - PHASES)}")
    args.stores = [name for name in args.stores.split(",") if name]
    if set(args.stores) - {"sqlite", "postgresql"} or not args.stores:
        parser.error("--stores: sqlite, postgresql or both")
    return args


def plan(args: argparse.Namespace, rounds: int) -> Plan:
    """Each round's share of the kills, and the phases and bounds."""
    default = (4, 1, 1) if args.quick else (100, 20, 20)
    wanted = (args.kiosk_kills, args.broker_kills, args.central_kills)
    kills = [-(-(d if n is None else n) // rounds) for n, d in zip(wanted, default, strict=True)]
    return Plan(
        *kills,
        phases=PHASES - args.skip,
        halt_bound_s=args.halt_bound_s or (10 if args.quick else 20),
        drain_s=60 if args.quick else 150,
        pause_s=(1.0, 4.0) if args.quick else (0.5, 3.0),
    )


def main() -> None:
    args = arguments()
    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as for Ctrl-C
    print(f"chaos: seed {seed}", file=sys.stderr, flush=True)
    from drain import pg_database

    rounds: list[dict[str, Any]] = []
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True)
            scratch = args.keep.resolve()
        else:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kiosk-chaos-")))
        urls = {"sqlite": f"sqlite:///{scratch}/central.db"}
        if "postgresql" in args.stores and (pg := stack.enter_context(pg_database(args.pg))):
            urls["postgresql"] = pg
        stores = [store for store in args.stores if store in urls]
        for index, store in enumerate(stores):
            (scratch / store).mkdir()
            each = plan(args, len(stores))
            rounds.append(run_round(store, urls[store], each, seed + index, scratch / store))
    result = summary(rounds, seed, args.quick, time.monotonic() - started)
    print(json.dumps(result))
    sys.exit(1 if result["broken"] else 0)


if __name__ == "__main__":
    sys.path[:0] = [str(REPO)]
    if len(sys.argv) > 1 and sys.argv[1] == "--kiosk-child":
        kiosk_child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        try:
            main()
        except ChaosError as exc:
            sys.exit(f"chaos: {exc}")
        except KeyboardInterrupt:
            print("chaos: interrupted; everything it started is ended", file=sys.stderr)
            sys.exit(130)
