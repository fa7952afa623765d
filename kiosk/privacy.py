"""Pseudonymous subject ids: a keyed hash of a badge id, never the id or a name."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)
SALT_FILE = "subject-salt"


class Pseudonymizer:
    """Turns a badge id into a stable pseudonymous subject id with a secret salt.

    Kiosks of one organisation share the salt (config ``credentials.subject_salt``)
    so that central can follow one subject across entrances without knowing who it is.
    """

    def __init__(self, salt: bytes) -> None:
        if len(salt) < 16:
            raise ValueError("the subject salt must be at least 16 bytes")
        self._salt = salt

    def subject(self, badge_id: str) -> str:
        """The pseudonymous id for a badge: 's-' and 20 hex digits of HMAC-SHA256."""
        digest = hmac.new(self._salt, badge_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return "s-" + digest[:20]


def load_or_create_salt(configured: str, state_dir: Path) -> bytes:
    """The configured salt, or one kept in ``state_dir`` (created 0600 on first use)."""
    if not configured and not (state_dir / SALT_FILE).exists():
        log.warning(
            "no credentials.subject_salt configured: generated one for this kiosk only "
            "(subject ids will differ between kiosks)"
        )
    return load_or_create_secret(configured, state_dir, SALT_FILE)


def load_or_create_secret(configured: str, state_dir: Path, name: str) -> bytes:
    """A configured secret, or 32 random bytes kept in ``state_dir/name`` (created 0600)."""
    if configured:
        return configured.encode("utf-8")
    path = state_dir / name
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret.hex() + "\n")
    return secret
