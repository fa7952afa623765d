"""A central store with a small fleet in it, the dashboard's users and config, for the fleet
dashboard's tests (tests/test_central_web*.py)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from werkzeug.security import generate_password_hash

from kiosk.central import EventRow, Store
from kiosk.central.quarantine import refusal
from kiosk.central.settings import CentralConfig, SiteSection, WebSection
from kiosk.decide.texts import Language
from tests.web_fakes import healthy_state

ADMIN, VIEWER, PASSWORD = "anh", "binh", "correct horse battery"
SITE = "hq"
KIOSKS = ("gate-1", "gate-2", "lobby")


def write_users(path: Path, **roles: str) -> None:
    """A users file with ``name=role`` users, all with PASSWORD (a cheap hash keeps the tests
    fast; :func:`kiosk.central.web.users.set_password` is tested on its own)."""
    lines = []
    for name, role in roles.items():
        hashed = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
        lines.append(f'{name} = {{ role = "{role}", password_hash = "{hashed}" }}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def config(tmp_path: Path, language: Language = "vi", salt_file: str = "") -> CentralConfig:
    """Two sites' config with the users file in ``tmp_path``."""
    sites = {
        SITE: SiteSection(name="Head office", subject_salt_file=salt_file, language=language),
        "depot": SiteSection(name="Depot", language=language),
    }
    users = str(tmp_path / "users.toml")
    return CentralConfig(sites=sites, web=WebSection(users_file=users), source="test")


def event(kiosk: str, seq: int, ts_ms: int, kind: str, data: dict[str, Any]) -> EventRow:
    """A stored event of ``kiosk`` at ``SITE``."""
    text = json.dumps(data)
    return EventRow(
        str(uuid.uuid4()), SITE, kiosk, seq, "boot-1", ts_ms, True, kind, False, 1, text, ts_ms
    )


def fill(store: Store, now_ms: int | None = None) -> int:
    """Three kiosks (two online, one offline with a failed thermometer and unsynchronised
    clock), decisions with a fever, a tailgating passage, a lockdown, a quarantined message."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    for number, kiosk in enumerate(KIOSKS):
        state = healthy_state() | {"kiosk": kiosk, "site": SITE}
        if kiosk == "lobby":
            state["thermometer"] = {"ok": False, "detail": "I2C error"}
            state["clock_synced"] = False
        store.set_state(SITE, kiosk, state, now - 5_000 * (number + 1))
        store.set_availability(SITE, kiosk, "offline" if kiosk == "lobby" else "online", None)
    minute = 60_000
    grant = {
        "outcome": "grant",
        "reason": "ok",
        "direction": "entry",
        "subject": "s-1",
        "area": "main",
    }
    fever = {
        "outcome": "deny",
        "reason": "fever",
        "direction": "entry",
        "subject": "s-2",
        "area": "main",
    }
    store.insert_batch(
        [
            event("gate-1", 1, now - 30 * minute, "decision", grant),
            event("gate-1", 2, now - 20 * minute, "decision", fever),
            event("gate-2", 1, now - 15 * minute, "passage", {"by": "none", "grant": None}),
            event(
                "gate-2",
                2,
                now - 10 * minute,
                "command",
                {"command": "lockdown", "args": {"on": True}},
            ),
        ]
    )
    topic = f"kiosk/v1/{SITE}/lobby/events"
    store.quarantine([refusal(topic, b"{not json", "not JSON", now - 5 * minute)])
    return now
