"""A subscription the broker refuses (SUBACK 0x80) is reported, asked for again and, once
granted, the receipts flow: the kiosk's real Sync over MQTT 3.1.1 to a real nats-server.

nats-server answers 0x80 when it cannot create a subscription's JetStream consumer in time
(under load, docs/scale.md) and when the user may not subscribe; the second is what this test
uses, with the shipped deploy/nats/accounts.conf minus the kiosk's receipts permission, made
good again by a configuration reload (SIGHUP), as an operator would. (mosquitto 2.0.11 cannot
stand in: its acl_file grants every subscription and only filters what it delivers.)
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from bench.fleet_cluster import free_ports, server_binary
from kiosk.config import parse_config
from kiosk.mqtt.protocol import KioskTopics, Leaf, decode_events, encode_receipt
from kiosk.mqtt.uplink import Uplink, client_id
from kiosk.store.eventlog import EventLog
from kiosk.sync import Sync
from tests.support import wait_until
from tests.web_fakes import FakeStatus

REPO = Path(__file__).resolve().parents[1]
ACCOUNTS = REPO / "deploy" / "nats" / "accounts.conf"
STATE_SCHEMA = REPO / "docs" / "schemas" / "state.json"
TOPICS = KioskTopics("s1", "k1")
RECEIPTS_PERMISSION = '"kiosk.v1.*.k1.receipts", '
PASSWORDS = {"k1": "k1-pw", "central": "central-pw"}


def accounts(*, receipts: bool) -> str:
    """The shipped users and permissions with test passwords; without the kiosk's
    permission to read its receipts unless ``receipts``."""
    text = ACCOUNTS.read_text(encoding="utf-8")
    assert RECEIPTS_PERMISSION in text, "the shipped kiosk permissions changed"
    for user, password in PASSWORDS.items():
        text = text.replace(
            f'user: "{user}", password: "$2a$11$REPLACE_WITH_BCRYPT_HASH"',
            f'user: "{user}", password: "{password}"',
        )
    return text if receipts else text.replace(RECEIPTS_PERMISSION, "")


class NatsServer:
    """One nats-server with JetStream and an MQTT listener; ``allow_receipts()`` edits its
    accounts file and reloads it with SIGHUP."""

    def __init__(self, root: Path) -> None:
        client, self.mqtt_port = free_ports(2)
        self.accounts = root / "accounts.conf"
        self.accounts.write_text(accounts(receipts=False), encoding="utf-8")
        self.log = root / "nats.log"
        self.conf = conf = root / "nats.conf"
        conf.write_text(
            f"listen: 127.0.0.1:{client}\n"
            f'jetstream {{ store_dir: "{root / "js"}" }}\n'
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port} }}\n"
            "include accounts.conf\n",
            encoding="utf-8",
        )
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        starts = self.log_text().count("Listening for MQTT clients")
        with self.log.open("ab") as out:
            process = subprocess.Popen(
                [server_binary(), "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT
            )
        wait_until(lambda: self.log_text().count("Listening for MQTT clients") > starts)
        return process

    def restart(self) -> None:
        self.stop()
        self.process = self._start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def allow_receipts(self) -> None:
        self.accounts.write_text(accounts(receipts=True), encoding="utf-8")
        self.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "Reloaded server configuration" in self.log_text())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    started = NatsServer(tmp_path)
    yield started
    started.stop()


class Central:
    """A paho client as central: answers each events message of k1 with its receipt."""

    def __init__(self, port: int) -> None:
        self.answered = 0
        self.ready = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, "central-test", protocol=mqtt.MQTTv311
        )
        self.client.username_pw_set("central", PASSWORDS["central"])
        self.client.on_connect = lambda c, *_: c.subscribe(TOPICS.topic(Leaf.EVENTS), qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._events
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(30)

    def _events(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        _, _, events = decode_events(bytes(message.payload))
        client.publish(TOPICS.topic(Leaf.RECEIPTS), encode_receipt(e.seq for e in events), qos=1)
        self.answered += 1

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def kiosk_k1(port: int, log: EventLog) -> Iterator[tuple[Uplink, Sync]]:
    """The kiosk k1's real uplink (MQTT 3.1.1) and sync loop over ``log``, in a thread."""
    settings = parse_config(
        {
            "mqtt": {
                "enabled": True,
                "host": "127.0.0.1",
                "port": port,
                "tls": False,
                "protocol": "3.1.1",
                "username": "k1",
                "password": PASSWORDS["k1"],
                "resend_after_s": 2.0,
                "state_interval_s": 1.0,
            }
        }
    ).mqtt
    uplink = Uplink(settings, TOPICS, client_id(TOPICS))
    sync = Sync(uplink, log, confirm=settings.confirm, resend_after_s=2.0, state_interval_s=1.0)
    stop = threading.Event()
    thread = threading.Thread(target=sync.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield uplink, sync
    finally:
        stop.set()
        thread.join(10)


def test_a_refused_receipts_subscription_is_reported_retried_and_then_receipts_flow(
    server: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.mqtt.subscriptions")
    central = Central(server.mqtt_port)
    log = EventLog(tmp_path / "k1.db", boot_id="boot-1")
    for n in range(3):
        log.append("decision", {"outcome": "grant", "reason": "ok", "n": n})
    try:
        with kiosk_k1(server.mqtt_port, log) as (uplink, sync):
            # Refused: reported (only the topic's last level), asked for again after 1 s, 2 s, 4 s.
            wait_until(lambda: uplink.subscription_state()["refused_subscriptions"] == ["receipts"])
            assert sync.mqtt_state()["refused_subscriptions"] == ["receipts"]
            assert not uplink.subscribed
            schema = json.loads(STATE_SCHEMA.read_text(encoding="utf-8"))
            mqtt_part = schema["properties"]["mqtt"] | {"$defs": schema["$defs"]}
            Draft202012Validator(mqtt_part).validate(sync.mqtt_state())
            wait_until(lambda: len(refusals(caplog)) >= 3)
            assert refusals(caplog)[:3] == ["1", "2", "4"]
            assert not any("k1" in r.getMessage() for r in caplog.records)  # no kiosk names
            wait_until(lambda: central.answered >= 2)  # the events arrive, their receipts do not
            assert log.stats().unconfirmed == 3

            server.allow_receipts()  # the operator fixes the permissions and reloads

            wait_until(lambda: uplink.subscribed, timeout=60)
            assert sync.mqtt_state()["refused_subscriptions"] == []
            wait_until(lambda: log.stats().unconfirmed == 0, timeout=60)
            assert any("granted after" in r.getMessage() for r in caplog.records)
    finally:
        central.stop()
        log.close()


def test_a_refused_subscription_is_asked_for_again_at_once_after_a_reconnect(
    server: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The retry's delay grows while the connection lasts and starts again at 1 s on the next
    one: a new connection subscribes to everything at once."""
    caplog.set_level(logging.INFO, logger="kiosk.mqtt.subscriptions")
    with (
        EventLog(tmp_path / "k1.db", boot_id="boot-1") as log,
        kiosk_k1(server.mqtt_port, log) as (uplink, _),
    ):
        wait_until(lambda: len(refusals(caplog)) >= 3)
        assert refusals(caplog)[:3] == ["1", "2", "4"]
        before = len(refusals(caplog))
        server.restart()  # the kiosk reconnects: asked for at once, then again after 1 s
        wait_until(lambda: "1" in refusals(caplog)[before:], timeout=60)
        assert uplink.subscription_state() == {"refused_subscriptions": ["receipts"]}


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The retry delays (seconds) of the refusals logged so far, in order."""
    found = []
    for record in caplog.records:
        match = re.search(
            r"refused the subscription to receipts .* in (\S+) s", record.getMessage()
        )
        if match:
            found.append(match.group(1))
    return found


def test_the_status_page_shows_refused_subscriptions(
    operator: FlaskClient, status: FakeStatus
) -> None:
    label = '">subscriptions refused: <span data-k="mqtt.refused_subscriptions">'
    status.document["mqtt"] |= {"connected": True, "refused_subscriptions": ["receipts", "cmd"]}
    assert f'class="bad{label}receipts, cmd<' in operator.get("/").text
    status.document["mqtt"]["refused_subscriptions"] = []
    assert f'class="ok{label}—<' in operator.get("/").text
