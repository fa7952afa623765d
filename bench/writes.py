"""Bytes written to storage per person (SD cards wear out by writes): the kiosk process's own
write_bytes from /proc/self/io while simulated people pass, with the thermometer on."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchlib import badge, machine_info, timed_kiosk

from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.simulation import Person


def written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100)
    args = parser.parse_args()
    with timed_kiosk(gate={"pulse_ms": 50}) as kiosk:
        kiosk.admit(Person("warm-up", badge(0), sim.person(36.6), "grant"))
        before = written_bytes()
        for n in range(1, args.people + 1):
            kiosk.admit(Person("p", badge(n), sim.person(36.6), "grant"))
        per_person = (written_bytes() - before) / args.people
    print(
        f"{args.people} people: {per_person / 1024:.1f} KiB written per person "
        f"(SQLite WAL with synchronous=FULL: one decision event and its commit)"
    )
    print(
        json.dumps(
            {
                "people": args.people,
                "bytes_per_person": round(per_person),
                "machine": machine_info(),
            }
        )
    )


if __name__ == "__main__":
    main()
