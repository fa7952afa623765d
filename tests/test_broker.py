"""The shipped site-broker config (deploy/mosquitto): access rules, TLS, queues, persistence."""

from __future__ import annotations

import getpass
import queue
import ssl
import uuid

import paho.mqtt.client as mqtt
import pytest

from kiosk.mqtt.protocol import MAX_MESSAGE_BYTES, WireEvent, encode_events
from tests.broker import DEPLOY, REWRITTEN, Broker, Collector, mqtt_client, render_config

NOT_AUTHORIZED = 0x87


def shipped_setting(name: str) -> str:
    """The value of ``name`` in the shipped mosquitto.conf."""
    for line in (DEPLOY / "mosquitto.conf").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return value.strip()
    raise AssertionError(f"{name} not set in the shipped config")


def test_the_harness_runs_the_shipped_config_with_only_paths_and_ports_changed(
    broker: Broker,
) -> None:
    shipped = (DEPLOY / "mosquitto.conf").read_text(encoding="utf-8").splitlines()
    running = broker.config_file.read_text(encoding="utf-8").splitlines()
    changed = [(a, b) for a, b in zip(shipped, running, strict=False) if a != b]
    assert {a.split()[0] for a, _ in changed} == REWRITTEN
    assert running[len(shipped) :] == [
        f"user {getpass.getuser()}",
        f"listener {broker.port} 127.0.0.1",
    ]
    paths = {key: "/tmp/x" for key in REWRITTEN - {"listener"}}
    shipped_text = "\n".join(shipped)
    with pytest.raises(AssertionError, match="path the harness keeps"):
        render_config(f"{shipped_text}\ninclude_dir /etc/mosquitto/conf.d\n", paths, 1, 2)
    with pytest.raises(AssertionError, match="lacks"):
        render_config(shipped_text.replace("acl_file", "#acl_file"), paths, 1, 2)


@pytest.mark.parametrize(
    "leaf", ["events", "passages", "status", "state", "alerts", "result", "activity"]
)
def test_a_kiosk_publishes_its_own_topics_and_central_receives_them(
    broker: Broker, leaf: str
) -> None:
    central = Collector(mqtt_client(broker, "central"))
    central.subscribe("kiosk/v1/#")
    k1 = mqtt_client(broker, "k1")
    assert k1.publish_acked(f"kiosk/v1/s1/k1/{leaf}", b"hello") == 0
    message = central.get()
    assert (message.topic, message.payload) == (f"kiosk/v1/s1/k1/{leaf}", b"hello")


def test_a_kiosk_publishes_home_assistant_discovery_for_itself_only(broker: Broker) -> None:
    k1 = mqtt_client(broker, "k1")
    assert not k1.publish_acked("homeassistant/sensor/k1/temp/config", b"{}").is_failure
    assert k1.publish_acked("homeassistant/sensor/k2/temp/config", b"{}") == NOT_AUTHORIZED


@pytest.mark.parametrize(
    "topic",
    [
        "kiosk/v1/s1/k2/events",  # another kiosk's events
        "kiosk/v1/s1/k2/passages",  # another kiosk's passages
        "kiosk/v1/s1/k1/cmd",  # commands come from operators, not from the kiosk itself
        "kiosk/v1/s1/k1/receipts",  # receipts come from central
        "kiosk/v1/s1/site/config",  # no site-wide documents yet
        "kiosk/v1/s1/site/dcc-trust",  # the site's signed lists come from the office
        "kiosk/v1/s1/k1/other",  # no such leaf
    ],
)
def test_a_kiosk_cannot_publish_elsewhere(broker: Broker, topic: str) -> None:
    central = Collector(mqtt_client(broker, "central"))
    central.subscribe("kiosk/v1/#")
    k1 = mqtt_client(broker, "k1")
    disconnects: queue.Queue[str] = queue.Queue()
    k1.on_disconnect = lambda _c, _u, _f, code, _p: disconnects.put(str(code))
    code = k1.publish_acked(topic, b"forged")
    assert (code.value, str(code)) == (NOT_AUTHORIZED, "Not authorized")
    # mosquitto 2.0.11 also drops the connection after a denied publish.
    assert disconnects.get(timeout=5) == "Unspecified error"
    # The marker is published after the denied message was answered: had the denied one
    # been delivered, it would have arrived first.
    marker = mqtt_client(broker, "k1")
    assert marker.publish_acked("kiosk/v1/s1/k1/events", b"marker") == 0
    received = central.get_until("kiosk/v1/s1/k1/events")
    assert [(m.topic, m.payload) for m in received] == [("kiosk/v1/s1/k1/events", b"marker")]


def test_a_kiosk_reads_its_commands_receipts_site_passages_and_trust_lists(
    broker: Broker,
) -> None:
    k1 = Collector(mqtt_client(broker, "k1"))
    # mosquitto 2.0 grants the subscription and filters each message by the read rules.
    assert k1.subscribe("kiosk/v1/#") == 1
    central = mqtt_client(broker, "central")
    for topic in [
        "kiosk/v1/s1/k2/cmd",
        "kiosk/v1/s1/k2/receipts",
        "kiosk/v1/s1/k2/events",
        "kiosk/v1/s1/k2/passages",
        "kiosk/v1/s1/k2/state",
        "kiosk/v1/s1/k1/state",
        "kiosk/v1/s1/k1/receipts",
        "kiosk/v1/s1/site/config",
        "kiosk/v1/s1/site/trust",
        "kiosk/v1/s1/site/revocation",
        "kiosk/v1/s1/site/dcc-trust",
        "kiosk/v1/s1/site/declarations",
        "kiosk/v1/s1/site/declarations-delta",
        "kiosk/v1/s1/k1/cmd",
    ]:
        assert central.publish_acked(topic, b"doc") == 0
    received = k1.get_until("kiosk/v1/s1/k1/cmd")
    assert [m.topic for m in received] == [
        "kiosk/v1/s1/k2/passages",  # shared occupancy, anti-passback and attendance
        "kiosk/v1/s1/k1/receipts",
        "kiosk/v1/s1/site/trust",
        "kiosk/v1/s1/site/revocation",
        "kiosk/v1/s1/site/dcc-trust",
        "kiosk/v1/s1/site/declarations",
        "kiosk/v1/s1/site/declarations-delta",
        "kiosk/v1/s1/k1/cmd",
    ]


def test_a_kiosk_cannot_read_another_kiosks_events(broker: Broker) -> None:
    """k2 subscribes to k1's events and passages; k1 publishes an event batch, then its
    passages. The passages (the positive control, on the same connection) arrive; the events
    never do, neither before them nor within a second after."""
    k2 = Collector(mqtt_client(broker, "k2"))
    assert k2.subscribe("kiosk/v1/s1/k1/events") == 1  # granted, but filtered by read rules
    assert k2.subscribe("kiosk/v1/s1/k1/passages") == 1
    k1 = mqtt_client(broker, "k1")
    event = WireEvent(str(uuid.uuid4()), 1, str(uuid.uuid4()), 1767261845123, True, "decision", {})
    assert k1.publish_acked("kiosk/v1/s1/k1/events", encode_events("s1", "k1", [event])) == 0
    assert k1.publish_acked("kiosk/v1/s1/k1/passages", b'{"v":1}') == 0
    received = k2.get_until("kiosk/v1/s1/k1/passages")
    assert [m.topic for m in received] == ["kiosk/v1/s1/k1/passages"]
    with pytest.raises(queue.Empty):
        k2.messages.get(timeout=1.0)


def test_home_assistant_reads_what_its_entities_show_and_nothing_else(broker: Broker) -> None:
    """Not events, passages, receipts, commands, results or the signed lists, although the
    kiosks' read patterns apply to every user."""
    ha = Collector(mqtt_client(broker, "homeassistant"))
    assert ha.subscribe("kiosk/v1/#") == 1
    central = mqtt_client(broker, "central")
    for leaf in ["trust", "revocation", "dcc-trust", "declarations", "declarations-delta"]:
        topic = f"kiosk/v1/s1/site/{leaf}"
        assert central.publish_acked(topic, b"doc") == 0
    leaves = ["events", "passages", "receipts", "result", "cmd", "status", "state", "activity"]
    for leaf in [*leaves, "alerts"]:
        assert central.publish_acked(f"kiosk/v1/s1/k1/{leaf}", b"doc") == 0
    # alerts come last: had a forbidden message been delivered, it would have come before.
    received = ha.get_until("kiosk/v1/s1/k1/alerts")
    leaves = [m.topic.rsplit("/", 1)[1] for m in received]
    assert leaves == ["status", "state", "activity", "alerts"]


def test_an_operator_sends_commands_to_any_kiosk_but_cannot_forge_events(
    broker: Broker,
) -> None:
    k2 = Collector(mqtt_client(broker, "k2"))
    k2.subscribe("kiosk/v1/s1/k2/cmd")
    operator = mqtt_client(broker, "operator")
    assert operator.publish_acked("kiosk/v1/s1/k2/cmd", b'{"cmd":"open"}') == 0
    assert k2.get().payload == b'{"cmd":"open"}'
    assert operator.publish_acked("kiosk/v1/s1/k2/events", b"forged") == NOT_AUTHORIZED


def test_mqtt5_clients_learn_the_broker_limits_when_they_connect(broker: Broker) -> None:
    connack = mqtt_client(broker, "k1").connack
    assert connack is not None
    limits = connack.json()  # paho sets the properties as attributes mypy cannot see
    assert limits["ReceiveMaximum"] == int(shipped_setting("max_inflight_messages"))
    assert limits["MaximumPacketSize"] == int(shipped_setting("max_packet_size"))


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311])
def test_anonymous_clients_are_refused(broker: Broker, protocol: mqtt.MQTTProtocolVersion) -> None:
    with pytest.raises(ConnectionRefusedError, match="Not authorized"):
        mqtt_client(broker, None, protocol=protocol)


def test_a_wrong_password_is_refused(broker: Broker) -> None:
    with pytest.raises(ConnectionRefusedError, match="Not authorized"):
        mqtt_client(broker, "k1", password="k2-pw")


def test_tls_with_the_site_ca_carries_events(broker: Broker) -> None:
    central = Collector(mqtt_client(broker, "central", tls=True))
    central.subscribe("kiosk/v1/+/+/events")
    k1 = mqtt_client(broker, "k1", tls=True)
    assert k1.publish_acked("kiosk/v1/s1/k1/events", b"over tls") == 0
    assert central.get().payload == b"over tls"


def test_tls_with_another_ca_fails_certificate_verification(broker: Broker) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        mqtt_client(broker, "k1", ca_file=broker.wrong_ca_file)


def test_the_largest_kiosk_message_passes_and_a_packet_over_the_limit_disconnects(
    broker: Broker,
) -> None:
    central = Collector(mqtt_client(broker, "central"))
    central.subscribe("kiosk/v1/+/+/events")
    k1 = mqtt_client(broker, "k1")
    largest = b"x" * MAX_MESSAGE_BYTES
    assert k1.publish_acked("kiosk/v1/s1/k1/events", largest) == 0
    assert central.get().payload == largest
    disconnects: queue.Queue[str] = queue.Queue()
    k1.on_disconnect = lambda _c, _u, _f, code, _p: disconnects.put(str(code))
    k1.publish("kiosk/v1/s1/k1/events", b"x" * int(shipped_setting("max_packet_size")), qos=1)
    # The reason is "Packet too large" or, if the broker closes the socket first, unspecified.
    disconnects.get(timeout=5)
    assert "disconnected due to oversize packet" in broker.log_text()


def offline_consumer(broker: Broker) -> None:
    """Leave a persistent central session subscribed to all events, then go offline."""
    central = mqtt_client(
        broker, "central", client_id="ingest", clean_start=False, session_expiry=3600
    )
    assert Collector(central).subscribe("kiosk/v1/+/+/events") == 1
    central.disconnect()
    central.loop_stop()


def publish_events(broker: Broker, count: int) -> list[bytes]:
    """``count`` QoS 1 events from k1, each accepted by the broker; their payloads."""
    k1 = mqtt_client(broker, "k1")
    payloads = [f"event-{n}".encode() for n in range(count)]
    mids = [k1.publish("kiosk/v1/s1/k1/events", p, qos=1).mid for p in payloads]
    assert [k1.wait_ack(mid)[0].value for mid in mids] == [0] * count
    return payloads


def resume_consumer(broker: Broker, until: bytes) -> list[bytes]:
    """Reconnect the central session; the payloads it receives up to ``until``."""
    inbox = Collector()
    mqtt_client(
        broker,
        "central",
        client_id="ingest",
        clean_start=False,
        session_expiry=3600,
        collector=inbox,
    )
    received = [bytes(inbox.get().payload)]
    while received[-1] != until:
        received.append(bytes(inbox.get().payload))
    return received


def test_an_offline_consumer_gets_2000_queued_events_after_a_broker_restart(
    broker: Broker,
) -> None:
    offline_consumer(broker)
    payloads = publish_events(broker, 2000)  # twice mosquitto's default queue limit
    broker.restart()
    received = resume_consumer(broker, until=payloads[-1])
    assert sorted(set(received)) == sorted(payloads)


def test_a_broker_crash_loses_at_most_one_autosave_interval_of_queued_events(
    broker: Broker,
) -> None:
    assert shipped_setting("autosave_on_changes") == "true"
    interval = int(shipped_setting("autosave_interval"))
    offline_consumer(broker)
    payloads = publish_events(broker, 300)
    broker.kill()
    broker.start()
    # A marker published after the restart queues behind whatever survived the crash.
    k1 = mqtt_client(broker, "k1")
    assert k1.publish_acked("kiosk/v1/s1/k1/events", b"marker") == 0
    survived = set(resume_consumer(broker, until=b"marker")) - {b"marker"}
    assert survived <= set(payloads)
    lost = len(payloads) - len(survived)
    print(f"SIGKILL with {len(payloads)} queued: {len(survived)} survived, {lost} lost")
    assert lost < interval
