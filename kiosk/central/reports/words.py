"""The daily list's own words in Vietnamese and English: column names, summary labels, kinds.

Outcomes and reasons are not here: they come from the kiosk's catalogue
(:mod:`kiosk.decide.texts`), so a reason reads the same on the list as on the display.
"""

from __future__ import annotations

from typing import Final

from kiosk.decide.texts import TEXTS, Language, text

#: Column key → (Vietnamese, English), in the order of the list's columns.
COLUMNS: Final[dict[str, tuple[str, str]]] = {
    "time": ("Thời gian", "Time"),
    "site": ("Địa điểm", "Site"),
    "kiosk": ("Lối vào", "Entrance"),
    "area": ("Khu vực", "Area"),
    "name": ("Họ tên", "Name"),
    "unit": ("Đơn vị", "Unit"),
    "kind": ("Đối tượng", "Kind"),
    "outcome": ("Kết quả", "Outcome"),
    "reason": ("Lý do", "Reason"),
    "celsius": ("Nhiệt độ (°C)", "Temperature (°C)"),
}

SUMMARY: Final[dict[str, tuple[str, str]]] = {
    "sheet": ("Tổng hợp", "Summary"),
    "list_sheet": ("Danh sách", "Entries"),
    "title": ("Danh sách ra vào", "Daily entry list"),
    "day": ("Ngày", "Day"),
    "sites": ("Địa điểm", "Sites"),
    "decisions": ("Số lượt quét", "Decisions"),
    "entries": ("Lượt được vào", "Entries granted"),
    "people": ("Số người được vào", "People let in"),
    "fevers": ("Ca sốt", "Fevers"),
    "referrals": ("Chuyển bảo vệ/lễ tân", "Referred to the guard or reception"),
    "denials": ("Từ chối", "Denied"),
    "attachment": ("Danh sách đính kèm.", "The list is attached."),
}

KINDS: Final[dict[str, tuple[str, str]]] = {
    "staff": ("Nhân viên", "Staff"),
    "visitor": ("Khách", "Visitor"),
    "contractor": ("Nhà thầu", "Contractor"),
}


def _pick(words: tuple[str, str], language: Language) -> str:
    return words[0] if language == "vi" else words[1]


def column_names(language: Language) -> list[str]:
    """The header row."""
    return [_pick(words, language) for words in COLUMNS.values()]


def label(key: str, language: Language) -> str:
    """A summary label."""
    return _pick(SUMMARY[key], language)


def kind_word(kind: str, language: Language) -> str:
    """``staff``, ``visitor`` or ``contractor`` in words; any other kind as it is."""
    return _pick(KINDS[kind], language) if kind in KINDS else kind


def outcome_word(outcome: str, language: Language) -> str:
    """``grant``, ``deny``, ``refer`` as the dashboard says them."""
    key = f"dash.outcome.{outcome}"
    return text(key, language) if key in TEXTS else outcome


def reason_word(reason: str, language: Language) -> str:
    """A reason code as the display says it; empty for ``ok`` (the outcome says it all), the
    code itself for one this version does not know (a newer kiosk's)."""
    if reason == "ok":
        return ""
    key = f"reason.{reason}"
    return text(key, language) if key in TEXTS else reason
