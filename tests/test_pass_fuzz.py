"""Fuzzing the pass verifier: over 100,000 generated and mutated payloads, deterministic seeds.

No payload may raise, and none may be valid unless it carries exactly the signed message of an
original (zlib padding bits are not covered by the signature and may change freely).
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.credentials.cose import b45decode, b45encode, encode_sign1, key_id
from kiosk.credentials.issuing import issue_pass
from kiosk.credentials.passes import PREFIX, PassStatus, PassVerifier

SEED = 20260630
NOW = datetime(2026, 6, 30, 8, 0, tzinfo=UTC)
ISSUER = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
STRANGER = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
VERIFIER = PassVerifier({key_id(ISSUER.public_key()): ISSUER.public_key()}, site="hq")
B45_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
CLAIM_KEYS: list[Any] = [1, 4, 5, 6, 7, "sub", "knd", "sit", "hdt", "mtg"]


def _originals() -> list[str]:
    common: dict[str, Any] = {
        "issuer": "acme-vn",
        "valid_from": NOW - timedelta(days=1),
        "valid_until": NOW + timedelta(days=30),
        "issued_at": NOW - timedelta(days=1),
    }
    return [
        issue_pass(ISSUER, subject="p-3f9a1c7e2b", kind="staff", sites=["hq"], **common),
        issue_pass(ISSUER, subject="c-77", kind="contractor", sites=None, **common),
        issue_pass(
            ISSUER,
            subject="v-8d21c4a9",
            kind="visitor",
            sites=["hq", "branch-2"],
            health_declared_at=NOW - timedelta(hours=3),
            meeting="mtg-board",
            pass_id="00112233445566778899aabbccddeeff",
            **common,
        ),
    ]


ORIGINALS = _originals()


def cose_of(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return zlib.decompress(b45decode(raw[len(PREFIX) :]))


ORIGINAL_COSE = [cose_of(text) for text in ORIGINALS]
ORIGINAL_SIGNED = {cbor2.loads(cose).value[2] for cose in ORIGINAL_COSE}
ORIGINAL_CLAIMS = [dict(cbor2.loads(cbor2.loads(cose).value[2])) for cose in ORIGINAL_COSE]


def noise(rng: random.Random, length: int, alphabet: bytes | None) -> bytes:
    """Random bytes, or random characters of ``alphabet``."""
    return bytes(rng.choices(alphabet, k=length)) if alphabet else rng.randbytes(length)


def mutate(rng: random.Random, data: bytes, alphabet: bytes | None = None) -> bytes:
    """One to three random edits: bit flips, replacements, deletions, insertions, truncation."""
    out = bytearray(data)

    def byte() -> int:
        return rng.choice(alphabet) if alphabet and rng.random() < 0.9 else rng.randrange(256)

    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        where = rng.randrange(len(out) + 1)
        operation = rng.randrange(7)
        if operation == 0 and out:
            out[where % len(out)] ^= 1 << rng.randrange(8)
        elif operation == 1 and out:
            out[where % len(out)] = byte()
        elif operation == 2:
            del out[where : where + rng.randint(1, 8)]
        elif operation == 3:
            out[where:where] = noise(rng, rng.randint(1, 8), alphabet)
        elif operation == 4:
            del out[where:]
        elif operation == 5:
            out[where:where] = out[rng.randrange(len(out) + 1) :][: rng.randint(1, 64)]
        else:
            out += noise(rng, rng.choice((1, 2, 3, 900)), alphabet)
    return bytes(out)


def random_cbor(rng: random.Random, depth: int = 0) -> Any:
    """A random CBOR-encodable value, nested up to 3 levels."""
    choice = rng.randrange(12 if depth < 3 else 8)
    simple: list[Callable[[], Any]] = [
        lambda: rng.randint(-(2**70), 2**70),
        lambda: rng.randint(-30, 2_000_000_000),
        lambda: rng.random() * 1e10,
        lambda: "".join(chr(rng.randrange(0x20, 0x2FF)) for _ in range(rng.randrange(20))),
        lambda: rng.randbytes(rng.randrange(20)),
        lambda: rng.choice((True, False, None)),
        lambda: rng.choice(("staff", "visitor", "hq", "p-1", "")),
        lambda: cbor2.undefined,
    ]
    if choice < len(simple):
        return simple[choice]()
    if choice == 8:
        return [random_cbor(rng, depth + 1) for _ in range(rng.randrange(4))]
    if choice == 9:
        return {
            rng.choice(CLAIM_KEYS): random_cbor(rng, depth + 1) for _ in range(rng.randrange(5))
        }
    if choice == 10:
        return cbor2.CBORTag(rng.choice((0, 1, 2, 18, 24, 28, 29, 258, 55799)), random_cbor(rng, 3))
    return rng.choice(ORIGINAL_CLAIMS)


WRONG_TYPES: dict[Any, list[Any]] = {
    **{key: ["2026-07-30", 1.5, b"\x01", [1], {1: 1}, True, -1, 2**64, None] for key in (4, 5, 6)},
    1: [1, b"acme", ["acme"], "", "a b", "x" * 65, None],
    7: ["0011223344556677", 7, b"\x00" * 7, b"\x00" * 17, [b"\x00" * 8], None],
    "sub": [1, b"p-1", "Nguyễn Văn A", "", "p\n", None],
    "knd": ["vip", 1, b"staff", ["staff"], None],
    "sit": ["hq", [], [1], ["hq", 2], {"hq": 1}, ["x"] * 33, b"hq"],
    "hdt": ["yesterday", 1.0, [1], -5],
    "mtg": [1, "", "a b", b"m"],
}


class Fuzz:
    """Runs payloads through the verifier and keeps count of the verdicts."""

    def __init__(self) -> None:
        self.counts: Counter[PassStatus] = Counter()
        self.total = 0

    def check(self, payload: str | bytes, *, expect: set[PassStatus] | None = None) -> None:
        try:
            status = VERIFIER.verify(payload, NOW).status
        except Exception as error:
            raise AssertionError(f"verify raised {error!r} on {payload!r}") from error
        self.total += 1
        self.counts[status] += 1
        if status is PassStatus.VALID:
            assert cose_of(payload) in ORIGINAL_COSE, f"a forgery is valid: {payload!r}"
        if expect is not None:
            assert status in expect, f"{status} not in {expect} for {payload!r}"


def wrap(cose: bytes) -> str:
    return PREFIX + b45encode(zlib.compress(cose))


def test_no_generated_or_mutated_payload_raises_or_passes_as_valid() -> None:
    rng = random.Random(SEED)
    fuzz = Fuzz()
    for text in ORIGINALS:
        fuzz.check(text, expect={PassStatus.VALID})
    for _ in range(30_000):  # the Base45 text as the camera would read it
        fuzz.check(mutate(rng, rng.choice(ORIGINALS).encode(), B45_ALPHABET))
    for _ in range(25_000):  # the compressed bytes
        compressed = b45decode(rng.choice(ORIGINALS)[len(PREFIX) :])
        fuzz.check(PREFIX + b45encode(mutate(rng, compressed)))
    for _ in range(25_000):  # the COSE CBOR
        fuzz.check(wrap(mutate(rng, rng.choice(ORIGINAL_COSE))))
    for _ in range(10_000):  # the signed claims, keeping the original signature
        cose = cbor2.loads(rng.choice(ORIGINAL_COSE))
        protected, _, payload, signature = cose.value
        forged = mutate(rng, payload)
        message = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, forged, signature]))
        expected = {PassStatus.MALFORMED, PassStatus.BAD_SIGNATURE, PassStatus.TOO_LARGE}
        fuzz.check(wrap(message), expect=None if forged in ORIGINAL_SIGNED else expected)
    for _ in range(8_000):  # random CBOR claims, signed by a key nobody trusts
        claims = random_cbor(rng)
        fuzz.check(
            wrap(encode_sign1(STRANGER, cbor2.dumps(claims))),
            expect={PassStatus.MALFORMED, PassStatus.UNKNOWN_KEY},
        )
    for _ in range(5_000):  # the right structure, a trusted signature, a claim of the wrong type
        claims = dict(rng.choice(ORIGINAL_CLAIMS))
        for key in rng.sample(list(WRONG_TYPES), rng.choice((1, 1, 2))):
            value = rng.choice(WRONG_TYPES[key])  # None: a required claim left out
            if value is None:
                claims.pop(key, None)
            else:
                claims[key] = value
        fuzz.check(wrap(encode_sign1(ISSUER, cbor2.dumps(claims))), expect={PassStatus.MALFORMED})
    for _ in range(3_000):  # noise: random Base45 text and random bytes behind the prefix
        length = rng.randrange(1, 1100)
        alphabet = B45_ALPHABET if rng.random() < 0.8 else None
        fuzz.check(PREFIX.encode() + noise(rng, length, alphabet))
    assert fuzz.total >= 100_000
    assert {
        PassStatus.NOT_A_PASS,
        PassStatus.TOO_LARGE,
        PassStatus.MALFORMED,
        PassStatus.UNSUPPORTED_ALGORITHM,
        PassStatus.UNKNOWN_KEY,
        PassStatus.BAD_SIGNATURE,
    } <= set(fuzz.counts)
