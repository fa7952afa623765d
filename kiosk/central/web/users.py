"""The dashboard's users: ``[web] users_file``, one TOML line per user with role and hash.

::

    anh = { role = "admin", password_hash = "scrypt:32768:8:1$…" }

``kiosk central web set-password USER --role viewer|admin`` writes a line; the file is read
again at every login and every request, so a new password or role takes effect at once (and
ends that user's open sessions). There is no default user: with no file the dashboard shows
how to make one.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kiosk.store.durable import write_whole
from kiosk.web.auth import OPERATOR, check_password, hash_password

Role = Literal["viewer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "admin")
MIN_PASSWORD = 8


class UsersFileError(ValueError):
    """The users file cannot be read or holds a wrong line."""


@dataclass(frozen=True)
class User:
    """One user of the dashboard."""

    name: str
    role: Role
    password_hash: str

    @property
    def credential(self) -> str:
        """What a session is opened with: a new password or role ends it."""
        return f"{self.name}\n{self.role}\n{self.password_hash}"

    @property
    def is_admin(self) -> bool:
        """Whether the user may upload the roster, run reports and send commands."""
        return self.role == "admin"


def read_users(path: Path) -> dict[str, User]:
    """Every user in ``path``; an empty mapping when it does not exist."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsersFileError(f"{path}: {exc}") from None
    users = {}
    for name, entry in raw.items():
        role = entry.get("role") if isinstance(entry, dict) else None
        hashed = entry.get("password_hash") if isinstance(entry, dict) else None
        if not OPERATOR.fullmatch(name) or role not in ROLES or not isinstance(hashed, str):
            raise UsersFileError(
                f"{path}: user {name!r} needs a name of letters, digits, '.', '_' or '-', "
                f"a role ({' or '.join(ROLES)}) and a password_hash"
            )
        users[name] = User(name, role, hashed)
    return users


def authenticate(path: Path, name: str, password: str) -> User | None:
    """The user ``name`` if ``password`` is theirs, else None (also for an unreadable file)."""
    try:
        user = read_users(path).get(name)
    except UsersFileError:
        return None
    return user if user is not None and check_password(user.password_hash, password) else None


def set_password(path: Path, name: str, role: Role, password: str) -> None:
    """Add or replace the user ``name`` with ``role`` and a hash of ``password`` (0600)."""
    if not OPERATOR.fullmatch(name):
        raise UsersFileError("a user name is 1-32 letters, digits, '.', '_' or '-'")
    if len(password) < MIN_PASSWORD:
        raise UsersFileError(f"use at least {MIN_PASSWORD} characters")
    users = read_users(path)
    users[name] = User(name, role, hash_password(password))
    lines = ["# kiosk central web users: kiosk central web set-password USER --role viewer|admin"]
    for user in users.values():
        quoted, hashed = json.dumps(user.role), json.dumps(user.password_hash)
        lines.append(f"{user.name} = {{ role = {quoted}, password_hash = {hashed} }}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path, ("\n".join(lines) + "\n").encode("utf-8"))
    os.chmod(path, 0o600)
