"""What the chaos suite talks to and reads: its MQTT clients (operator, hostile neighbour),
the wire messages and commands they send, and read-only queries of central's store and the
kiosk's log."""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos_procs import NEIGHBOUR, SITE


def wire_event(seq: int | str, *, kiosk: str = NEIGHBOUR, **raw: str) -> bytes:
    """An events message with one event, as JSON text; ``raw`` replaces fields verbatim."""
    fields = {
        "event_id": json.dumps(str(uuid.uuid4())),
        "seq": str(seq),
        "boot_id": '"chaos"',
        "ts_ms": str(time.time_ns() // 1_000_000),
        "clock_synced": "true",
        "type": '"decision"',
        "historical": "false",
        "schema": "1",
        "data": '{"outcome":"refuse","reason":"unknown"}',
    } | raw
    event = ",".join(f'"{name}":{value}' for name, value in fields.items())
    head = f'{{"v":1,"site":"{SITE}","kiosk":"{kiosk}","events":[{{{event}}}]}}'
    return head.encode()


def topic(kiosk: str, leaf: str) -> str:
    """A per-kiosk topic of the test site."""
    return f"kiosk/v1/{SITE}/{kiosk}/{leaf}"


class Client:
    """A logged-in paho client (tests/broker.py) and what it receives, waited on with bounds."""

    def __init__(self, broker: Any, user: str, subscribe: str) -> None:
        from tests.broker import Collector, mqtt_client

        self.inbox = Collector()
        self.closed = threading.Event()
        self.client = mqtt_client(broker, user, tls=True, collector=self.inbox)
        self.client.on_disconnect = lambda *_: self.closed.set()
        self.inbox.subscribe(subscribe)

    def send(self, topic_name: str, payload: bytes, timeout: float, retain: bool = False) -> str:
        """Publish at QoS 1; the broker's reason code, or why there was none."""
        import pytest

        info = self.client.publish(topic_name, payload, qos=1, retain=retain)
        if info.rc:
            return f"not sent: {mqtt_error(info.rc)}"
        deadline = time.monotonic() + timeout
        while not self.closed.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(pytest.fail.Exception):  # not yet: look again
                return str(self.client.wait_ack(info.mid, 0.2)[0])
        return "no PUBACK: the connection was closed" if self.closed.is_set() else "no PUBACK"

    def received(self, timeout: float, match: Callable[[bytes], bool]) -> bool:
        """Wait for a message whose payload ``match``es."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                if match(self.inbox.messages.get(timeout=left).payload):
                    return True
            except queue.Empty:
                break
        return False

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_error(rc: int) -> str:
    """paho's text for an error number."""
    import paho.mqtt.client as mqtt

    return str(mqtt.error_string(rc))


ACCEPTED = ("Success", "No matching subscribers")


def command(name: str, args: dict[str, Any], key: bytes) -> tuple[str, bytes]:
    """A signed command's id and payload."""
    from kiosk.mqtt.protocol import Command, command_signature, encode_command

    now = time.time_ns() // 1_000_000
    cmd = Command(str(uuid.uuid4()), name, args, now, now + 60_000)
    signed = Command(**{**cmd.__dict__, "sig": command_signature(key, cmd)})
    return cmd.id, encode_command(signed)


def result_of(command_id: str) -> Callable[[bytes], bool]:
    """Matches the successful result of the command ``command_id``."""

    def match(payload: bytes) -> bool:
        with contextlib.suppress(ValueError):
            result = json.loads(payload)
            return bool(result.get("id") == command_id and result.get("ok"))
        return False

    return match


def receipt_covering(seq: int) -> Callable[[bytes], bool]:
    """Matches a receipt that covers ``seq``."""

    def match(payload: bytes) -> bool:
        from kiosk.mqtt.protocol import ProtocolError, decode_receipt

        with contextlib.suppress(ProtocolError):
            return seq in decode_receipt(payload)
        return False

    return match


# --- stores ----------------------------------------------------------------------------------


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on central's store (a connection of its own, read only)."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            return list(conn.execute(sql).fetchall())
    path = url.removeprefix("sqlite:///")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def quarantined(url: str) -> int | None:
    """Rows in central's quarantine table; None while the store has none."""
    try:
        return int(query(url, "SELECT count(*) FROM quarantine")[0][0])
    except Exception as exc:  # sqlite3 or psycopg: no such table
        if "quarantine" in str(exc):
            return None
        raise


def kiosk_rows(db: Path) -> list[tuple[int, str, bool, str, str | None, int, int | None]]:
    """``(seq, event_id, confirmed, type, outcome, ts_ms, lockdown)`` of every event in the
    kiosk's log; ``lockdown`` is 1 or 0 for a lockdown command, else None."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(
            "SELECT seq, event_id, confirmed_at_ms IS NOT NULL, type,"
            " json_extract(data, '$.outcome'), ts_ms,"
            " CASE WHEN type = 'command' AND json_extract(data, '$.command') = 'lockdown'"
            " THEN json_extract(data, '$.args.on') END FROM events ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
