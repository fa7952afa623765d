"""The poison set: malformed and hostile messages published with a neighbouring kiosk's own
credential, each followed by a normal event ("canary") that central must store and receipt
within the round's halt bound."""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from typing import Any

from chaos_clients import (
    ACCEPTED,
    Client,
    kiosk_rows,
    quarantined,
    query,
    receipt_covering,
    topic,
    wire_event,
)
from chaos_procs import BROKER_START_S, CENTRAL_ID, KIOSK, NEIGHBOUR
from chaos_round import Round

DEEP = 10_000
NESTED = '{"d":' + "[" * DEEP + "]" * DEEP + "}"
BIG = 10 * 1024 * 1024


def poison_set() -> list[tuple[str, str, bytes, bool]]:
    """``(case, topic, payload, retain)``, published with kiosk k2's credential."""
    state, events = topic(NEIGHBOUR, "state"), topic(NEIGHBOUR, "events")
    return [
        ("nan_in_data", events, wire_event("{seq}", data='{"t":NaN}'), False),
        ("infinity_in_data", events, wire_event("{seq}", data='{"t":Infinity}'), False),
        ("nul_in_data", events, wire_event("{seq}", data='{"s":"a\\u0000b"}'), False),
        ("surrogate_in_data", events, wire_event("{seq}", data='{"s":"\\ud800"}'), False),
        ("nul_in_event_id", events, wire_event("{seq}", event_id='"a\\u0000b"'), False),
        ("seq_2_63", events, wire_event(str(2**63)), False),
        ("ts_ms_1e30", events, wire_event("{seq}", ts_ms=str(10**30)), False),
        ("state_nan", state, b'{"v":1,"backlog":NaN}', True),
        ("state_surrogate", state, b'{"v":1,"note":"\\udc00"}', True),
        ("nesting_10000", events, wire_event("{seq}", data=NESTED), False),
        ("message_10mb", events, wire_event("{seq}", data=f'{{"x":"{"x" * BIG}"}}'), False),
        ("names_other_kiosk", events, wire_event("{seq}", kiosk=KIOSK), False),
        ("other_kiosks_topic", topic(KIOSK, "events"), wire_event(1, kiosk=KIOSK), False),
    ]


class Neighbour:
    """Kiosk k2's credential in hostile hands: poison, then a normal event that must get through."""

    def __init__(self, r: Round) -> None:
        self.r, self.seq = r, 0
        self.client = Client(r.broker, NEIGHBOUR, topic(NEIGHBOUR, "receipts"))
        self.round_trips: list[float] = []  # of the canaries that got through
        self.reply = ""  # the broker's answer to the last canary

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def reconnect(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        self.client = Client(self.r.broker, NEIGHBOUR, topic(NEIGHBOUR, "receipts"))

    def canary(self) -> bool:
        """A normal event; True when central's receipt for it comes within the bound.

        "No matching subscribers" means central is between connecting and subscribing (its
        session lost with the broker's): not yet a halt, so the canary goes again."""
        deadline = time.monotonic() + self.r.plan.halt_bound_s
        while (left := deadline - time.monotonic()) > 0:
            seq, started = self.next_seq(), time.monotonic()
            self.reply = self.client.send(topic(NEIGHBOUR, "events"), wire_event(seq), left)
            if self.reply == "No matching subscribers":
                time.sleep(0.2)
            elif self.reply != "Success":
                self.reconnect()
            elif self.client.received(deadline - time.monotonic(), receipt_covering(seq)):
                self.round_trips.append(time.monotonic() - started)
                return True
        return False

    def case(self, name: str, where: str, payload: bytes, retain: bool) -> dict[str, Any]:
        """Publish one poison message and check that ingest goes on."""
        r = self.r
        before = quarantined(r.url)
        payload = payload.replace(b'"seq":{seq}', f'"seq":{self.next_seq()}'.encode())
        broker_reply = self.client.send(where, payload, 15, retain=retain)
        if broker_reply not in ACCEPTED:
            self.reconnect()
        if retain:  # a retained poison would come back at every start of central
            self.client.send(where, b"", 10, retain=True)
        halted = not self.canary()
        result: dict[str, Any] = {"broker": broker_reply, "halted": halted}
        if where == topic(KIOSK, "events") and broker_reply in ACCEPTED:
            r.counts["acl_breaches"] += 1  # the ACL let k2 write on k1's topic
        if halted:
            r.counts["ingest_halts"] += 1
            result |= {"canary": self.reply, "recovered": self.recover()}
        after = quarantined(r.url)
        if before is not None and after is not None:
            result["quarantined"] = after - before
        r.counts["poison_cases"] += 1
        return result

    def recover(self) -> bool:
        """After a halt: kill central, drop its broker session (and what is queued), restart.

        The kiosk sends again what central never confirmed (resend_after_s)."""
        from tests.broker import mqtt_client

        r = self.r
        r.central.kill()
        wipe = mqtt_client(r.broker, "central", tls=True, client_id=CENTRAL_ID, clean_start=True)
        wipe.disconnect()
        wipe.loop_stop()
        r.central.start()
        return self.canary() or self.canary()

    def forge_event_id(self) -> dict[str, Any]:
        """While the broker is down, the kiosk logs events it cannot send; k2 claims the newest
        one's event id as its own the moment the broker is back."""
        r = self.r
        central_connections = connections(r.broker, CENTRAL_ID)
        r.broker.kill()
        r.counts["broker_kills"] += 1
        r.kiosk.wait_deciding(3, timeout=30)
        stored = {
            row[0] for row in query(r.url, f"SELECT event_id FROM events WHERE kiosk = '{KIOSK}'")
        }
        waiting = [row for row in kiosk_rows(r.log_db) if not row[2] and row[1] not in stored]
        r.broker.start(timeout=BROKER_START_S)
        self.reconnect()
        if not waiting:
            return {"skipped": "no unsent kiosk event"}
        seq, event_id = waiting[-1][0], waiting[-1][1]
        reply = self.client.send(
            topic(NEIGHBOUR, "events"),
            wire_event(self.next_seq(), event_id=json.dumps(event_id)),
            10,
        )
        r.forged.append((event_id, seq))
        deadline = time.monotonic() + 90  # central's reconnect backs off up to a minute
        while connections(r.broker, CENTRAL_ID) <= central_connections:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        halted = not self.canary()
        if halted:
            r.counts["ingest_halts"] += 1
        r.counts["poison_cases"] += 1
        return {"broker": reply, "halted": halted} | ({"canary": self.reply} if halted else {})


def connections(broker: Any, client_id: str) -> int:
    """How often ``client_id`` has connected, by the broker's log (connection_messages)."""
    return int(broker.log_text().count(f" as {client_id} "))


def poison(r: Round) -> None:
    """Every poison case, one after another, each checked for a halt."""
    reader = Client(r.broker, NEIGHBOUR, topic(KIOSK, "events"))
    try:  # the ACL must keep k1's events from k2 (it reads passages only)
        r.report["neighbour_reads_events"] = reader.received(10, lambda _: True)
    finally:
        reader.close()
    r.counts["acl_breaches"] += r.report["neighbour_reads_events"]
    neighbour = Neighbour(r)
    results: dict[str, Any] = {}
    try:
        if not neighbour.canary():
            results["before"] = {"halted": True, "recovered": neighbour.recover()}
        for name, where, payload, retain in poison_set():
            results[name] = neighbour.case(name, where, payload, retain)
            r.say(f"poison {name}: {results[name]}")
        results["other_kiosks_event_id"] = neighbour.forge_event_id()
    finally:
        neighbour.client.close()
    r.report["poison"] = results
    if neighbour.round_trips:
        r.report["canary_round_trip_s"] = {
            "median": round(statistics.median(neighbour.round_trips), 3),
            "max": round(max(neighbour.round_trips), 3),
        }
