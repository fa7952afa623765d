"""What a person declares and who they are, as the gate will know them.

The person identifies with what they carry; the subject is computed exactly as the site's
kiosks compute it (:mod:`kiosk.decide.entrance`), so the gate matches the declaration:

* a signed pass (its ``KP1:`` text): ``subject("pass:" + holder reference)``;
* a badge id: ``subject(badge id)``;
* a national-app QR text: its ``n-…`` hash of the ID number (the name is never kept);
* a phone number (visitors): ``subject("pass:phone:" + E.164 digits)``, the subject of a
  visitor pass issued with the holder reference ``phone:<digits>``, so that pass matches it.

Nothing here keeps or logs what was typed: only the subject leaves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from kiosk.credentials.allowlist import BADGE_ID
from kiosk.credentials.declarations import DeclarationStatus
from kiosk.credentials.national import parse_national_qr
from kiosk.credentials.passes import PassFormatError, decode_pass
from kiosk.decide.privacy import Pseudonymizer

#: The symptoms of the national form, in its order.
SYMPTOMS = ("fever", "cough", "breath", "throat", "taste")
_PHONE_PUNCTUATION = re.compile(r"[\s.()-]")
_DIGITS = re.compile(r"[0-9]{8,15}")
MAX_IDENTITY_CHARS = 2048


class IdentityKind(StrEnum):
    """How the person identifies."""

    PASS = "pass"
    BADGE = "badge"
    NATIONAL = "national"
    PHONE = "phone"


class IdentityError(ValueError):
    """What was typed does not identify anyone; the message key says why (for the page)."""


@dataclass(frozen=True)
class Answers:
    """The declaration's answers: symptoms in the last 14 days, contact with a confirmed or
    suspected case, travel through an area with cases."""

    symptoms: frozenset[str]
    contact: bool
    travel: bool

    @property
    def status(self) -> DeclarationStatus:
        """``refer`` for any symptom or contact, else ``ok``."""
        return DeclarationStatus.REFER if self.symptoms or self.contact else DeclarationStatus.OK

    def minimum(self) -> str:
        """The answers as kept when [declarations] keep_answers is on: symptom keys and flags."""
        flags = [s for s in SYMPTOMS if s in self.symptoms]
        flags += ["contact"] * self.contact + ["travel"] * self.travel
        return ",".join(flags)


def phone_digits(text: str) -> str:
    """A phone number as E.164 digits (no ``+``): a national 0… number is Vietnam's (84)."""
    number = _PHONE_PUNCTUATION.sub("", text)
    if number.startswith("+"):
        number = number[1:]
    elif number.startswith("00"):
        number = number[2:]
    elif number.startswith("0"):
        number = "84" + number[1:]
    if not _DIGITS.fullmatch(number):
        raise IdentityError("phone")
    return number


def subject_of(kind: IdentityKind, text: str, salt: bytes) -> str:
    """The person's subject at the site whose subject salt is ``salt``; IdentityError if what
    was typed is not a pass, badge id, national-app code or phone number."""
    text = text.strip()
    if not text or len(text) > MAX_IDENTITY_CHARS:
        raise IdentityError(kind.value)
    pseudonymizer = Pseudonymizer(salt)
    if kind is IdentityKind.PASS:
        try:
            holder = decode_pass(text).claims.subject
        except PassFormatError:
            raise IdentityError("pass") from None
        return pseudonymizer.subject("pass:" + holder)
    if kind is IdentityKind.BADGE:
        if not BADGE_ID.match(text):
            raise IdentityError("badge")
        return pseudonymizer.subject(text)
    if kind is IdentityKind.NATIONAL:
        national = parse_national_qr(text.encode("utf-8"))
        if national is None:
            raise IdentityError("national")
        return national.subject_hash(salt)
    return pseudonymizer.subject("pass:phone:" + phone_digits(text))
