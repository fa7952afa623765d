"""Issue 14, central side: the health declaration page /s/<site> (Flask's test client), the
declarations table on SQLite and PostgreSQL, the publisher's signed snapshot and delta through a
real mosquitto, and the kiosk's verification and merge of the document."""

from __future__ import annotations

import dataclasses
import io
import logging
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cbor2
import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from flask import Flask
from flask.testing import FlaskClient

from kiosk.central import Store
from kiosk.central.cli import PASSWORD_ENV, run_central
from kiosk.central.declarations import store as declarations
from kiosk.central.declarations.form import IdentityError, IdentityKind, phone_digits, subject_of
from kiosk.central.declarations.publisher import BrokerSender, DeclarationsPublisher
from kiosk.central.ingest import IngestSettings
from kiosk.central.settings import DeclarationsSection
from kiosk.central.web import create_central_app
from kiosk.central.web.declare import MAX_PHOTO_BYTES
from kiosk.credentials.cose import encode_sign1
from kiosk.credentials.declarations import (
    MAX_DECLARATIONS_BYTES,
    Declaration,
    DeclarationStatus,
    accepts,
    encode_declarations,
    load_declarations,
    merge,
)
from kiosk.credentials.documents import DocumentError
from kiosk.credentials.issuing import issue_pass
from kiosk.credentials.national import parse_national_qr
from kiosk.credentials.sitecode import site_checkin_payload
from kiosk.decide.privacy import Pseudonymizer
from tests.broker import Broker, Collector, mqtt_client
from tests.central_web_support import ADMIN, SITE, config, write_users
from tests.test_imagesize import png_header

pytest_plugins = ("tests.central_fixtures",)

SALT = b"declaration-test-salt-0123456789"
KEY = Ed25519PrivateKey.generate()
PC_COVID = "PC-COVID|012345678|TRAN THI B|12/03/1985|Nữ|Hà Nội|KBYT|01/10/2021 08:30"
NOW_MS = 1_760_000_000_000
ANSWERED = {"contact": "no", "travel": "no", "consent": "yes", "lang": "vi"}


@pytest.fixture
def salt_file(tmp_path: Path) -> Path:
    path = tmp_path / "salt"
    path.write_bytes(SALT)
    path.chmod(0o600)
    return path


@pytest.fixture
def make_app(tmp_path: Path, store: Store, salt_file: Path) -> Iterator[Any]:
    def make(**settings: Any) -> Flask:
        central = config(tmp_path, salt_file=str(salt_file))
        central = dataclasses.replace(central, declarations=DeclarationsSection(**settings))
        write_users(tmp_path / "users.toml", **{ADMIN: "admin"})
        app = create_central_app(store, central, now_ms=lambda: NOW_MS + 123)
        app.config["TESTING"] = True
        return app

    yield make


@pytest.fixture
def client(make_app: Any) -> FlaskClient:
    return make_app().test_client()


def token(client: FlaskClient, path: str = f"/s/{SITE}") -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found[1]


def declare(client: FlaskClient, **form: Any) -> Any:
    data = {**ANSWERED, "csrf_token": token(client), "kind": "badge", "value": "B-1001"} | form
    return client.post(f"/s/{SITE}", data=data)


def stored(store: Store) -> list[tuple[Any, ...]]:
    def work(cur: Any) -> list[tuple[Any, ...]]:
        cur.execute(
            "SELECT site, subject, declared_at_ms, status, answers FROM declarations ORDER BY id"
        )
        return [tuple(row) for row in cur.fetchall()]

    rows: list[tuple[Any, ...]] = store.transaction(work)
    return rows


# --- the page ----------------------------------------------------------------------------------


def test_the_form_is_vietnamese_by_default_and_english_on_request(client: FlaskClient) -> None:
    page = client.get(f"/s/{SITE}").get_data(as_text=True)
    assert "Khai báo y tế" in page and "Mất vị giác hoặc khứu giác" in page
    assert 'lang="vi"' in page and f"/s/{SITE}/privacy" in page
    english = client.get(f"/s/{SITE}?lang=en").get_data(as_text=True)
    assert "Loss of taste or smell" in english and 'lang="en"' in english
    assert 'name="lang" value="en"' in english  # the result comes back in English too


def test_the_posters_address_is_the_page(client: FlaskClient) -> None:
    url = urlsplit(site_checkin_payload("https://kiosk.example.vn", SITE, "gate-1"))
    answer = client.get(f"{url.path}?{url.query}")
    assert answer.status_code == 200 and 'id="submit"' in answer.get_data(as_text=True)


def test_a_declaration_without_symptoms_is_ok_and_keeps_no_answers(
    client: FlaskClient, store: Store
) -> None:
    answer = declare(client)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "Bình thường" in page and 'id="declared"' in page
    assert "Result: OK" in page and "Scan your code at the entrance" in page  # both languages
    # 2025-10-09 08:53:20 UTC is 15:53 in Asia/Ho_Chi_Minh; valid 24 h
    assert "15:53 09/10/2025" in page and "15:53 10/10/2025" in page
    subject = Pseudonymizer(SALT).subject("B-1001")
    assert stored(store) == [(SITE, subject, NOW_MS, 0, None)]
    assert "B-1001" not in page


@pytest.mark.parametrize(
    ("answers", "status", "kept"),
    [
        ({"symptom": ["cough", "taste"]}, 1, "cough,taste,travel"),
        ({"contact": "yes"}, 1, "contact,travel"),
        ({}, 0, "travel"),  # travel alone is not a reason to refer
    ],
)
def test_any_symptom_or_contact_refers_and_the_answers_are_kept_when_configured(
    make_app: Any, store: Store, answers: dict[str, Any], status: int, kept: str
) -> None:
    client = make_app(keep_answers=True).test_client()
    page = declare(client, travel="yes", lang="en", **answers).get_data(as_text=True)
    assert ("See the guard" in page) is bool(status)
    assert [(row[3], row[4]) for row in stored(store)] == [(status, kept)]


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"consent": ""}, "Vui lòng trả lời"),
        ({"contact": ""}, "Vui lòng trả lời"),
        ({"kind": "email"}, "Vui lòng trả lời"),
        ({"value": "not a badge!"}, "Mã thẻ không hợp lệ"),
        ({"kind": "pass", "value": "KP1:XYZ"}, "Đây không phải thẻ"),
        ({"kind": "national", "value": "hello"}, "Không đọc được"),
        ({"kind": "phone", "value": "12"}, "Số điện thoại không hợp lệ"),
    ],
)
def test_an_incomplete_or_unreadable_declaration_is_refused_and_not_stored(
    client: FlaskClient, store: Store, form: dict[str, str], error: str
) -> None:
    answer = declare(client, **form)
    assert answer.status_code == 400
    assert error in answer.get_data(as_text=True)
    assert stored(store) == []


def test_a_photo_of_a_pass_from_the_phone_camera_is_decoded_here(
    client: FlaskClient, store: Store
) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    text = issue_pass(
        KEY,
        subject="visitor-7",
        kind="visitor",
        valid_from=start,
        valid_until=start + timedelta(days=1),
        sites=None,
        issuer="office",
    )
    image = io.BytesIO()
    segno.make_qr(text).save(image, kind="png", scale=6)
    photo = (io.BytesIO(image.getvalue()), "IMG_0001.jpg")
    answer = declare(client, kind="pass", value="", photo=photo)
    assert answer.status_code == 200
    assert stored(store)[0][1] == Pseudonymizer(SALT).subject("pass:visitor-7")
    refused = declare(client, kind="pass", photo=(io.BytesIO(b"not an image"), "a.jpg"))
    assert refused.status_code == 400
    assert "Không đọc được mã QR trong ảnh" in refused.get_data(as_text=True)
    assert len(stored(store)) == 1


def test_a_photo_too_large_is_refused_before_it_is_decoded(
    client: FlaskClient, store: Store
) -> None:
    bomb = png_header(25_000, 25_000)  # a few hundred bytes declaring 625 megapixels
    refused = declare(client, kind="pass", photo=(io.BytesIO(bomb), "bomb.png"))
    assert refused.status_code == 400
    assert "Ảnh quá lớn" in refused.get_data(as_text=True)
    heavy = b"\xff\xd8" + bytes(MAX_PHOTO_BYTES)
    refused = declare(client, kind="pass", photo=(io.BytesIO(heavy), "heavy.jpg"))
    assert refused.status_code == 400
    assert "Ảnh quá lớn" in refused.get_data(as_text=True)
    assert stored(store) == []


def test_post_only_with_the_csrf_token(client: FlaskClient, store: Store) -> None:
    data = {**ANSWERED, "kind": "badge", "value": "B-1001"}
    assert client.post(f"/s/{SITE}", data=data).status_code == 400
    assert client.post(f"/s/{SITE}", data={**data, "csrf_token": "forged"}).status_code == 400
    assert stored(store) == []


def test_unknown_site_is_404_and_a_site_without_salt_is_not_set_up(client: FlaskClient) -> None:
    assert client.get("/s/nowhere").status_code == 404
    answer = client.get("/s/depot")  # configured without subject_salt_file
    assert answer.status_code == 503
    assert "chưa được cài đặt" in answer.get_data(as_text=True)


def test_declarations_are_rate_limited_per_address(client: FlaskClient, store: Store) -> None:
    for _ in range(30):
        assert declare(client).status_code == 200
    refused = declare(client)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert len(stored(store)) == 30
    other = client.post(
        f"/s/{SITE}",
        data={**ANSWERED, "csrf_token": token(client), "kind": "badge", "value": "B-2"},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert other.status_code == 200


def test_the_badge_or_phone_never_reaches_the_logs(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        declare(client, value="B-77231")
        declare(client, kind="phone", value="0912 345 678")
        declare(client, kind="phone", value="1234")
    assert caplog.messages == ["declaration at site hq: ok"] * 2
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args}" for r in caplog.records)
    for secret in ("B-77231", "0912", "345 678", "84912345678", "1234"):
        assert secret not in logged


def test_the_page_session_gives_nothing_on_the_dashboard(client: FlaskClient) -> None:
    csrf = token(client)  # the declaration page's session cookie, with its CSRF token
    for path in ("/", "/alerts", "/inside", "/roster", "/reports", "/commands"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/login" in answer.headers["Location"], path
    for path in ("/commands/lockdown", "/alerts/ack", "/roster"):
        posted = client.post(path, data={"csrf_token": csrf, "site": SITE})
        assert posted.status_code == 302 and "/login" in posted.headers["Location"], path


def test_the_privacy_notice_is_linked_and_served(make_app: Any) -> None:
    notice = make_app().test_client().get(f"/s/{SITE}/privacy")
    assert notice.status_code == 200 and "PRIVACY NOTICE" in notice.get_data(as_text=True)
    elsewhere = make_app(privacy_url="https://example.vn/privacy").test_client()
    assert elsewhere.get(f"/s/{SITE}/privacy").headers["Location"] == "https://example.vn/privacy"


# --- subjects as the kiosks compute them -----------------------------------------------------


def test_subjects_are_the_kiosks() -> None:
    pseudonym = Pseudonymizer(SALT)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    text = issue_pass(
        KEY,
        subject="visitor-42",
        kind="visitor",
        valid_from=start,
        valid_until=start + timedelta(days=1),
        sites=None,
        issuer="office",
    )
    assert subject_of(IdentityKind.PASS, text, SALT) == pseudonym.subject("pass:visitor-42")
    assert subject_of(IdentityKind.BADGE, " B-1 ", SALT) == pseudonym.subject("B-1")
    national = parse_national_qr(PC_COVID.encode())
    assert national is not None
    assert subject_of(IdentityKind.NATIONAL, PC_COVID, SALT) == national.subject_hash(SALT)
    # a visitor pass issued with the holder reference phone:<digits> is the same subject
    visitor_pass = issue_pass(
        KEY,
        subject="phone:84912345678",
        kind="visitor",
        valid_from=start,
        valid_until=start + timedelta(days=1),
        sites=None,
        issuer="office",
    )
    phone = subject_of(IdentityKind.PASS, visitor_pass, SALT)
    for typed in ("0912 345 678", "+84 912.345.678", "0084912345678", "(091) 2345-678"):
        assert subject_of(IdentityKind.PHONE, typed, SALT) == phone
    with pytest.raises(IdentityError):
        phone_digits("+84 91")


# --- the table ---------------------------------------------------------------------------------


def test_the_table_keeps_the_newest_per_subject_and_prunes(store: Store) -> None:
    ok, refer = DeclarationStatus.OK, DeclarationStatus.REFER
    declarations.record(store, SITE, "s-a", 1_000_000, ok, None)
    declarations.record(store, SITE, "s-a", 2_000_000, refer, "cough")
    declarations.record(store, SITE, "s-b", 500_000, ok, None)
    declarations.record(store, "depot", "s-c", 2_000_000, ok, None)
    entries, last = declarations.entries_after(store, SITE, 0, 900_000)
    at = datetime.fromtimestamp(2000, UTC)
    assert entries == [("s-a", at, refer)] and last == 3
    assert declarations.entries_after(store, SITE, 2, 0) == (
        [("s-b", datetime.fromtimestamp(500, UTC), ok)],
        3,
    )
    assert declarations.entries_after(store, SITE, 3, 0) == ([], 3)
    assert declarations.document_state(store, SITE) is None
    state = declarations.DocumentState(5, 4, 3, 77)
    declarations.save_document_state(store, SITE, state)
    declarations.save_document_state(store, SITE, dataclasses.replace(state, version=6))
    assert declarations.document_state(store, SITE) == dataclasses.replace(state, version=6)
    assert declarations.prune(store, 1_500_000) == 2
    assert [row[1] for row in stored(store)] == ["s-a", "s-c"]


# --- the document ------------------------------------------------------------------------------

T0 = datetime(2025, 10, 9, 8, 0, tzinfo=UTC)
OK, REFER = DeclarationStatus.OK, DeclarationStatus.REFER


def document(
    version: int = 3, kind: Any = "snapshot", base: int | None = None, **options: Any
) -> bytes:
    values: dict[str, Any] = {
        "org": "office",
        "site": SITE,
        "version": version,
        "issued_at": T0,
        "kind": kind,
        "base": version if base is None else base,
        "entries": [("s-0123456789abcdef0123", T0 - timedelta(hours=1), OK)],
        "signing_key": KEY,
    }
    return encode_declarations(**(values | options))


def hand_signed(**fields: Any) -> bytes:
    """A document signed with the anchor whose payload the encoder would refuse to build."""
    payload = {"typ": "declarations", "org": "o", "site": SITE, "ver": 2, "iat": 1}
    payload |= {"kind": "snapshot", "base": 2, "entries": []} | fields
    return encode_sign1(KEY, cbor2.dumps(payload))


def load(data: bytes | bytearray, *, site: str = SITE, now: datetime = T0) -> Any:
    return load_declarations(bytes(data), KEY.public_key(), site=site, now=now)


def test_a_document_verifies_and_the_merge_rule_keeps_the_newest_valid_declaration() -> None:
    snapshot = load(
        document(
            entries=[("s-a", T0 - timedelta(hours=2), OK), ("s-b", T0 - timedelta(hours=30), OK)]
        )
    )
    assert (snapshot.kind, snapshot.version, snapshot.base, snapshot.org) == (
        "snapshot",
        3,
        3,
        "office",
    )
    delta = load(
        document(5, "delta", 3, entries=[("s-a", T0 - timedelta(hours=1), REFER), ("n-c", T0, OK)])
    )
    assert accepts(snapshot, None, None) and accepts(snapshot, 2, 9)
    assert not accepts(snapshot, 3, None)  # replayed: not newer than the snapshot held
    assert accepts(delta, 3, None) and accepts(delta, 3, 4)
    assert not accepts(delta, 3, 5) and not accepts(delta, 2, None)  # older, or another base
    merged = merge(snapshot.entries, delta.entries, now=T0, validity=timedelta(hours=24))
    assert merged == {
        "s-a": Declaration(T0 - timedelta(hours=1), REFER),
        "n-c": Declaration(T0, OK),
    }  # s-b is older than the validity


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (document(signing_key=Ed25519PrivateKey.generate()), "not the trust anchor"),
        (document()[:-1] + bytes([document()[-1] ^ 1]), "bad signature"),
        (b"\x00" * (MAX_DECLARATIONS_BYTES + 1), "larger than"),
        (document(issued_at=T0 + timedelta(hours=1)), "in the future"),
        (document(site="depot"), "not 'hq'"),
        (
            encode_sign1(KEY, cbor2.dumps({"typ": "revocation", "ver": 1})),
            "expected a declarations",
        ),
        (hand_signed(base=1), "base is its own version"),
        (hand_signed(entries=[["s-a", 1, 7]]), "bad declared_at or status"),
        (hand_signed(entries=[["not a subject", 1, 0]]), "not a token"),
    ],
)
def test_forged_foreign_future_and_oversized_documents_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(DocumentError, match=why):
        load(data)


# --- the publisher through mosquitto ---------------------------------------------------------


def test_a_new_declaration_reaches_the_broker_as_a_signed_delta_within_a_second(
    tmp_path: Path, store: Store, broker: Broker
) -> None:
    now = datetime.now(UTC)
    validity = timedelta(hours=24)
    declarations.record(
        store, SITE, "s-valid", int((now - timedelta(hours=1)).timestamp()) * 1000, OK, None
    )
    declarations.record(
        store, SITE, "s-stale", int((now - timedelta(hours=25)).timestamp()) * 1000, OK, None
    )
    central = dataclasses.replace(config(tmp_path), declarations=DeclarationsSection(org="office"))
    settings = IngestSettings(
        host=broker.host,
        port=broker.port,
        client_id="central-test",
        username="central",
        password=broker.password("central"),
    )
    kiosk = Collector(mqtt_client(broker, "central"))
    kiosk.subscribe(f"kiosk/v1/{SITE}/site/#")
    sender = BrokerSender(settings)
    publisher = DeclarationsPublisher(store, central, KEY, sender, connection=sender)
    publisher.start()
    try:
        first = kiosk.get(10)
        assert first.topic == f"kiosk/v1/{SITE}/site/declarations" and first.qos == 1
        snapshot = load(first.payload, now=datetime.now(UTC))
        assert set(snapshot.entries) == {"s-valid"}
        empty = load(kiosk.get().payload, now=datetime.now(UTC))
        assert (empty.kind, empty.base, dict(empty.entries)) == ("delta", snapshot.version, {})

        declarations.record(store, SITE, "s-new", int(time.time()) * 1000, REFER, None)
        message = kiosk.get(5)
        assert message.topic == f"kiosk/v1/{SITE}/site/declarations-delta"
        delta = load(message.payload, now=datetime.now(UTC))
        assert accepts(delta, snapshot.version, empty.version)
        merged = merge(snapshot.entries, delta.entries, now=datetime.now(UTC), validity=validity)
        assert set(merged) == {"s-valid", "s-new"} and merged["s-new"].status is REFER

        late = Collector(mqtt_client(broker, "central"))  # a kiosk that was offline
        late.subscribe(f"kiosk/v1/{SITE}/site/+")
        retained = {m.topic.rsplit("/", 1)[1]: m for m in (late.get(), late.get())}
        assert all(m.retain for m in retained.values())
        caught_up = [
            load(retained[leaf].payload, now=datetime.now(UTC)).entries
            for leaf in ("declarations", "declarations-delta")
        ]
        assert merge(*caught_up, now=datetime.now(UTC), validity=validity) == merged
    finally:
        publisher.stop()
    restarted = DeclarationsPublisher(store, central, KEY, lambda topic, payload: True)
    restarted.poll()  # a restart builds a new snapshot, newer than every document before it
    state = declarations.document_state(store, SITE)
    assert state is not None and state.base > delta.version


def test_kiosk_central_run_publishes_the_sites_documents(
    tmp_path: Path, broker: Broker, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "documents.pem"
    key_file.write_bytes(KEY.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    central = dataclasses.replace(
        config(tmp_path), declarations=DeclarationsSection(signing_key_file=str(key_file))
    )
    monkeypatch.setenv(PASSWORD_ENV, broker.password("central"))
    settings = IngestSettings(host=broker.host, port=broker.port, username="central")
    kiosk = Collector(mqtt_client(broker, "central"))
    kiosk.subscribe("kiosk/v1/+/site/declarations")
    stop = threading.Event()
    runner = threading.Thread(
        target=lambda: run_central(settings, sqlite_url, stop, stats_every_s=0.1, reports=central)
    )
    runner.start()
    try:
        sites = {kiosk.get(10).topic.split("/")[2] for _ in range(2)}
    finally:
        stop.set()
        runner.join(10)
    assert sites == {SITE, "depot"}
