"""Two kiosks of one site over a real broker: shared occupancy and anti-passback (over each
other's passages, even across an outage), and the organisation's signed revocation list
arriving as a retained message."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kiosk.credentials.cose import key_id
from kiosk.credentials.documents import RevocationList, TrustList, encode_document
from kiosk.credentials.passes import PassClaims, sign_pass
from kiosk.decide.decision import Outcome, Reason
from kiosk.decide.privacy import Pseudonymizer
from kiosk.mqtt.protocol import KioskTopics, Leaf
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.simulation import Person
from tests.broker import Broker, Collector, mqtt_client
from tests.support import SALT, RunningKiosk, make_config, running, wait_until

NOW = datetime.now(UTC)
SITE = KioskTopics("s1", "site")


def kiosk_config(directory: Path, broker: Broker, kiosk_id: str, **sections: Any) -> Any:
    directory.mkdir()
    mqtt = {
        "enabled": True,
        "host": broker.host,
        "port": broker.port,
        "tls": False,
        "username": kiosk_id,
        "password": broker.password(kiosk_id),
        "confirm": "puback",
    }
    return make_config(
        directory,
        kiosk={"id": kiosk_id, "site": "s1"},
        thermometer={"enabled": False},
        camera={"rearm_after_s": 0.2},
        mqtt=mqtt,
        **sections,
    )


@contextlib.contextmanager
def online(config: Any, broker: Broker) -> Iterator[RunningKiosk]:
    """A running kiosk whose MQTT link is up (its retained status says online)."""
    watcher = mqtt_client(broker, "central")
    statuses: list[bytes] = []
    topic = KioskTopics("s1", config.kiosk.id).topic(Leaf.STATUS)
    watcher.on_message = lambda _c, _u, message: statuses.append(bytes(message.payload))
    watcher.subscribe(topic, 1)
    with running(config) as kiosk:
        wait_until(lambda: b"online" in statuses, timeout=15)
        yield kiosk


def badge(code: str) -> Person:
    return Person(code, code.encode(), sim.nobody(), "grant")


def test_occupancy_and_anti_passback_are_shared_by_the_site_kiosks(
    tmp_path: Path, broker: Broker
) -> None:
    rules = {"anti_passback": True, "passback_grace_s": 0.0, "occupancy_cap": 2}
    k1 = kiosk_config(tmp_path / "k1", broker, "k1", rules=rules)
    k2 = kiosk_config(tmp_path / "k2", broker, "k2", rules=rules)
    with online(k1, broker) as door1, online(k2, broker) as door2:
        door1.scene.step_up(badge("S-0001"))
        assert door1.next_decision().decision.outcome is Outcome.GRANT
        wait_until(lambda: door2.kiosk.entrance.area.facts(None, NOW).occupancy == 1)

        door2.scene.step_up(badge("S-0001"))  # the same pass at the other door
        assert door2.next_decision().decision.reason is Reason.ALREADY_INSIDE

        door2.scene.step_up(badge("S-0002"))
        assert door2.next_decision().decision.outcome is Outcome.GRANT
        wait_until(lambda: door1.kiosk.entrance.area.facts(None, NOW).occupancy == 2)

        door1.scene.step_up(badge("S-0004"))
        assert door1.next_decision().decision.reason is Reason.OCCUPANCY_FULL


def test_a_grant_nobody_used_is_withdrawn_at_every_kiosk_of_the_site(
    tmp_path: Path, broker: Broker
) -> None:
    rules = {"anti_passback": True, "passback_grace_s": 0.0}
    gate = {"relay_mode": "hold", "hold_timeout_s": 1.0}
    k1 = kiosk_config(tmp_path / "k1", broker, "k1", rules=rules, gate=gate)
    k2 = kiosk_config(tmp_path / "k2", broker, "k2", rules=rules, gate=gate)
    with online(k1, broker) as door1, online(k2, broker) as door2:
        door1.scene.step_up(badge("S-0001"))
        assert door1.next_decision().decision.outcome is Outcome.GRANT
        wait_until(lambda: door2.kiosk.entrance.area.facts(None, NOW).occupancy == 1)
        # nobody goes through: door1's hold times out and withdraws the grant, door2 learns it
        wait_until(lambda: door2.kiosk.entrance.area.facts(None, NOW).occupancy == 0, 15)

        door2.scene.step_up(badge("S-0001"))  # not "already inside": they never went in
        assert door2.next_decision().decision.outcome is Outcome.GRANT


def test_a_kiosk_offline_while_its_neighbour_grants_learns_it_when_it_is_back(
    tmp_path: Path, broker: Broker
) -> None:
    """Its MQTT session keeps the neighbour's passages; its own log holds none of them."""
    rules = {"anti_passback": True, "passback_grace_s": 0.0}
    k1 = kiosk_config(tmp_path / "k1", broker, "k1", rules=rules)
    k2 = kiosk_config(tmp_path / "k2", broker, "k2", rules=rules)
    passages = Collector(mqtt_client(broker, "central", client_id="passages"))
    passages.subscribe(KioskTopics("s1", "k1").topic(Leaf.PASSAGES))
    with online(k2, broker):
        pass  # k2 subscribes once, then stops: the broker keeps its session
    with online(k1, broker) as door1:
        door1.scene.step_up(badge("S-0001"))
        assert door1.next_decision().decision.outcome is Outcome.GRANT
        passages.get(timeout=15)  # the broker has them, for k2's session too
    with online(k2, broker) as door2:
        wait_until(lambda: door2.kiosk.entrance.area.facts(None, NOW).occupancy == 1)
        door2.scene.step_up(badge("S-0001"))
        assert door2.next_decision().decision.reason is Reason.ALREADY_INSIDE


def write_pem(path: Path, key: Ed25519PrivateKey) -> str:
    path.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return str(path)


def test_a_signed_revocation_list_over_mqtt_stops_a_pass(tmp_path: Path, broker: Broker) -> None:
    anchor, issuer = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    trust = TrustList("org", 1, NOW, {key_id(issuer.public_key()): issuer.public_key()})
    trust_file = tmp_path / "trust.cose"
    trust_file.write_bytes(encode_document(trust, anchor))
    claims = PassClaims(
        issuer="org",
        subject="p-7f3a",
        kind="staff",
        pass_id="0a1b2c3d4e5f6071",
        issued_at=NOW,
        valid_from=NOW - timedelta(hours=1),
        valid_until=NOW + timedelta(days=30),
        sites=("s1",),
    )
    staff_pass = sign_pass(issuer, claims)
    config = kiosk_config(
        tmp_path / "k1",
        broker,
        "k1",
        credentials={
            "trust_anchor": write_pem(tmp_path / "anchor.pem", anchor),
            "trust_list": str(trust_file),
            "allowlist": "",
        },
    )
    central = mqtt_client(broker, "central")
    alerts = Collector(mqtt_client(broker, "central", client_id="alerts"))
    alerts.subscribe(KioskTopics("s1", "k1").topic(Leaf.ALERTS))
    with online(config, broker) as door:
        door.scene.step_up(Person("pass holder", staff_pass.encode(), sim.nobody(), "grant"))
        first = door.next_decision()
        assert first.decision.outcome is Outcome.GRANT
        assert first.event is not None
        assert first.event.data["subject"] == Pseudonymizer(SALT.encode()).subject("pass:p-7f3a")
        door.scene.leave()

        forged = encode_document(
            RevocationList("org", 2, NOW, frozenset({claims.pass_id})), Ed25519PrivateKey.generate()
        )
        central.publish_acked(SITE.topic(Leaf.REVOCATION), forged, retain=True)
        genuine = encode_document(
            RevocationList("org", 3, NOW, frozenset({claims.pass_id})), anchor
        )
        central.publish_acked(SITE.topic(Leaf.REVOCATION), genuine, retain=True)

        def documents() -> list[dict[str, Any]]:
            return [e.data for e in door.kiosk.event_log.recent(10, type="document")]

        wait_until(lambda: len(documents()) == 2, timeout=15)
        assert [(d["accepted"], d["version"]) for d in documents()] == [(False, None), (True, 3)]
        alert = json.loads(alerts.get(timeout=15).payload)
        assert alert["alert"] == "document_refused" and "not the trust anchor" in alert["detail"]
        # the list in force again (as after every reconnect) changes nothing and logs nothing
        central.publish_acked(SITE.topic(Leaf.REVOCATION), genuine, retain=True)
        newer = encode_document(RevocationList("org", 4, NOW, frozenset({claims.pass_id})), anchor)
        central.publish_acked(SITE.topic(Leaf.REVOCATION), newer, retain=True)
        wait_until(lambda: len(documents()) == 3, timeout=15)
        assert [(d["accepted"], d["version"], d["reason"]) for d in documents()[1:]] == [
            (True, 3, "accepted"),
            (True, 4, "accepted"),
        ]
        frames = door.kiosk.health().frames_read  # the code has been out of view long enough
        wait_until(lambda: door.kiosk.health().frames_read > frames + 10)  # (rearm 0.2 s)
        door.scene.step_up(Person("pass holder", staff_pass.encode(), sim.nobody(), "deny"))
        assert door.next_decision().decision.reason is Reason.REVOKED
    assert (tmp_path / "k1" / "revocation.cose").read_bytes() == newer
