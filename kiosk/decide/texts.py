"""Every text a person reads on the kiosk, in Vietnamese and English, in one catalogue.

Keys are dotted names: ``reason.<code>`` (what the display says for each decision; see
:class:`kiosk.decide.decision.Reason`), ``exit.ok`` (a granted exit), ``display.*`` (the entrance
screen), ``dash.*`` (the operator's dashboard and its login), ``poster.*`` (the site's check-in
poster). Templates and views take their words from here and nowhere else (a test holds that),
so a translator reads one file: each pair is a Vietnamese text and the English it means.
``{hours}`` and ``{url}`` in the health declaration texts are filled in by
:func:`kiosk.decide.decision.messages` (the rule's age and the poster's address).
docs/web.md lists the pairs whose wording is still doubtful.
"""

from __future__ import annotations

from typing import Final

from kiosk.config.schema import Language

LANGUAGES: Final[tuple[Language, ...]] = ("vi", "en")

_REASONS: Final[dict[str, tuple[str, str]]] = {
    "reason.ok": ("Mời vào", "Welcome, please enter"),
    "reason.checked_in": ("Đã điểm danh", "Checked in"),
    "reason.lockdown": ("Lối vào đang tạm đóng", "Entrance closed"),
    "reason.payload_too_large": ("Mã QR không hợp lệ", "Invalid code"),
    "reason.malformed_credential": ("Mã QR không hợp lệ", "Invalid code"),
    "reason.unknown_credential": ("Mã chưa được đăng ký", "Code not registered"),
    "reason.expired_credential": ("Thẻ đã hết hạn", "Pass expired"),
    "reason.not_yet_valid": ("Thẻ chưa có hiệu lực", "Pass not valid yet"),
    "reason.unsupported_algorithm": ("Mã QR không hợp lệ", "Invalid code"),
    "reason.unknown_key": ("Thẻ không do đơn vị cấp", "Pass not issued by this organisation"),
    "reason.bad_signature": ("Thẻ không hợp lệ", "Invalid pass"),
    "reason.wrong_site": ("Thẻ không dùng cho địa điểm này", "Pass not valid at this site"),
    "reason.revoked": (
        "Thẻ đã bị thu hồi: vui lòng gặp bảo vệ",
        "Pass withdrawn: please see the guard",
    ),
    "reason.unsigned_credential": ("Vui lòng đến quầy lễ tân", "Please go to reception"),
    "reason.health_declaration_missing": (
        "Chưa có khai báo y tế trong {hours} giờ qua: quét mã QR trên áp phích để khai báo, "
        "rồi quét lại{url}",
        "No health declaration in the last {hours} h: scan the poster's QR and declare, "
        "then scan again{url}",
    ),
    "reason.health_declaration_stale": (
        "Khai báo y tế của bạn đã quá {hours} giờ: quét mã QR trên áp phích để khai báo, "
        "rồi quét lại{url}",
        "Your declaration is older than {hours} h: scan the poster's QR and declare, "
        "then scan again{url}",
    ),
    "reason.health_declaration_refer": (
        "Vui lòng gặp bảo vệ về khai báo y tế của bạn",
        "Please see the guard about your health declaration",
    ),
    "reason.visitor_outside_hours": ("Ngoài giờ tiếp khách", "Outside visiting hours"),
    "reason.visitor_cap_reached": (
        "Đã đủ số khách hôm nay: vui lòng gặp lễ tân",
        "Visitor limit reached today: please see reception",
    ),
    "reason.already_inside": (
        "Thẻ đã được dùng để vào: vui lòng quét khi ra",
        "Pass already used to enter: scan it when you leave",
    ),
    "reason.occupancy_full": (
        "Đã đủ số người bên trong: vui lòng chờ",
        "Too many people inside: please wait",
    ),
    "reason.already_checked_in": ("Bạn đã điểm danh rồi", "Already checked in"),
    "reason.sensor_fault": (
        "Lỗi máy đo nhiệt: vui lòng gặp bảo vệ",
        "Thermometer fault: please see the guard",
    ),
    "reason.no_person_at_sensor": (
        "Vui lòng đứng trước máy đo nhiệt rồi quét lại",
        "Please stand in front of the thermometer and scan again",
    ),
    "reason.fever": ("Nhiệt độ cao: vui lòng gặp bảo vệ", "Fever: please see the guard"),
    "reason.log_unavailable": (
        "Lỗi hệ thống: vui lòng gặp bảo vệ",
        "System fault: please see the guard",
    ),
    "reason.dcc_malformed": ("Chứng nhận không hợp lệ", "Invalid certificate"),
    "reason.dcc_not_trusted": ("Chứng nhận không được công nhận", "Certificate not recognised"),
    "reason.dcc_signature": ("Chứng nhận không hợp lệ", "Invalid certificate"),
    "reason.dcc_expired": ("Chứng nhận đã hết hạn", "Certificate expired"),
    "reason.dcc_not_yet_valid": ("Chứng nhận chưa có hiệu lực", "Certificate not valid yet"),
    "reason.dcc_schema": ("Chứng nhận không hợp lệ", "Invalid certificate"),
    "reason.dcc_key_usage": ("Chứng nhận không hợp lệ", "Invalid certificate"),
    "reason.dcc_rule_type": (
        "Loại chứng nhận này không được chấp nhận",
        "This kind of certificate is not accepted",
    ),
    "reason.dcc_rule_country": (
        "Chứng nhận của nước này không được chấp nhận",
        "Certificates from this country are not accepted",
    ),
    "reason.dcc_rule_incomplete": ("Chưa tiêm đủ liều", "Vaccination not complete"),
    "reason.dcc_rule_too_recent": (
        "Mũi tiêm cuối chưa đủ số ngày",
        "Too soon after the last dose",
    ),
    "reason.dcc_rule_test_positive": (
        "Kết quả xét nghiệm không âm tính: vui lòng gặp bảo vệ",
        "Test not negative: please see the guard",
    ),
    "reason.dcc_rule_test_too_old": ("Kết quả xét nghiệm đã quá hạn", "Test result too old"),
    "reason.dcc_rule_recovery_not_valid": (
        "Chứng nhận khỏi bệnh không còn hiệu lực",
        "Recovery certificate not valid today",
    ),
    "reason.dcc_required": (
        "Bây giờ vui lòng quét chứng nhận COVID",
        "Now show your COVID certificate",
    ),
    "reason.dcc_pass_required": ("Bây giờ vui lòng quét thẻ ra vào", "Now show your pass"),
    "exit.ok": ("Tạm biệt, hẹn gặp lại", "Goodbye, see you again"),
}

_DISPLAY: Final[dict[str, tuple[str, str]]] = {
    "display.title": ("Kiosk", "Kiosk"),
    "display.scan": ("Quét mã QR của bạn", "Scan your QR code"),
    "display.scan_exit": ("Quét mã QR khi ra", "Scan your QR code as you leave"),
    "display.scan_checkin": ("Quét mã QR để điểm danh", "Scan your QR code to check in"),
    "display.meeting": ("Cuộc họp", "Meeting"),
    "display.stand": ("Đứng trước máy đo nhiệt", "Stand in front of the thermometer"),
    "display.mask": ("Khẩu trang", "Mask"),
    "display.disinfect": ("Khử khuẩn", "Disinfect"),
    "display.distance": ("Khoảng cách", "Distance"),
    "display.no_gathering": ("Không tụ tập", "No gathering"),
    "display.health_declaration": ("Khai báo y tế", "Health declaration"),
    "display.see_guard": ("Vui lòng gặp bảo vệ", "Please see the guard"),
    "display.out_of_service": ("Tạm ngừng hoạt động", "Out of service"),
}

_DASHBOARD: Final[dict[str, tuple[str, str]]] = {
    "dash.title": ("Bảng điều khiển kiosk", "Kiosk dashboard"),
    "dash.switch_language": ("English", "Tiếng Việt"),
    "dash.site": ("địa điểm", "site"),
    "dash.version": ("phiên bản", "version"),
    "dash.mode.gate": ("chế độ cổng", "gate mode"),
    "dash.mode.screen": ("chế độ đo nhiệt", "screen mode"),
    "dash.mode.checkin": ("chế độ điểm danh", "checkin mode"),
    "dash.log_out": ("Đăng xuất", "Log out"),
    "dash.stale": (
        "Mất liên lạc với kiosk; số liệu dưới đây có thể đã cũ.",
        "Lost contact with the kiosk; the figures below may be old.",
    ),
    "dash.yes": ("có", "yes"),
    "dash.no": ("không", "no"),
    "dash.ok": ("hoạt động", "ok"),
    "dash.failed": ("hỏng", "failed"),
    "dash.camera": ("Camera", "Camera"),
    "dash.frames_per_s": ("khung hình/giây", "frames/s"),
    "dash.scanner": ("Máy quét mã", "Code scanner"),
    "dash.thermometer": ("Máy đo nhiệt", "Thermometer"),
    "dash.ambient": ("môi trường", "ambient"),
    "dash.object": ("đối tượng", "object"),
    "dash.last_person": ("người gần nhất", "last person"),
    "dash.celsius": ("°C", "°C"),
    "dash.gate": ("Cổng", "Gate"),
    "dash.relay_energised": ("rơ-le có điện", "relay energised"),
    "dash.lockdown": ("khóa lối vào", "lockdown"),
    "dash.emergency_open": ("mở khẩn cấp", "emergency open"),
    "dash.fire_alarm": ("báo cháy", "fire alarm"),
    "dash.mqtt": ("MQTT", "MQTT"),
    "dash.connected": ("đã kết nối", "connected"),
    "dash.disconnected": ("mất kết nối", "disconnected"),
    "dash.refused_subscriptions": ("đăng ký bị từ chối", "subscriptions refused"),
    "dash.backlog": ("tồn đọng", "backlog"),
    "dash.events_unit": ("sự kiện", "events"),
    "dash.oldest_unconfirmed": ("cũ nhất chưa xác nhận", "oldest unconfirmed"),
    "dash.seconds_ago": ("giây trước", "s ago"),
    "dash.log": ("Nhật ký", "Log"),
    "dash.rows": ("dòng", "rows"),
    "dash.near_capacity": ("gần đầy", "near capacity"),
    "dash.clock": ("đồng hồ", "clock"),
    "dash.synchronised": ("đã đồng bộ", "synchronised"),
    "dash.not_synchronised": ("chưa đồng bộ", "not synchronised"),
    "dash.today": ("Hôm nay", "Today"),
    "dash.granted": ("cho vào", "granted"),
    "dash.denied": ("từ chối", "denied"),
    "dash.referred": ("chuyển bảo vệ", "referred"),
    "dash.fevers": ("sốt", "fevers"),
    "dash.inside": ("Người bên trong", "People inside"),
    "dash.area": ("khu vực", "area"),
    "dash.last_decision": ("Quyết định gần nhất", "Last decision"),
    "dash.none_yet": ("Chưa có", "None yet"),
    "dash.chart": ("Lượt qua và ca sốt theo giờ", "Passages and fevers per hour"),
    "dash.chart_alt": (
        "Biểu đồ cột lượt qua và ca sốt theo giờ",
        "Bar chart of passages and fevers per hour",
    ),
    "dash.actions": ("Thao tác", "Actions"),
    "dash.test_relay": ("Thử rơ-le", "Test relay"),
    "dash.emergency_open_on": ("Mở khẩn cấp", "Emergency open"),
    "dash.emergency_open_off": ("Kết thúc mở khẩn cấp", "End emergency open"),
    "dash.lockdown_on": ("Khóa lối vào", "Lockdown"),
    "dash.lockdown_off": ("Mở lại lối vào", "End lockdown"),
    "dash.fever_threshold": ("Ngưỡng sốt", "Fever threshold"),
    "dash.now": ("hiện tại", "now"),
    "dash.set": ("Đặt", "Set"),
    "dash.confirm": ("Xác nhận", "Confirm"),
    "dash.confirm_emergency_open": (
        "Mở cổng và giữ mở cho mọi người đi qua?",
        "Release the gate and hold it open for everyone?",
    ),
    "dash.confirm_lockdown": (
        "Đóng lối vào và từ chối mọi người vào?",
        "Close the entrance and refuse everyone who comes in?",
    ),
    "dash.confirm_yes": ("Có, thực hiện", "Yes, do it"),
    "dash.cancel": ("Hủy", "Cancel"),
    "dash.done.test_relay": ("Đã thử rơ-le", "Relay tested"),
    "dash.done.emergency_open_on": ("Cổng đang được giữ mở", "Gate held open"),
    "dash.done.emergency_open_off": ("Đã kết thúc mở khẩn cấp", "Emergency open ended"),
    "dash.done.lockdown_on": ("Lối vào đã đóng", "Entrance closed"),
    "dash.done.lockdown_off": ("Đã mở lại lối vào", "Lockdown ended"),
    "dash.done.fever_threshold": ("Đã đặt ngưỡng sốt", "Fever threshold set"),
    "dash.failed_action": ("Không thực hiện được", "Failed"),
    "dash.events": ("Sự kiện", "Events"),
    "dash.type": ("Loại", "Type"),
    "dash.outcome": ("Kết quả", "Outcome"),
    "dash.all": ("tất cả", "all"),
    "dash.filter": ("Lọc", "Filter"),
    "dash.seq": ("số", "seq"),
    "dash.time": ("thời gian", "time"),
    "dash.reason": ("lý do", "reason"),
    "dash.subject": ("mã ẩn danh", "subject"),
    "dash.details": ("chi tiết", "details"),
    "dash.no_events": ("Không có sự kiện.", "No events."),
    "dash.newest": ("Mới nhất", "Newest"),
    "dash.older": ("Cũ hơn", "Older"),
    "dash.outcome.grant": ("cho vào", "granted"),
    "dash.outcome.deny": ("từ chối", "denied"),
    "dash.outcome.refer": ("gặp bảo vệ", "referred"),
    "dash.operator": ("Người vận hành", "Operator"),
    "dash.password": ("Mật khẩu", "Password"),
    "dash.log_in": ("Đăng nhập", "Log in"),
    "dash.wrong_password": ("Sai mật khẩu.", "Wrong password."),
    "dash.bad_operator": (
        "Tên người vận hành: 1–32 chữ cái, chữ số, dấu chấm, gạch dưới hoặc gạch ngang.",
        "Operator name: 1–32 letters, digits, dots, underscores or hyphens.",
    ),
    "dash.back": ("Quay lại bảng điều khiển", "Back to the dashboard"),
    "dash.no_password_title": (
        "Bảng điều khiển chưa có mật khẩu",
        "The dashboard has no password yet",
    ),
    "dash.no_password_how": (
        "Bảng điều khiển tắt cho đến khi đặt mật khẩu người vận hành. Trên kiosk, chạy:",
        "It stays off until an operator password is set. On the kiosk, run:",
    ),
    "dash.no_password_then": (
        "rồi khởi động lại kiosk. Màn hình ở cổng và kiểm tra sức khỏe vẫn hoạt động.",
        "then restart the kiosk. The gate display and the health probe keep working meanwhile.",
    ),
}

_POSTER: Final[dict[str, tuple[str, str]]] = {
    "poster.heading": ("Quét mã để điểm danh", "Scan to check in"),
    "poster.how": (
        "Mở ứng dụng trên điện thoại và quét mã QR này khi vào và khi ra.",
        "Open the app on your phone and scan this QR code when you enter and when you leave.",
    ),
    "poster.5k": (
        "Thực hiện 5K: Khẩu trang – Khử khuẩn – Khoảng cách – Không tụ tập – Khai báo y tế.",
        "Follow the 5K: Mask – Disinfect – Distance – No gathering – Health declaration.",
    ),
}

#: Every pair: key → (Vietnamese, English).
TEXTS: Final[dict[str, tuple[str, str]]] = _REASONS | _DISPLAY | _DASHBOARD | _POSTER


def text(key: str, language: Language) -> str:
    """The text ``key`` in ``language``; KeyError for a key the catalogue lacks."""
    vi, en = TEXTS[key]
    return vi if language == "vi" else en


def pair(key: str) -> tuple[str, str]:
    """The text ``key`` as (Vietnamese, English)."""
    return TEXTS[key]
