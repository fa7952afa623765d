"""Is the machine set up for this configuration? Checked before anything starts.

:func:`kiosk.config.load_config` validates the file itself and touches nothing else. This module
checks what the file points at: directories that must be writable, the salt and secret files,
the broker's TLS and password files, the allowlist and the trust anchor
(:func:`setup_problems`), and what a valid file allows but nobody means
(:func:`policy_warnings`: a kiosk that can never grant anyone).

``kiosk run`` and ``kiosk doctor`` call :func:`check_setup`, so a machine that lacks what the
file names exits 78 (systemd does not restart it in a loop) with the key and the file named.
``kiosk config check FILE`` validates the file on its own and lists this machine's problems as
warnings; with ``--machine`` they exit 78 as ``kiosk run`` would, with ``--strict`` every
warning does.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from kiosk.config import ConfigError, KioskConfig
from kiosk.decide.privacy import SALT_FILE, SecretFileError, check_secret_file, read_salt_file

WEB_SECRET_FILE = "web-secret"  # the status page's session key, generated in state_dir


def check_setup(config: KioskConfig) -> None:
    """Raise ConfigError (naming the key, the file and a fix) for the first problem found."""
    problems = setup_problems(config)
    if problems:
        raise problems[0]


def setup_problems(config: KioskConfig) -> list[ConfigError]:
    """Every part of this machine the configuration needs and cannot use, in the order
    ``kiosk run`` checks them: the first per key (a state_dir that is a file also fails the
    salt and secret files in it, which would say the same again)."""
    checks = [_check_state_dir, _check_log_path, _check_salt, _check_web_secret]
    checks += [_check_mqtt_files, _check_camera, _check_credentials]
    problems: dict[str, ConfigError] = {}
    for check in checks:
        try:
            check(config)
        except ConfigError as exc:
            problems.setdefault(exc.key, exc)
    return list(problems.values())


def policy_warnings(config: KioskConfig) -> list[str]:
    """What a valid file allows but nobody means: a kiosk that never grants anyone."""
    credentials = config.credentials
    if credentials.allowlist or credentials.trust_anchor or credentials.national_qr == "grant":
        return []
    return [
        f"{config.source}: nobody can ever be granted: credentials.allowlist and "
        f"credentials.trust_anchor are empty and credentials.national_qr is "
        f'"{credentials.national_qr}"; set an allowlist, a trust anchor for signed passes, '
        'or national_qr = "grant"'
    ]


def _fail(config: KioskConfig, key: str, problem: str, fix: str = "") -> ConfigError:
    return ConfigError(config.source, key, problem, fix=fix)


def _writable_dir(config: KioskConfig, path: Path, key: str) -> None:
    """``path`` is a writable directory, or can be created as one."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise _fail(config, key, f"{existing} is not a directory", f"point {key} at a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "directory" if existing == path else f"{path} cannot be created: directory"
        raise _fail(
            config,
            key,
            f"{what} {existing} is not writable for this user",
            "fix the owner or mode (the service runs as user kiosk; systemd's StateDirectory"
            " creates /var/lib/kiosk)",
        )


def _check_state_dir(config: KioskConfig) -> None:
    _writable_dir(config, Path(config.kiosk.state_dir), "kiosk.state_dir")


def _check_log_path(config: KioskConfig) -> None:
    path = config.log_path
    key = "log.path" if config.log.path else "kiosk.state_dir"
    if path.is_dir():
        raise _fail(config, key, f"the event log {path} is a directory", "name a file")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise _fail(config, key, f"the event log {path} is not writable for this user")
    _writable_dir(config, path.parent, key)


def _check_salt(config: KioskConfig) -> None:
    salt_file = config.credentials.subject_salt_file
    try:
        if config.credentials.subject_salt:
            return
        if salt_file:
            read_salt_file(Path(salt_file))
            return
    except SecretFileError as exc:
        raise _fail(
            config,
            "credentials.subject_salt_file",
            str(exc),
            "copy the site's salt file here (the same on every kiosk of the site)",
        ) from None
    _check_generated(config, SALT_FILE, "kiosk.state_dir")


def _check_web_secret(config: KioskConfig) -> None:
    if config.web.enabled:
        _check_generated(config, WEB_SECRET_FILE, "kiosk.state_dir")


def _check_generated(config: KioskConfig, name: str, key: str) -> None:
    try:
        check_secret_file(Path(config.kiosk.state_dir) / name)
    except SecretFileError as exc:
        fix = "move the file aside: the kiosk writes a new one"
        if name == SALT_FILE:
            fix += " (subject ids change), or set credentials.subject_salt_file"
        raise _fail(config, key, str(exc), fix) from None


def _check_mqtt_files(config: KioskConfig) -> None:
    mqtt = config.mqtt
    if not mqtt.enabled:
        return
    for key in ("ca_file", "cert_file", "key_file", "password_file"):
        name = getattr(mqtt, key)
        if name and not os.access(name, os.R_OK):
            problem = "does not exist" if not os.path.exists(name) else "is not readable"
            raise _fail(config, f"mqtt.{key}", f"{name} {problem}")
    if mqtt.tls:
        try:
            ssl.create_default_context(cafile=mqtt.ca_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise _fail(
                config, "mqtt.ca_file", f"{mqtt.ca_file}: not a CA certificate: {exc}"
            ) from None
        if mqtt.cert_file:
            try:
                ssl.create_default_context().load_cert_chain(mqtt.cert_file, mqtt.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise _fail(
                    config, "mqtt.cert_file", f"cannot load it with mqtt.key_file: {exc}"
                ) from None
    if mqtt.password_file:
        from kiosk.mqtt.uplink import UplinkError, read_password

        try:
            password = read_password(mqtt)
        except UplinkError as exc:
            raise _fail(config, "mqtt.password_file", str(exc)) from None
        if not password:
            raise _fail(config, "mqtt.password_file", f"{mqtt.password_file} is empty")


def _check_camera(config: KioskConfig) -> None:
    kind, _, where = config.camera.source.partition(":")
    if kind == "folder" and not Path(where).is_dir():
        raise _fail(config, "camera.source", f"{where} is not a directory of images")


def _check_credentials(config: KioskConfig) -> None:
    from kiosk.credentials import AllowlistError
    from kiosk.credentials.trust import TrustStore
    from kiosk.run.runtime import load_allowlist

    try:
        load_allowlist(config)
    except AllowlistError as exc:
        raise _fail(config, "credentials.allowlist", str(exc)) from None
    TrustStore.open(config)  # raises ConfigError naming credentials.trust_anchor
