"""The kiosk's MQTT connection: paho-mqtt callbacks turned into values on one queue.

Every paho callback only puts a small value on :attr:`Uplink.inbox` and never raises (an
exception in a callback kills paho's network thread). The sync loop reads the values and
decides what to do. The client comes from :func:`kiosk.mqtt.client.new_client`; these two are
the only kiosk modules that import paho.

Every SUBACK is checked: a broker may refuse a subscription (return code 0x80; nats-server
does when it cannot create the subscription's JetStream consumer in time or the user may not
subscribe, mosquitto when an auth plugin denies it). A refused filter is logged (its last
level only), asked for again after 1 s, 2 s, 4 s … up to 30 s, and again on every reconnect,
and :meth:`Uplink.subscription_state` reports it until the broker grants it: a kiosk without
its receipts subscription would never hear that its events arrived.
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

RESUBSCRIBE_MIN_S = 1.0  # a refused subscription is asked for again after this long,
RESUBSCRIBE_MAX_S = 30.0  # doubling after each refusal up to this


def leaf_of(topic: str) -> str:
    """A topic filter's last level: what the kiosk logs of it (no site or kiosk names)."""
    return topic.rsplit("/", 1)[-1]


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
        # Subscriptions: the filters wanted, those granted, the refused ones (with how often),
        # the requests awaiting their SUBACK (mid -> filters) and the retry timer.
        self._subs_lock = threading.Lock()
        self._wanted: tuple[str, ...] = ()
        self._granted: set[str] = set()
        self._refused: dict[str, int] = {}
        self._pending: dict[int, tuple[str, ...]] = {}
        self._retry_s = RESUBSCRIBE_MIN_S
        self._retry: threading.Timer | None = None
        self._reported: tuple[str, ...] = ()  # the refused filters last put on the inbox

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
        self._forget_requests()
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
        self._forget_requests()
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
        """Subscribe at QoS 1 (idempotent; call on every connect). Each SUBACK is checked: a
        refused filter is asked for again with a growing delay until the broker grants it."""
        with self._subs_lock:
            self._cancel_retry()
            self._wanted = tuple(dict.fromkeys(topics))
            self._granted.clear()
            self._refused = {t: n for t, n in self._refused.items() if t in self._wanted}
            self._retry_s = RESUBSCRIBE_MIN_S
            self._request(self._wanted)

    def subscription_state(self) -> dict[str, Any]:
        """For the state document: ``refused_subscriptions``, the last levels of the filters
        the broker refused at its last answer, being asked for again (empty on a healthy
        kiosk; a request still awaiting its answer is not counted); thread-safe."""
        with self._subs_lock:
            return {"refused_subscriptions": list(self._refused_leaves())}

    @property
    def subscribed(self) -> bool:
        """Whether the broker granted every filter the kiosk asked for on this connection."""
        with self._subs_lock:
            return bool(self._wanted) and self._granted.issuperset(self._wanted)

    def _refused_leaves(self) -> tuple[str, ...]:
        return tuple(leaf_of(t) for t in self._wanted if t in self._refused)

    def _request(self, topics: tuple[str, ...]) -> None:
        """Send one SUBSCRIBE for ``topics`` (holding the lock, so that its SUBACK, handled in
        paho's thread, finds the request); not connected: the next connect subscribes."""
        if not topics:
            return
        rc, mid = self._client.subscribe([(topic, 1) for topic in topics])
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
            self._pending[mid] = topics
        elif rc != MQTTErrorCode.MQTT_ERR_NO_CONN:
            log.warning("subscribing refused by the client: %s", paho.error_string(rc))

    def _resubscribe(self, timer: threading.Timer) -> None:
        """The retry timer: ask again for the filters still refused."""
        try:
            with self._subs_lock:
                if self._retry is not timer:  # cancelled or replaced meanwhile
                    return
                self._retry = None
                self._request(tuple(t for t in self._wanted if t in self._refused))
        except Exception:
            log.exception("asking again for a refused subscription failed")

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def _forget_requests(self) -> None:
        """The connection ends: no SUBACK will come for what is pending; the next connect
        subscribes to everything again."""
        with self._subs_lock:
            self._cancel_retry()
            self._pending.clear()
            self._granted.clear()

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
            self._forget_requests()
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
            with self._subs_lock:
                topics = self._pending.pop(mid, None)
                if topics is None:  # a request of an earlier connection
                    return
                refused, delay = self._answered(topics, list(reason_codes))
                now_refused = self._refused_leaves()
                changed, self._reported = now_refused != self._reported, now_refused
            if refused:
                log.warning(
                    "the broker refused the subscription to %s (%s); asking again in %g s",
                    ", ".join(leaf_of(t) for t, _ in refused),
                    ", ".join(sorted({code for _, code in refused})),
                    delay,
                )
            if changed:
                self.inbox.put(SubscriptionsChanged(now_refused))
        except Exception:
            log.exception("in on_subscribe")

    def _answered(
        self, topics: tuple[str, ...], codes: list[Any]
    ) -> tuple[list[tuple[str, str]], float]:
        """Record a SUBACK's codes (holding the lock): the refused filters with their codes,
        and the delay before they are asked for again (it doubles each time, up to the
        maximum; a retry already waiting is kept)."""
        refused = []
        for topic, code in zip(topics, codes, strict=False):
            if code.is_failure:
                self._granted.discard(topic)
                self._refused[topic] = self._refused.get(topic, 0) + 1
                refused.append((topic, str(code)))
            else:
                self._granted.add(topic)
                times = self._refused.pop(topic, 0)
                if times:
                    log.info("subscription to %s granted after %d refusals", leaf_of(topic), times)
        for topic in topics[len(codes) :]:  # a SUBACK shorter than the request: ask again
            self._refused[topic] = self._refused.get(topic, 0) + 1
            refused.append((topic, "no return code"))
        delay = self._retry_s
        if refused and self._retry is None:
            timer = threading.Timer(delay, lambda: self._resubscribe(timer))
            timer.daemon = True
            self._retry = timer
            self._retry_s = min(delay * 2, RESUBSCRIBE_MAX_S)
            timer.start()
        return refused, delay

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
