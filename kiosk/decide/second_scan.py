"""``[dcc] mode = "with_pass"``: an entry needs a pass and an EU DCC, scanned one after the
other, in either order, within ``second_scan_window_s``.

The first of the two is decided at once (and logged) as "now show the other one": the gate
stays shut and the display asks for it. The second, within the window, stands for both: the
decision goes on with the pass's credential (its subject, kind and entry rules). A kiosk cannot
tell whose certificate it is: the window is short and the guard sees both scans.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta

from kiosk.credentials import CredentialCheck, CredentialStatus
from kiosk.credentials.dcc.gate import CREDENTIAL_TYPE as DCC

PASS_TYPES = frozenset({"pass", "badge"})


class SecondScan:
    """Remembers the first half of a pass-and-certificate pair until the window closes."""

    def __init__(self, window_s: float) -> None:
        self._window = timedelta(seconds=window_s)
        self._lock = threading.Lock()
        self._waiting: tuple[CredentialCheck, datetime] | None = None

    def combine(self, credential: CredentialCheck, now: datetime) -> CredentialCheck:
        """The credential to decide an entry on: the pass once both halves are in, else this
        one marked as waiting for its other half. Refusals and other kinds pass unchanged."""
        is_dcc = credential.credential_type == DCC
        if credential.status is not CredentialStatus.VALID:
            return credential
        if not is_dcc and credential.credential_type not in PASS_TYPES:
            return credential
        with self._lock:
            waiting = self._waiting
            other = None
            if waiting is not None and now - waiting[1] <= self._window:
                other = waiting[0]
            if other is not None and (other.credential_type == DCC) != is_dcc:
                self._waiting = None
                return other if is_dcc else credential
            self._waiting = (credential, now)
        status = CredentialStatus.DCC_PASS_REQUIRED if is_dcc else CredentialStatus.DCC_REQUIRED
        return dataclasses.replace(credential, status=status)
