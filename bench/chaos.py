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

This file is the command; its parts are beside it: ``chaos_procs.py`` (the kiosk child and the
processes), ``chaos_clients.py`` (MQTT clients, store queries), ``chaos_round.py`` (a round and
its phases), ``chaos_poison.py`` (the poison set) and ``chaos_checks.py`` (the verdict).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chaos_checks import check, copy_log
from chaos_poison import poison
from chaos_procs import REPO, ChaosError, kiosk_child
from chaos_round import PHASES, Plan, Round, chaos_kills, disk_full, drain, lockdown, start_round


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
