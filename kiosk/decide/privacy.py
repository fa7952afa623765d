"""Pseudonymous subject ids: a keyed hash of a badge id, never the id or a name.

Also the small secrets kept as files: the site's subject salt (``credentials.subject_salt_file``)
and the per-kiosk secrets the kiosk generates in its state directory. A file that exists but
cannot be used raises :class:`SecretFileError`; it is never silently replaced, because a new
salt changes every subject id (anti-passback and occupancy would forget who is inside).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)
SALT_FILE = "subject-salt"
MIN_SALT_BYTES = 16
_GENERATED_BYTES = 32


class SecretFileError(ValueError):
    """A secret's file exists but cannot be used; the message names the file and the fix."""


class Pseudonymizer:
    """Turns a badge id into a stable pseudonymous subject id with a secret salt.

    Kiosks of one organisation share the salt (config ``credentials.subject_salt``)
    so that central can follow one subject across entrances without knowing who it is.
    """

    def __init__(self, salt: bytes) -> None:
        if len(salt) < MIN_SALT_BYTES:
            raise ValueError(f"the subject salt must be at least {MIN_SALT_BYTES} bytes")
        self._salt = salt

    def subject(self, badge_id: str) -> str:
        """The pseudonymous id for a badge: 's-' and 20 hex digits of HMAC-SHA256."""
        digest = hmac.new(self._salt, badge_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return "s-" + digest[:20]


def read_salt_file(path: Path) -> bytes:
    """The site's salt from ``path``: one line of at least 16 bytes, not readable by others."""
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise SecretFileError(f"{path}: not a regular file")
        if mode & stat.S_IRWXO:
            raise SecretFileError(f"{path}: readable by others; chmod o-rwx it")
        salt = path.read_bytes().strip()
    except OSError as exc:
        raise SecretFileError(f"{path}: cannot read the subject salt: {exc.strerror}") from None
    if len(salt) < MIN_SALT_BYTES:
        raise SecretFileError(
            f"{path}: the salt is {len(salt)} bytes; at least {MIN_SALT_BYTES} are needed"
            " (`openssl rand -base64 32`)"
        )
    return salt


def load_or_create_salt(configured: str, salt_file: str, state_dir: Path) -> bytes:
    """The configured salt, the site's salt file, or one kept in ``state_dir`` (created 0600
    on first use)."""
    if configured:
        return configured.encode("utf-8")
    if salt_file:
        return read_salt_file(Path(salt_file))
    if not (state_dir / SALT_FILE).exists():
        log.warning(
            "no credentials.subject_salt configured: generated one for this kiosk only "
            "(subject ids will differ between kiosks)"
        )
    return load_or_create_secret("", state_dir, SALT_FILE)


def check_secret_file(path: Path) -> None:
    """Raise SecretFileError if a generated secret's file exists but cannot be used."""
    _read_generated(path)


def load_or_create_secret(configured: str, state_dir: Path, name: str) -> bytes:
    """A configured secret, or 32 random bytes kept in ``state_dir/name`` (created 0600)."""
    if configured:
        return configured.encode("utf-8")
    path = state_dir / name
    secret = _read_generated(path)
    if secret is not None:
        return secret
    state_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(_GENERATED_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret.hex() + "\n")
    return secret


def _read_generated(path: Path) -> bytes | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretFileError(f"{path}: cannot read it: {exc}") from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < MIN_SALT_BYTES:
        raise SecretFileError(
            f"{path}: not a secret this kiosk wrote ({2 * _GENERATED_BYTES} hex digits"
            " expected); move it aside to have a new one generated"
        )
    return secret
