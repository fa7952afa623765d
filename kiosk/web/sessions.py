"""Operator sessions kept by the server, so that a copied cookie is worth nothing once ended.

The cookie only names a session (a random id, signed by Flask); whether it is still open is
decided here. A session ends at logout, when the operator password changes (each session
remembers a fingerprint of the hash it was opened with), after ``idle_s`` without an operator
request (the polling of ``/api/`` and ``/display/last.json`` by an open page does not count:
an open tab is not an operator) and ``lifetime_s`` after login whatever happens. Sessions
live in the web process's memory: a restarted page logs everyone out, which fails closed.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

#: Sessions held at once; logging in past this ends the least recently used one.
MAX_SESSIONS = 32
#: A session ends this long after login even when used all along.
SESSION_LIFETIME_S = 12 * 3600.0


def fingerprint(password_hash: str) -> str:
    """A short digest of a password hash, to tell which password a session was opened with."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@dataclass
class _Session:
    password: str
    opened: float
    seen: float


class Sessions:
    """Open operator sessions, thread-safe.

    :param idle_s: a session not used by the operator for this long has ended.
    :param clock: monotonic seconds.
    :param lifetime_s: a session ends this long after it was opened.
    :param limit: sessions held at once.
    """

    def __init__(
        self,
        idle_s: float,
        clock: Callable[[], float],
        *,
        lifetime_s: float = SESSION_LIFETIME_S,
        limit: int = MAX_SESSIONS,
    ) -> None:
        self._idle_s = idle_s
        self._lifetime_s = lifetime_s
        self._limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, _Session] = {}

    def open(self, password_hash: str) -> str:
        """Open a session for an operator who just gave the password; returns its id."""
        now = self._clock()
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._drop_ended(now)
            while len(self._open) >= self._limit:
                del self._open[min(self._open, key=lambda s: self._open[s].seen)]
            self._open[sid] = _Session(fingerprint(password_hash), now, now)
        return sid

    def check(self, sid: object, password_hash: str, *, touch: bool) -> bool:
        """Whether ``sid`` names an open session for today's password; ``touch`` counts this
        request as the operator's activity."""
        if not isinstance(sid, str) or not password_hash:
            return False
        now = self._clock()
        with self._lock:
            found = self._open.get(sid)
            if found is None:
                return False
            if self._ended(found, now) or found.password != fingerprint(password_hash):
                del self._open[sid]
                return False
            if touch:
                found.seen = now
            return True

    def close(self, sid: object) -> None:
        """End the session ``sid`` (logout); unknown ids are ignored."""
        with self._lock:
            if isinstance(sid, str):
                self._open.pop(sid, None)

    def _ended(self, found: _Session, now: float) -> bool:
        return now - found.seen >= self._idle_s or now - found.opened >= self._lifetime_s

    def _drop_ended(self, now: float) -> None:
        for sid in [s for s, found in self._open.items() if self._ended(found, now)]:
            del self._open[sid]
