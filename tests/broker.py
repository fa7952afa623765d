"""A real mosquitto for tests, running the shipped deploy/mosquitto config, plus paho helpers.

Use it from any test module through the ``broker`` fixture, which tests/conftest.py registers
(``pytest_plugins = ["tests.broker"]``)::

    from tests.broker import Broker, Collector, mqtt_client

    def test_something(broker: Broker) -> None:
        central = mqtt_client(broker, "central")
        inbox = Collector(central)
        inbox.subscribe("kiosk/v1/+/+/events")
        k1 = mqtt_client(broker, "k1")
        assert k1.publish_acked("kiosk/v1/s1/k1/events", b"x") == 0
        assert inbox.get().payload == b"x"

The broker runs deploy/mosquitto/mosquitto.conf with only ports, file paths and the log
destination rewritten, and deploy/mosquitto/acl unchanged. Because the shipped file sets
``per_listener_settings false``, authentication and ACLs are global, so the extra plain
listener (``port``) appended for tests that do not need TLS enforces exactly the same rules
as the TLS one (``tls_port``).
"""

from __future__ import annotations

import datetime
import getpass
import ipaddress
import queue
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto"
HOST = "127.0.0.1"
DEFAULT_USERS = ("k1", "k2", "central", "operator", "homeassistant")
# Shipped settings that depend on the machine: rewritten, every other line is kept verbatim.
REWRITTEN = frozenset(
    {
        "listener",
        "cafile",
        "certfile",
        "keyfile",
        "password_file",
        "acl_file",
        "persistence_location",
        "log_dest",
    }
)


class BrokerError(RuntimeError):
    """mosquitto did not start or stop as expected; the text includes its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now.

    Chosen below the kernel's ephemeral range (net.ipv4.ip_local_port_range starts at 32768
    by default), so that the outgoing connections of the tests' own clients, which get
    ephemeral ports, cannot take it before mosquitto binds it.
    """
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    raise BrokerError("no free port between 20000 and 32000")


def render_config(shipped: str, paths: dict[str, str], tls_port: int, plain_port: int) -> str:
    """The shipped config with machine-specific values replaced; fails if the file drifts."""
    values = {"listener": f"{tls_port} {HOST}", **paths}
    missing = REWRITTEN - values.keys()
    assert not missing, f"no test value for {sorted(missing)}"
    out, seen = [], set()
    for line in shipped.splitlines():
        key = line.split(maxsplit=1)[0] if line.strip() and not line.startswith("#") else ""
        if key in REWRITTEN:
            assert key not in seen, f"{key} appears twice in the shipped config"
            seen.add(key)
            out.append(f"{key} {values[key]}")
        else:
            system_path = key and any(root in line for root in ("/etc/", "/var/", "/run/"))
            assert not system_path, f"shipped line {line!r} names a path the harness keeps"
            out.append(line)
    assert seen == REWRITTEN, f"shipped config lacks {sorted(REWRITTEN - seen)}"
    # Additions, at the end so that no listener-specific line attaches to them: stay the
    # current user when run as root, and a plain listener under the same (global) auth/ACL.
    out += [f"user {getpass.getuser()}", f"listener {plain_port} {HOST}", ""]
    return "\n".join(out)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> None:
    """ca.crt, server.crt/.key (127.0.0.1 and localhost) and an unrelated wrong-ca.crt."""
    ca_key, wrong_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in "abc")
    pem = serialization.Encoding.PEM
    ca = _certificate("Test site CA", ca_key, "Test site CA", ca_key, ca=True)
    wrong = _certificate("Unrelated CA", wrong_key, "Unrelated CA", wrong_key, ca=True)
    server = _certificate("localhost", server_key, "Test site CA", ca_key, ca=False)
    (directory / "ca.crt").write_bytes(ca.public_bytes(pem))
    (directory / "wrong-ca.crt").write_bytes(wrong.public_bytes(pem))
    (directory / "server.crt").write_bytes(server.public_bytes(pem))
    _write_key(server_key, directory / "server.key")


class Broker:
    """mosquitto on free 127.0.0.1 ports with the shipped config, users and ACL.

    Files live under ``directory``: certs/, passwd, acl, data/ (persistence), mosquitto.log.
    Clients made by :func:`mqtt_client` are disconnected when the broker is closed.
    """

    def __init__(
        self,
        directory: Path,
        users: Iterable[str] = DEFAULT_USERS,
        passwords: dict[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.clients: list[mqtt.Client] = []
        self._passwords = {user: f"{user}-pw" for user in users} | (passwords or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._port, self._tls_port = free_port(), free_port()
        certs, data = directory / "certs", directory / "data"
        certs.mkdir(parents=True)
        data.mkdir()
        make_pki(certs)
        passwd = directory / "passwd"
        passwd.touch()
        for user, password in self._passwords.items():
            subprocess.run(
                ["mosquitto_passwd", "-b", str(passwd), user, password],
                check=True,
                capture_output=True,
            )
        shutil.copyfile(DEPLOY / "acl", directory / "acl")
        self._log = directory / "mosquitto.log"
        self._stderr = directory / "mosquitto.stderr"
        self.config_file = directory / "mosquitto.conf"
        self.config_file.write_text(
            render_config(
                (DEPLOY / "mosquitto.conf").read_text(encoding="utf-8"),
                {
                    "cafile": str(certs / "ca.crt"),
                    "certfile": str(certs / "server.crt"),
                    "keyfile": str(certs / "server.key"),
                    "password_file": str(passwd),
                    "acl_file": str(directory / "acl"),
                    "persistence_location": f"{data}/",
                    "log_dest": f"file {self._log}",
                },
                self._tls_port,
                self._port,
            ),
            encoding="utf-8",
        )

    host = HOST

    @property
    def port(self) -> int:
        """The plain (non-TLS) listener, same auth and ACL as the TLS one."""
        return self._port

    @property
    def tls_port(self) -> int:
        """The TLS listener (the shipped ``listener 8883``)."""
        return self._tls_port

    @property
    def ca_file(self) -> str:
        """The CA that signed the server certificate."""
        return str(self.directory / "certs" / "ca.crt")

    @property
    def wrong_ca_file(self) -> str:
        """An unrelated CA: a client trusting only this one must refuse the server."""
        return str(self.directory / "certs" / "wrong-ca.crt")

    def password(self, user: str) -> str:
        """The password of ``user`` in the broker's password file."""
        return self._passwords[user]

    def log_text(self) -> str:
        """Everything mosquitto has logged so far (log file, then stderr)."""
        return "".join(
            path.read_text(errors="replace") for path in (self._log, self._stderr) if path.exists()
        )

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until both listeners accept connections."""
        if self._process is not None:
            raise BrokerError("broker already running")
        with self._stderr.open("ab") as stderr:
            self._process = subprocess.Popen(
                ["mosquitto", "-c", str(self.config_file)], stdout=stderr, stderr=stderr
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Return once both ports accept TCP connections; BrokerError if mosquitto exits."""
        process = self._require_process()
        deadline = time.monotonic() + timeout
        for port in (self._port, self._tls_port):
            while not _accepts(port):
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"port {port} not ready after {timeout} s:\n{self.log_text()}"
                    )
                try:
                    code = process.wait(timeout=0.02)  # the pause between attempts
                except subprocess.TimeoutExpired:
                    continue
                self._process = None
                raise BrokerError(f"mosquitto exited with {code}:\n{self.log_text()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (mosquitto saves its database) and wait for the exit."""
        self._end(signal.SIGTERM, timeout)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL, like a crash or power cut: only what autosave wrote survives."""
        self._end(signal.SIGKILL, timeout)

    def restart(self, timeout: float = 10.0) -> None:
        """SIGTERM, then start again on the same ports with the same persistence dir."""
        self.stop(timeout)
        self.start(timeout)

    def close(self) -> None:
        """Disconnect the clients made by :func:`mqtt_client`, then stop the broker."""
        for client in self.clients:  # all first, so that their reconnect waits end together
            client.disconnect()
        for client in self.clients:
            client.loop_stop()
        if self._process is not None:
            self.stop()

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _require_process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise BrokerError("broker not running")
        return self._process

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        process = self._require_process()
        process.send_signal(sig)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise BrokerError(f"mosquitto ignored {sig.name} for {timeout} s") from None
        finally:
            self._process = None
        if sig == signal.SIGTERM and code != 0:
            raise BrokerError(f"mosquitto exited with {code} on SIGTERM:\n{self.log_text()}")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A fresh, running broker with users k1, k2, central and operator (password user-pw)."""
    with Broker(tmp_path_factory.mktemp("broker")) as running:
        yield running


class BrokerClient(mqtt.Client):
    """A paho client whose PUBACKs and SUBACKs can be awaited; made by :func:`mqtt_client`.

    Acknowledgements are kept until awaited, so await them (or stay under 65,535 messages,
    where paho reuses message ids).
    """

    def __init__(
        self, client_id: str, protocol: mqtt.MQTTProtocolVersion, clean_session: bool | None
    ) -> None:
        super().__init__(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=clean_session,
        )
        self.connack: Properties | None = None  # of the latest CONNACK (MQTT 5)
        self._acks: dict[int, list[ReasonCode]] = {}
        self._acked = threading.Condition()
        self.on_publish = self._on_ack
        self.on_subscribe = self._on_ack

    def _on_ack(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        codes: ReasonCode | list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._acked:
            self._acks[mid] = codes if isinstance(codes, list) else [codes]
            self._acked.notify_all()

    def wait_ack(self, mid: int, timeout: float = 5.0) -> list[ReasonCode]:
        """The reason codes of the PUBACK or SUBACK for ``mid``."""
        with self._acked:
            if not self._acked.wait_for(lambda: mid in self._acks, timeout):
                pytest.fail(f"no acknowledgement for message {mid} within {timeout} s")
            return self._acks.pop(mid)

    def publish_acked(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, timeout: float = 5.0
    ) -> ReasonCode:
        """Publish at QoS 1/2 and return the broker's reason code (0 = accepted)."""
        info = self.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish to {topic}: {mqtt.error_string(info.rc)}")
        return self.wait_ack(info.mid, timeout)[0]


def mqtt_client(
    broker: Broker,
    user: str | None,
    *,
    tls: bool = False,
    protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5,
    client_id: str = "",
    clean_start: bool = True,
    session_expiry: int = 0,
    password: str | None = None,
    ca_file: str | None = None,
    collector: Collector | None = None,
    timeout: float = 5.0,
) -> BrokerClient:
    """A client logged in as ``user`` (None: anonymous), connected, with its loop running.

    ``collector`` starts collecting before the CONNECT, so a resumed session's backlog is
    caught. A refused CONNACK raises ConnectionRefusedError naming the reason; TLS
    failures raise from ``ssl`` (e.g. ssl.SSLCertVerificationError).
    """
    v5 = protocol == mqtt.MQTTv5
    client = BrokerClient(client_id, protocol, None if v5 else clean_start)
    if user is not None:
        client.username_pw_set(user, broker.password(user) if password is None else password)
    if tls or ca_file:
        client.tls_set(ca_certs=ca_file or broker.ca_file)
    if collector is not None:
        collector.attach(client)
    connacks: queue.Queue[ReasonCode] = queue.Queue()

    def on_connect(
        _c: mqtt.Client, _u: object, _f: object, code: ReasonCode, properties: Properties | None
    ) -> None:
        client.connack = properties
        connacks.put(code)

    client.on_connect = on_connect
    properties = None
    if v5:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = session_expiry
    client.connect(
        broker.host,
        broker.tls_port if tls or ca_file else broker.port,
        clean_start=clean_start if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
        properties=properties,
    )
    client.loop_start()
    try:
        code = connacks.get(timeout=timeout)
    except queue.Empty:
        client.loop_stop()
        pytest.fail(f"no CONNACK for {user!r} within {timeout} s")
    if code.is_failure:
        client.disconnect()
        client.loop_stop()
        raise ConnectionRefusedError(f"{user!r} refused: {code}")
    broker.clients.append(client)
    return client


class Collector:
    """The messages a client receives, in arrival order."""

    def __init__(self, client: BrokerClient | None = None) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._client = client
        if client is not None:
            self.attach(client)

    def attach(self, client: BrokerClient) -> None:
        """Collect what ``client`` receives from now on."""
        self._client = client
        client.on_message = lambda _c, _u, message: self.messages.put(message)

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5.0) -> ReasonCode:
        """Subscribe and return the SUBACK's reason code (granted QoS, or a refusal)."""
        if self._client is None:
            raise RuntimeError("collector not attached to a client")
        code, mid = self._client.subscribe(topic, qos)
        if mid is None:
            raise RuntimeError(f"subscribe to {topic}: {mqtt.error_string(code)}")
        return self._client.wait_ack(mid, timeout)[0]

    def get(self, timeout: float = 5.0) -> mqtt.MQTTMessage:
        """The next message; the test fails if none arrives within ``timeout`` seconds."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no message within {timeout} s")

    def get_until(self, topic: str, timeout: float = 5.0) -> list[mqtt.MQTTMessage]:
        """Messages up to and including the next one on ``topic``.

        Publish a marker after something that must not arrive: once the marker is here,
        anything sent before it on the same connection would have arrived too.
        """
        deadline = time.monotonic() + timeout
        received = [self.get(timeout)]
        while received[-1].topic != topic:
            received.append(self.get(max(0.0, deadline - time.monotonic())))
        return received
