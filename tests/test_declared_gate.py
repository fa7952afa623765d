"""Health declarations reach the gate (issue 14): a kiosk that requires a declaration within
24 h, central's signed snapshot and deltas over a real mosquitto, and a restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jsonschema import Draft202012Validator

from kiosk.config import KioskConfig
from kiosk.credentials.declarations import DeclarationStatus, DocumentKind, encode_declarations
from kiosk.decide.decision import Outcome, Reason
from kiosk.decide.privacy import Pseudonymizer
from kiosk.mqtt.protocol import KioskTopics, Leaf
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.simulation import Person
from tests.broker import Broker, Collector, mqtt_client
from tests.support import SALT, RunningKiosk, make_config, running, wait_until

STATE_SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "schemas" / "state.json"
NOW = datetime.now(UTC).replace(microsecond=0)
SITE = KioskTopics("s1", "site")
URL = "hd.example.vn/s/s1"
BADGE = "S-0001"
HOLDER = Pseudonymizer(SALT.encode()).subject(BADGE)
OK, REFER = DeclarationStatus.OK, DeclarationStatus.REFER


def signed(
    key: Ed25519PrivateKey,
    version: int,
    entries: list[tuple[str, datetime, DeclarationStatus]],
    *,
    kind: DocumentKind = "snapshot",
    base: int | None = None,
) -> bytes:
    return encode_declarations(
        org="acme",
        site="s1",
        version=version,
        issued_at=NOW,
        kind=kind,
        base=version if base is None else base,
        entries=entries,
        signing_key=key,
    )


def config_for(directory: Path, anchor: Ed25519PrivateKey, mqtt: dict[str, Any]) -> KioskConfig:
    pem = directory / "anchor.pem"
    pem.write_bytes(
        anchor.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return make_config(
        directory,
        kiosk={"id": "k1", "site": "s1"},
        thermometer={"enabled": False},
        camera={"rearm_after_s": 0.2},
        credentials={"trust_anchor": str(pem)},
        rules={"health_declaration_max_age_h": 24, "health_declaration_url": URL},
        mqtt=mqtt,
    )


def scan(door: RunningKiosk) -> Any:
    """Show the badge once (after it has been out of view long enough) and take the decision."""
    frames = door.kiosk.health().frames_read
    wait_until(lambda: door.kiosk.health().frames_read > frames + 10)  # rearm 0.2 s
    door.scene.step_up(Person("badge holder", BADGE.encode(), sim.nobody(), "?"))
    decision = door.next_decision().decision
    door.scene.leave()
    return decision


def documents(door: RunningKiosk) -> list[dict[str, Any]]:
    return [e.data for e in door.kiosk.event_log.recent(20, type="document")]


def test_declarations_from_central_let_a_badge_holder_in_and_refer_on_a_symptom(
    tmp_path: Path, broker: Broker
) -> None:
    anchor = Ed25519PrivateKey.generate()
    mqtt = {
        "enabled": True,
        "host": broker.host,
        "port": broker.port,
        "tls": False,
        "username": "k1",
        "password": broker.password("k1"),
        "confirm": "puback",
        "state_interval_s": 1,
    }
    config = config_for(tmp_path, anchor, mqtt)
    central = mqtt_client(broker, "central")
    alerts = Collector(mqtt_client(broker, "central", client_id="alerts"))
    alerts.subscribe(KioskTopics("s1", "k1").topic(Leaf.ALERTS))
    states = Collector(mqtt_client(broker, "central", client_id="states"))
    states.subscribe(KioskTopics("s1", "k1").topic(Leaf.STATE))
    snapshot = signed(anchor, 10, [("s-" + "0" * 20, NOW, OK)])
    central.publish_acked(SITE.topic(Leaf.DECLARATIONS), snapshot, retain=True)
    with running(config) as door:
        wait_until(lambda: [d["version"] for d in documents(door)] == [10], timeout=15)
        denied = scan(door)
        assert (denied.outcome, denied.reason) == (Outcome.DENY, Reason.HEALTH_DECLARATION_MISSING)
        assert denied.message_en.endswith(f"scan again: {URL}") and URL in denied.message_vi

        forged = signed(
            Ed25519PrivateKey.generate(), 11, [(HOLDER, NOW, OK)], kind="delta", base=10
        )
        central.publish_acked(SITE.topic(Leaf.DECLARATIONS_DELTA), forged, retain=True)
        alert = json.loads(alerts.get(timeout=15).payload)
        assert alert["alert"] == "document_refused" and "not the trust anchor" in alert["detail"]
        assert scan(door).reason is Reason.HEALTH_DECLARATION_MISSING  # the forgery changed nothing

        declared = signed(
            anchor, 12, [(HOLDER, NOW - timedelta(minutes=1), OK)], kind="delta", base=10
        )
        central.publish_acked(SITE.topic(Leaf.DECLARATIONS_DELTA), declared, retain=True)
        wait_until(lambda: documents(door)[-1]["version"] == 12, timeout=15)
        granted = scan(door)
        assert (granted.outcome, granted.reason) == (Outcome.GRANT, Reason.OK)

        older = signed(anchor, 11, [(HOLDER, NOW, REFER)], kind="delta", base=10)
        central.publish_acked(SITE.topic(Leaf.DECLARATIONS_DELTA), older, retain=True)
        assert "not newer" in json.loads(alerts.get(timeout=15).payload)["detail"]

        symptom = signed(
            anchor,
            13,
            [(HOLDER, NOW - timedelta(minutes=1), OK), (HOLDER, NOW, REFER)],
            kind="delta",
            base=10,
        )
        central.publish_acked(SITE.topic(Leaf.DECLARATIONS_DELTA), symptom, retain=True)
        wait_until(lambda: documents(door)[-1]["version"] == 13, timeout=15)
        referred = scan(door)
        assert (referred.outcome, referred.reason) == (
            Outcome.REFER,
            Reason.HEALTH_DECLARATION_REFER,
        )
        state: dict[str, Any] = {}
        while state.get("declarations", {}).get("delta") != 13:
            state = json.loads(states.get(timeout=15).payload)
        assert state["declarations"]["snapshot"] == 10 and state["declarations"]["age_s"] >= 0
        Draft202012Validator(json.loads(STATE_SCHEMA.read_text(encoding="utf-8"))).validate(state)
        assert [(d["accepted"], d["version"]) for d in documents(door)] == [
            (True, 10),
            (False, None),
            (True, 12),
            (False, None),
            (True, 13),
        ]

    offline = config_for(tmp_path, anchor, {"enabled": False})
    with running(offline) as door:  # a restart: the saved documents, verified again
        assert scan(door).reason is Reason.HEALTH_DECLARATION_REFER
