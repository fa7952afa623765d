"""A small SVG bar chart of passages (grants) and fevers per hour, drawn on the server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

WIDTH, HEIGHT, TOP, BOTTOM, LEFT = 600, 160, 14, 18, 24
SLOT = (WIDTH - LEFT) / 24


def hourly_svg(rows: Sequence[dict[str, Any]], title: str) -> str:
    """An SVG document: per hour a green bar for grants and a red bar for fevers."""
    peak = max([1, *(max(r["granted"], r["fevers"]) for r in rows)])
    plot = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" font-family="sans-serif" font-size="10">',
        f"<title>{escape(title)}</title>",
        f'<text x="2" y="{TOP - 3}" fill="#555">{peak}</text>',
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - BOTTOM}" '
        'stroke="#999"/>',
    ]
    for row in rows:
        x = LEFT + row["hour"] * SLOT
        for offset, value, colour in (
            (1, row["granted"], "#2e7d32"),
            (SLOT / 2, row["fevers"], "#c62828"),
        ):
            height = plot * value / peak
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{HEIGHT - BOTTOM - height:.1f}" '
                f'width="{SLOT / 2 - 1:.1f}" height="{height:.1f}" fill="{colour}">'
                f"<title>{row['hour']:02d}:00 {value}</title></rect>"
            )
        if row["hour"] % 3 == 0:
            parts.append(
                f'<text x="{x + 1:.1f}" y="{HEIGHT - 5}" fill="#555">{row["hour"]:02d}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
