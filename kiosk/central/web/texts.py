"""The fleet dashboard's words in Vietnamese and English, and the language switch.

Every word a page shows comes from :data:`TEXTS` (a translator reads one table). The language
is the session's choice (``/language/<vi|en>``), else the dashboard's default: English only
when every configured site says ``language = "en"``, else Vietnamese.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from flask import Blueprint, current_app, redirect, request, session, url_for
from werkzeug.wrappers import Response

from kiosk.decide.texts import LANGUAGES, Language
from kiosk.web.auth import safe_next

bp = Blueprint("i18n", __name__)
DEFAULT_LANGUAGE = "central.language"  # app.config key

TEXTS: Final[dict[str, tuple[str, str]]] = {
    "title": ("Bảng điều khiển đội kiosk", "Fleet dashboard"),
    "switch_language": ("English", "Tiếng Việt"),
    "user": ("Tài khoản", "User"),
    "password": ("Mật khẩu", "Password"),
    "log_in": ("Đăng nhập", "Log in"),
    "log_out": ("Đăng xuất", "Log out"),
    "wrong_password": ("Sai tài khoản hoặc mật khẩu", "Wrong user or password"),
    "no_users": ("Chưa có tài khoản nào", "No user yet"),
    "no_users_how": (
        "Bảng điều khiển tắt cho đến khi có tài khoản. Trên máy chủ, chạy:",
        "The dashboard stays off until a user exists. On the server, run:",
    ),
    "role.viewer": ("xem", "viewer"),
    "role.admin": ("quản trị", "admin"),
    "nav.fleet": ("Kiosk", "Kiosks"),
    "nav.alerts": ("Cảnh báo", "Alerts"),
    "nav.inside": ("Người bên trong", "People inside"),
    "nav.reports": ("Báo cáo", "Reports"),
    "nav.roster": ("Danh sách nhân sự", "Roster"),
    "nav.commands": ("Lệnh", "Commands"),
    "fleet.site": ("Địa điểm", "Site"),
    "fleet.kiosk": ("Kiosk", "Kiosk"),
    "fleet.status": ("Trạng thái", "Status"),
    "fleet.online": ("trực tuyến", "online"),
    "fleet.offline": ("mất kết nối", "offline"),
    "fleet.stopped": ("đã dừng", "stopped"),
    "fleet.unknown": ("chưa rõ", "unknown"),
    "fleet.last_seen": ("Lần cuối", "Last seen"),
    "fleet.version": ("Phiên bản", "Version"),
    "fleet.clock": ("Đồng hồ", "Clock"),
    "fleet.synced": ("đã đồng bộ", "synchronised"),
    "fleet.not_synced": ("chưa đồng bộ", "not synchronised"),
    "fleet.parts": ("Bộ phận", "Parts"),
    "fleet.parts_ok": ("tất cả hoạt động", "all working"),
    "fleet.backlog": ("Chưa xác nhận", "Backlog"),
    "fleet.oldest": ("Cũ nhất", "Oldest"),
    "fleet.today": ("Hôm nay", "Today"),
    "fleet.lockdown": ("khóa", "locked down"),
    "fleet.none": ("Chưa có kiosk nào gửi dữ liệu.", "No kiosk has reported yet."),
    "today.granted": ("vào", "granted"),
    "today.denied": ("từ chối", "denied"),
    "today.referred": ("chuyển bảo vệ", "referred"),
    "today.fevers": ("sốt", "fevers"),
    "alerts.when": ("Thời điểm", "When"),
    "alerts.where": ("Nơi", "Where"),
    "alerts.what": ("Cảnh báo", "Alert"),
    "alerts.detail": ("Chi tiết", "Detail"),
    "alerts.ack": ("Đã xử lý", "Acknowledge"),
    "alerts.acked_by": ("Xử lý bởi", "Acknowledged by"),
    "alerts.none": ("Không có cảnh báo.", "No alerts."),
    "alert.fever": ("Sốt", "Fever"),
    "alert.sensor_fault": ("Lỗi bộ phận", "Sensor fault"),
    "alert.log_near_capacity": ("Nhật ký gần đầy", "Log near capacity"),
    "alert.tailgating": ("Đi kèm không phép", "Tailgating"),
    "alert.fire_alarm": ("Báo cháy", "Fire alarm"),
    "alert.document_refused": ("Danh sách bị từ chối", "List refused"),
    "alert.lockdown": ("Đang khóa lối vào", "Lockdown"),
    "alert.quarantined": ("Tin nhắn bị cách ly", "Quarantined message"),
    "alert.delivery_failed": ("Gửi báo cáo thất bại", "Report delivery failed"),
    "alert_detail.fever": ("sốt, đã đo lại để xác nhận", "fever confirmed on retest"),
    "alert_detail.tailgating": (
        "có người qua cổng mà không được cho phép: đi kèm hoặc cổng bị đẩy",
        "a passage nobody was granted: tailgating or a forced turnstile",
    ),
    "alert_detail.fire_alarm": ("đang báo cháy: cổng đã mở", "fire alarm active: gate released"),
    "alert_detail.lockdown": ("đã bật khóa lối vào", "lockdown on"),
    "alert_detail.delivery_failed": (
        "{day}: {attempts} lần thử: {error}",
        "{day}: {attempts} attempts: {error}",
    ),
    "age.s": ("{n} giây", "{n}s"),
    "age.m": ("{n} phút", "{n}m"),
    "age.h": ("{n} giờ", "{n}h"),
    "age.d": ("{n} ngày", "{n}d"),
    "fleet.ago": ("{age} trước", "{age} ago"),
    "part.camera": ("camera", "camera"),
    "part.thermometer": ("nhiệt kế", "thermometer"),
    "part.log": ("nhật ký", "log"),
    "part.operator_state": ("trạng thái vận hành", "operator_state"),
    "roster.site": ("Địa điểm", "Site"),
    "roster.people": ("Số người", "People"),
    "roster.upload": ("Tải lên danh sách (CSV)", "Upload a roster (CSV)"),
    "roster.file": ("Tệp", "File"),
    "roster.imported": ("Đã nhập", "Imported"),
    "roster.no_salt": (
        "Địa điểm này chưa có subject_salt_file trong cấu hình",
        "This site has no subject_salt_file in the configuration",
    ),
    "commands.target": ("Áp dụng cho", "Target"),
    "commands.whole_site": ("toàn bộ địa điểm", "the whole site"),
    "commands.lockdown_on": ("Khóa lối vào", "Lock down"),
    "commands.lockdown_off": ("Mở khóa lối vào", "End lockdown"),
    "commands.no_key": (
        "Chưa đặt khóa lệnh (KIOSK_CENTRAL_COMMAND_KEY): không thể gửi lệnh",
        "No command key (KIOSK_CENTRAL_COMMAND_KEY): commands cannot be sent",
    ),
    "commands.confirm": ("Xác nhận", "Confirm"),
    "commands.confirm_on": (
        "Mọi kiosk sau sẽ từ chối tất cả mọi người cho đến khi mở khóa:",
        "Every kiosk below will refuse everyone until the lockdown ends:",
    ),
    "commands.confirm_off": (
        "Mọi kiosk sau sẽ trở lại hoạt động bình thường:",
        "Every kiosk below goes back to normal:",
    ),
    "commands.yes": ("Có, gửi lệnh", "Yes, send it"),
    "commands.cancel": ("Hủy", "Cancel"),
    "commands.sending": (
        "Đang gửi lệnh tới các kiosk; trang sẽ tự cập nhật khi có trả lời.",
        "Sending to the kiosks; this page updates itself when their answers are in.",
    ),
    "commands.done": ("đã thực hiện", "carried out"),
    "commands.refused": ("từ chối", "refused"),
    "commands.pending": (
        "đã gửi, chưa có phản hồi (broker giữ lệnh cho kiosk)",
        "sent, no answer yet (the broker keeps it for the kiosk)",
    ),
    "commands.unanswered": (
        "đã gửi, kiosk không trả lời (cụm NATS không giữ lệnh: gửi lại khi kiosk trực tuyến)",
        "sent, no answer (a NATS cluster does not keep commands: send again once it is online)",
    ),
    "commands.failed": ("không gửi được", "not sent"),
    "inside.area": ("Khu vực", "Area"),
    "inside.count": ("Số người", "People"),
    "inside.who": ("Ai", "Who"),
    "reports.daily": ("Danh sách vào trong ngày", "Daily entry list"),
    "reports.trace": ("Truy vết tiếp xúc", "Exposure trace"),
    "reports.date": ("Ngày", "Date"),
    "reports.format": ("Định dạng", "Format"),
    "reports.download": ("Tải về", "Download"),
    "reports.name": ("Họ tên (trong danh sách nhân sự)", "Name (as in the roster)"),
    "reports.from": ("Từ ngày", "From"),
    "reports.to": ("Đến ngày", "To"),
    "reports.window": ("Khoảng thời gian (phút)", "Window (minutes)"),
    "reports.choose": ("Nhiều người khớp tên này: chọn một", "Several people match: choose one"),
    "reports.nobody": ("Không ai trong danh sách có tên này", "Nobody in the roster has this name"),
    "reports.name_empty": ("Nhập một phần tên cần tìm", "Type part of the name to look for"),
    "back": ("Quay lại", "Back"),
    "too_large": (
        "Tệp gửi lên lớn hơn {mib} MiB, mức tối đa cho phép.",
        "The upload is larger than {mib} MiB, the most accepted.",
    ),
    "forbidden": ("Tài khoản của bạn không được phép làm việc này", "Your role may not do this"),
}


def language() -> Language:
    """This request's language: the session's choice, else the dashboard's default."""
    chosen = session.get("lang")
    for known in LANGUAGES:
        if chosen == known:
            return known
    default: Language = current_app.config[DEFAULT_LANGUAGE]
    return default


def t(key: str) -> str:
    """The text ``key`` in this request's language."""
    vi, en = TEXTS[key]
    return vi if language() == "vi" else en


def default_language(site_languages: Iterable[Language]) -> Language:
    """English when every site says so (and there is one), else Vietnamese."""
    languages = set(site_languages)
    return "en" if languages == {"en"} else "vi"


def template_globals() -> dict[str, Any]:
    """What every template may call: ``t`` and ``lang``."""
    return {"t": t, "lang": language}


@bp.get("/language/<code>")
def switch(code: str) -> Response:
    """Remember ``code`` (vi or en) for this browser, back to ``next`` (default: the fleet)."""
    if code in LANGUAGES:
        session["lang"] = code
    return redirect(safe_next(request.args.get("next")) or url_for("pages.fleet"))
