"""Bounded JSON: what a hostile peer sends is refused with a reason, as a ValueError."""

from __future__ import annotations

import time

import pytest

from kiosk.mqtt import boundedjson, protocol
from kiosk.mqtt.boundedjson import JSONLimitError


def test_plain_json_parses() -> None:
    assert boundedjson.loads(b'{"a": [1, 2.5, "x", null, true]}', max_bytes=100) == {
        "a": [1, 2.5, "x", None, True]
    }


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "nested deeper than 32"),
        (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "nested deeper than 32"),
        (b'{"t": NaN}', "NaN is not a JSON number"),
        (b'{"t": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"s": "\\ud800"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b'{"t": 1e400}', "too large for a float"),
        (b"[-1.5e309]", "too large for a float"),
        (b"[" + b"1" * 400 + b".5]", "too large for a float"),
        (b'{"e": "1e5 in a string", "seq": 9223372036854775808}', "outside the 64-bit range"),
        (b"[true, false, 2E400]", "too large for a float"),
        (b"[" + b"1" * 5_000 + b"]", "outside the 64-bit range"),
        (b'{"seq": 9223372036854775808}', "outside the 64-bit range"),
        (b'{"seq": -9223372036854775809}', "outside the 64-bit range"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"a": }', "not JSON"),
    ],
)
def test_hostile_payloads_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(JSONLimitError, match=reason):
        boundedjson.loads(raw, max_bytes=1_000_000)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    raw = b'{"note": "' + b"[" * 1_000 + b'\\"]"}'
    assert boundedjson.loads(raw, max_bytes=10_000)["note"].startswith("[[[")


@pytest.mark.parametrize("quote", [b"", b'\\"'], ids=["plain strings", "an escaped quote"])
def test_nesting_is_counted_outside_strings_whatever_the_strings_hold(quote: bytes) -> None:
    brackets_in_a_string = b'{"note": "' + b"[{" * 100 + quote + b'", "n": '
    assert boundedjson.loads(brackets_in_a_string + b"[[1]]}", max_bytes=10_000)["n"] == [[1]]
    with pytest.raises(JSONLimitError, match="nested deeper than 32"):
        boundedjson.loads(brackets_in_a_string + b"[" * 40 + b"]" * 40 + b"}", max_bytes=10_000)


def test_an_unterminated_string_of_escaped_quotes_is_refused_in_linear_time() -> None:
    """A neighbour's 256 KiB of escaped quotes took minutes, holding the GIL (the kiosk's
    watchdog would kill it); the bound is hundreds of times what it takes now."""
    raw = b'"' + b'\\"' * 131_000
    started = time.monotonic()
    with pytest.raises(JSONLimitError, match="not JSON"):
        boundedjson.loads(raw, max_bytes=1 << 20)
    assert time.monotonic() - started < 20


def test_size_is_checked_before_parsing() -> None:
    with pytest.raises(JSONLimitError, match="larger than 10 bytes"):
        boundedjson.loads(b"[" * 11, max_bytes=10)


def test_the_64_bit_bounds_themselves_are_accepted() -> None:
    raw = b"[9223372036854775807, -9223372036854775808]"
    assert boundedjson.loads(raw, max_bytes=100) == [2**63 - 1, -(2**63)]


def test_every_protocol_decoder_refuses_deep_nesting_as_a_protocol_error() -> None:
    deep = b'{"v": 1, "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    for decode in (
        protocol.decode_events,
        protocol.decode_receipt,
        protocol.decode_state,
        protocol.decode_command,
    ):
        with pytest.raises(protocol.ProtocolError, match="nested deeper"):
            decode(deep)
