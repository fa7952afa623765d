"""The DCC trust list as a signed site document, and its import from the gateways' format.

The document travels like the revocation list (a COSE_Sign1 message signed by the site's
document-signing key, verified against the kiosk's trust anchor, newer versions only), with
the payload ``{"typ": "dcc-trust", "ver", "iat", "org", "dscs": [{"kid": bytes, "c": country,
"der": DSC certificate}, ...]}``. It must fit ``MAX_DOCUMENT_BYTES`` (the broker's packet limit:
about 700 DSCs), so a site imports the countries it accepts rather than the whole EU list.

The gateways publish a JSON list of objects, each a DSC as base64 DER (``rawData`` in the EU
gateway's trust list, ``certificate`` or ``der`` in others) with its ``kid`` (base64) and
``country``; ``parse_gateway_list`` reads that.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.credentials.dcc.dsc import Dsc, DscList
from kiosk.credentials.documents import (
    MAX_DOCUMENT_BYTES,
    DocumentError,
    encode_signed,
    open_signed,
)
from kiosk.credentials.trust import DocumentUpdate
from kiosk.store.durable import write_whole

log = logging.getLogger(__name__)

KIND = "dcc-trust"
MAX_DSCS = 5000
MAX_DSC_BYTES = 8192
MAX_GATEWAY_BYTES = 64 * 1024 * 1024  # the whole EU list is a few MB


@dataclass(frozen=True)
class DccTrustList:
    """A verified DCC trust list: its header and the trusted DSCs."""

    org: str
    version: int
    issued_at: datetime
    dscs: DscList


def encode_trust_list(
    dscs: Iterable[Dsc],
    *,
    org: str,
    version: int,
    issued_at: datetime,
    signing_key: Ed25519PrivateKey,
) -> bytes:
    """Sign a DCC trust list; ValueError when it would be refused (empty, too large)."""
    listed = DscList(dscs)
    entries = [{"kid": dsc.kid, "c": dsc.country, "der": dsc.der} for dsc in listed]
    if not entries or len(entries) > MAX_DSCS:
        raise ValueError(f"a DCC trust list holds 1 to {MAX_DSCS} DSCs, not {len(entries)}")
    header = DccTrustList(org, version, issued_at, listed)
    data = encode_signed(KIND, header, {"dscs": entries}, signing_key)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ValueError(
            f"the list is {len(data)} bytes, over {MAX_DOCUMENT_BYTES}: import fewer countries"
        )
    return data


def load_trust_list(
    data: bytes, anchor: Ed25519PublicKey, *, current_version: int | None
) -> DccTrustList:
    """Verify and parse a signed DCC trust list; DocumentError says why it cannot be used."""
    payload, version, issued_at, org = open_signed(
        data, anchor, expected_type=KIND, current_version=current_version
    )
    raw = payload.get("dscs")
    if not isinstance(raw, list | tuple) or not 0 < len(raw) <= MAX_DSCS:
        raise DocumentError(f"malformed document: dscs must list 1 to {MAX_DSCS} DSCs")
    dscs = []
    for entry in raw:
        if not isinstance(entry, Mapping):
            raise DocumentError("malformed document: each DSC must be a map")
        kid, country, der = entry.get("kid"), entry.get("c"), entry.get("der")
        if not isinstance(kid, bytes) or not isinstance(country, str):
            raise DocumentError("malformed document: each DSC needs a kid and a country")
        if not isinstance(der, bytes) or len(der) > MAX_DSC_BYTES:
            raise DocumentError("malformed document: each DSC needs its DER certificate")
        try:
            dscs.append(Dsc.from_der(der, country=country, kid=kid))
        except ValueError as error:
            raise DocumentError(f"malformed document: DSC {kid.hex()}: {error}") from None
    return DccTrustList(org, version, issued_at, DscList(dscs))


def parse_gateway_list(
    data: bytes, countries: frozenset[str] | None = None
) -> tuple[list[Dsc], list[str]]:
    """The DSCs of a gateway's JSON list (only ``countries``' when given), and a line for
    each entry skipped (not a DSC, a key that cannot sign DCCs); ValueError if not such a list."""
    if len(data) > MAX_GATEWAY_BYTES:
        raise ValueError(f"the list is over {MAX_GATEWAY_BYTES} bytes")
    try:
        entries = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(entries, list):
        raise ValueError("not a JSON list of certificates")
    dscs, skipped = [], []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ValueError(f"entry {number} is not an object")
        if entry.get("certificateType", "DSC") != "DSC":
            continue
        country = entry.get("country") or entry.get("countryCode")
        if countries is not None and country not in countries:
            continue
        try:
            der = _base64(entry.get("rawData") or entry.get("certificate") or entry.get("der"))
            kid = _base64(entry["kid"]) if entry.get("kid") else None
            dscs.append(Dsc.from_der(der, country=country, kid=kid))
        except ValueError as error:
            skipped.append(f"entry {number} ({country}): {error}")
    return dscs, skipped


def _base64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("no base64 certificate or kid")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


class DccTrustStore:
    """The DCC trust list in use: loaded from files at start, replaced whole by a newer
    signed version (a file, or a retained MQTT message), saved so that a restart keeps it."""

    def __init__(self, anchor: Ed25519PublicKey, saved: Path) -> None:
        self._anchor = anchor
        self._saved = saved
        self._lock = threading.Lock()
        self._current: DccTrustList | None = None

    @property
    def dscs(self) -> DscList:
        """The trusted DSCs (none before a list is accepted)."""
        current = self._current
        return current.dscs if current is not None else DscList(())

    @property
    def version(self) -> int | None:
        """The version in use, None when there is none."""
        current = self._current
        return current.version if current is not None else None

    def load(self, *paths: Path) -> None:
        """Offer each existing file of ``paths`` and the saved copy; log what is refused."""
        for path in (*paths, self._saved):
            if path.exists():
                try:
                    self.offer(path.read_bytes(), save=False)
                except DocumentError as error:
                    if "not newer" not in str(error):
                        log.error("%s: %s", path, error)

    def offer(self, data: bytes, *, save: bool = True) -> DccTrustList:
        """Use ``data`` if it is a newer valid list (and save it); DocumentError if not. The
        list in force offered again changes nothing."""
        return self._take(data, save=save)[0]

    def receive(self, data: bytes) -> DocumentUpdate:
        """What became of a list that arrived (a retained MQTT message), as for the other site
        documents: the list in force offered again (after every reconnect) is "already in
        force", no refusal; a refused one leaves the list in force as it is."""
        try:
            taken, changed = self._take(data, save=True)
        except DocumentError as error:
            return DocumentUpdate(KIND, False, None, str(error))
        reason = "accepted" if changed else f"version {taken.version} already in force"
        return DocumentUpdate(KIND, True, taken.version, reason)

    def _take(self, data: bytes, *, save: bool) -> tuple[DccTrustList, bool]:
        """The list in force once ``data`` is offered, and whether ``data`` replaced it."""
        with self._lock:
            held = self._current
            offered = load_trust_list(data, self._anchor, current_version=None)
            if held is not None and offered.version <= held.version:
                if offered.version < held.version:
                    raise DocumentError(
                        f"version {offered.version} is not newer than {held.version}"
                    )
                if _content(offered) != _content(held):
                    raise DocumentError(
                        f"version {held.version} differs from the version {held.version} in "
                        "force: sign the change as a newer version"
                    )
                return held, False
            self._current = offered
            if save:
                try:
                    write_whole(self._saved, data)
                except OSError as error:
                    log.warning("could not save the DCC trust list (kept in memory): %s", error)
        log.info("DCC trust list v%d accepted: %d DSCs", offered.version, len(offered.dscs))
        return offered, True


def _content(trust_list: DccTrustList) -> tuple[str, set[tuple[bytes, str, bytes]]]:
    return trust_list.org, {(dsc.kid, dsc.country, dsc.der) for dsc in trust_list.dscs}
