"""One round of the chaos suite: its plan, the processes it starts (broker, central, kiosk),
and the phases that do not need a hostile client: kill -9 at random, lockdown, disk full and
the final drain."""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos_clients import Client, command, kiosk_rows, result_of, topic
from chaos_procs import (
    BROKER_START_S,
    CENTRAL_ID,
    KIOSK,
    PEOPLE,
    SALT,
    SITE,
    Child,
    KioskChild,
)

TMPFS_SIZE = "64m"


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
