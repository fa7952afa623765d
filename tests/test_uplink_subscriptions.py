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
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from bench.fleet_cluster import free_ports, server_binary
from kiosk.config import parse_config
from kiosk.mqtt.protocol import KioskTopics, Leaf, decode_events, encode_receipt
from kiosk.mqtt.subscriptions import RESUBSCRIBE_MAX_S, Subscriptions, jittered
from kiosk.mqtt.uplink import Uplink, client_id
from kiosk.store.eventlog import EventLog
from kiosk.sync import Sync
from tests.support import holds_for, wait_until
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


class CentralClient:
    """A paho client logged in as central, subscribed to one of k1's topics (the broker's
    answer awaited); subclasses handle its messages in ``on_message``."""

    def __init__(self, port: int, name: str, leaf: Leaf, qos: int) -> None:
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, name, protocol=mqtt.MQTTv311)
        self.client.username_pw_set("central", PASSWORDS["central"])
        self.client.on_connect = lambda c, *_: c.subscribe(TOPICS.topic(leaf), qos=qos)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(30)

    def on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Central(CentralClient):
    """Central's part: answers each events message of k1 with its receipt."""

    def __init__(self, port: int) -> None:
        self.answered = 0
        super().__init__(port, "central-test", Leaf.EVENTS, qos=1)

    def on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        _, _, events = decode_events(bytes(message.payload))
        client.publish(TOPICS.topic(Leaf.RECEIPTS), encode_receipt(e.seq for e in events), qos=1)
        self.answered += 1


@contextlib.contextmanager
def kiosk_k1(
    port: int, log: EventLog, state_interval_s: float = 1.0
) -> Iterator[tuple[Uplink, Sync]]:
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
                "state_interval_s": state_interval_s,
            }
        }
    ).mqtt
    uplink = Uplink(settings, TOPICS, client_id(TOPICS))
    sync = Sync(
        uplink,
        log,
        confirm=settings.confirm,
        resend_after_s=2.0,
        state_interval_s=settings.state_interval_s,
    )
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
    caplog.set_level(logging.DEBUG, logger="kiosk.mqtt.subscriptions")
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
            assert_doubling(refusals(caplog)[:3])
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
    caplog.set_level(logging.DEBUG, logger="kiosk.mqtt.subscriptions")
    with (
        EventLog(tmp_path / "k1.db", boot_id="boot-1") as log,
        kiosk_k1(server.mqtt_port, log) as (uplink, _),
    ):
        wait_until(lambda: len(refusals(caplog)) >= 3)
        assert_doubling(refusals(caplog)[:3])
        before = len(refusals(caplog))
        server.restart()  # the kiosk reconnects: asked for at once, then again after 1 s
        wait_until(lambda: any(d <= 1.25 for d in refusals(caplog)[before:]), timeout=60)
        assert uplink.subscription_state() == {"refused_subscriptions": ["receipts"]}


class StateWatcher(CentralClient):
    """Reads k1's state documents: the refused subscriptions in each, in order."""

    def __init__(self, port: int) -> None:
        self.seen: list[list[str]] = []
        super().__init__(port, "state-watcher", Leaf.STATE, qos=0)

    def on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.seen.append(json.loads(message.payload)["mqtt"]["refused_subscriptions"])


def test_the_state_goes_out_when_the_refused_subscriptions_change(
    server: NatsServer, tmp_path: Path
) -> None:
    """Not at the next state interval (10 minutes here): when the broker refuses the receipts
    subscription, and again when it grants it."""
    states = StateWatcher(server.mqtt_port)
    try:
        with (
            EventLog(tmp_path / "k1.db", boot_id="boot-1") as log,
            kiosk_k1(server.mqtt_port, log, state_interval_s=600.0),
        ):
            wait_until(lambda: ["receipts"] in states.seen)
            server.allow_receipts()
            wait_until(lambda: states.seen[-1] == [], timeout=60)
            assert states.seen.index(["receipts"]) < len(states.seen) - 1
    finally:
        states.stop()


def refusals(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The retry delays (seconds) of the refusals logged so far, in order."""
    found = []
    for record in caplog.records:
        match = re.search(
            r"refused the subscription to receipts .* in (\S+) s", record.getMessage()
        )
        if match:
            found.append(float(match.group(1)))
    return found


def assert_doubling(delays: list[float]) -> None:
    """About 1 s, 2 s, 4 s: each spread by at most a quarter either way (and one decimal)."""
    for delay, base in zip(delays, (1.0, 2.0, 4.0), strict=True):
        assert 0.75 * base - 0.05 <= delay <= 1.25 * base + 0.05, delays


def test_the_status_page_shows_refused_subscriptions(
    operator: FlaskClient, status: FakeStatus
) -> None:
    label = '">subscriptions refused: <span data-k="mqtt.refused_subscriptions">'
    status.document["mqtt"] |= {"connected": True, "refused_subscriptions": ["receipts", "cmd"]}
    assert f'class="bad{label}receipts, cmd<' in operator.get("/").text
    status.document["mqtt"]["refused_subscriptions"] = []
    assert f'class="ok{label}—<' in operator.get("/").text


# --- Subscriptions alone: no broker, no paho client ------------------------------------------


class Books:
    """A Subscriptions whose SUBSCRIBEs and ``changed`` calls are recorded; mids from 1."""

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[tuple[str, ...]] = []
        self.told: list[tuple[str, ...]] = []
        self.subs = Subscriptions(self._send, self.told.append, **kwargs)

    def _send(self, topics: tuple[str, ...]) -> int:
        self.sent.append(topics)
        return len(self.sent)


def code(value: int) -> ReasonCode:
    """An MQTT 5 SUBACK reason code as paho hands it over (also how it gives 3.1.1's)."""
    return ReasonCode(PacketTypes.SUBACK, identifier=value)


CMD, RECEIPTS = TOPICS.topic(Leaf.CMD), TOPICS.topic(Leaf.RECEIPTS)
NO_RETRY = 3600.0  # a first retry's delay no test waits for


def test_mqtt_5_reason_codes_grant_and_refuse_per_filter() -> None:
    books = Books(first_retry_s=NO_RETRY)
    books.subs.subscribe([CMD, RECEIPTS, CMD])
    assert books.sent == [(CMD, RECEIPTS)]  # asked once, duplicates dropped
    books.subs.answered(1, [code(1), code(0x87)])  # granted QoS 1; not authorized
    assert books.subs.state() == {"refused_subscriptions": ["receipts"]}
    assert books.told == [("receipts",)] and not books.subs.granted_all
    books.subs.answered(1, [code(1), code(1)])  # its mid is answered already: ignored
    assert books.subs.state() == {"refused_subscriptions": ["receipts"]}
    books.subs.forget()


def test_a_suback_for_an_unknown_mid_changes_nothing() -> None:
    books = Books(first_retry_s=NO_RETRY)
    books.subs.subscribe([CMD])
    books.subs.answered(99, [code(0x80)])
    assert books.subs.state() == {"refused_subscriptions": []} and books.told == []
    books.subs.answered(1, [code(1)])
    assert books.subs.granted_all


def test_a_suback_with_fewer_codes_than_filters_counts_the_rest_refused() -> None:
    books = Books(first_retry_s=NO_RETRY)
    books.subs.subscribe([CMD, RECEIPTS])
    books.subs.answered(1, [code(1)])
    assert books.subs.state() == {"refused_subscriptions": ["receipts"]}
    assert not books.subs.granted_all
    books.subs.forget()


def test_a_refused_filter_is_asked_for_again_alone_then_granted() -> None:
    books = Books(first_retry_s=0.05)
    books.subs.subscribe([CMD, RECEIPTS])
    books.subs.answered(1, [code(1), code(0x80)])
    wait_until(lambda: len(books.sent) == 2, timeout=30)
    assert books.sent[1] == (RECEIPTS,)
    books.subs.answered(2, [code(1)])
    assert books.subs.granted_all and books.told == [("receipts",), ()]


def test_forget_cancels_a_waiting_retry() -> None:
    books = Books(first_retry_s=0.3)
    books.subs.subscribe([RECEIPTS])
    books.subs.answered(1, [code(0x80)])
    books.subs.forget()  # the connection ended before the retry
    assert holds_for(lambda: len(books.sent) == 1, 1.5)  # five times the delay: nothing sent


def test_a_filter_no_longer_wanted_leaves_the_refused_ones_and_changed_is_told() -> None:
    books = Books(first_retry_s=NO_RETRY)
    books.subs.subscribe([CMD, RECEIPTS])
    books.subs.answered(1, [code(1), code(0x80)])
    books.subs.subscribe([CMD])
    assert books.subs.state() == {"refused_subscriptions": []}
    assert books.told == [("receipts",), ()]


def test_retry_delays_double_up_to_the_maximum_each_spread_by_a_quarter() -> None:
    delays = [jittered(RESUBSCRIBE_MAX_S) for _ in range(2000)]
    assert all(0.75 * RESUBSCRIBE_MAX_S <= d <= 1.25 * RESUBSCRIBE_MAX_S for d in delays)
    assert min(delays) < 0.8 * RESUBSCRIBE_MAX_S and max(delays) > 1.2 * RESUBSCRIBE_MAX_S
    asked: list[float] = []

    def spread(delay: float) -> float:
        asked.append(delay)
        return NO_RETRY

    books = Books(spread=spread)
    books.subs.subscribe([RECEIPTS])
    for mid in range(1, 9):  # each refusal answered by the retry's SUBSCRIBE (fired by hand)
        books.subs.answered(mid, [code(0x80)])
        timer = books.subs._retry
        assert timer is not None
        timer.cancel()
        books.subs._resubscribe(timer)
    assert asked == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    books.subs.forget()


def test_a_refusal_that_never_clears_is_a_warning_at_first_then_every_ten_minutes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="kiosk.mqtt.subscriptions")
    now = [0.0]
    books = Books(first_retry_s=NO_RETRY, clock=lambda: now[0])
    books.subs.subscribe([RECEIPTS])
    for mid in range(1, 42):  # a refusal each 30 s for 20 minutes
        books.subs.answered(mid, [code(0x80)])
        timer = books.subs._retry
        assert timer is not None
        timer.cancel()
        books.subs._resubscribe(timer)
        now[0] += 30.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3  # at 0, 10 and 20 minutes
    assert "(Unspecified error, 21 times so far)" in warnings[1]
    assert len(refusals(caplog)) == 41  # every one at debug level
    books.subs.forget()
