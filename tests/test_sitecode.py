"""The site's check-in QR: URL validation, a PNG the kiosk's own decoder reads, the poster."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.credentials.sitecode import poster_html, render_site_qr, site_checkin_payload
from kiosk.sensors.qr import make_decoder

BASE = "https://checkin.example"


def test_payload_is_an_https_url_naming_the_site_and_optionally_the_kiosk() -> None:
    assert site_checkin_payload(BASE, "hq-hanoi", None) == "https://checkin.example/s/hq-hanoi"
    assert (
        site_checkin_payload("https://checkin.example/vn/", "hq", "gate-2")
        == "https://checkin.example/vn/s/hq?k=gate-2"
    )


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("http://checkin.example", "https"),
        ("checkin.example", "https"),
        ("ftp://checkin.example", "https"),
        ("https://", "host"),
        ("https:///s", "host"),
        ("https://user:pw@checkin.example", "user"),
        ("https://checkin.example?x=1", "query"),
        ("https://checkin.example#top", "fragment"),
        ("https://checkin.example:port", "valid URL"),
        (" https://checkin.example", "spaces"),
        ("https://checkin.example/a b", "spaces"),
        ("https://checkin.example/\n", "control"),
    ],
)
def test_bad_base_urls_are_refused_with_a_reason(base: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        site_checkin_payload(base, "hq", None)


@pytest.mark.parametrize("bad", ["", "HQ", "hq_1", "hq/1", "hq 1", "hq?x", "tòa-a", "a" * 65])
def test_bad_site_and_kiosk_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="site id"):
        site_checkin_payload(BASE, bad, None)
    with pytest.raises(ValueError, match="kiosk id"):
        site_checkin_payload(BASE, "hq", bad)


def test_rendered_png_decodes_back_to_the_payload_with_the_kiosk_decoder(tmp_path: Path) -> None:
    payload = site_checkin_payload(BASE, "hq-hanoi", "gate-2")
    png, svg = tmp_path / "site.png", tmp_path / "site.svg"
    render_site_qr(payload, png, svg)
    gray = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    assert gray is not None
    assert make_decoder("zxing-cpp").decode(np.asarray(gray, dtype=np.uint8)) == [payload.encode()]
    assert gray.shape[0] >= 21 * 10  # at least a version-1 code at 10 px per module
    text = svg.read_text(encoding="utf-8")
    assert text.startswith("<?xml") and "<svg" in text


def test_render_refuses_an_empty_payload_and_a_zero_scale(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        render_site_qr("", tmp_path / "a.png", tmp_path / "a.svg")
    with pytest.raises(ValueError, match="scale"):
        render_site_qr(BASE, tmp_path / "a.png", tmp_path / "a.svg", scale=0)


def test_poster_has_the_qr_both_languages_and_the_5k() -> None:
    payload = site_checkin_payload(BASE, "hq-hanoi", None)
    page = poster_html(payload, site_name="Văn phòng UBND tỉnh")
    assert page.startswith("<!DOCTYPE html>")
    assert "size: A4" in page
    assert page.count("<svg") == 1 and 'class="qr"' in page
    assert payload in page
    assert "Văn phòng UBND tỉnh" in page
    assert "Quét mã để điểm danh" in page and "Scan to check in" in page
    for word in ("Khẩu trang", "Khử khuẩn", "Khoảng cách", "Không tụ tập", "Khai báo y tế"):
        assert word in page
    for word in ("Mask", "Disinfect", "Distance", "No gathering", "Health declaration"):
        assert word in page
    assert '<section lang="vi">' in page and '<section lang="en">' in page


def test_poster_uses_the_given_lines_and_escapes_html() -> None:
    page = poster_html(
        site_checkin_payload(BASE, "hq", None),
        site_name="<b>A & B</b>",
        lines_vi=["Dòng <một>"],
        lines_en=["Line & two"],
    )
    assert "<b>A" not in page and "&lt;b&gt;A &amp; B&lt;/b&gt;" in page
    assert "<li>Dòng &lt;một&gt;</li>" in page
    assert "<li>Line &amp; two</li>" in page
    assert "Khẩu trang" not in page  # the given lines replace the defaults


def test_poster_qr_is_labelled_with_its_payload() -> None:
    payload = site_checkin_payload(BASE, "hq", "k1")
    page = poster_html(payload, site_name="HQ")
    assert f"<title>{payload}</title>" in page
