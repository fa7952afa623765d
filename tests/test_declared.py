"""The kiosk's store of central's health declarations (files in a real state_dir), the entry
rule's use of it, the display's words, and the national-app code's declaration time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.credentials import CredentialCheck, CredentialStatus
from kiosk.credentials.declarations import (
    MAX_DECLARATIONS_BYTES,
    DeclarationStatus,
    DocumentKind,
    encode_declarations,
)
from kiosk.credentials.declared import DeclaredStore
from kiosk.credentials.national import VIETNAM, parse_national_qr
from kiosk.decide.decision import DeclarationAdvice, Outcome, Reason, decide
from kiosk.decide.rules import EntranceFacts, EntryPolicy, Holder, RuleRefusal, check_entry
from kiosk.run.statuspage import LastDecision

NOW = datetime.now(UTC).replace(microsecond=0)
KEY = Ed25519PrivateKey.generate()
OK, REFER = DeclarationStatus.OK, DeclarationStatus.REFER
ALICE, BOB = "s-" + "a" * 20, "s-" + "b" * 20


def document(
    version: int,
    entries: list[tuple[str, datetime, DeclarationStatus]],
    *,
    kind: DocumentKind = "snapshot",
    base: int | None = None,
    key: Ed25519PrivateKey = KEY,
    site: str = "hq",
) -> bytes:
    return encode_declarations(
        org="acme",
        site=site,
        version=version,
        issued_at=NOW,
        kind=kind,
        base=version if base is None else base,
        entries=entries,
        signing_key=key,
    )


def delta(version: int, base: int, entries: list[tuple[str, datetime, DeclarationStatus]]) -> bytes:
    return document(version, entries, kind="delta", base=base)


def store(directory: Path) -> DeclaredStore:
    return DeclaredStore.open("hq", KEY.public_key(), directory, max_age_h=24, clock=lambda: NOW)


def test_a_snapshot_then_its_delta_give_each_subject_its_newest_declaration(
    tmp_path: Path,
) -> None:
    declared = store(tmp_path)
    snapshot = document(5, [(ALICE, NOW - timedelta(hours=3), OK)])
    assert declared.offer("declarations", snapshot).reason == "accepted"
    assert declared.lookup(ALICE) is not None and declared.lookup(BOB) is None
    update = declared.offer(
        "declarations-delta",
        delta(6, 5, [(ALICE, NOW - timedelta(minutes=1), REFER), (BOB, NOW, OK)]),
    )
    assert (update.accepted, update.version, update.reason) == (True, 6, "accepted")
    alice = declared.lookup(ALICE)
    assert alice is not None and alice.status is REFER
    assert alice.declared_at == NOW - timedelta(minutes=1)
    assert declared.state() == {"snapshot": 5, "delta": 6, "age_s": 0.0}


def test_older_forged_foreign_oversized_and_changed_documents_are_refused_and_the_current_kept(
    tmp_path: Path,
) -> None:
    declared = store(tmp_path)
    genuine = document(5, [(ALICE, NOW, OK)])
    declared.offer("declarations", genuine)
    offers = {
        "older": ("declarations", document(4, [(ALICE, NOW, REFER)])),
        "forged": ("declarations", document(9, [], key=Ed25519PrivateKey.generate())),
        "foreign": ("declarations", document(9, [], site="branch")),
        "oversized": ("declarations", b"\xd2" * (MAX_DECLARATIONS_BYTES + 1)),
        "changed": ("declarations", document(5, [(ALICE, NOW, REFER)])),
        "wrong topic": ("declarations-delta", document(9, [])),
        "old base": ("declarations-delta", delta(8, 3, [(ALICE, NOW, REFER)])),
    }
    for name, (kind, data) in offers.items():
        update = declared.offer(kind, data)
        assert not update.accepted and update.version is None and update.reason, name
    alice = declared.lookup(ALICE)
    assert alice is not None and alice.status is OK
    assert (tmp_path / "declarations.cose").read_bytes() == genuine
    assert declared.offer("declarations-delta", delta(7, 5, [])).accepted
    refused = declared.offer("declarations-delta", delta(6, 5, [(ALICE, NOW, REFER)]))
    assert not refused.accepted and "not newer" in refused.reason


def test_the_document_in_force_offered_again_changes_nothing_and_is_no_refusal(
    tmp_path: Path,
) -> None:
    declared = store(tmp_path)
    snapshot = document(5, [(ALICE, NOW, OK)])
    declared.offer("declarations", snapshot)
    again = declared.offer("declarations", snapshot)
    assert again.accepted and again.reason != "accepted"  # the runtime logs no event for it


def test_a_delta_for_a_snapshot_not_yet_held_waits_for_it(tmp_path: Path) -> None:
    declared = store(tmp_path)
    early = declared.offer("declarations-delta", delta(8, 7, [(BOB, NOW, REFER)]))
    assert early.accepted and "kept aside" in early.reason and declared.lookup(BOB) is None
    declared.offer("declarations", document(7, [(ALICE, NOW, OK)]))
    bob = declared.lookup(BOB)
    assert bob is not None and bob.status is REFER
    assert declared.state()["delta"] == 8
    assert (tmp_path / "declarations-delta.cose").exists()


def test_a_restart_reloads_and_verifies_the_saved_documents(tmp_path: Path) -> None:
    first = store(tmp_path)
    first.offer("declarations", document(5, [(ALICE, NOW - timedelta(hours=1), OK)]))
    first.offer("declarations-delta", delta(6, 5, [(BOB, NOW, REFER)]))
    again = store(tmp_path)
    assert again.state() == {"snapshot": 5, "delta": 6, "age_s": 0.0}
    assert again.lookup(ALICE) is not None
    bob = again.lookup(BOB)
    assert bob is not None and bob.status is REFER
    other_anchor = DeclaredStore.open(
        "hq", Ed25519PrivateKey.generate().public_key(), tmp_path, max_age_h=24
    )
    assert other_anchor.lookup(ALICE) is None  # verified again, not trusted because saved


def test_a_new_snapshot_drops_the_saved_delta_of_the_one_before(tmp_path: Path) -> None:
    declared = store(tmp_path)
    declared.offer("declarations", document(5, [(ALICE, NOW, OK)]))
    declared.offer("declarations-delta", delta(6, 5, [(BOB, NOW, OK)]))
    declared.offer("declarations", document(7, [(ALICE, NOW, OK)]))
    assert declared.lookup(BOB) is None
    assert not (tmp_path / "declarations-delta.cose").exists()
    assert store(tmp_path).state()["snapshot"] == 7


def test_declarations_older_than_the_validity_are_forgotten(tmp_path: Path) -> None:
    declared = store(tmp_path)
    declared.offer("declarations", document(5, [(ALICE, NOW - timedelta(hours=25), OK)]))
    assert declared.lookup(ALICE) is None


# --- the rule and the words -------------------------------------------------------------

FACTS = EntranceFacts(occupancy=0, visitors_today=0, last_entry_at=None)
DAY = EntryPolicy(health_declaration_max_age_h=24)


@pytest.mark.parametrize(
    ("holder", "policy", "refusal"),
    [
        (Holder(ALICE, "staff"), DAY, RuleRefusal.HEALTH_DECLARATION_MISSING),
        (
            Holder(ALICE, "staff", NOW - timedelta(hours=25)),
            DAY,
            RuleRefusal.HEALTH_DECLARATION_STALE,
        ),
        (Holder(ALICE, "staff", NOW - timedelta(hours=1)), DAY, None),
        (Holder(ALICE, "staff", NOW, health_refer=True), DAY, RuleRefusal.HEALTH_DECLARATION_REFER),
        (
            Holder(ALICE, "staff", NOW, health_refer=True),
            EntryPolicy(),
            RuleRefusal.HEALTH_DECLARATION_REFER,
        ),
        (
            Holder(ALICE, "staff", NOW - timedelta(hours=30), health_refer=True),
            DAY,
            RuleRefusal.HEALTH_DECLARATION_STALE,
        ),
    ],
)
def test_the_declaration_rule(
    holder: Holder, policy: EntryPolicy, refusal: RuleRefusal | None
) -> None:
    assert check_entry(holder, policy, FACTS, NOW) == refusal


def test_a_stale_declaration_says_how_to_declare_with_the_posters_address() -> None:
    advice = DeclarationAdvice(24, "hd.example.vn/s/hq")
    valid = CredentialCheck(CredentialStatus.VALID, "S-0001", "staff")
    stale = decide("gate", valid, None, rule=RuleRefusal.HEALTH_DECLARATION_STALE, advice=advice)
    assert stale.outcome is Outcome.DENY
    assert stale.message_en == (
        "Your declaration is older than 24 h: scan the poster's QR and declare, "
        "then scan again: hd.example.vn/s/hq"
    )
    assert "24 giờ" in stale.message_vi and stale.message_vi.endswith(": hd.example.vn/s/hq")
    refer = decide("gate", valid, None, rule=RuleRefusal.HEALTH_DECLARATION_REFER, advice=advice)
    assert (refer.outcome, refer.reason) == (Outcome.REFER, Reason.HEALTH_DECLARATION_REFER)
    assert "see the guard" in refer.message_en and "gặp bảo vệ" in refer.message_vi


def test_the_entrance_display_names_the_posters_address() -> None:
    observers: list[Any] = []
    last = LastDecision(cast(Any, SimpleNamespace(add_observer=observers.append)))
    valid = CredentialCheck(CredentialStatus.VALID, "S-0001", "staff")
    missing = decide(
        "gate",
        valid,
        None,
        rule=RuleRefusal.HEALTH_DECLARATION_MISSING,
        advice=DeclarationAdvice(12, "hd.example.vn/s/hq"),
    )
    observers[0](SimpleNamespace(decision=missing, event=None, measurement=None))
    shown = last()
    assert shown is not None
    assert shown["message_en"] == (
        "No health declaration in the last 12 h: scan the poster's QR and declare, "
        "then scan again: hd.example.vn/s/hq"
    )
    assert "12 giờ" in shown["message_vi"] and "hd.example.vn/s/hq" in shown["message_vi"]


# --- item 3: the national app's declaration time ------------------------------------------


def test_a_national_code_with_a_declaration_time_counts_from_that_time_in_vietnam() -> None:
    code = parse_national_qr(b"PC-COVID|012345678|PHAM VAN D|05/06/1970|KBYT|01/10/2021 14:30")
    assert code is not None
    assert code.declared_at == datetime(2021, 10, 1, 14, 30, tzinfo=VIETNAM)
    assert code.declared_at == datetime(2021, 10, 1, 7, 30, tzinfo=UTC)
    assert "PHAM" not in repr(code)


def test_a_national_code_with_a_date_only_counts_from_the_start_of_that_day() -> None:
    code = parse_national_qr(b"PC-COVID|012345678|PHAM VAN D|05/06/1970|KBYT|01/10/2021")
    assert code is not None
    assert code.declared_at == datetime(2021, 9, 30, 17, 0, tzinfo=UTC)
