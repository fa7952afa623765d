"""The forms of the ids the kiosk reads and writes, defined once.

Standard library only: the config, the credentials and the MQTT protocol all check against
these, and none of them may pull the others in to do it.
"""

from __future__ import annotations

import re

#: A site, kiosk or area id: one MQTT topic level.
SEGMENT = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}\Z")
#: A badge id, a subject's pseudonym, a boot id (a UUID from a kiosk; test and bench kiosks
#: name their runs), and a signed pass's issuer, subject, sites and meeting.
TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
#: An operator's login name on the status page: recorded with each action they take (an
#: account, not a person's personal data).
OPERATOR = re.compile(r"^[A-Za-z0-9._-]{1,32}\Z", re.ASCII)
