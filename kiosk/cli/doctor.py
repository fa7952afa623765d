"""``kiosk doctor``: check that this kiosk can work, one part at a time, with a fix for each fault.

Checks run in a fixed order: config, camera, frame loop, scanner, thermometer, GPIO, disk, event
log, clock, CPU, broker, trust. Each is a small function returning a :class:`Check`; a check
never raises (an unexpected error is reported as a failed check). The device checks live in
:mod:`kiosk.cli.doctor_devices`, the frame loop's in :mod:`kiosk.cli.doctor_frames`, those of
the machine and its files in :mod:`kiosk.cli.doctor_host`; the config and the broker are
checked here. A config that does not load stops the run: nothing else can be checked without
it. Any ``fail`` makes :func:`exit_code` 1.

With ``simulate`` the devices are the PC stand-ins that ``kiosk run --simulate`` uses
(generated frames, the simulated MLX90614 bus, gpiozero's MockFactory), so the run shows the
config, the disk, the clock, the broker and the trust material of a PC set-up.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kiosk.cli.doctor_check import CONFIG_FIX, Check, ok
from kiosk.cli.doctor_devices import (
    CAMERA_TIMEOUT_S,
    check_camera,
    check_gpio,
    check_scanner,
    check_thermometer,
)
from kiosk.cli.doctor_frames import check_frame_loop
from kiosk.cli.doctor_host import (
    check_clock,
    check_disk,
    check_event_log,
    check_gate_core,
    check_trust,
    disk_free_bytes,
    running_on_pi,
)
from kiosk.config import (
    DEFAULT_CONFIG_PATH,
    SITE_SALT_FIX,
    ConfigError,
    KioskConfig,
    load_config,
)
from kiosk.run.clock import clock_is_synchronised
from kiosk.run.cpus import online_cpus
from kiosk.sensors.frames import FrameSource

BROKER_TIMEOUT_S = 3.0


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
        ("frame loop", lambda: check_frame_loop(loaded, simulate, frame_source)),
        ("scanner", lambda: check_scanner(loaded)),
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
    return ok("config", detail)


def check_broker(config: KioskConfig, timeout_s: float = BROKER_TIMEOUT_S) -> Check:
    """TCP, TLS and an MQTT CONNECT with the configured credentials, when MQTT is enabled."""
    from kiosk.mqtt.uplink import UplinkError, read_password, tls_context

    settings = config.mqtt
    if not settings.enabled:
        return ok("broker", "MQTT disabled (mqtt.enabled = false): the kiosk works offline")
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
    return ok("broker", f"{host}:{port}: MQTT connection accepted over {scheme} as {username}")


def _mqtt_connect(
    config: KioskConfig,
    context: ssl.SSLContext | None,
    username: str,
    password: str | None,
    timeout_s: float,
) -> str | None:
    """Connect and disconnect once; None on success, else why not (in words)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import MQTTErrorCode

    from kiosk.mqtt.client import new_client

    settings = config.mqtt
    # Not the kiosk's own client id: connecting with it would take over the running kiosk's session.
    client = new_client(
        f"kiosk-doctor-{config.kiosk.site}-{config.kiosk.id}",
        v5=settings.protocol == "5",
        username=username,
        password=password,
        tls=context,
    )
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
