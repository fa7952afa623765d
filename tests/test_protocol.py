"""The wire format helpers: what the kiosk sends is what central decodes."""

from __future__ import annotations

import json

import pytest

from kiosk.config import ConfigError, MqttSection, parse_config
from kiosk.mqtt.protocol import (
    DEFAULT_MESSAGE_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_RECEIPT_SEQS,
    ProtocolError,
    WireEvent,
    decode_events,
    decode_receipt,
    encode_events,
    encode_receipt,
    event_json,
    events_message,
    seq_ranges,
)

DATA = {"outcome": "grant", "subject": "s-1", "note": 'Nhiệt độ "cao"', "n": [1, 2.5, None]}


def test_spliced_json_encodes_the_same_message_as_the_plain_encoder() -> None:
    event = WireEvent("e-1", 7, "boot", 1_700_000_000_000, False, "decision", DATA, historical=True)
    stored_text = json.dumps(DATA, ensure_ascii=False)
    spliced = events_message("s1", "k1", [event_json(event, stored_text)] * 2)
    plain = encode_events("s1", "k1", [event] * 2)
    assert json.loads(spliced) == json.loads(plain)
    assert decode_events(spliced) == ("s1", "k1", [event, event])


def test_an_events_message_is_as_long_as_its_envelope_its_items_and_the_commas() -> None:
    event = WireEvent("e-1", 7, "boot", 1_700_000_000_000, False, "decision", DATA)
    items = [event_json(event, json.dumps(DATA, ensure_ascii=False))] * 3
    envelope = len(events_message("s1", "k1", []))
    assert len(events_message("s1", "k1", items)) == envelope + sum(map(len, items)) + 2
    assert decode_events(events_message("s1", "k1", items))[2] == [event] * 3


def test_the_message_size_setting_stays_under_what_central_accepts() -> None:
    field = MqttSection.__dataclass_fields__["max_message_bytes"]
    assert field.default == DEFAULT_MESSAGE_BYTES
    assert field.metadata["high"] < MAX_MESSAGE_BYTES
    with pytest.raises(ConfigError, match=r"mqtt.max_message_bytes: .*16384 to 261120"):
        parse_config({"mqtt": {"max_message_bytes": MAX_MESSAGE_BYTES}})


def test_receipts_compress_to_ranges_and_back() -> None:
    seqs = [5, 1, 2, 3, 9, 10, 2]
    assert seq_ranges(seqs) == [[1, 3], [5, 5], [9, 10]]
    assert decode_receipt(encode_receipt(seqs)) == [1, 2, 3, 5, 9, 10]


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"v": 2, "ranges": []}',
        b'{"v": 1, "ranges": [[5, 3]]}',
        b'{"v": 1, "ranges": [[0, 3]]}',
        b'{"v": 1, "ranges": [[1, true]]}',
        b'{"v": 1, "ranges": [[1, 1000001]]}',
        b'{"v": 1, "ranges": [' + b",".join([b"[1, 999999]"] * 20_000) + b"]}",
    ],
    ids=["not-json", "not-object", "version", "reversed", "zero", "bool", "huge", "many-huge"],
)
def test_bad_receipts_are_refused_with_a_reason(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_receipt(payload)


def test_a_receipt_may_confirm_up_to_its_limit() -> None:
    assert len(decode_receipt(encode_receipt(range(1, MAX_RECEIPT_SEQS + 1)))) == MAX_RECEIPT_SEQS


def test_events_with_missing_or_mistyped_fields_are_refused() -> None:
    good = json.loads(encode_events("s1", "k1", [WireEvent("e", 1, "b", 1, True, "x", {})]))
    for field, value in [("seq", "1"), ("seq", True), ("data", []), ("event_id", None)]:
        broken = json.loads(json.dumps(good))
        broken["events"][0][field] = value
        with pytest.raises(ProtocolError, match=field):
            decode_events(json.dumps(broken).encode())


def test_identifiers_with_a_trailing_newline_are_refused() -> None:
    """``$`` would let ``"…\\n"`` through: a phantom subject, event id or topic segment."""
    from kiosk.central.validation import TYPE
    from kiosk.mqtt.protocol import SEGMENT, TOKEN, UUID

    good = {
        SEGMENT: "k1",
        TOKEN: "s-00ff",
        UUID: "0f8fad5b-d9cb-469f-a165-70867728950e",
        TYPE: "decision",
    }
    for pattern, value in good.items():
        assert pattern.match(value)
        assert not pattern.match(value + "\n"), pattern.pattern
