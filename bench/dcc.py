"""EU DCC verification: throughput and latency of ``kiosk.credentials.dcc.verify``.

Verifies the public EU test vectors (the shared data folder, as tests/dcc_support.py finds it)
that are valid end to end, each against its own DSC at its validation clock, grouped by
signature algorithm: ES256 (EC) and PS256 (RSA). A verification is the whole pipeline: Base45,
zlib, COSE, CWT, the signature, the JSON schema. Goal on this machine: p99 ≤ 5 ms for ES256.
Wall-clock times include preemption by whatever else runs; the CPU times (the thread's own)
do not, which is what to compare on a busy machine.
Run: ``.venv/bin/python bench/dcc.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import machine_info, percentiles
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kiosk.credentials.dcc import verify
from tests.dcc_support import Vector, load_vector, vector_files

GOAL_P99_MS = 5.0
WARM_UP = 50


def main() -> None:
    """Print the figures per algorithm, then one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="verifications per algorithm")
    args = parser.parse_args()
    groups: dict[str, list[Vector]] = {"ES256": [], "PS256": []}
    for path in vector_files():
        vector = load_vector(path)
        result = verify(vector.text, vector.trust(), vector.clock)
        if result.valid:
            key = next(iter(vector.trust())).key
            groups["ES256" if isinstance(key, ec.EllipticCurvePublicKey) else "PS256"].append(
                vector
            )
    if not groups["ES256"]:
        sys.exit(
            "bench/dcc.py: no valid ES256 vector found (is ../shared/data/dcc-testdata there?)"
        )
    figures: dict[str, Any] = {"bench": "dcc", "machine": machine_info()}
    print(f"{args.rounds} verifications per algorithm, cycling over the valid vectors:")
    print(f"  {'alg':<7}{'vectors':>8}{'per s':>8}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}  (ms)")
    load = os.getloadavg()[0]
    for alg, vectors in groups.items():
        if not vectors:
            continue
        row = _measure(vectors, args.rounds)
        figures[alg] = row
        cells = "".join(f"{row[name]:>8}" for name in ("p50", "p95", "p99", "max"))
        print(f"  {alg:<7}{len(vectors):>8}{row['per_s']:>8}{cells}")
        cells = "".join(f"{row['cpu'][name]:>8}" for name in ("p50", "p95", "p99", "max"))
        print(f"  {'  (CPU)':<15}{row['per_cpu_s']:>8}{cells}")
    figures["load_average"] = round(load, 2)
    figures["goal_met"] = figures["ES256"]["p99"] <= GOAL_P99_MS
    figures["goal_met_cpu"] = figures["ES256"]["cpu"]["p99"] <= GOAL_P99_MS
    print(f"  load average at the start: {load:.2f} on {os.cpu_count()} cores")
    for label, met in (("", figures["goal_met"]), (" (CPU)", figures["goal_met_cpu"])):
        print(f"  goal ES256 p99{label} ≤ {GOAL_P99_MS} ms: {'met' if met else 'NOT met'}")
    print(json.dumps(figures))


def _measure(vectors: list[Vector], rounds: int) -> dict[str, Any]:
    prepared = [(vector.text, vector.trust(), vector.clock) for vector in vectors]
    for index in range(WARM_UP):
        verify(*prepared[index % len(prepared)])
    wall, cpu = [], []
    started = time.perf_counter()
    for index in range(rounds):
        before, before_cpu = time.perf_counter(), time.thread_time()
        verify(*prepared[index % len(prepared)])
        cpu.append((time.thread_time() - before_cpu) * 1000)
        wall.append((time.perf_counter() - before) * 1000)
    elapsed = time.perf_counter() - started
    return {
        "vectors": len(vectors),
        "per_s": round(rounds / elapsed),
        "per_cpu_s": round(rounds / (sum(cpu) / 1000)),
        **percentiles(wall),
        "cpu": percentiles(cpu),
    }


if __name__ == "__main__":
    main()
