"""``kiosk command send``: an operator's command to one kiosk, signed and answered.

The command is built, signed and published as central signs its ``resend`` commands
(:func:`kiosk.mqtt.protocol.command_signature` with the site's ``mqtt.command_key``, taken from
``KIOSK_CENTRAL_COMMAND_KEY``), over a connection made from the same options and environment
as ``kiosk central run``. It then waits for the kiosk's result, matched by the command's id:
exit 0 when the kiosk carried it out, 1 with the kiosk's error code when it refused, 69 when
the broker cannot be used, 75 when no result came in time.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import queue
import ssl
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk.central.cli import COMMAND_KEY_ENV, PASSWORD_ENV
from kiosk.cli.common import EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE
from kiosk.mqtt.client import new_client, tls_context
from kiosk.mqtt.protocol import (
    Command,
    KioskTopics,
    Leaf,
    ProtocolError,
    command_signature,
    decode_result,
    encode_command,
)
from kiosk.operator.actions import Action, ArgumentError, check_arguments
from kiosk.operator.commands import MAX_LIFETIME_MS

REFUSED = 1  # the kiosk answered with an error code

USAGE = {
    Action.LOCKDOWN: "on|off",
    Action.EMERGENCY_OPEN: "on|off",
    Action.SET_FEVER_THRESHOLD: "CELSIUS",
    Action.RESEND: "FROM_SEQ",
    Action.RELOAD_ALLOWLIST: "",
    Action.TEST_RELAY: "",
}


@dataclass(frozen=True)
class Broker:
    """Where and as whom to connect."""

    host: str
    port: int
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    username: str
    password: str | None = field(default=None, repr=False)
    v5: bool = True  # False: MQTT 3.1.1 (a NATS cluster's MQTT listener refuses MQTT 5)


def broker_options(username: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The broker connection options of ``central run`` and ``command send``, handed to the
    command as one ``broker`` argument (the password from ``KIOSK_CENTRAL_MQTT_PASSWORD``)."""
    options = [
        click.option("--host", default="localhost", show_default=True),
        click.option("--port", default=8883, show_default=True, type=click.IntRange(1, 65535)),
        click.option("--ca-file", help="CA that signed the broker's certificate (enables TLS)."),
        click.option("--cert-file", help="Client certificate (TLS client authentication)."),
        click.option("--key-file", help="Client certificate's key."),
        click.option(
            "--username",
            default=username,
            show_default=True,
            help=f"MQTT user; the password comes from {PASSWORD_ENV}.",
        ),
    ]

    def apply(function: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(function)
        def with_broker(*, host: str, port: int, ca_file: str | None, **rest: Any) -> None:
            broker = Broker(
                host,
                port,
                ca_file,
                rest.pop("cert_file"),
                rest.pop("key_file"),
                rest.pop("username"),
                os.environ.get(PASSWORD_ENV),
            )
            function(broker=broker, **rest)

        command = with_broker
        for option in reversed(options):
            command = option(command)
        return command

    return apply


class SendError(Exception):
    """The command could not be delivered or answered; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EX_UNAVAILABLE) -> None:
        super().__init__(message)
        self.code = code


def parse_arguments(name: Action, words: tuple[str, ...]) -> dict[str, Any]:
    """The command's ``args`` from the words after its name; ArgumentError says what is wanted."""
    wanted = USAGE[name]
    if len(words) != (1 if wanted else 0):
        raise ArgumentError(f"{name} takes {wanted or 'no arguments'} (got {' '.join(words)!r})")
    args: dict[str, Any] = {}
    if wanted == "on|off":
        if words[0] not in ("on", "off"):
            raise ArgumentError(f"{name} takes on or off, not {words[0]!r}")
        args = {"on": words[0] == "on"}
    elif name is Action.SET_FEVER_THRESHOLD:
        try:
            args = {"celsius": float(words[0])}
        except ValueError:
            raise ArgumentError(f"'celsius' must be a number, not {words[0]!r}") from None
    elif name is Action.RESEND:
        if not words[0].isdigit():
            raise ArgumentError(f"'from_seq' must be a whole number, not {words[0]!r}")
        args = {"from_seq": int(words[0])}
    check_arguments(name, args)  # the kiosk's own checks (bounds), before anything is sent
    return args


def build_command(
    name: Action, args: dict[str, Any], key: bytes | None, ttl_s: float, now_ms: int
) -> Command:
    """A fresh command, signed as central signs its own when ``key`` is given."""
    command = Command(str(uuid.uuid4()), name.value, args, now_ms, now_ms + int(ttl_s * 1000))
    return dataclasses.replace(command, sig=command_signature(key, command)) if key else command


def send(broker: Broker, topics: KioskTopics, command: Command, timeout_s: float) -> dict[str, Any]:
    """Publish ``command`` to the kiosk and return its result; SendError on any failure."""
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    tls = None
    if broker.ca_file or broker.cert_file:
        try:
            tls = tls_context(broker.ca_file, broker.cert_file, broker.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise SendError(f"TLS files: {exc}") from None
    client = new_client(
        f"command-{uuid.uuid4().hex[:12]}",
        username=broker.username,
        password=broker.password,
        tls=tls,
        v5=broker.v5,
    )
    client.on_connect = lambda _c, _u, _f, code, _p: events.put(("connack", code))
    client.on_subscribe = lambda _c, _u, _m, codes, _p: events.put(("suback", codes))
    client.on_publish = lambda _c, _u, _m, code, _p: events.put(("puback", code))
    client.on_message = lambda _c, _u, message: events.put(("message", message))
    client.on_disconnect = lambda _c, _u, _f, code, _p: events.put(("disconnect", code))
    deadline = time.monotonic() + timeout_s
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:
        raise SendError(f"cannot connect to {broker.host}:{broker.port}: {exc}") from None
    client.loop_start()
    try:
        return _exchange(client, events, topics, command, deadline, broker.username)
    finally:
        client.disconnect()
        client.loop_stop()


def _exchange(
    client: mqtt.Client,
    events: queue.Queue[tuple[str, Any]],
    topics: KioskTopics,
    command: Command,
    deadline: float,
    username: str,
) -> dict[str, Any]:
    status = "never seen on this broker"

    def expect(kind: str) -> Any:
        nonlocal status
        while True:
            try:
                got, value = events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                if kind in ("connack", "suback"):  # the command is not out yet
                    raise SendError(
                        f"the broker did not answer in time (waiting for its {kind}): not sent"
                    ) from None
                expiry = time.strftime("%H:%M:%S", time.gmtime(command.expires_at_ms / 1000))
                raise SendError(
                    f"no result from {topics.site}/{topics.kiosk} in time (kiosk status: "
                    f"{status}); a broker that keeps the command for the kiosk (mosquitto) has "
                    f"it carried out if the kiosk gets it before {expiry} UTC (--ttl-s); a NATS "
                    "cluster does not keep it: send it again once the kiosk is online",
                    EX_TEMPFAIL,
                ) from None
            if got == "disconnect":
                raise SendError(f"the broker closed the connection: {value}")
            if got == "message" and value.topic == topics.topic(Leaf.STATUS):
                status = value.payload.decode("utf-8", "replace")
            elif got == kind:
                return value

    code = expect("connack")
    if code.is_failure:
        raise SendError(f"the broker refused the connection: {code}")
    leaves = (Leaf.RESULT, Leaf.STATUS)
    v5 = client.protocol == mqtt.MQTTv5
    qos = 1 if v5 else 0  # 3.1.1: a NATS cluster, where a QoS 1 subscription is a consumer
    client.subscribe([(topics.topic(leaf), qos) for leaf in leaves])
    refused = [c for c in expect("suback") if c.is_failure]
    if refused:
        raise SendError(f"the broker refused the subscription: {refused[0]}")
    properties = None  # MQTT 3.1.1: the command's own expiry guards against a late delivery
    if v5:
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = topics.topic(Leaf.RESULT)
        properties.CorrelationData = command.id.encode()
        lifetime_ms = command.expires_at_ms - command.issued_at_ms
        properties.MessageExpiryInterval = max(1, lifetime_ms // 1000)  # never delivered stale
    client.publish(topics.topic(Leaf.CMD), encode_command(command), qos=1, properties=properties)
    code = expect("puback")
    if code.is_failure:
        raise SendError(
            f"the broker refused the command: {code} (may MQTT user {username!r} write "
            f"{topics.topic(Leaf.CMD)}? deploy/mosquitto/acl lets operator, central and "
            "homeassistant)"
        )
    while True:
        message = expect("message")
        try:
            result = decode_result(message.payload)
        except ProtocolError:
            continue  # not a result this command can use: wait for its own
        if result.get("id") == command.id:
            return result


@click.group("command")
def command_group() -> None:
    """Operator commands to a kiosk over MQTT (signed with the site's command key)."""


@command_group.command("send")
@click.option("--kiosk", "kiosk_id", required=True, help="The kiosk's id (kiosk.id).")
@click.option(
    "--site", required=True, envvar="KIOSK_SITE", show_envvar=True, help="Its site (kiosk.site)."
)
@broker_options(username="operator")
@click.option(
    "--ttl-s",
    default=60.0,
    show_default=True,
    type=click.FloatRange(1, MAX_LIFETIME_MS / 1000),
    help="The kiosk refuses the command (expired) when it gets it later than this.",
)
@click.option(
    "--timeout-s",
    default=15.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="How long to wait for the kiosk's result.",
)
@click.option(
    "--unsigned", is_flag=True, help="Send without a signature (kiosks with no command_key)."
)
@click.option(
    "--mqtt-protocol",
    type=click.Choice(["5", "3.1.1"]),
    default="5",
    show_default=True,
    help="3.1.1 for a NATS cluster's MQTT listener (docs/scale.md).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the kiosk's result as JSON.")
@click.argument("name", type=click.Choice([n.value for n in Action]), metavar="COMMAND")
@click.argument("words", nargs=-1, metavar="[ARGUMENT]")
def command_send(
    kiosk_id: str,
    site: str,
    broker: Broker,
    ttl_s: float,
    timeout_s: float,
    unsigned: bool,
    mqtt_protocol: str,
    as_json: bool,
    name: str,
    words: tuple[str, ...],
) -> None:
    """Send COMMAND to one kiosk and print its result.

    \b
      lockdown on|off              refuse everyone / back to normal
      emergency_open on|off        hold the gate open (if the kiosk allows it)
      set_fever_threshold CELSIUS  e.g. 38.0
      reload_allowlist             read the allowlist file again
      resend FROM_SEQ              send every event from this seq again
      test_relay                   release the turnstile once (if the kiosk allows it)

    Signed with the key in KIOSK_CENTRAL_COMMAND_KEY (the kiosks' mqtt.command_key, as
    `kiosk central run` uses it). Exit 0: carried out; 1: refused (the error code is
    printed); 69: the broker cannot be used; 75: no result within --timeout-s.
    """
    command_name = Action(name)
    try:
        args = parse_arguments(command_name, words)
        topics = KioskTopics(site, kiosk_id)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    key = os.environ.get(COMMAND_KEY_ENV, "").encode()
    if not key and not unsigned:
        click.echo(
            f"kiosk: no command key: set {COMMAND_KEY_ENV} to the site's mqtt.command_key, or "
            "give --unsigned for kiosks without one",
            err=True,
        )
        sys.exit(EX_USAGE)
    command = build_command(
        command_name, args, None if unsigned else key, ttl_s, time.time_ns() // 1_000_000
    )
    broker = dataclasses.replace(broker, v5=mqtt_protocol == "5")
    try:
        result = send(broker, topics, command, timeout_s)
    except SendError as exc:
        click.echo(f"kiosk: {exc}", err=True)
        sys.exit(exc.code)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    if result.get("ok"):
        if not as_json:
            click.echo(f"{site}/{kiosk_id}: {result.get('message')}")
        return
    click.echo(
        f"kiosk: {site}/{kiosk_id} refused {name}: {result.get('error')}: {result.get('message')}",
        err=True,
    )
    sys.exit(REFUSED)
