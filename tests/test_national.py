"""National app codes: accepted layouts, refused inputs, and no name or birth date kept.

Every sample is invented: the ID numbers are made up and the names are placeholders.
"""

from __future__ import annotations

import pickle
import re
from datetime import date

import pytest

from kiosk.credentials.national import (
    EVENT_CREDENTIAL,
    MAX_PAYLOAD_BYTES,
    DeclarationType,
    NationalApp,
    NationalPolicy,
    NationalQr,
    parse_national_qr,
)

SALT = b"test-salt-0123456789abcdef"
OTHER_SALT = b"another-salt-9876543210fedcba"

CCCD_CARD = (
    "079090001234|123456789|NGUYỄN VĂN A|01011990|Nam|"
    "Số 1 Đường Số 1, Phường 1, Quận 1, TP Hồ Chí Minh|15042021"
)
PC_COVID = "PC-COVID|012345678|TRAN THI B|12/03/1985|Nữ|Hà Nội|KBYT|01/10/2021 08:30"
BLUEZONE = "001085009876|LE VAN C|1985|Nam|Khai báo nội địa|2021-09-15"
BARE = "012345678|PHAM VAN D|05/06/1970"
GENDER_FIRST = "012345678|HOANG THI E|Nu|05061970|Đà Nẵng"
SAMPLES = [CCCD_CARD, PC_COVID, BLUEZONE, BARE, GENDER_FIRST]


def parse(text: str) -> NationalQr | None:
    return parse_national_qr(text.encode("utf-8"))


def parsed(text: str) -> NationalQr:
    code = parse(text)
    assert code is not None, text
    return code


def test_chip_id_card_layout_is_recognised_and_its_issue_date_is_not_a_declaration() -> None:
    code = parsed(CCCD_CARD)
    assert code.app is NationalApp.CCCD_CARD
    assert code.id_kind == "cccd"
    assert code.declaration is None
    assert code.declared_on is None


def test_app_marker_declaration_type_and_date_are_kept() -> None:
    code = parsed(PC_COVID)
    assert code.app is NationalApp.PC_COVID
    assert code.id_kind == "cmnd"
    assert code.declaration is DeclarationType.HEALTH
    assert code.declared_on == date(2021, 10, 1)


def test_declaration_type_written_in_vietnamese_with_accents() -> None:
    code = parsed(BLUEZONE)
    assert code.app is None
    assert code.declaration is DeclarationType.DOMESTIC
    assert code.declared_on == date(2021, 9, 15)


def test_minimal_and_gender_first_layouts_parse_without_declaration() -> None:
    for text in (BARE, GENDER_FIRST):
        code = parsed(text)
        assert (code.app, code.declaration, code.declared_on) == (None, None, None)


def test_a_date_without_any_declaration_marker_is_not_taken_as_a_declaration() -> None:
    code = parsed("012345678|PHAM VAN D|05/06/1970|Hà Nội|01/10/2021")
    assert code.declared_on is None


def test_a_pre_2020_date_is_not_a_covid_declaration() -> None:
    code = parsed("012345678|PHAM VAN D|05/06/1970|KBYT|01/10/2019")
    assert code.declaration is DeclarationType.HEALTH
    assert code.declared_on is None


def test_scanner_line_ending_and_field_spaces_are_tolerated() -> None:
    assert parse_national_qr(b" 012345678 | PHAM VAN D | 05/06/1970 \r\n") is not None


def test_same_id_same_subject_whatever_the_app_or_other_fields() -> None:
    a = parsed("012345678|PHAM VAN D|05/06/1970")
    b = parsed("NCOVI|012345678|Phạm Văn D|1970|Nam|KBYT|02/10/2021")
    c = parsed("012345679|PHAM VAN D|05/06/1970")
    assert b.app is NationalApp.NCOVI
    assert a.subject_hash(SALT) == b.subject_hash(SALT)
    assert a.subject_hash(SALT) != c.subject_hash(SALT)
    assert a.subject_hash(SALT) != a.subject_hash(OTHER_SALT)
    assert re.fullmatch(r"n-[0-9a-f]{20}", a.subject_hash(SALT))


def test_a_short_salt_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        parsed(BARE).subject_hash(b"short")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"hello world",
        b"KIOSK1:7f3a9c2e-5b1d-4e8a-9c3f-2d6b8a1e4f70:sig=Zk3Yq9",
        b"https://checkin.example/s/hq",
        b"012345678|PHAM VAN D",  # too few fields
        b"012345678|PHAM VAN D|05/06/1970" + b"|x" * 10,  # too many fields
        b"|" * 400,
        b"01234567|PHAM VAN D|05/06/1970",  # 8 digits
        b"0123456789|PHAM VAN D|05/06/1970",  # 10 digits
        b"0123456789012|PHAM VAN D|05/06/1970",  # 13 digits
        b"01234567X|PHAM VAN D|05/06/1970",
        b"PHAM VAN D|012345678|05/06/1970",  # no ID first
        b"SOMEAPP|012345678|PHAM VAN D|05/06/1970",  # unknown leading tag
        b"012345678|PHAM|05/06/1970",  # a single word is not a full name
        b"012345678|PH4M VAN D|05/06/1970",
        b"012345678|<script> alert|05/06/1970",
        b"012345678|PHAM VAN D|31/02/1970",  # no such day
        b"012345678|PHAM VAN D|05/06/1870",
        b"012345678|PHAM VAN D|yesterday",
        "012345678|PHAM VAN D|05/06/1970".encode("utf-16"),
        b"012345678|PHAM VAN D|05/06/1970|\xff\xfe",  # not UTF-8
        b"012345678|PHAM VAN D|05/06/1970\x00",
        b"012345678|PHAM\tVAN D|05/06/1970",
        b"012345678|PHAM VAN D|05/06/1970\x1b[2J",
        "012345678|PHAM VAN\u200b D|05/06/1970".encode(),  # zero-width space
        "012345678|\u202ePHAM VAN D|05/06/1970".encode(),  # right-to-left override
        b"012345678|PHAM VAN D|05/06/1970|" + b"A" * 300,  # over-long field
        b"012345678|PHAM VAN D|05/06/1970|" + b"A" * MAX_PAYLOAD_BYTES,
        bytes(range(256)),
    ],
)
def test_implausible_or_hostile_payloads_are_refused(payload: bytes) -> None:
    assert parse_national_qr(payload) is None


def test_payload_size_limit_is_in_bytes_not_characters() -> None:
    head = "012345678|PHAM VAN D|05/06/1970|"
    fill = "Hà Nội " * 60
    ok = (head + fill[: MAX_PAYLOAD_BYTES // 4]).encode()
    assert parse_national_qr(ok) is not None
    too_long = (head + "|".join([fill[:150]] * 4)).encode()
    assert len(too_long) > MAX_PAYLOAD_BYTES
    assert parse_national_qr(too_long) is None


NAME_PARTS = ["NGUYỄN", "NGUYEN", "VĂN", "VAN", "TRAN", "THI", "Phạm", "Văn", "LE", "HOANG"]
BIRTH_PARTS = ["01011990", "12/03/1985", "1985", "05/06/1970", "05061970", "1990", "1970"]


@pytest.mark.parametrize("text", SAMPLES)
def test_no_part_of_the_name_or_birth_date_is_kept(text: str) -> None:
    code = parsed(text)
    shown = [repr(code), str(code), code.subject_hash(SALT)]
    shown += [repr(getattr(code, name)) for name in dir(code) if not name.startswith("__")]
    for slot in type(code).__slots__:
        mangled = f"_NationalQr{slot}" if slot.startswith("__") else slot
        shown.append(repr(getattr(code, mangled)))
    everything = "\n".join(shown)
    for part in NAME_PARTS + BIRTH_PARTS:
        if part in text:
            assert part.lower() not in everything.lower(), part
    assert not hasattr(code, "__dict__")


def test_repr_does_not_show_the_id_number() -> None:
    code = parsed(CCCD_CARD)
    assert "079090001234" not in repr(code)
    assert "123456789" not in repr(code)
    assert "signed=False" in repr(code)


def test_a_parsed_code_cannot_be_pickled_into_a_store_or_changed() -> None:
    code = parsed(PC_COVID)
    with pytest.raises(TypeError):
        pickle.dumps(code)
    with pytest.raises(AttributeError):
        code.declared_on = date(2030, 1, 1)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        code.name = "NGUYEN VAN A"  # type: ignore[attr-defined]


def test_codes_are_marked_unsigned_and_the_policy_values_are_stable() -> None:
    assert NationalQr.signed is False
    assert parsed(PC_COVID).signed is False
    assert EVENT_CREDENTIAL == "national-unsigned"
    assert [p.value for p in NationalPolicy] == ["grant", "refer", "deny"]
    assert NationalPolicy("refer") is NationalPolicy.REFER


def test_constructing_with_a_bad_id_number_is_refused() -> None:
    with pytest.raises(ValueError, match="9"):
        NationalQr("12345")
