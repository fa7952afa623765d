"""The site's ``[dcc]`` rules on a verified certificate: pure, no clock of its own.

A valid certificate still counts only when the site accepts it: its type (``v`` vaccination,
``t`` test, ``r`` recovery), its issuing country, and for each type what the EU's verifier apps
check by default: a vaccination is complete (dose ``dn`` ≥ doses ``sd``) and its last dose at
least ``days_after_dose`` days ago; a test is negative and its sample at most ``test_max_age_h``
hours old; a recovery is within the validity its issuer gave. Each refusal has a stable reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from kiosk.credentials.dcc.result import DccResult, DiagnosticTest, Recovery, Vaccination

NEGATIVE = "260415000"  # SNOMED CT "not detected", the value set's negative test result


class RuleReason(StrEnum):
    """Why a valid certificate does not count here. Never rename one: events carry them."""

    TYPE = "dcc_rule_type"  # a type the site does not accept
    COUNTRY = "dcc_rule_country"  # issued by a country the site does not accept
    INCOMPLETE = "dcc_rule_incomplete"  # a vaccination before its last dose
    TOO_RECENT = "dcc_rule_too_recent"  # the last dose is fewer than days_after_dose days old
    TEST_POSITIVE = "dcc_rule_test_positive"  # the test did not come out negative
    TEST_TOO_OLD = "dcc_rule_test_too_old"  # the sample is not within test_max_age_h before now
    RECOVERY_NOT_VALID = "dcc_rule_recovery_not_valid"  # outside the recovery's validity


@dataclass(frozen=True)
class DccRules:
    """The ``[dcc]`` policy; ``countries`` empty accepts every country."""

    types: tuple[str, ...] = ("v", "t", "r")
    days_after_dose: int = 14
    test_max_age_h: float = 72.0
    countries: tuple[str, ...] = ()


def check_rules(result: DccResult, rules: DccRules, now: datetime) -> RuleReason | None:
    """Why the verified ``result`` does not count at ``now``; None when it counts.

    :raises ValueError: ``result`` is not a valid certificate (verify it first).
    """
    entry = result.entry
    if not result.valid or entry is None:
        raise ValueError("the rules apply to a valid certificate only")
    if result.type not in rules.types:
        return RuleReason.TYPE
    if rules.countries and (result.country or "").upper() not in _upper(rules.countries):
        return RuleReason.COUNTRY
    if isinstance(entry, Vaccination):
        if entry.dose < entry.doses:
            return RuleReason.INCOMPLETE
        counts_from = None if entry.date is None else entry.date + timedelta(rules.days_after_dose)
        return RuleReason.TOO_RECENT if counts_from is None or now.date() < counts_from else None
    if isinstance(entry, DiagnosticTest):
        if entry.result != NEGATIVE:
            return RuleReason.TEST_POSITIVE
        sampled = entry.sampled_at
        max_age = timedelta(hours=rules.test_max_age_h)
        fresh = sampled is not None and sampled <= now <= sampled + max_age
        return None if fresh else RuleReason.TEST_TOO_OLD
    return None if _recovered(entry, now) else RuleReason.RECOVERY_NOT_VALID


def _recovered(entry: Recovery, now: datetime) -> bool:
    today = now.date()
    starts, ends = entry.valid_from, entry.valid_until
    return starts is not None and ends is not None and starts <= today <= ends


def _upper(codes: tuple[str, ...]) -> frozenset[str]:
    return frozenset(code.upper() for code in codes)
