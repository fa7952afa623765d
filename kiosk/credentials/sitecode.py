"""The site's own check-in QR code (R2): posted at the entrance for phone-based check-in.

Besides reading people's codes, a site posts a code of its own: visitors scan it with their
phone and check in on the site's web page. This module builds that code's URL, renders it as
PNG and SVG (a standard QR code, error correction level M), and lays out a printable A4 poster
with bilingual instructions and the 5K reminders (Khẩu trang – Khử khuẩn – Khoảng cách – Không
tụ tập – Khai báo y tế). Pure apart from ``render_site_qr``, which writes the two files it is
given.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final
from urllib.parse import quote, urlsplit

import segno

from kiosk.decide.texts import pair

SITE_ID: Final = re.compile(r"[a-z0-9-]{1,64}")
ERROR_CORRECTION: Final = "m"

HEADING_VI, HEADING_EN = pair("poster.heading")
LINES_VI: Final = (pair("poster.how")[0], pair("poster.5k")[0])
LINES_EN: Final = (pair("poster.how")[1], pair("poster.5k")[1])


def site_checkin_payload(base_url: str, site: str, kiosk: str | None) -> str:
    """The check-in URL for a site (and optionally one kiosk): ``<base>/s/<site>[?k=<kiosk>]``.

    :raises ValueError: when ``base_url`` is not a plain https URL (no user, query or
        fragment) or an id is not 1-64 of ``a-z 0-9 -``.
    """
    if base_url != base_url.strip() or any(ord(c) < 0x21 or ord(c) == 0x7F for c in base_url):
        raise ValueError("the base URL must not contain spaces or control characters")
    try:
        parts = urlsplit(base_url)
        hostname = parts.hostname
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError as error:
        raise ValueError(f"the base URL is not a valid URL: {error}") from None
    if parts.scheme != "https":
        raise ValueError("the base URL must start with https://")
    if not hostname:
        raise ValueError("the base URL must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the base URL must not contain a user name or password")
    if parts.query or parts.fragment or base_url.endswith(("?", "#")):
        raise ValueError("the base URL must not have a query or fragment")
    _check_id("site", site)
    url = f"{base_url.rstrip('/')}/s/{quote(site)}"
    if kiosk is not None:
        _check_id("kiosk", kiosk)
        url += f"?k={quote(kiosk)}"
    return url


def _check_id(what: str, value: str) -> None:
    if not SITE_ID.fullmatch(value):
        raise ValueError(f"the {what} id must be 1-64 of a-z 0-9 - (got {value!r})")


def _qr(payload: str) -> segno.QRCode:
    if not payload:
        raise ValueError("the QR payload is empty")
    return segno.make_qr(payload, error=ERROR_CORRECTION, boost_error=False)


def render_site_qr(
    payload: str, png_path: str | Path, svg_path: str | Path, *, scale: int = 10
) -> None:
    """Write the site's QR code as a PNG and an SVG, ``scale`` pixels (units) per module."""
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    code = _qr(payload)
    code.save(str(png_path), kind="png", scale=scale)
    code.save(str(svg_path), kind="svg", scale=scale, xmldecl=True, title=payload)


def poster_html(
    payload: str,
    *,
    site_name: str,
    lines_vi: Sequence[str] = LINES_VI,
    lines_en: Sequence[str] = LINES_EN,
) -> str:
    """A printable A4 poster: the site's name, the QR code as inline SVG, and the instructions
    in Vietnamese then English (from :mod:`kiosk.decide.texts`: "Quét mã để điểm danh" / "Scan to
    check in"). The URL is printed under the code for anyone who cannot scan it. All text is
    HTML-escaped.
    """
    svg = _qr(payload).svg_inline(
        scale=1, omitsize=True, svgclass="qr", title=payload, light="#fff"
    )
    name = html.escape(site_name)

    def items(lines: Sequence[str]) -> str:
        return "".join(f"<li>{html.escape(line)}</li>" for line in lines)

    return f"""<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<title>{name} – {html.escape(HEADING_VI)} / {html.escape(HEADING_EN)}</title>
<style>
@page {{ size: A4 portrait; margin: 15mm; }}
html, body {{ margin: 0; font-family: "Noto Sans", "DejaVu Sans", Arial, sans-serif; }}
main {{ width: 180mm; margin: 0 auto; text-align: center; }}
h1 {{ font-size: 22pt; margin: 0 0 4mm; }}
h2 {{ font-size: 20pt; margin: 2mm 0; }}
.qr {{ width: 110mm; height: 110mm; display: block; margin: 4mm auto; }}
.url {{ font-family: monospace; font-size: 11pt; word-break: break-all; }}
ul {{ text-align: left; font-size: 14pt; margin: 2mm 0 6mm; }}
section[lang="en"] {{ color: #333; }}
</style>
</head>
<body>
<main>
<h1>{name}</h1>
{svg}
<p class="url">{html.escape(payload)}</p>
<section lang="vi">
<h2>{html.escape(HEADING_VI)}</h2>
<ul>{items(lines_vi)}</ul>
</section>
<section lang="en">
<h2>{html.escape(HEADING_EN)}</h2>
<ul>{items(lines_en)}</ul>
</section>
</main>
</body>
</html>
"""
