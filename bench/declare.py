"""From a health declaration on central's page to the gate (issue 14, item 5).

Runs a real mosquitto (the shipped config), central's ingest with the declarations publisher
(``kiosk central run``'s ``run_central``, signing with a fresh document key), central's web app
served over loopback HTTP, and a simulated kiosk (``open_kiosk``, MQTT on, the document key's
public half as its trust anchor, ``health_declaration_max_age_h = 24``). For each of ``--count``
badge holders: the kiosk denies them (no declaration); the form is fetched and POSTed (badge id,
no symptom, consent); the time runs from the POST until the kiosk, scanning the badge every
``--poll-ms``, grants. Prints one JSON line with ``declaration_to_gate_s`` (p50, p95, max).
The web app, ingest and kiosk run in this process (threads), each talking to the others only
over loopback HTTP and MQTT. Each submission comes from its own X-Forwarded-For address (one
trusted proxy), so the page's per-address limit does not pace the run.

    .venv/bin/python bench/declare.py --count 50
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from benchlib import machine_info, percentiles, running_kiosk
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kiosk.central.cli import PASSWORD_ENV, run_central
from kiosk.central.ingest import IngestSettings
from kiosk.central.settings import CentralConfig, DeclarationsSection, SiteSection, WebSection
from kiosk.central.store import open_store
from kiosk.central.web import create_central_app
from kiosk.config import parse_config
from kiosk.decide.decision import Outcome, Reason
from kiosk.run.engine import Kiosk
from kiosk.sensors.qr import Scan
from kiosk.sensors.simulation import Scene
from tests.broker import Broker

SITE = "hq"
SALT = "declare-bench-salt-0123456789ab"
ANSWERS = {"contact": "no", "travel": "no", "consent": "yes", "lang": "vi", "kind": "badge"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50, help="declarations (at least 50)")
    parser.add_argument("--poll-ms", type=float, default=20, help="between two scans")
    parser.add_argument("--timeout-s", type=float, default=30, help="per declaration")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    with tempfile.TemporaryDirectory(prefix="declare-bench-") as scratch:
        result = run(Path(scratch), args.count, args.poll_ms / 1000, args.timeout_s)
    print(json.dumps(result), flush=True)


def run(work: Path, count: int, poll_s: float, timeout_s: float) -> dict[str, Any]:
    """The whole measurement in ``work``: start everything, declare ``count`` times."""
    key = Ed25519PrivateKey.generate()
    key_file, anchor_file, salt_file = work / "documents.pem", work / "anchor.pem", work / "salt"
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    anchor_file.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    salt_file.write_text(SALT, encoding="ascii")
    salt_file.chmod(0o600)
    (work / "users.toml").write_text("", encoding="utf-8")
    badges = [f"B-{n:04d}" for n in range(count)]
    central = CentralConfig(
        sites={SITE: SiteSection(name="Bench", subject_salt_file=str(salt_file))},
        web=WebSection(users_file=str(work / "users.toml"), trusted_proxies=1, secure_cookie="no"),
        declarations=DeclarationsSection(signing_key_file=str(key_file), org="acme"),
        source="bench",
    )
    db_url = str(work / "central.db")
    with Broker(work / "broker") as broker:
        os.environ[PASSWORD_ENV] = broker.password("central")
        settings = IngestSettings(host=broker.host, port=broker.port, username="central")
        stop = threading.Event()
        ingest = threading.Thread(
            target=run_central, args=(settings, db_url, stop), kwargs={"reports": central}
        )
        ingest.start()
        store = open_store(db_url)
        server = make_server("127.0.0.1", 0, create_central_app(store, central), threaded=True)
        web = threading.Thread(target=server.serve_forever, daemon=True)
        web.start()
        page = f"http://127.0.0.1:{server.server_port}/s/{SITE}"
        try:
            with running_kiosk(kiosk_config(work, broker, anchor_file, badges), Scene()) as kiosk:
                times = [
                    declare_and_wait(kiosk, page, b, n, poll_s, timeout_s)
                    for n, b in enumerate(badges)
                ]
        finally:
            server.shutdown()
            stop.set()
            ingest.join(timeout=15)
            store.close()
    return {
        "bench": "declare",
        "declarations": count,
        "declaration_to_gate_s": percentiles(times) | {"max": round(max(times), 3)},
        "machine": machine_info(),
    }


def kiosk_config(work: Path, broker: Broker, anchor: Path, badges: list[str]) -> Any:
    """The kiosk: the badges on its allowlist, declarations required, MQTT to ``broker``."""
    allowlist = work / "allowlist.csv"
    allowlist.write_text("".join(f"{b},staff,\n" for b in badges), encoding="utf-8")
    raw: dict[str, dict[str, Any]] = {
        "kiosk": {"id": "k1", "site": SITE, "state_dir": str(work / "kiosk")},
        "credentials": {
            "allowlist": str(allowlist),
            "subject_salt": SALT,
            "trust_anchor": str(anchor),
        },
        "thermometer": {"enabled": False},
        "rules": {"health_declaration_max_age_h": 24},
        "web": {"enabled": False},
        "mqtt": {
            "enabled": True,
            "host": broker.host,
            "port": broker.port,
            "tls": False,
            "username": "k1",
            "password": broker.password("k1"),
        },
    }
    (work / "kiosk").mkdir()
    return parse_config(raw, source="<bench>")


def declare_and_wait(
    kiosk: Kiosk, page: str, badge: str, number: int, poll_s: float, timeout_s: float
) -> float:
    """Seconds from POSTing ``badge``'s declaration until the kiosk grants it."""
    if decide(kiosk, badge) is not Reason.HEALTH_DECLARATION_MISSING:
        sys.exit(f"{badge} was not denied for want of a declaration before declaring")
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    address = f"10.{number // 250}.{number % 250}.1"
    headers = {"X-Forwarded-For": address}
    form = opener.open(urllib.request.Request(page, headers=headers), timeout=10).read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    if token is None:
        sys.exit("the declaration page has no CSRF token")
    body = urllib.parse.urlencode(ANSWERS | {"value": badge, "csrf_token": token[1]}).encode()
    started = time.monotonic()
    answer = opener.open(urllib.request.Request(page, body, headers), timeout=10)
    if answer.status != 200:
        sys.exit(f"the page answered {answer.status}")
    deadline = started + timeout_s
    while decide(kiosk, badge) is not Reason.OK:
        if time.monotonic() > deadline:
            sys.exit(f"{badge} not granted within {timeout_s} s of declaring")
        time.sleep(poll_s)
    return time.monotonic() - started


def decide(kiosk: Kiosk, badge: str) -> Reason:
    """The kiosk's decision for ``badge`` shown once (the scan path after the camera)."""
    record = kiosk.handle_scan(Scan(badge.encode(), False, time.monotonic()))
    if record is None:
        sys.exit("a repeat read: anti-passback should be off")
    if record.decision.outcome is Outcome.GRANT:
        return Reason.OK
    return record.decision.reason


if __name__ == "__main__":
    main()
