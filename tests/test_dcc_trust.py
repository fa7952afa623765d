"""The DCC trust list: imported from a gateway's JSON list, signed, loaded only when genuine
and newer; ``kiosk dcc verify`` and ``kiosk dcc trust import``."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import load_der_x509_certificate

from kiosk.cli.main import cli
from kiosk.credentials.dcc import Dsc, key_id, verify
from kiosk.credentials.dcc.trustlist import (
    DccTrustStore,
    encode_trust_list,
    load_trust_list,
    parse_gateway_list,
)
from kiosk.credentials.documents import (
    MAX_DOCUMENT_BYTES,
    DocumentError,
    RevocationList,
    encode_document,
)
from kiosk.credentials.issuing import generate_keypair
from tests.dcc_support import ISSUED, make_code, make_dsc

NOW = datetime(2026, 3, 2, tzinfo=UTC)
AT = (ISSUED + timedelta(days=1)).isoformat()
Signers = list[tuple[ec.EllipticCurvePrivateKey, bytes, str]]  # key, DSC (DER), country


@pytest.fixture(scope="module")
def signers() -> Signers:
    made = []
    for country in ("VN", "DE", "FR"):
        key = ec.generate_private_key(ec.SECP256R1())
        made.append((key, make_dsc(key, country=country), country))
    return made


def gateway_json(signers: Signers) -> bytes:
    entries: list[dict[str, str]] = [
        {
            "certificateType": "DSC",
            "country": country,
            "kid": base64.b64encode(key_id(der)).decode(),
            "rawData": base64.b64encode(der).decode(),
        }
        for _, der, country in signers
    ]
    entries.append({"certificateType": "CSCA", "country": "VN", "rawData": "AAAA"})
    entries.append({"country": "XX", "kid": "AAAA", "certificate": "bm90IGEgY2VydA=="})
    return json.dumps(entries).encode()


def test_gateway_list_filtered_by_country(signers: Signers) -> None:
    dscs, skipped = parse_gateway_list(gateway_json(signers))
    assert [dsc.country for dsc in dscs] == ["VN", "DE", "FR"] and len(skipped) == 1
    vn, skipped = parse_gateway_list(gateway_json(signers), frozenset({"VN"}))
    assert [dsc.der for dsc in vn] == [signers[0][1]] and not skipped
    for bad in (b"{", b"{}", b"[1]"):
        with pytest.raises(ValueError):
            parse_gateway_list(bad)


def test_signed_list_round_trip_and_refusals(signers: Signers) -> None:
    site = Ed25519PrivateKey.generate()
    dscs = [Dsc.from_der(der) for _, der, _ in signers]
    v2 = encode_trust_list(dscs, org="acme", version=2, issued_at=NOW, signing_key=site)
    loaded = load_trust_list(v2, site.public_key(), current_version=1)
    assert (loaded.org, loaded.version, len(loaded.dscs)) == ("acme", 2, 3)
    key, der, _ = signers[1]
    assert verify(make_code(key, der), loaded.dscs, NOW).valid

    forger = Ed25519PrivateKey.generate()
    forged = encode_trust_list(dscs, org="acme", version=9, issued_at=NOW, signing_key=forger)
    revocation = encode_document(RevocationList("acme", 5, NOW, frozenset()), site)
    for data, why in (
        (v2, "not newer"),  # replayed
        (forged, "not the trust anchor"),
        (revocation, "expected a dcc-trust document"),
        (v2[:-1] + bytes([v2[-1] ^ 1]), "bad signature"),
        (bytes(MAX_DOCUMENT_BYTES + 1), "larger than"),
    ):
        with pytest.raises(DocumentError, match=why):
            load_trust_list(data, site.public_key(), current_version=2)
    with pytest.raises(ValueError, match="1 to"):
        encode_trust_list([], org="acme", version=3, issued_at=NOW, signing_key=site)


def test_store_keeps_the_newest_and_saves_it(signers: Signers, tmp_path: Path) -> None:
    site = Ed25519PrivateKey.generate()
    dscs = [Dsc.from_der(der) for _, der, _ in signers]
    v1 = encode_trust_list(dscs[:1], org="acme", version=1, issued_at=NOW, signing_key=site)
    v2 = encode_trust_list(dscs, org="acme", version=2, issued_at=NOW, signing_key=site)
    shipped, saved = tmp_path / "dcc-trust.cose", tmp_path / "state" / "dcc-trust.cose"
    saved.parent.mkdir()
    shipped.write_bytes(v1)
    store = DccTrustStore(site.public_key(), saved)
    assert len(store.dscs) == 0
    store.load(shipped)
    assert store.version == 1 and not saved.exists()
    store.offer(v2)
    with pytest.raises(DocumentError):
        store.offer(v1)
    assert store.version == 2 and saved.read_bytes() == v2
    restarted = DccTrustStore(site.public_key(), saved)
    restarted.load(shipped)
    assert restarted.version == 2 and len(restarted.dscs) == 3


def run(*args: str | Path, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(arg) for arg in args], input=stdin)
    return result.exit_code, result.output


def test_cli_verify(signers: Signers, tmp_path: Path) -> None:
    key, der, _ = signers[0]
    pem = tmp_path / "dsc.pem"
    pem.write_bytes(load_der_x509_certificate(der).public_bytes(Encoding.PEM))
    good, other = make_code(key, der), make_code(signers[1][0], signers[1][1])
    code, output = run("dcc", "verify", "--dsc", pem, "--at", AT, good)
    assert code == 0
    assert json.loads(output) == {
        "valid": True,
        "reason": "ok",
        "type": "v",
        "country": "VN",
        "step": None,
    }
    code, output = run("dcc", "verify", "--dsc", pem, "--at", AT, good, other)
    assert code == 1
    assert [json.loads(line)["reason"] for line in output.splitlines()] == [
        "ok",
        "dcc_not_trusted",
    ]
    gateway = tmp_path / "gateway.json"
    gateway.write_bytes(gateway_json(signers))
    code, output = run("dcc", "verify", "--trust", gateway, "--at", AT, stdin=f"{good}\n{other}\n")
    assert code == 0 and output.count('"valid": true') == 2
    late = (ISSUED + timedelta(days=400)).isoformat()
    code, output = run("dcc", "verify", "--dsc", pem, "--at", late, good)
    assert code == 1 and json.loads(output)["step"] == "expiry"
    assert run("dcc", "verify", good)[0] == 64
    assert run("dcc", "verify", "--dsc", pem, "--at", "yesterday", good)[0] == 64


def test_cli_trust_import_then_verify(signers: Signers, tmp_path: Path) -> None:
    key_path, anchor = generate_keypair(tmp_path, "documents")
    gateway = tmp_path / "gateway.json"
    gateway.write_bytes(gateway_json(signers))
    out = tmp_path / "dcc-trust.cose"
    code, output = run(
        "dcc", "trust", "import", gateway, "--key", key_path, "--org", "acme",
        "--version", "1", "--country", "VN", "--country", "DE", "--anchor", anchor, "--out", out,
    )  # fmt: skip
    assert code == 0, output
    assert "with 2 DSCs" in output and "site/dcc-trust" in output
    vn, fr = make_code(*signers[0][:2]), make_code(*signers[2][:2])
    code, output = run("dcc", "verify", "--trust", out, "--anchor", anchor, "--at", AT, vn, fr)
    assert code == 1
    assert [json.loads(line)["valid"] for line in output.splitlines()] == [True, False]
    other_anchor = generate_keypair(tmp_path, "other")[1]
    code, _ = run("dcc", "verify", "--trust", out, "--anchor", other_anchor, "--at", AT, vn)
    assert code == 65
    code, output = run(
        "dcc", "trust", "import", gateway, "--key", key_path, "--org", "acme",
        "--version", "2", "--anchor", other_anchor, "--out", tmp_path / "x.cose",
    )  # fmt: skip
    assert code == 65 and not (tmp_path / "x.cose").exists()
