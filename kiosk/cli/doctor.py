"""``kiosk doctor``: check that this kiosk can work, one part at a time, with a fix for each fault.

Checks run in a fixed order: config, camera, thermometer, GPIO, disk, event log, clock, CPU,
broker, trust. Each is a small function returning a :class:`Check`; a check never raises (an
unexpected error is reported as a failed check). A config that does not load stops the run:
nothing else can be checked without it. Any ``fail`` makes :func:`exit_code` 1.

With ``simulate`` the devices are the PC stand-ins that ``kiosk run --simulate`` uses
(generated frames, the simulated MLX90614 bus, gpiozero's MockFactory), so the run shows the
config, the disk, the clock, the broker and the trust material of a PC set-up.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import sqlite3
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kiosk.config import (
    DEFAULT_CONFIG_PATH,
    SITE_SALT_FIX,
    ConfigError,
    KioskConfig,
    load_config,
)
from kiosk.run.clock import clock_is_synchronised
from kiosk.run.cpus import online_cpus
from kiosk.sensors.frames import CameraError, FrameSource

Status = Literal["ok", "warn", "fail"]

CAMERA_TIMEOUT_S = 3.0
BROKER_TIMEOUT_S = 3.0
DISK_WARN_BYTES = 500 * 1024 * 1024
DISK_FAIL_BYTES = 50 * 1024 * 1024
REVOCATION_MAX_AGE_S = 7 * 24 * 3600
AMBIENT_PLAUSIBLE_C = (0.0, 50.0)  # the sensor's own temperature: a room, indoors or a porch
PC_FIX = "run on the Pi or use --simulate"
CONFIG_FIX = "correct the key named above; `kiosk config example` lists every key and its range"
MB = 1024 * 1024


@dataclass(frozen=True)
class Check:
    """The result of one check: ``detail`` says what was found, ``fix`` what to do (if not ok)."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def _ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail, "")


def run_checks(
    config: KioskConfig | str | Path | None,
    *,
    simulate: bool,
    frame_source: FrameSource | None = None,
    i2c_bus: Any = None,
    pin_factory: Any = None,
    free_bytes: Callable[[Path], int] | None = None,
    clock_synced: Callable[[], bool] = clock_is_synchronised,
    manager_cpus: Callable[[], set[int]] = lambda: os.sched_getaffinity(1),
    cpus: Callable[[], list[int]] = online_cpus,
    now: Callable[[], float] = time.time,
    on_pi: Callable[[], bool] | None = None,
    camera_timeout_s: float = CAMERA_TIMEOUT_S,
    broker_timeout_s: float = BROKER_TIMEOUT_S,
) -> list[Check]:
    """Run every check in order; a config that cannot be loaded is the only check reported.

    :param config: a config file path (``None``: the default path) or an already loaded config.
    :param simulate: use the PC stand-ins for the camera, the thermometer and GPIO.
    :param frame_source: a frame source to check instead of the configured one (not started).
    :param i2c_bus: an I2C bus to look for the MLX90614 on instead of the configured one.
    :param pin_factory: a gpiozero pin factory instead of the default (or MockFactory).
    :param free_bytes: free bytes on the file system holding a path (default: disk_usage).
    :param clock_synced: whether the system clock is NTP-synchronised.
    :param manager_cpus: the CPUs the service manager (and so every process it starts) may use.
    :param cpus: the machine's online CPUs.
    :param now: wall clock in epoch seconds, for the age of the revocation list.
    :param on_pi: whether this machine is a Raspberry Pi (chooses the fix for missing devices).
    """
    if isinstance(config, KioskConfig):
        loaded: KioskConfig = config
        first = check_setup_of(config)
    else:
        check, maybe = check_config(config)
        if maybe is None:
            return [check]
        loaded, first = maybe, check
    is_pi = on_pi if on_pi is not None else running_on_pi
    steps: list[tuple[str, Callable[[], Check]]] = [
        ("camera", lambda: check_camera(loaded, simulate, frame_source, camera_timeout_s, is_pi)),
        ("thermometer", lambda: check_thermometer(loaded, simulate, i2c_bus, is_pi)),
        ("gpio", lambda: check_gpio(loaded, simulate, pin_factory, is_pi)),
        ("disk", lambda: check_disk(loaded, free_bytes or disk_free_bytes)),
        ("event log", lambda: check_event_log(loaded)),
        ("clock", lambda: check_clock(clock_synced)),
        ("cpu", lambda: check_gate_core(manager_cpus, cpus())),
        ("broker", lambda: check_broker(loaded, broker_timeout_s)),
        ("trust", lambda: check_trust(loaded, now)),
    ]
    checks = [first]
    for name, step in steps:
        try:
            checks.append(step())
        except Exception as exc:  # a doctor reports, it does not crash
            checks.append(
                Check(
                    name,
                    "fail",
                    f"unexpected error: {type(exc).__name__}: {exc}",
                    "report this to the kiosk's maintainers with the detail above",
                )
            )
    return checks


def exit_code(checks: Sequence[Check]) -> int:
    """1 when any check failed (the kiosk cannot work as configured), else 0."""
    return 1 if any(check.status == "fail" for check in checks) else 0


def format_report(checks: Sequence[Check]) -> str:
    """One line per check, an indented fix line under each problem, and a summary line."""
    width = max((len(check.name) for check in checks), default=0)
    lines: list[str] = []
    for check in checks:
        lines.append(f"{check.status.upper():<4}  {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"      {'':<{width}}  fix: {check.fix}")
    fails = sum(check.status == "fail" for check in checks)
    warns = sum(check.status == "warn" for check in checks)
    if fails:
        summary = f"{fails} failed, {warns} warning(s): the kiosk cannot work as configured"
    elif warns:
        summary = f"{warns} warning(s): the kiosk works, but see the fixes above"
    else:
        summary = f"all {len(checks)} checks passed"
    lines += ["", summary]
    return "\n".join(lines)


# --- the checks, in order ---------------------------------------------------------------


def check_config(path: str | Path | None) -> tuple[Check, KioskConfig | None]:
    """Load and validate the config file; the config, or None when it cannot be used."""
    try:
        config = load_config(path if path is not None else DEFAULT_CONFIG_PATH)
    except ConfigError as exc:
        fix = exc.fix or CONFIG_FIX
        if exc.problem == "file not found":
            fix = "create it (`kiosk config example` prints a documented one) or pass --config"
        return Check("config", "fail", str(exc), fix), None
    return check_setup_of(config), config


def check_setup_of(config: KioskConfig) -> Check:
    """What the config points at (directories, salt, TLS and secret files) is usable; a salt
    made per kiosk is a warning when events leave the kiosk (central cannot follow a person)."""
    from kiosk.cli.preflight import check_setup

    try:
        check_setup(config)
    except ConfigError as exc:
        return Check("config", "fail", str(exc), exc.fix or CONFIG_FIX)
    k, credentials = config.kiosk, config.credentials
    detail = f"{config.source}: kiosk {k.id} at site {k.site}, {k.mode} mode"
    if config.mqtt.enabled and not (credentials.subject_salt or credentials.subject_salt_file):
        return Check(
            "config",
            "warn",
            detail + "; the subject salt is this kiosk's own, so central sees other subject ids"
            " for the same person at each kiosk",
            SITE_SALT_FIX,
        )
    return _ok("config", detail)


def check_camera(
    config: KioskConfig,
    simulate: bool,
    source: FrameSource | None = None,
    timeout_s: float = CAMERA_TIMEOUT_S,
    on_pi: Callable[[], bool] = lambda: True,
) -> Check:
    """The camera opens and delivers a frame within ``timeout_s``."""
    from kiosk.sensors.frames import GeneratedFrameSource, open_frame_source

    if source is None:
        source = (
            GeneratedFrameSource(lambda: None)
            if simulate
            else open_frame_source(config.camera.source)
        )
    name = source.name
    result: list[tuple[Any, float] | BaseException] = []

    def grab() -> None:
        started = time.monotonic()
        try:
            source.start()
            try:
                frame = None
                while frame is None and time.monotonic() - started < timeout_s:
                    frame = source.read()
                    if frame is None:
                        time.sleep(0.05)
            finally:
                source.close()
            result.append((frame, time.monotonic() - started))
        except Exception as exc:
            result.append(exc)

    worker = threading.Thread(target=grab, name="doctor-camera", daemon=True)
    worker.start()
    worker.join(timeout_s + 1.0)
    fix = (
        "check the camera cable and camera.source (`rpicam-hello --list-cameras`)"
        if simulate or on_pi()
        else PC_FIX
    )
    if not result:
        return Check("camera", "fail", f"{name}: no answer within {timeout_s:g} s", fix)
    outcome = result[0]
    if isinstance(outcome, CameraError | OSError | ValueError):
        return Check("camera", "fail", str(outcome), fix)
    if isinstance(outcome, BaseException):
        raise outcome
    frame, elapsed = outcome
    if frame is None:
        return Check("camera", "fail", f"{name}: opened, but no frame in {timeout_s:g} s", fix)
    height, width = frame.shape[:2]
    return _ok("camera", f"{name}: {width}x{height} frame in {elapsed:.2f} s")


def check_thermometer(
    config: KioskConfig,
    simulate: bool,
    bus: Any = None,
    on_pi: Callable[[], bool] = lambda: True,
) -> Check:
    """The MLX90614 answers at the configured address with a plausible ambient reading."""
    from kiosk.sensors import simulated_mlx90614 as sim
    from kiosk.sensors.mlx90614 import (
        MLX90614Thermometer,
        SensorError,
        SensorMissingError,
        open_i2c_bus,
    )

    settings = config.thermometer
    if not settings.enabled:
        return _ok("thermometer", "disabled in config (thermometer.enabled = false)")
    where = f"MLX90614 at 0x{settings.address:02x} on I2C bus {settings.i2c_bus}"
    wiring_fix = (
        f"check wiring (SDA, SCL, 3.3 V, GND), `i2cdetect -y {settings.i2c_bus}` "
        "and thermometer.address"
    )
    owned = bus is None
    try:
        if bus is None:
            if simulate:
                sensor = sim.SimulatedMLX90614(sim.nobody(), address=settings.address)
                bus = sim.SimulatedI2CBus(sensor)
            else:
                bus = open_i2c_bus(settings.i2c_bus)
        with MLX90614Thermometer(
            bus, address=settings.address, retries=settings.retries
        ) as thermometer:
            reading = thermometer.read()
    except SensorMissingError as exc:
        fix = wiring_fix if simulate or on_pi() else PC_FIX
        return Check("thermometer", "fail", str(exc), fix)
    except SensorError as exc:
        fix = (
            "check wiring and pull-ups, slow the bus (dtparam=i2c_arm_baudrate=50000); "
            "replace the sensor if it persists"
        )
        return Check("thermometer", "fail", f"{where}: {exc}", fix)
    finally:
        if owned and bus is not None:
            with contextlib.suppress(Exception):
                bus.deinit()
    low, high = AMBIENT_PLAUSIBLE_C
    if not low <= reading.ambient_c <= high:
        return Check(
            "thermometer",
            "fail",
            f"{where}: ambient {reading.ambient_c:.1f} °C is not a room temperature "
            f"({low:g} to {high:g} °C)",
            "the sensor is faulty or in the sun or next to a heat source: move or replace it",
        )
    return _ok(
        "thermometer",
        f"{where}: ambient {reading.ambient_c:.1f} °C, object {reading.object_c:.1f} °C",
    )


def check_gpio(
    config: KioskConfig,
    simulate: bool,
    pin_factory: Any = None,
    on_pi: Callable[[], bool] = lambda: True,
) -> Check:
    """The gate's pins can be claimed and the relay is de-energised right after construction."""
    from gpiozero import Device

    from kiosk.gate import Gate
    from kiosk.hardware import gate_pins, gate_timing

    pins = gate_pins(config)
    owned = None
    if pin_factory is None and simulate:
        from gpiozero.pins.mock import MockFactory

        pin_factory = owned = MockFactory()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gpiozero's PinFactoryFallback on each attempt
            try:
                gate = Gate(pins, gate_timing(config), pin_factory=pin_factory)
            except Exception as exc:
                if not simulate and not on_pi():
                    fix = PC_FIX
                else:
                    fix = (
                        f"stop whatever holds GPIO{pins.relay} (`systemctl stop kiosk`), "
                        "add the service user to the 'gpio' group, check the gate.*_pin keys"
                    )
                return Check(
                    "gpio",
                    "fail",
                    f"cannot claim the gate's pins: {type(exc).__name__}: {exc}",
                    fix,
                )
        try:
            factory = pin_factory if pin_factory is not None else Device.pin_factory
            level = bool(factory.pin(pins.relay).state)
            state = gate.state()
        finally:
            gate.close()
    finally:
        if owned is not None:
            owned.close()
    safe = not pins.relay_active_high  # de-energised: low when active high, high when active low
    where = f"relay on GPIO{pins.relay} (active {'high' if pins.relay_active_high else 'low'})"
    if state.fire_alarm:
        return Check(
            "gpio",
            "warn",
            f"{where}: the fire alarm input is active, so the relay is held energised",
            "if there is no alarm, check the fire-alarm wiring and gate.fire_alarm_active_low",
        )
    if level != safe:
        return Check(
            "gpio",
            "fail",
            f"{where}: pin reads {'high' if level else 'low'} after construction, "
            f"expected {'high' if safe else 'low'} (de-energised)",
            "check gate.relay_active_high against the relay board and its wiring",
        )
    return _ok("gpio", f"{where}: claimed, de-energised ({'high' if level else 'low'})")


def check_disk(config: KioskConfig, free_bytes: Callable[[Path], int]) -> Check:
    """Free space on the file system that holds the event log."""
    directory = config.log_path.absolute().parent
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = free_bytes(existing)
    detail = f"{free / MB:,.0f} MB free for the event log in {directory}"
    fix = (
        f"free space on the file system of {existing} (`journalctl --vacuum-size=100M`, "
        "old files) or move kiosk.state_dir to a larger one"
    )
    if free < DISK_FAIL_BYTES:
        return Check("disk", "fail", detail + f" (under {DISK_FAIL_BYTES // MB} MB)", fix)
    if free < DISK_WARN_BYTES:
        return Check("disk", "warn", detail + f" (under {DISK_WARN_BYTES // MB} MB)", fix)
    if existing != directory:
        detail += " (created on start)"
    return _ok("disk", detail)


def check_event_log(config: KioskConfig) -> Check:
    """How full the event log is against ``log.capacity`` (read-only: the kiosk may be running)."""
    path = config.log_path
    if not path.exists():
        return _ok("event log", f"{path} not created yet (the kiosk creates it on start)")
    try:
        conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=2.0)
        try:
            rows, confirmed = conn.execute(
                "SELECT count(*), count(confirmed_at_ms) FROM events"
            ).fetchone()
            has_retention = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'retention'"
            ).fetchone()[0]
            dropped = (
                conn.execute("SELECT dropped_unconfirmed FROM retention").fetchone()[0]
                if has_retention
                else 0
            )
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Check(
            "event log",
            "fail",
            f"{path}: cannot read it: {exc}",
            "stop the kiosk, move the file aside (keep it for central) and start again",
        )
    capacity = config.log.capacity
    detail = f"{path}: {rows:,} of {capacity:,} rows, {rows - confirmed:,} not yet confirmed"
    if dropped:
        detail += f", {dropped:,} dropped unconfirmed"
    if not config.mqtt.enabled:
        return _ok("event log", detail + " (sync off: the oldest are pruned beyond capacity)")
    if rows - confirmed >= capacity * config.log.warn_ratio:
        fix = (
            "check the broker connection: unconfirmed events are kept until central confirms"
            " them, or dropped (with an alert) past log.unconfirmed_max_age_days"
        )
        return Check("event log", "warn", detail + " (near capacity)", fix)
    if dropped:
        return Check(
            "event log",
            "warn",
            detail + ": central never got those",
            "check the sync to central; raise log.capacity or log.unconfirmed_max_age_days",
        )
    return _ok("event log", detail)


def check_clock(clock_synced: Callable[[], bool]) -> Check:
    """The system clock is kept in sync by NTP: pass validity and event times depend on it."""
    if clock_synced():
        return _ok("clock", "synchronised (NTP)")
    return Check(
        "clock",
        "warn",
        "not synchronised: pass validity and event times may be wrong",
        "enable systemd-timesyncd/chrony: passes expire",
    )


def check_gate_core(manager_cpus: Callable[[], set[int]], cpus: Sequence[int]) -> Check:
    """Other processes run off the core the kiosk keeps for its decisions (kiosk/run/cpus.py)."""
    if len(cpus) < 2:
        return _ok("cpu", "one core, shared by the kiosk and everything else")
    gate, allowed = cpus[0], manager_cpus()
    if gate not in allowed:
        others = ",".join(str(cpu) for cpu in sorted(allowed))
        return _ok("cpu", f"core {gate} kept for the gate; other processes on {others}")
    return Check(
        "cpu",
        "warn",
        f"other processes may run on core {gate}, the gate's: a busy browser or client on"
        " this machine can slow decisions",
        "run deploy/install.sh (without --share-cores) and reboot",
    )


def check_broker(config: KioskConfig, timeout_s: float = BROKER_TIMEOUT_S) -> Check:
    """TCP, TLS and an MQTT CONNECT with the configured credentials, when MQTT is enabled."""
    from kiosk.mqtt.uplink import UplinkError, read_password, tls_context

    settings = config.mqtt
    if not settings.enabled:
        return _ok("broker", "MQTT disabled (mqtt.enabled = false): the kiosk works offline")
    host, port = settings.host, settings.port
    try:
        context = tls_context(settings) if settings.tls else None
        password = read_password(settings)
    except UplinkError as exc:
        fix = "check mqtt.ca_file, mqtt.cert_file, mqtt.key_file and mqtt.password_file"
        return Check("broker", "fail", str(exc), fix)
    network_fix = (
        f"start the broker on {host} or check mqtt.host, mqtt.port and the firewall"
        f" (`nc -vz {host} {port}`)"
    )
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw:
            if context is not None:
                with context.wrap_socket(raw, server_hostname=host):
                    pass
    except ssl.SSLCertVerificationError as exc:
        return Check(
            "broker",
            "fail",
            f"TLS: the broker's certificate is not trusted ({exc.verify_message})",
            "check mqtt.ca_file (the CA that signed the broker's certificate) and mqtt.host",
        )
    except ssl.SSLError as exc:
        return Check(
            "broker",
            "fail",
            f"TLS handshake with {host}:{port} failed: {exc.reason or exc}",
            "check mqtt.tls and mqtt.port (8883: TLS, 1883: plain)",
        )
    except TimeoutError:
        return Check("broker", "fail", f"{host}:{port}: no answer in {timeout_s:g} s", network_fix)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, socket.gaierror):
            reason = f"host name not found ({reason})"
        return Check("broker", "fail", f"cannot reach {host}:{port}: {reason}", network_fix)
    username = settings.username or config.kiosk.id
    refused = _mqtt_connect(config, context, username, password, timeout_s)
    scheme = "TLS" if context is not None else "plain TCP"
    if refused:
        return Check(
            "broker",
            "fail",
            f"{host}:{port} reachable over {scheme}, but {refused}",
            f"check the broker's account for {username!r}: mqtt.username, mqtt.password(_file)",
        )
    return _ok("broker", f"{host}:{port}: MQTT connection accepted over {scheme} as {username}")


def _mqtt_connect(
    config: KioskConfig,
    context: ssl.SSLContext | None,
    username: str,
    password: str | None,
    timeout_s: float,
) -> str | None:
    """Connect and disconnect once; None on success, else why not (in words)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

    settings = config.mqtt
    v5 = settings.protocol == "5"
    # Not the kiosk's own client id: connecting with it would take over the running kiosk's session.
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"kiosk-doctor-{config.kiosk.site}-{config.kiosk.id}",
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
    )
    client.username_pw_set(username, password)
    if context is not None:
        client.tls_set_context(context)
    client.connect_timeout = timeout_s
    outcome: list[str | None] = []

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        outcome.append(
            f"the broker refused the connection: {reason}" if reason.is_failure else None
        )

    client.on_connect = on_connect
    try:
        client.connect(settings.host, settings.port, keepalive=max(5, settings.keepalive_s))
        deadline = time.monotonic() + timeout_s
        while not outcome and time.monotonic() < deadline:
            rc = client.loop(timeout=0.1)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not outcome:
                return f"the broker closed the connection ({paho.error_string(rc)})"
        if not outcome:
            return f"no MQTT answer (CONNACK) in {timeout_s:g} s"
        return outcome[0]
    except (OSError, ValueError) as exc:
        return f"the MQTT connection failed: {exc}"
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()  # sends DISCONNECT when connected, so no will is published
        sock = client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def check_trust(config: KioskConfig, now: Callable[[], float] = time.time) -> Check:
    """Issuer keys and a fresh revocation list are in force when signed passes are configured."""
    from kiosk.credentials.trust import TrustStore

    credentials = config.credentials
    if not credentials.trust_anchor:
        return _ok("trust", "signed passes not configured (credentials.trust_anchor empty)")
    try:
        store = TrustStore.open(config)
    except ConfigError as exc:
        return Check(
            "trust", "fail", str(exc), "install the organisation's document-signing public key"
        )
    versions = store.versions()
    if versions["trust"] is None:
        return Check(
            "trust",
            "fail",
            "no valid trust list (issuer keys): every signed pass will be refused",
            "copy the signed trust list to credentials.trust_list (kiosk pass trust), "
            "or publish it on the site's trust topic",
        )
    if versions["revocation"] is None:
        return Check(
            "trust",
            "fail",
            f"trust list v{versions['trust']}, but no valid revocation list: "
            "revoked passes would be accepted",
            "copy the signed revocation list to credentials.revocation_list, "
            "or publish it on the site's revocation topic (a new site with nothing to "
            "revoke: kiosk pass revoke --empty)",
        )
    detail = f"trust list v{versions['trust']}, revocation list v{versions['revocation']}"
    files = [Path(config.kiosk.state_dir) / "revocation.cose"]
    if credentials.revocation_list:
        files.append(Path(credentials.revocation_list))
    mtimes = [path.stat().st_mtime for path in files if path.exists()]
    if mtimes:
        age_s = now() - max(mtimes)
        age = f"{age_s / 86400:.1f} days old"
        if age_s > REVOCATION_MAX_AGE_S:
            return Check(
                "trust",
                "warn",
                f"{detail}, {age}: newly revoked passes may still be accepted",
                "publish a fresh revocation list (kiosk pass revoke, --empty when nothing "
                "is new) and check the MQTT sync",
            )
        detail += f", {age}"
    return _ok("trust", detail)


# --- production defaults ----------------------------------------------------------------


def disk_free_bytes(path: Path) -> int:
    """Bytes available to an unprivileged user on the file system holding ``path``."""
    return shutil.disk_usage(path).free


def running_on_pi() -> bool:
    """True on a Raspberry Pi (the device tree names the model)."""
    try:
        model = Path("/proc/device-tree/model").read_bytes()
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EACCES):
            raise
        return False
    return b"Raspberry Pi" in model
