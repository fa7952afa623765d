"""The kiosk's MQTT connection: paho-mqtt callbacks turned into values on one queue.

Every paho callback only puts a small value on :attr:`Uplink.inbox` and never raises (an
exception in a callback kills paho's network thread). The sync loop reads the values and
decides what to do. The client comes from :func:`kiosk.mqtt.client.new_client`; these two are
the only kiosk modules that import paho.

Every SUBACK is checked (:mod:`kiosk.mqtt.subscriptions`): a subscription the broker refuses
is asked for again until granted, and reported meanwhile (:meth:`Uplink.subscription_state`).
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from kiosk.config import MqttSection
from kiosk.mqtt import client as mqtt_client
from kiosk.mqtt.protocol import Availability, KioskTopics, Leaf
from kiosk.mqtt.subscriptions import Subscriptions

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 3600  # commands sent during a short outage wait for the kiosk this long
WILL_DELAY_S = 5  # a quick reconnect does not flap the availability topic


class UplinkError(OSError):
    """The connection cannot be set up (bad TLS files, unreadable password file)."""


@dataclass(frozen=True)
class Connected:
    """The broker accepted the connection; ``session_present``: it kept our session."""

    session_present: bool


@dataclass(frozen=True)
class Disconnected:
    """The connection ended; ``reason`` says why."""

    reason: str


@dataclass(frozen=True)
class ConnectFailed:
    """A connection attempt failed; ``reason`` is the clearest cause found."""

    reason: str


@dataclass(frozen=True)
class Published:
    """The broker acknowledged (or refused) the message with ``mid``."""

    mid: int
    ok: bool
    reason: str


@dataclass(frozen=True)
class Received:
    """A message on one of our subscriptions."""

    topic: str
    payload: bytes
    response_topic: str | None
    correlation_data: bytes | None


@dataclass(frozen=True)
class SubscriptionsChanged:
    """The filters the broker refuses changed (one was refused, or a refused one granted);
    ``refused``: their last levels now (empty: it grants them all)."""

    refused: tuple[str, ...]


UplinkEvent = Connected | Disconnected | ConnectFailed | Published | Received | SubscriptionsChanged


def read_password(settings: MqttSection) -> str | None:
    """The password from config or its file; refuses a file others can read."""
    if settings.password:
        return settings.password
    if not settings.password_file:
        return None
    path = Path(settings.password_file)
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UplinkError(f"{path}: readable by others; chmod 600 it")
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        if isinstance(exc, UplinkError):
            raise
        raise UplinkError(f"{path}: cannot read the MQTT password: {exc.strerror}") from None


def tls_context(settings: MqttSection) -> ssl.SSLContext:
    """A client TLS context that verifies the broker against the configured CA."""
    try:
        return mqtt_client.tls_context(settings.ca_file, settings.cert_file, settings.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise UplinkError(f"TLS files: {exc}") from None


class Uplink:
    """One MQTT client for one kiosk, connecting in the background and reconnecting."""

    def __init__(self, settings: MqttSection, topics: KioskTopics, client_id: str) -> None:
        self.settings = settings
        self.topics = topics
        self.inbox: queue.Queue[UplinkEvent] = queue.Queue()
        self._client_id = client_id
        self._tls = tls_context(settings) if settings.tls else None
        self._password = read_password(settings)
        self._client = self._new_client()
        self._diagnosed = threading.Event()
        self._subscriptions = Subscriptions(
            self._send_subscribe, lambda refused: self.inbox.put(SubscriptionsChanged(refused))
        )

    @property
    def is_v5(self) -> bool:
        """True when speaking MQTT 5."""
        return self.settings.protocol == "5"

    def _new_client(self) -> paho.Client:
        client = mqtt_client.new_client(
            self._client_id,
            v5=self.is_v5,
            username=self.settings.username or self.topics.kiosk,
            password=self._password,
            tls=self._tls,
            keep_session=True,
        )
        will_properties = None
        if self.is_v5:
            will_properties = Properties(PacketTypes.WILLMESSAGE)
            will_properties.WillDelayInterval = WILL_DELAY_S
        client.will_set(
            self.topics.topic(Leaf.STATUS),
            Availability.OFFLINE.value,
            qos=1,
            retain=True,
            properties=will_properties,
        )
        client.max_queued_messages_set(0)  # the sync loop's window bounds what is queued
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def start(self) -> None:
        """Connect in the background; a kiosk that boots offline keeps trying."""
        properties = None
        if self.is_v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=False if self.is_v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self._client.loop_start()

    def stop(self, *, clean: bool = True) -> None:
        """Disconnect. ``clean``: the kiosk stops, so publish ``stopped`` first (the will is
        then not sent). Otherwise (the sync loop crashed and is started again) ask an MQTT 5
        broker to send the will, ``offline``, after its delay, unless the kiosk is back."""
        reason = None
        if clean and self._client.is_connected():
            info = self._client.publish(
                self.topics.topic(Leaf.STATUS), Availability.STOPPED.value, qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                log.warning("could not publish 'stopped' before disconnecting")
        elif not clean and self.is_v5:
            reason = ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
        self._subscriptions.forget()
        self._client.disconnect(reasoncode=reason)
        self._client.loop_stop()

    def is_alive(self) -> bool:
        """False when paho's network thread died (it then never reconnects)."""
        thread = getattr(self._client, "_thread", None)
        return thread is not None and thread.is_alive()

    def restart(self) -> None:
        """Replace a client whose network thread died."""
        log.error("MQTT network thread stopped: restarting the client")
        try:
            self._client.loop_stop()
        except Exception:
            log.exception("stopping the dead MQTT client failed")
        self._subscriptions.forget()
        self._client = self._new_client()
        self.start()

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up now."""
        return bool(self._client.is_connected())

    def publish(
        self,
        leaf: Leaf,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        topic: str | None = None,
        correlation_data: bytes | None = None,
    ) -> int | None:
        """Queue a message; returns its mid, or None if paho refused it (e.g. not connected)."""
        properties = None
        if correlation_data is not None and self.is_v5:
            properties = Properties(PacketTypes.PUBLISH)
            properties.CorrelationData = correlation_data
        info = self._client.publish(
            topic or self.topics.topic(leaf), payload, qos=qos, retain=retain, properties=properties
        )
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            log.warning(
                "publish to %s refused by the client: %s", leaf.value, paho.error_string(info.rc)
            )
            return None
        return int(info.mid)

    def subscribe(self, *topics: str) -> None:
        """Subscribe at ``subscriptions_qos`` (idempotent; call on every connect). Each SUBACK
        is checked: a refused filter is asked for again with a growing delay until the broker
        grants it."""
        self._subscriptions.subscribe(topics)

    def subscription_state(self) -> dict[str, Any]:
        """``refused_subscriptions`` for the state document; thread-safe."""
        return self._subscriptions.state()

    @property
    def subscribed(self) -> bool:
        """Whether the broker granted every filter the kiosk asked for on this connection."""
        return self._subscriptions.granted_all

    def _send_subscribe(self, topics: tuple[str, ...]) -> int | None:
        """One SUBSCRIBE at ``subscriptions_qos``; its mid, or None when not connected (the
        next connect subscribes) or paho refused it."""
        qos = self.settings.subscriptions_qos
        rc, mid = self._client.subscribe([(topic, qos) for topic in topics])
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
            return int(mid)
        if rc != MQTTErrorCode.MQTT_ERR_NO_CONN:
            log.warning("subscribing refused by the client: %s", paho.error_string(rc))
        return None

    # --- paho callbacks: hand over a value, never raise ----------------------------

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        try:
            if reason_code.is_failure:
                self.inbox.put(ConnectFailed(f"broker refused the connection: {reason_code}"))
                return
            self._diagnosed.clear()
            self.inbox.put(Connected(bool(flags.session_present)))
        except Exception:
            log.exception("in on_connect")

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        try:
            if not self._diagnosed.is_set():
                self._diagnosed.set()
                self.inbox.put(ConnectFailed(self.diagnose()))
        except Exception:
            log.exception("in on_connect_fail")

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        try:
            self._subscriptions.forget()
            self.inbox.put(Disconnected(str(reason_code)))
        except Exception:
            log.exception("in on_disconnect")

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        try:
            self.inbox.put(Published(mid, not reason_code.is_failure, str(reason_code)))
        except Exception:
            log.exception("in on_publish")

    def _on_subscribe(
        self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        try:
            self._subscriptions.answered(mid, list(reason_codes))
        except Exception:
            log.exception("in on_subscribe")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            props = getattr(message, "properties", None)
            self.inbox.put(
                Received(
                    message.topic,
                    bytes(message.payload),
                    getattr(props, "ResponseTopic", None) if props else None,
                    getattr(props, "CorrelationData", None) if props else None,
                )
            )
        except Exception:
            log.exception("in on_message")

    def diagnose(self) -> str:
        """Why the broker cannot be reached, in words: DNS, refused, TLS verification …"""
        host, port = self.settings.host, self.settings.port
        try:
            with socket.create_connection((host, port), timeout=5) as raw:
                if self._tls is not None:
                    with self._tls.wrap_socket(raw, server_hostname=host):
                        pass
        except ssl.SSLCertVerificationError as exc:
            return (
                f"TLS: the broker's certificate is not trusted ({exc.verify_message}); "
                f"check mqtt.ca_file"
            )
        except ssl.SSLError as exc:
            return f"TLS handshake with {host}:{port} failed: {exc.reason or exc}"
        except OSError as exc:
            return f"cannot reach {host}:{port}: {exc.strerror or exc}"
        return f"{host}:{port} reachable, but the MQTT connection failed"


def client_id(topics: KioskTopics) -> str:
    """A stable client id, so the broker resumes the kiosk's session."""
    return f"kiosk-{topics.site}-{topics.kiosk}"
