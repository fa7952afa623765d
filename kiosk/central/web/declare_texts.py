"""The declaration page's words in Vietnamese (the default) and English.

Apart from the dashboard's catalogue (:mod:`kiosk.central.web.texts`): the public page has its
own language switch (``?lang=en``, a hidden field on the form) and no session language.
"""

from __future__ import annotations

from typing import Final

from kiosk.decide.texts import Language

TEXTS: Final[dict[str, tuple[str, str]]] = {
    "title": ("Khai báo y tế", "Health declaration"),
    "switch": ("English", "Tiếng Việt"),
    "intro": (
        "Khai báo trước khi vào. Kết quả có hiệu lực {hours} giờ tại các cửa vào.",
        "Declare before you enter. The result is valid for {hours} hours at the entrances.",
    ),
    "who": ("Bạn là ai", "Who you are"),
    "kind.badge": ("Mã thẻ ra vào", "Badge id"),
    "kind.pass": (
        "Thẻ ra vào điện tử (nội dung mã QR, bắt đầu bằng KP1:)",
        "Pass (its QR text, KP1:…)",
    ),
    "kind.national": (
        "Mã QR khai báo y tế (PC-Covid, NCovi, Bluezone)",
        "National-app QR code text",
    ),
    "kind.phone": ("Số điện thoại (khách)", "Phone number (visitors)"),
    "value": ("Mã, nội dung hoặc số điện thoại", "Id, code text or phone number"),
    "photo": (
        "hoặc chụp mã QR của thẻ / ứng dụng",
        "or take a photo of the pass's or app's QR code",
    ),
    "symptoms": (
        "Trong 14 ngày qua, bạn có triệu chứng nào sau đây không?",
        "In the last 14 days, have you had any of these symptoms?",
    ),
    "symptom.fever": ("Sốt", "Fever"),
    "symptom.cough": ("Ho", "Cough"),
    "symptom.breath": ("Khó thở", "Shortness of breath"),
    "symptom.throat": ("Đau họng", "Sore throat"),
    "symptom.taste": ("Mất vị giác hoặc khứu giác", "Loss of taste or smell"),
    "contact": (
        "Trong 14 ngày qua, bạn có tiếp xúc gần với ca bệnh xác định hoặc nghi ngờ không?",
        "In the last 14 days, have you been in close contact with a confirmed or suspected case?",
    ),
    "travel": (
        "Trong 14 ngày qua, bạn có đi qua vùng có ca bệnh không?",
        "In the last 14 days, have you travelled through an area with cases?",
    ),
    "yes": ("Có", "Yes"),
    "no": ("Không", "No"),
    "consent": (
        "Tôi cam kết thông tin trên là đúng và đồng ý với",
        "I confirm the above is true and agree to the",
    ),
    "privacy": ("thông báo về dữ liệu cá nhân", "privacy notice"),
    "submit": ("Gửi khai báo", "Send the declaration"),
    "error.missing": (
        "Vui lòng trả lời mọi câu hỏi và đánh dấu ô cam kết.",
        "Please answer every question and tick the consent box.",
    ),
    "error.badge": ("Mã thẻ không hợp lệ.", "That is not a badge id."),
    "error.pass": ("Đây không phải thẻ ra vào điện tử.", "That is not a pass."),
    "error.national": (
        "Không đọc được mã khai báo y tế.",
        "That national-app code could not be read.",
    ),
    "error.photo": (
        "Không đọc được mã QR trong ảnh. Chụp lại gần hơn hoặc nhập mã.",
        "No QR code could be read in the photo. Take it closer or type the code.",
    ),
    "error.photo_large": (
        "Ảnh quá lớn. Chụp lại ảnh nhỏ hơn hoặc nhập mã.",
        "The photo is too large. Take a smaller one or type the code.",
    ),
    "error.phone": ("Số điện thoại không hợp lệ.", "That is not a phone number."),
    "unavailable": (
        "Trang khai báo của địa điểm này chưa được cài đặt. Vui lòng báo bảo vệ.",
        "This site's declaration page is not set up yet. Please tell the guard.",
    ),
    "declared_at": ("Đã khai báo lúc", "Declared at"),
    "valid_until": ("Có hiệu lực đến", "Valid until"),
    "status": ("Kết quả", "Result"),
    "status.ok": ("Bình thường", "OK"),
    "status.refer": ("Cần gặp bảo vệ / y tế", "See the guard / medical staff"),
    "next.ok": (
        "Quét mã của bạn tại cửa vào. Cửa vào biết kết quả trong vài giây.",
        "Scan your code at the entrance. The entrance knows the result within seconds.",
    ),
    "next.refer": (
        "Bạn có triệu chứng hoặc đã tiếp xúc ca bệnh: đừng vào, hãy gặp bảo vệ hoặc nhân viên "
        "y tế tại cửa vào, đeo khẩu trang và giữ khoảng cách.",
        "You have a symptom or a contact: do not enter; see the guard or medical staff at the "
        "entrance, wear a mask and keep your distance.",
    ),
    "again": ("Khai báo lại", "Declare again"),
}


def text(key: str, lang: Language) -> str:
    """The text ``key`` in ``lang``."""
    vi, en = TEXTS[key]
    return vi if lang == "vi" else en
