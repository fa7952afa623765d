"""Signed passes: issue, print, scan and verify offline; trust and revocation documents."""

from __future__ import annotations

import json
import stat
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import cbor2
import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kiosk.config import parse_config
from kiosk.credentials import register
from kiosk.credentials.cose import b45decode, b45encode, encode_sign1, key_id
from kiosk.credentials.documents import (
    DocumentError,
    RevocationList,
    TrustList,
    encode_document,
    load_document,
)
from kiosk.credentials.issuing import (
    badge_page,
    generate_keypair,
    inspect,
    issue_pass,
    qr_info,
    read_private_key,
    read_public_key,
    revocation_document,
    trust_document,
    write_qr,
)
from kiosk.credentials.office import issue_batch, parse_sites
from kiosk.credentials.passes import (
    MAX_TEXT_CHARS,
    PREFIX,
    PassStatus,
    PassVerifier,
    decode_pass,
)
from kiosk.credentials.trust import TrustStore
from kiosk.events import alert_for
from kiosk.mqtt.protocol import WireEvent
from kiosk.sensors.qr import make_decoder

NOW = datetime(2026, 6, 30, 8, 0, tzinfo=UTC)
HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
FROM, UNTIL = NOW - timedelta(days=1), NOW + timedelta(days=30)
ISSUER_KEY = Ed25519PrivateKey.generate()
ORG_KEY = Ed25519PrivateKey.generate()  # signs trust and revocation lists
TRUSTED = {key_id(ISSUER_KEY.public_key()): ISSUER_KEY.public_key()}
VERIFIER = PassVerifier(TRUSTED, site="hq")


def staff_pass(key: Ed25519PrivateKey = ISSUER_KEY, **changes: object) -> str:
    fields: dict[str, object] = {
        "subject": "p-3f9a1c7e2b",
        "kind": "staff",
        "valid_from": FROM,
        "valid_until": UNTIL,
        "sites": ["hq", "branch-2"],
        "issuer": "acme-vn",
        "pass_id": "0011223344556677",
        "issued_at": FROM,
    }
    fields.update(changes)
    return issue_pass(key, **fields)  # type: ignore[arg-type]


def visitor_pass() -> str:
    return issue_pass(
        ISSUER_KEY,
        subject="v-8d21c4a9",
        kind="visitor",
        valid_from=NOW,
        valid_until=NOW + timedelta(hours=10),
        sites=["hq"],
        issuer="acme-vn",
        health_declared_at=NOW - timedelta(hours=3),
        meeting="mtg-2026-06-30-board",
        issued_at=NOW,
    )


def reencode(text: str, change: dict[object, object], key: Ed25519PrivateKey | None) -> str:
    """The pass with claims changed; re-signed with ``key``, or keeping the old signature."""
    cose = cbor2.loads(zlib.decompress(b45decode(text[len(PREFIX) :])))
    protected, _, payload, signature = cose.value
    claims = dict(cbor2.loads(payload)) | change
    new_payload = cbor2.dumps({k: v for k, v in claims.items() if v is not None})
    if key is not None:
        message = encode_sign1(key, new_payload)
    else:
        message = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, new_payload, signature]))
    return PREFIX + b45encode(zlib.compress(message))


def test_a_pass_printed_as_a_qr_code_is_read_by_the_kiosk_and_valid(tmp_path: Path) -> None:
    text = staff_pass()
    info = write_qr(text, tmp_path / "pass.png", tmp_path / "pass.svg", scale=6)
    image = np.asarray(cv2.imread(str(tmp_path / "pass.png"), cv2.IMREAD_GRAYSCALE), np.uint8)
    assert image.shape == ((info.modules + 8) * 6,) * 2  # 6 px a module, 4-module quiet zone
    [scanned] = make_decoder("zxing-cpp").decode(image)
    check = VERIFIER.verify(scanned, NOW)
    assert check.status is PassStatus.VALID
    assert check.claims is not None
    assert (check.claims.subject, check.claims.kind) == ("p-3f9a1c7e2b", "staff")
    assert check.claims.sites == ("hq", "branch-2")
    assert check.kid == key_id(ISSUER_KEY.public_key())
    assert (tmp_path / "pass.svg").read_text().startswith("<?xml")


def test_a_visitor_pass_carries_its_meeting_and_health_declaration() -> None:
    check = VERIFIER.verify(visitor_pass(), NOW)
    assert check.status is PassStatus.VALID
    assert check.claims is not None
    assert check.claims.meeting == "mtg-2026-06-30-board"
    assert check.claims.health_declared_at == NOW - timedelta(hours=3)


def test_text_and_scanned_bytes_verify_the_same() -> None:
    text = staff_pass()
    assert VERIFIER.verify(text, NOW) == VERIFIER.verify(text.encode("ascii"), NOW)


@pytest.mark.parametrize(
    ("text", "kind"), [(staff_pass(), "staff"), (visitor_pass(), "visitor with meeting")]
)
def test_passes_fit_a_qr_code_of_version_10_at_error_correction_m(text: str, kind: str) -> None:
    info = qr_info(text)
    assert info.error == "M"
    assert info.version <= 10, f"{kind}: version {info.version}, {info.chars} characters"


# One test per status code, in the order the checks run.


@pytest.mark.parametrize("payload", [b"S-0001", b"https://example.com/", b"kp1:ABC", b"", b"\xff"])
def test_not_a_pass_without_the_prefix(payload: bytes) -> None:
    assert VERIFIER.verify(payload, NOW).status is PassStatus.NOT_A_PASS


def test_too_large_text() -> None:
    text = PREFIX + "0" * (MAX_TEXT_CHARS - len(PREFIX) + 1)
    assert VERIFIER.verify(text, NOW).status is PassStatus.TOO_LARGE


def test_too_large_when_it_inflates_beyond_the_cap() -> None:
    bomb = PREFIX + b45encode(zlib.compress(b"\0" * 100_000, 9))
    assert len(bomb) < MAX_TEXT_CHARS
    assert VERIFIER.verify(bomb, NOW).status is PassStatus.TOO_LARGE


@pytest.mark.parametrize(
    "text",
    [
        PREFIX + "abc",  # not Base45
        PREFIX + "GGW",  # a Base45 chunk above 65535
        PREFIX + b45encode(b"not zlib"),
        PREFIX + b45encode(zlib.compress(cbor2.dumps({"not": "cose"}))),
        PREFIX + b45encode(zlib.compress(cbor2.dumps(["Signature1", b"", b""]))),
        staff_pass()[:-5],  # truncated
        PREFIX + b45encode(zlib.compress(b"\xff" * 50)),  # not CBOR
    ],
)
def test_malformed_encoding(text: str) -> None:
    assert VERIFIER.verify(text, NOW).status is PassStatus.MALFORMED


@pytest.mark.parametrize(
    "change",
    [
        {4: "2026-07-30"},  # exp as text
        {5: 1.5},  # nbf as a float
        {7: b"short"},  # pass id under 8 bytes
        {"knd": "vip"},
        {"sub": "Nguyễn Văn A"},  # names are not ids
        {"sit": "hq"},  # a site list must be a list
        {"sit": []},
        {"sub": None},  # a required claim missing
        {4: 1_000_000_000},  # exp before nbf
    ],
)
def test_malformed_claims_even_when_signed_by_a_trusted_key(change: dict[object, object]) -> None:
    text = reencode(staff_pass(), change, ISSUER_KEY)
    assert VERIFIER.verify(text, NOW).status is PassStatus.MALFORMED


def test_unsupported_algorithm() -> None:
    text = staff_pass()
    cose = cbor2.loads(zlib.decompress(b45decode(text[len(PREFIX) :])))
    _, _, payload, signature = cose.value
    es256 = cbor2.dumps({1: -7, 4: key_id(ISSUER_KEY.public_key())})
    message = cbor2.dumps(cbor2.CBORTag(18, [es256, {}, payload, signature]))
    check = VERIFIER.verify(PREFIX + b45encode(zlib.compress(message)), NOW)
    assert check.status is PassStatus.UNSUPPORTED_ALGORITHM
    assert check.claims is None


def test_unknown_key() -> None:
    stranger = Ed25519PrivateKey.generate()
    check = VERIFIER.verify(staff_pass(stranger), NOW)
    assert check.status is PassStatus.UNKNOWN_KEY
    assert check.kid == key_id(stranger.public_key())
    assert check.claims is None  # unauthenticated claims are never handed out


def test_bad_signature_when_a_holder_extends_their_own_pass() -> None:
    forged = reencode(staff_pass(), {4: int((UNTIL + timedelta(days=365)).timestamp())}, None)
    check = VERIFIER.verify(forged, NOW)
    assert check.status is PassStatus.BAD_SIGNATURE
    assert check.claims is None


def test_not_yet_valid() -> None:
    check = VERIFIER.verify(staff_pass(valid_from=NOW + timedelta(hours=1)), NOW)
    assert check.status is PassStatus.NOT_YET_VALID
    assert check.claims is not None  # authentic: the event can name the pass


def test_expired() -> None:
    text = staff_pass()
    assert VERIFIER.verify(text, UNTIL + timedelta(hours=1)).status is PassStatus.EXPIRED


def test_wrong_site() -> None:
    verifier = PassVerifier(TRUSTED, site="warehouse")
    assert verifier.verify(staff_pass(), NOW).status is PassStatus.WRONG_SITE


def test_a_pass_without_a_site_list_opens_every_site() -> None:
    verifier = PassVerifier(TRUSTED, site="warehouse")
    assert verifier.verify(staff_pass(sites=None), NOW).status is PassStatus.VALID


def test_revoked() -> None:
    verifier = PassVerifier(TRUSTED, site="hq", revoked=frozenset({"0011223344556677"}))
    check = verifier.verify(staff_pass(), NOW)
    assert check.status is PassStatus.REVOKED
    assert verifier.verify(staff_pass(pass_id="8899aabbccddeeff"), NOW).status is PassStatus.VALID


def test_failures_are_reported_in_the_documented_order() -> None:
    expired_wrong_site_revoked = PassVerifier(
        TRUSTED, site="warehouse", revoked=frozenset({"0011223344556677"})
    )
    later = UNTIL + timedelta(days=1)
    assert expired_wrong_site_revoked.verify(staff_pass(), later).status is PassStatus.EXPIRED
    assert expired_wrong_site_revoked.verify(staff_pass(), NOW).status is PassStatus.WRONG_SITE


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (FROM - timedelta(seconds=300), PassStatus.VALID),
        (FROM - timedelta(seconds=301), PassStatus.NOT_YET_VALID),
        (UNTIL + timedelta(seconds=300), PassStatus.VALID),
        (UNTIL + timedelta(seconds=301), PassStatus.EXPIRED),
    ],
)
def test_clock_skew_boundaries(now: datetime, expected: PassStatus) -> None:
    assert VERIFIER.verify(staff_pass(), now).status is expected


def test_no_clock_skew_allowed() -> None:
    strict = PassVerifier(TRUSTED, site="hq", clock_skew_s=0)
    assert strict.verify(staff_pass(), UNTIL).status is PassStatus.VALID
    assert strict.verify(staff_pass(), UNTIL + timedelta(seconds=1)).status is PassStatus.EXPIRED


def test_key_rotation_overlap_then_retirement() -> None:
    old, new = ISSUER_KEY, Ed25519PrivateKey.generate()
    old_pass, new_pass = staff_pass(old), staff_pass(new)
    overlap = load_document(
        trust_document(
            ORG_KEY, org="acme-vn", version=2, public_keys=[old.public_key(), new.public_key()]
        ),
        ORG_KEY.public_key(),
        expected_type="trust",
        current_version=1,
    )
    during = PassVerifier(overlap.keys, site="hq")
    assert during.verify(old_pass, NOW).status is PassStatus.VALID
    assert during.verify(new_pass, NOW).status is PassStatus.VALID
    retired = load_document(
        trust_document(ORG_KEY, org="acme-vn", version=3, public_keys=[new.public_key()]),
        ORG_KEY.public_key(),
        expected_type="trust",
        current_version=overlap.version,
    )
    after = PassVerifier(retired.keys, site="hq")
    assert after.verify(old_pass, NOW).status is PassStatus.UNKNOWN_KEY
    assert after.verify(new_pass, NOW).status is PassStatus.VALID


# Signed documents.


def revocation(version: int, key: Ed25519PrivateKey = ORG_KEY) -> bytes:
    return revocation_document(
        key, org="acme-vn", version=version, pass_ids=["0011223344556677"], issued_at=NOW
    )


def test_a_revocation_list_refuses_the_pass_it_names() -> None:
    document = load_document(
        revocation(4), ORG_KEY.public_key(), expected_type="revocation", current_version=3
    )
    assert isinstance(document, RevocationList)
    assert (document.version, document.org, document.issued_at) == (4, "acme-vn", NOW)
    verifier = PassVerifier(TRUSTED, site="hq", revoked=document.revoked)
    assert verifier.verify(staff_pass(), NOW).status is PassStatus.REVOKED


def test_a_first_document_is_accepted_without_a_current_version() -> None:
    document = load_document(
        revocation(1), ORG_KEY.public_key(), expected_type="revocation", current_version=None
    )
    assert document.revoked == frozenset({"0011223344556677"})


def test_a_document_signed_by_another_key_is_refused() -> None:
    with pytest.raises(DocumentError, match="not the trust anchor"):
        load_document(
            revocation(4, Ed25519PrivateKey.generate()),
            ORG_KEY.public_key(),
            expected_type="revocation",
            current_version=3,
        )


def test_a_tampered_document_has_a_bad_signature() -> None:
    data = bytearray(revocation(4))
    data[-70] ^= 0x01  # inside the signed payload
    with pytest.raises(DocumentError, match="bad signature"):
        load_document(
            bytes(data), ORG_KEY.public_key(), expected_type="revocation", current_version=3
        )


@pytest.mark.parametrize(("version", "current"), [(3, 5), (5, 5)])
def test_an_older_or_equal_version_is_refused(version: int, current: int) -> None:
    with pytest.raises(DocumentError, match=f"version {version} is not newer than {current}"):
        load_document(
            revocation(version),
            ORG_KEY.public_key(),
            expected_type="revocation",
            current_version=current,
        )


def test_a_revocation_list_is_not_accepted_as_a_trust_list() -> None:
    with pytest.raises(DocumentError, match="expected a trust document, got 'revocation'"):
        load_document(revocation(9), ORG_KEY.public_key(), expected_type="trust", current_version=1)


@pytest.mark.parametrize("cut", [1, 10, 64])
def test_a_truncated_document_is_malformed(cut: int) -> None:
    with pytest.raises(DocumentError, match="malformed"):
        load_document(
            revocation(4)[:-cut],
            ORG_KEY.public_key(),
            expected_type="revocation",
            current_version=3,
        )


def test_a_document_round_trips_through_its_encoder() -> None:
    keys = {key_id(ISSUER_KEY.public_key()): ISSUER_KEY.public_key()}
    data = encode_document(TrustList("acme-vn", 7, NOW, keys), ORG_KEY)
    document = load_document(data, ORG_KEY.public_key(), expected_type="trust", current_version=6)
    assert isinstance(document, TrustList)
    assert set(document.keys) == set(keys)
    with pytest.raises(TypeError):
        document.keys[b"12345678"] = ISSUER_KEY.public_key()  # type: ignore[index]


def test_the_list_in_force_offered_again_after_a_restart_raises_no_alert(tmp_path: Path) -> None:
    anchor = tmp_path / "documents.pub"
    anchor.write_bytes(
        ORG_KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    config = parse_config(
        {"kiosk": {"state_dir": str(tmp_path)}, "credentials": {"trust_anchor": str(anchor)}}
    )
    held = revocation(3)
    assert TrustStore.open(config).offer("revocation", held).accepted  # saved in state_dir
    restarted = TrustStore.open(config)
    assert restarted.versions()["revocation"] == 3

    def outcome(document: bytes) -> tuple[bool, str, tuple[str, str] | None]:
        update = restarted.offer("revocation", document)
        data = {"kind": "revocation", "accepted": update.accepted, "reason": update.reason}
        event = WireEvent("e-1", 1, "boot", 0, True, "document", data | {"version": 3})
        return update.accepted, update.reason, alert_for(event)

    resigned = revocation_document(
        ORG_KEY, org="acme-vn", version=3, pass_ids=["0011223344556677"], issued_at=UNTIL
    )
    changed = revocation_document(ORG_KEY, org="acme-vn", version=3, pass_ids=["00" * 8])
    in_force = (True, "version 3 already in force", None)
    assert outcome(held) == in_force  # the retained message after the restart
    assert outcome(resigned) == in_force
    older = "version 2 is not newer than 3"
    assert outcome(revocation(2)) == (
        False,
        older,
        ("document_refused", f"revocation list refused: {older}"),
    )
    refused, reason, alert = outcome(changed)
    assert (refused, alert is not None) == (False, True)
    assert reason.startswith("version 3 differs from the version 3 in force")
    assert restarted.versions()["revocation"] == 3


# Issuing.


def test_keypair_files_private_key_readable_only_by_its_owner(tmp_path: Path) -> None:
    private_path, public_path = generate_keypair(tmp_path / "keys")
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    key = read_private_key(private_path)
    assert key_id(read_public_key(public_path)) == key_id(key.public_key())
    with pytest.raises(FileExistsError):
        generate_keypair(tmp_path / "keys")
    assert read_private_key(private_path).private_bytes_raw() == key.private_bytes_raw()


def test_a_passphrase_protected_key_needs_its_passphrase(tmp_path: Path) -> None:
    private_path, _ = generate_keypair(tmp_path, "org", passphrase=b"correct horse")
    with pytest.raises(ValueError, match="encrypted"):
        read_private_key(private_path)
    read_private_key(private_path, b"correct horse")


def test_issue_refuses_a_pass_that_would_not_verify() -> None:
    with pytest.raises(ValueError, match="subject"):
        staff_pass(subject="Nguyễn Văn A")
    with pytest.raises(ValueError, match="valid_until must be after valid_from"):
        staff_pass(valid_until=FROM)
    with pytest.raises(ValueError, match="timezone-aware"):
        staff_pass(valid_from=datetime(2026, 6, 1))
    with pytest.raises(ValueError, match="kind"):
        staff_pass(kind="vip")


def test_batch_issues_good_rows_and_reports_bad_ones_by_line() -> None:
    csv_text = (
        "subject,kind,valid_from,valid_until,sites,meeting\n"
        "# visitors for the board meeting\n"
        "v-001,visitor,2026-06-30T08:00:00+07:00,2026-06-30,hq,mtg-board\n"
        "v-002,vip,2026-06-30,2026-06-30,hq,\n"
        "v-003,visitor,2026-06-30,2026-06-29,hq,\n"
        "s-004,staff,2026-06-01,2026-12-31,*,\n"
        "s-005,staff,2026-06-01,2026-12-31,,\n"
        "v-001,visitor,2026-06-30,2026-06-30,hq,\n"
        "s-006,staff,yesterday,2026-12-31,hq;branch-2,\n"
    )
    result = issue_batch(ISSUER_KEY, csv_text, issuer="acme-vn", zone=UTC, issued_at=NOW)
    assert [subject for subject, _ in result.passes] == ["v-001", "s-004"]
    assert [error.split(":")[0] for error in result.errors] == [
        "line 4",
        "line 5",
        "line 7",
        "line 8",
        "line 9",
    ]
    visitor = VERIFIER.verify(result.passes[0][1], datetime(2026, 6, 30, 16, 59, tzinfo=UTC))
    assert visitor.status is PassStatus.VALID
    assert visitor.claims is not None and visitor.claims.meeting == "mtg-board"
    assert visitor.claims.valid_until == datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC)
    everywhere = PassVerifier(TRUSTED, site="warehouse")
    assert everywhere.verify(result.passes[1][1], NOW).status is PassStatus.VALID


@pytest.mark.parametrize(
    ("cell", "sites"),
    [("hq,branch-2", ("hq", "branch-2")), ("hq; branch-2", ("hq", "branch-2")), ("*", None)],
)
def test_sites_are_separated_by_commas_or_semicolons(cell: str, sites: tuple[str] | None) -> None:
    assert parse_sites(cell) == sites


def test_batch_dates_are_the_sites_days_and_an_empty_valid_from_is_the_time_of_issue() -> None:
    csv_text = 'subject,kind,valid_from,valid_until,sites\nv-1,visitor,,2026-07-01,"hq,branch-2"\n'
    result = issue_batch(ISSUER_KEY, csv_text, issuer="acme-vn", zone=HANOI, issued_at=NOW)
    check = VERIFIER.verify(result.passes[0][1], NOW)
    assert check.claims is not None and check.status is PassStatus.VALID
    assert check.claims.valid_from == NOW
    assert check.claims.valid_until == datetime(2026, 7, 1, 16, 59, 59, tzinfo=UTC)
    assert check.claims.sites == ("hq", "branch-2")


def test_the_register_keeps_every_pass_and_finds_a_holders_current_ones(tmp_path: Path) -> None:
    path = tmp_path / "issued-passes.csv"
    expired = staff_pass(pass_id="00000000000000aa", valid_until=NOW - timedelta(hours=2))
    ids = ["00000000000000b0", "00000000000000b1"]
    current = [staff_pass(pass_id=pass_id) for pass_id in ids]
    register.append(path, [decode_pass(expired).claims])
    register.append(path, [decode_pass(text).claims for text in current])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    issued = register.read(path)
    assert [entry.pass_id for entry in issued] == [
        "00000000000000aa",
        *(f"00000000000000b{n}" for n in range(2)),
    ]
    assert register.pass_ids_of(issued, "p-3f9a1c7e2b", NOW) == [
        "00000000000000b0",
        "00000000000000b1",
    ]
    assert register.pass_ids_of(issued, "p-other", NOW) == []
    with path.open("a", encoding="utf-8") as file:
        file.write("torn,row\n")
    with pytest.raises(ValueError, match=r"issued-passes\.csv:5: damaged row"):
        register.read(path)


def test_batch_needs_the_columns_in_its_header() -> None:
    with pytest.raises(ValueError, match="line 1: header lacks sites"):
        issue_batch(ISSUER_KEY, "subject,kind,valid_from,valid_until\n", issuer="acme-vn", zone=UTC)


def test_badge_page_shows_the_code_kind_and_validity_but_no_name() -> None:
    page = badge_page(
        visitor_pass(), kind="visitor", valid_until=UNTIL, subject="v-8d21c4a9", zone=HANOI
    )
    assert "<svg" in page and "Visitor" in page and "Khách" in page
    assert "2026-07-30 15:00 +07" in page  # the site's local time
    assert "v-8d21c4a9" in page


def test_inspect_shows_claims_and_the_verdict_as_json() -> None:
    report = inspect(staff_pass(), VERIFIER, UNTIL + timedelta(days=1))
    assert report["status"] == "expired"
    assert report["claims"]["pass_id"] == "0011223344556677"
    assert report["claims"]["valid_until"] == UNTIL.isoformat()
    assert json.loads(json.dumps(report)) == report
    assert inspect(staff_pass(), None, NOW)["status"] is None
    assert inspect(b"S-0001", VERIFIER, NOW)["status"] == "not_a_pass"


def test_base45_matches_rfc_9285() -> None:
    assert b45encode(b"AB") == "BB8"
    assert b45encode(b"Hello!!") == "%69 VD92EX0"
    assert b45encode(b"base-45") == "UJCLQE7W581"
    assert b45decode("QED8WEX0") == b"ietf!"
    for bad in ("GGW", "A", "ab", "::"):
        with pytest.raises(ValueError):
            b45decode(bad)
