"""The DCC trust list over a real broker: a kiosk takes the signed list retained on
``kiosk/v1/<site>/site/dcc-trust`` and then trusts its signers; a forged or older list is
refused (a ``document`` event and an alert) and the list in force kept; the accepted list
survives a restart without the broker's copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.credentials.allowlist import CredentialStatus
from kiosk.credentials.dcc import Dsc
from kiosk.credentials.dcc.trustlist import encode_trust_list
from kiosk.mqtt.protocol import KioskTopics, Leaf
from kiosk.run.engine import Kiosk
from tests.broker import Broker, Collector, mqtt_client
from tests.dcc_support import ISSUED, load_vector, make_dsc, vectors_dir
from tests.support import in_ci, wait_until
from tests.test_site import SITE, kiosk_config, online, write_pem

ROOT = vectors_dir()
# Missing vectors skip these tests on a developer's machine and fail them under CI.
pytestmark = pytest.mark.skipif(
    ROOT is None and not in_ci(), reason="the EU DCC test vectors are missing"
)

VACCINATED = "GR/1.json"  # valid at its clock: 2 of 2 doses, the last 109 days before


def documents(kiosk: Kiosk) -> list[tuple[bool, int | None, str]]:
    """The kiosk's ``document`` events about the DCC trust list, oldest first."""
    events = kiosk.event_log.recent(20, type="document")
    return [
        (e.data["accepted"], e.data["version"], e.data["reason"])
        for e in events
        if e.data["kind"] == "dcc-trust"
    ]


def test_a_retained_dcc_trust_list_is_used_refusals_keep_it_and_a_restart_keeps_it(
    tmp_path: Path, broker: Broker
) -> None:
    assert ROOT is not None
    vaccinated = load_vector(ROOT / VACCINATED)
    assert vaccinated.certificate is not None
    code = vaccinated.text.encode()
    anchor = Ed25519PrivateKey.generate()
    greek = Dsc.from_der(vaccinated.certificate)
    other = Dsc.from_der(make_dsc(ec.generate_private_key(ec.SECP256R1())))

    def signed(version: int, dsc: Dsc, key: Ed25519PrivateKey = anchor) -> bytes:
        return encode_trust_list(
            [dsc], org="org", version=version, issued_at=ISSUED, signing_key=key
        )

    config: Any = kiosk_config(
        tmp_path / "k1",
        broker,
        "k1",
        credentials={"trust_anchor": write_pem(tmp_path / "anchor.pem", anchor), "allowlist": ""},
        dcc={"enabled": True},
    )
    central = mqtt_client(broker, "central")
    alerts = Collector(mqtt_client(broker, "central", client_id="alerts"))
    alerts.subscribe(KioskTopics("s1", "k1").topic(Leaf.ALERTS))

    def status(kiosk: Kiosk) -> CredentialStatus:
        check = kiosk.entrance.checker.check(code, vaccinated.clock, too_large=False)
        return check.status

    with online(config, broker) as door:  # no list yet: nobody's signer is trusted
        assert status(door.kiosk) is CredentialStatus.DCC_NOT_TRUSTED
        assert documents(door.kiosk) == []

    topic = SITE.topic(Leaf.DCC_TRUST)
    genuine = signed(2, greek)
    assert central.publish_acked(topic, genuine, retain=True) == 0
    with online(config, broker) as door:  # the retained list arrives when the kiosk connects
        wait_until(lambda: documents(door.kiosk) == [(True, 2, "accepted")], timeout=15)
        assert status(door.kiosk) is CredentialStatus.VALID

        forged = signed(9, other, Ed25519PrivateKey.generate())
        assert central.publish_acked(topic, forged, retain=True) == 0
        alert = json.loads(alerts.get(timeout=15).payload)
        assert alert["alert"] == "document_refused"
        assert alert["detail"].startswith("dcc-trust list refused: ")
        assert "not the trust anchor" in alert["detail"]
        assert central.publish_acked(topic, signed(1, other), retain=True) == 0  # older
        assert central.publish_acked(topic, b"", retain=True) == 0  # cleared: ignored
        wait_until(lambda: len(documents(door.kiosk)) == 3, timeout=15)
        refusals = documents(door.kiosk)[1:]
        assert [(accepted, version) for accepted, version, _ in refusals] == [
            (False, None),
            (False, None),
        ]
        assert "not newer than 2" in refusals[1][2]
        assert status(door.kiosk) is CredentialStatus.VALID  # the list in force stays

    saved = tmp_path / "k1" / "dcc-trust.cose"
    assert saved.read_bytes() == genuine
    with online(config, broker) as door:  # the broker holds no list now: the saved copy
        assert status(door.kiosk) is CredentialStatus.VALID
        assert central.publish_acked(topic, genuine, retain=True) == 0  # in force: no event
        assert central.publish_acked(topic, signed(3, other), retain=True) == 0
        wait_until(lambda: documents(door.kiosk)[-1:] == [(True, 3, "accepted")], timeout=15)
        assert documents(door.kiosk) == [
            (True, 2, "accepted"),
            (False, None, refusals[0][2]),
            (False, None, refusals[1][2]),
            (True, 3, "accepted"),
        ]
        assert status(door.kiosk) is CredentialStatus.DCC_NOT_TRUSTED  # v3 lists another
