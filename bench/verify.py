"""Signed pass verification: throughput and latency, and the QR code each pass type needs.

Measures ``PassVerifier.verify`` on a typical staff pass (decode: Base45, zlib, CBOR, claims;
then the Ed25519 signature), and the size of typical staff and visitor passes: characters,
bytes and the QR version at error correction M. Goal on this x86: p99 ≤ 1 ms.
Run: ``.venv/bin/python bench/verify.py [--passes N]``.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from benchlib import machine_info, percentiles
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.credentials.cose import key_id
from kiosk.credentials.issuing import issue_pass, qr_info
from kiosk.credentials.passes import (
    PREFIX,
    PassStatus,
    PassVerifier,
    b45decode,
    decode_pass,
)

NOW = datetime(2026, 6, 30, 8, 0, tzinfo=UTC)
WARM_UP = 200
GOAL_P99_MS = 1.0


def typical_passes(key: Ed25519PrivateKey) -> dict[str, str]:
    """A year-long staff pass for two sites; a day visitor pass with meeting and declaration."""
    return {
        "staff": issue_pass(
            key,
            subject="p-3f9a1c7e2b",
            kind="staff",
            valid_from=NOW - timedelta(days=30),
            valid_until=NOW + timedelta(days=335),
            sites=["hq", "branch-2"],
            issuer="acme-vn",
            issued_at=NOW - timedelta(days=30),
        ),
        "visitor": issue_pass(
            key,
            subject="v-8d21c4a9",
            kind="visitor",
            valid_from=NOW,
            valid_until=NOW + timedelta(hours=10),
            sites=["hq"],
            issuer="acme-vn",
            health_declared_at=NOW - timedelta(hours=3),
            meeting="mtg-2026-06-30-board",
            issued_at=NOW,
        ),
    }


def timed_us(action: Any, count: int) -> list[float]:
    """Microseconds per call of ``action()``, after a warm-up."""
    for _ in range(WARM_UP):
        action()
    times = []
    for _ in range(count):
        start = time.perf_counter_ns()
        action()
        times.append((time.perf_counter_ns() - start) / 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=20_000)
    args = parser.parse_args()
    key = Ed25519PrivateKey.generate()
    verifier = PassVerifier({key_id(key.public_key()): key.public_key()}, site="hq")
    passes = typical_passes(key)
    staff = passes["staff"].encode("ascii")  # as the QR decoder hands it over
    assert verifier.verify(staff, NOW).status is PassStatus.VALID
    message = decode_pass(staff).message

    verify_us = timed_us(lambda: verifier.verify(staff, NOW), args.passes)
    decode_us = timed_us(lambda: decode_pass(staff), args.passes)
    signature_us = timed_us(lambda: message.verify(key.public_key()), args.passes)
    sizes = {}
    for kind, text in passes.items():
        info = qr_info(text)
        compressed = b45decode(text[len(PREFIX) :])
        sizes[kind] = {
            "chars": len(text),
            "zlib_bytes": len(compressed),
            "cose_bytes": len(zlib.decompress(compressed)),
            "qr_version": info.version,
            "qr_error": info.error,
            "qr_modules": info.modules,
        }
    verify_ms = percentiles([us / 1000 for us in verify_us], digits=4)
    figures = {
        "passes": args.passes,
        "verifications_per_s": round(1e6 * len(verify_us) / sum(verify_us)),
        "verify_ms": verify_ms,
        "decode_us": percentiles(decode_us, digits=1),
        "signature_us": percentiles(signature_us, digits=1),
        "goal_p99_ms": GOAL_P99_MS,
        "goal_met": verify_ms["p99"] <= GOAL_P99_MS,
        "sizes": sizes,
        "machine": machine_info(),
    }
    print(f"{args.passes} verifications of a typical staff pass (valid):")
    print(f"  {figures['verifications_per_s']} per second on one core")
    print(f"  {'step':<22}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}  (µs)")
    for label, values in (
        ("verify (whole)", {name: value * 1000 for name, value in verify_ms.items()}),
        ("  decode and claims", figures["decode_us"]),
        ("  Ed25519 signature", figures["signature_us"]),
    ):
        row = "".join(f"{values[name]:>9.1f}" for name in ("p50", "p95", "p99", "max"))
        print(f"  {label:<22}{row}")
    print(f"  goal p99 ≤ {GOAL_P99_MS} ms: {'met' if figures['goal_met'] else 'NOT met'}")
    print(f"  {'pass':<10}{'chars':>7}{'zlib B':>8}{'COSE B':>8}{'QR version':>12}{'modules':>9}")
    for kind, size in sizes.items():
        print(
            f"  {kind:<10}{size['chars']:>7}{size['zlib_bytes']:>8}{size['cose_bytes']:>8}"
            f"{str(size['qr_version']) + '-' + size['qr_error']:>12}{size['qr_modules']:>9}"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
