"""`kiosk command send` against a real broker and a running simulated kiosk with a command key."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kiosk.cli.main import cli
from kiosk.mqtt.protocol import Leaf, command_signature, decode_command
from kiosk.operator.actions import Action
from tests.broker import Broker, Collector, free_port, mqtt_client
from tests.support import running
from tests.test_remote import KEY, TOPICS, kiosk_config


def send(broker: Broker, *words: str, key: str | None = KEY, user: str = "operator") -> Result:
    """Run `kiosk command send` as an operator would, with the secrets in the environment."""
    env = {"KIOSK_CENTRAL_MQTT_PASSWORD": broker.password(user)}
    env["KIOSK_CENTRAL_COMMAND_KEY"] = key or ""
    options = ["--host", broker.host, "--port", str(broker.port), "--username", user]
    return CliRunner().invoke(cli, ["command", "send", *options, *words], env=env)


def test_commands_are_signed_as_central_signs_them_and_the_result_is_printed(
    tmp_path: Path, broker: Broker
) -> None:
    config = kiosk_config(tmp_path, broker)
    watch = Collector(mqtt_client(broker, "central", client_id="watch-cmd"))
    watch.subscribe(TOPICS.topic(Leaf.CMD))
    status = Collector(mqtt_client(broker, "central", client_id="watch-status"))
    status.subscribe(TOPICS.topic(Leaf.STATUS))
    at = ["--site", "s1", "--kiosk", "k1"]
    with running(config) as kiosk:
        assert status.get(timeout=15).payload == b"online"

        on = send(broker, *at, "lockdown", "on")
        assert (on.exit_code, on.stdout) == (0, "s1/k1: lockdown on\n"), on.output
        assert kiosk.kiosk.gate.state().lockdown
        message = watch.get()
        assert message.properties is not None
        assert 0 < message.properties.json()["MessageExpiryInterval"] <= 60
        sent = decode_command(bytes(message.payload))
        assert sent.sig == command_signature(KEY.encode(), sent)  # central's format and key
        assert sent.expires_at_ms - sent.issued_at_ms == 60_000

        threshold = send(broker, *at, "set_fever_threshold", "38.2", "--json")
        assert threshold.exit_code == 0, threshold.output
        assert json.loads(threshold.stdout) | {"id": None} == {
            "v": 1,
            "kiosk": "k1",
            "id": None,
            "ok": True,
            "error": None,
            "message": "fever threshold set to 38.2 °C",
            "data": {"fever_threshold_c": 38.2},
        }
        assert kiosk.kiosk.fever_threshold_c == 38.2

        forged = send(broker, *at, "lockdown", "off", key="not-the-site-key-0123456789")
        assert forged.exit_code == 1
        assert forged.stderr == (
            "kiosk: s1/k1 refused lockdown: bad_signature: the signature does not match\n"
        )
        unsigned = send(broker, *at, "--unsigned", "lockdown", "off", key=None)
        assert (unsigned.exit_code, "refused lockdown: unsigned:" in unsigned.stderr) == (1, True)
        not_allowed = send(broker, *at, "emergency_open", "on")
        assert (not_allowed.exit_code, "not_allowed" in not_allowed.stderr) == (1, True)
        assert kiosk.kiosk.gate.state().lockdown, "a refused command changed something"

        off = send(broker, *at, "lockdown", "off", "--ttl-s", "30")
        assert (off.exit_code, off.stdout) == (0, "s1/k1: lockdown off\n")
        assert not kiosk.kiosk.gate.state().lockdown
        logged = [e.data["command"] for e in kiosk.kiosk.event_log.recent(50, type="command")]
    assert logged == ["lockdown", "set_fever_threshold", "lockdown"]


def test_no_result_in_time_names_the_kiosks_status_and_the_commands_expiry(
    broker: Broker,
) -> None:
    result = send(broker, "--site", "s1", "--kiosk", "k2", "--timeout-s", "1", "lockdown", "on")
    assert result.exit_code == 75
    assert result.stderr.startswith(
        "kiosk: no result from s1/k2 in time (kiosk status: never seen on this broker); "
        "a broker that keeps the command for the kiosk (mosquitto) has it carried out if the "
        "kiosk gets it before "
    )
    assert result.stderr.endswith(
        "UTC (--ttl-s); a NATS cluster does not keep it: send it again once the kiosk is online\n"
    )


def test_over_mqtt_3_1_1_the_command_goes_without_mqtt_5_properties(
    tmp_path: Path, broker: Broker
) -> None:
    """``--mqtt-protocol 3.1.1``, as a NATS cluster's MQTT listener needs: the kiosk carries
    the command out and its result comes back (matched by the command's id, no correlation
    data); the command's own expiry stands in for the Message Expiry Interval."""
    watch = Collector(mqtt_client(broker, "central", client_id="watch-cmd"))
    watch.subscribe(TOPICS.topic(Leaf.CMD))
    status = Collector(mqtt_client(broker, "central", client_id="watch-status"))
    status.subscribe(TOPICS.topic(Leaf.STATUS))
    at = ["--site", "s1", "--kiosk", "k1", "--mqtt-protocol", "3.1.1"]
    with running(kiosk_config(tmp_path, broker)) as kiosk:
        assert status.get(timeout=15).payload == b"online"
        on = send(broker, *at, "lockdown", "on")
        assert (on.exit_code, on.stdout) == (0, "s1/k1: lockdown on\n"), on.output
        assert kiosk.kiosk.gate.state().lockdown
    message = watch.get()
    assert message.properties is None or "MessageExpiryInterval" not in message.properties.json()
    sent = decode_command(bytes(message.payload))
    assert sent.expires_at_ms - sent.issued_at_ms == 60_000


def test_results_that_are_not_results_are_passed_over_without_a_traceback(
    broker: Broker,
) -> None:
    """What arrives on the result topic comes from a kiosk's credentials: no trusting it."""
    from kiosk.mqtt.protocol import KioskTopics

    k2 = Collector(mqtt_client(broker, "k2", client_id="k2-garbage"))
    publisher = mqtt_client(broker, "k2", client_id="k2-answer")
    k2.subscribe(KioskTopics("s1", "k2").topic(Leaf.CMD))
    topic = KioskTopics("s1", "k2").topic(Leaf.RESULT)

    def answer_with_junk() -> None:  # once the command is out, as a kiosk would answer
        k2.get(timeout=30)
        for junk in (b"[]", b"1", b"[" * 5_000):
            publisher.publish_acked(topic, junk)

    answering = threading.Thread(target=answer_with_junk)
    answering.start()
    result = send(broker, "--site", "s1", "--kiosk", "k2", "--timeout-s", "5", "lockdown", "on")
    answering.join(timeout=30)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 75, result.output


def test_the_broker_refusing_the_operator_is_exit_69_in_words(broker: Broker) -> None:
    env = {"KIOSK_CENTRAL_MQTT_PASSWORD": "wrong", "KIOSK_CENTRAL_COMMAND_KEY": KEY}
    options = ["--host", broker.host, "--port", str(broker.port)]
    result = CliRunner().invoke(
        cli,
        ["command", "send", *options, "--site", "s1", "--kiosk", "k1", "reload_allowlist"],
        env=env,
    )
    assert result.exit_code == 69
    assert result.stderr.startswith("kiosk: the broker refused the connection: ")
    nobody = ["--host", broker.host, "--port", str(free_port())]
    closed = CliRunner().invoke(
        cli,
        ["command", "send", *nobody, "--site", "s1", "--kiosk", "k1", "reload_allowlist"],
        env=env,
    )
    assert closed.exit_code == 69
    assert closed.stderr.startswith(f"kiosk: cannot connect to {broker.host}:")


@pytest.mark.parametrize(
    ("words", "error"),
    [
        (["lockdown", "maybe"], "lockdown takes on or off, not 'maybe'"),
        (["lockdown"], "lockdown takes on|off (got '')"),
        (["set_fever_threshold", "45"], "'celsius' must be from 37.0 to 39.0 °C"),
        (["set_fever_threshold", "warm"], "'celsius' must be a number, not 'warm'"),
        (["resend", "-3"], "'from_seq' must be a whole number, not '-3'"),
        (["reload_allowlist", "now"], "reload_allowlist takes no arguments"),
        (["open_sesame"], "'open_sesame' is not one of 'emergency_open', 'lockdown'"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(words: list[str], error: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["command", "send", "--port", "1", "--site", "s1", "--kiosk", "k1", "--", *words],
        env={"KIOSK_CENTRAL_COMMAND_KEY": KEY},
    )
    assert result.exit_code == 2
    assert error in result.stderr


def test_a_missing_key_is_named_and_every_command_has_a_usage_line() -> None:
    result = CliRunner().invoke(
        cli,
        ["command", "send", "--site", "s1", "--kiosk", "k1", "lockdown", "on"],
        env={"KIOSK_CENTRAL_COMMAND_KEY": ""},
    )
    assert result.exit_code == 64
    assert "set KIOSK_CENTRAL_COMMAND_KEY to the site's mqtt.command_key" in result.stderr
    help_text = CliRunner().invoke(cli, ["command", "send", "--help"]).stdout
    assert all(f"  {name.value} " in help_text for name in Action)
    for command in (["command", "send"], ["central", "run"]):  # where the key comes from
        assert "KIOSK_CENTRAL_COMMAND_KEY" in CliRunner().invoke(cli, [*command, "--help"]).stdout


def test_a_user_the_acl_does_not_let_write_commands_is_told_so(broker: Broker) -> None:
    result = send(broker, "--site", "s1", "--kiosk", "k1", "lockdown", "on", user="k2")
    assert result.exit_code == 69
    assert result.stderr == (
        "kiosk: the broker refused the command: Not authorized (may MQTT user 'k2' write "
        "kiosk/v1/s1/k1/cmd? deploy/mosquitto/acl lets operator, central and homeassistant)\n"
    )
