"""One way to build a paho MQTT client: the kiosk's uplink, central's ingest, ``kiosk doctor``
and ``kiosk command send`` all connect with :func:`new_client`.

What they share is set here: paho's version 2 callbacks, the protocol version, the account,
TLS, reconnect delays, the in-flight window and TCP_NODELAY (a receipt or a command is one
small packet; Nagle's algorithm would hold it back). Callbacks, will and connect stay with
each user.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

RECONNECT_MIN_S = 1  # paho doubles the delay after each failed attempt, up to the maximum
RECONNECT_MAX_S = 60
MAX_INFLIGHT = 100  # QoS 1 messages sent but not yet acknowledged


def tls_context(
    ca_file: str | None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """A client TLS context (1.2 or later) that verifies the broker against ``ca_file`` (the
    system's CAs when None) and presents ``cert_file`` when given; OSError or ssl.SSLError
    when a file cannot be used."""
    context = ssl.create_default_context(cafile=ca_file or None)
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def new_client(
    client_id: str,
    *,
    v5: bool = True,
    username: str | None = None,
    password: str | None = None,
    tls: ssl.SSLContext | None = None,
    keep_session: bool = False,
    manual_ack: bool = False,
) -> paho.Client:
    """A paho client speaking MQTT 5 (or 3.1.1 when not ``v5``), logging in as ``username``
    when given, over ``tls`` when given. ``keep_session`` asks an MQTT 3.1.1 broker to keep the
    session (with MQTT 5 that is ``clean_start`` at connect); ``manual_ack``: the caller acks
    each received message itself (``client.ack``)."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        clean_session=None if v5 else not keep_session,
        manual_ack=manual_ack,
    )
    if username:
        client.username_pw_set(username, password)
    if tls is not None:
        client.tls_set_context(tls)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    client.max_inflight_messages_set(MAX_INFLIGHT)
    client.on_socket_open = _no_delay
    return client


def _no_delay(client: Any, userdata: Any, sock: Any) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
