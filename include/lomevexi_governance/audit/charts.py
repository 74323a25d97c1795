"""Small, dependency-free SVG charts for the compliance report (inline SVG, no JS, no network).

Each function returns one ``<svg>`` element as text, sized by a ``viewBox`` so it scales with
the page, with a ``<title>`` and ``aria-label`` for screen readers and every label escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', 'Hiragino Sans', Meiryo, sans-serif\""
PALETTE = ("#2f6db5", "#d9822b", "#3a9a5b", "#b5453a", "#7a5bb5", "#7f7f7f")
ALLOWED_COLOR = "#2f6db5"
DENIED_COLOR = "#b5453a"
SHADE_COLOR = "#e8f1e4"
GRID_COLOR = "#e3e3e3"
TEXT_COLOR = "#222"


def _fmt(value: float) -> str:
    """Compact coordinates (two decimals at most)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _num(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:g}"


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """0 and round steps (1, 2, 5 x 10^k) up to at least ``maximum``."""
    if maximum <= 0:
        return [0.0, 1.0]
    raw = maximum / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    ticks = [0.0]
    while ticks[-1] < maximum:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _open(width: int, height: int, title: str, desc: str = "") -> list[str]:
    t = escape(title)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{t}" {FONT} font-size="12" class="chart">',
        f"<title>{t}</title>",
    ]
    if desc:
        parts.append(f"<desc>{escape(desc)}</desc>")
    parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>')
    return parts


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    out = []
    for label, color in items:
        out.append(f'<rect x="{_fmt(x)}" y="{_fmt(y - 9)}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{_fmt(x + 14)}" y="{_fmt(y)}" fill="{TEXT_COLOR}">{escape(label)}</text>')
        x += 24 + 7 * len(label)
    return out


def _y_axis(ticks: list[float], left: float, right: float, top: float, bottom: float) -> list[str]:
    out = []
    top_value = ticks[-1] or 1
    for t in ticks:
        y = bottom - (bottom - top) * t / top_value
        out.append(f'<line x1="{_fmt(left)}" y1="{_fmt(y)}" x2="{_fmt(right)}" y2="{_fmt(y)}" stroke="{GRID_COLOR}"/>')
        out.append(
            f'<text x="{_fmt(left - 6)}" y="{_fmt(y + 4)}" text-anchor="end" fill="{TEXT_COLOR}">{_num(t)}</text>'
        )
    return out


def heatmap(
    rows: Sequence[str],
    cols: Sequence[str],
    values: Sequence[Sequence[int]],
    *,
    forbidden: set[tuple[int, int]] | None = None,
    title: str = "",
    row_title: str = "",
    col_title: str = "",
) -> str:
    """A table of counts, shaded by magnitude (log scale).

    Cells in ``forbidden`` (row, col) are outlined in red, and filled with a red hatch when the
    count is not zero: access the policy does not grant.
    """
    forbidden = forbidden or set()
    cell_w, cell_h = 92, 30
    left, top = 150, 58
    width = int(left + cell_w * max(1, len(cols)) + 20)
    height = int(top + cell_h * max(1, len(rows)) + 46)
    peak = max((v for row in values for v in row), default=0)
    out = _open(width, height, title, "Rows: " + ", ".join(rows) + ". Columns: " + ", ".join(cols) + ".")
    out.append(
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fbe3e0"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{DENIED_COLOR}" stroke-width="2"/></pattern></defs>'
    )
    out.append(f'<text x="10" y="18" font-weight="600" fill="{TEXT_COLOR}">{escape(title)}</text>')
    if col_title:
        out.append(
            f'<text x="{_fmt(left + cell_w * len(cols) / 2)}" y="34" text-anchor="middle" '
            f'fill="#555">{escape(col_title)}</text>'
        )
    for j, c in enumerate(cols):
        out.append(
            f'<text x="{_fmt(left + cell_w * (j + 0.5))}" y="{top - 6}" text-anchor="middle" '
            f'fill="{TEXT_COLOR}">{escape(c)}</text>'
        )
    for i, r in enumerate(rows):
        y = top + cell_h * i
        out.append(
            f'<text x="{left - 8}" y="{_fmt(y + cell_h / 2 + 4)}" text-anchor="end" fill="{TEXT_COLOR}">'
            f"{escape(r)}</text>"
        )
        for j in range(len(cols)):
            v = int(values[i][j]) if i < len(values) and j < len(values[i]) else 0
            x = left + cell_w * j
            bad = (i, j) in forbidden
            if v and bad:
                fill = "url(#hatch)"
            elif v:
                level = math.log1p(v) / math.log1p(peak) if peak else 0
                shade = int(235 - 150 * level)
                fill = f"rgb({shade},{min(255, shade + 12)},255)"
            else:
                fill = "#fafafa"
            stroke = DENIED_COLOR if bad else "#fff"
            sw = 2 if bad else 1
            out.append(
                f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" fill="{fill}" '
                f'stroke="{stroke}" stroke-width="{sw}">'
                f"<title>{escape(r)} / {escape(cols[j])}: {v}</title></rect>"
            )
            out.append(
                f'<text x="{_fmt(x + cell_w / 2)}" y="{_fmt(y + cell_h / 2 + 4)}" text-anchor="middle" '
                f'fill="{TEXT_COLOR}">{_num(v) if v else "·"}</text>'
            )
    ly = top + cell_h * max(1, len(rows)) + 28
    out.append(
        f'<rect x="{left}" y="{ly - 10}" width="12" height="12" fill="#fff" stroke="{DENIED_COLOR}" '
        f'stroke-width="2"/><text x="{left + 18}" y="{ly}" fill="{TEXT_COLOR}">'
        f"{escape(row_title + ' may not access this category (policy)' if row_title else 'not granted')}"
        "</text>"
    )
    out.append("</svg>")
    return "".join(out)


def hour_bars(
    allowed: Sequence[int],
    denied: Sequence[int],
    *,
    shade: tuple[float, float] | None = (9.0, 18.0),
    title: str = "",
    shade_label: str = "business hours",
) -> str:
    """24 stacked bars (allowed, denied) by local hour, business hours shaded."""
    width, height = 760, 270
    left, right, top, bottom = 56, 744, 44, 222
    hours = 24
    totals = [int(a) + int(d) for a, d in zip(allowed, denied, strict=True)]
    ticks = nice_ticks(max(totals, default=0))
    scale = (bottom - top) / (ticks[-1] or 1)
    slot = (right - left) / hours
    out = _open(width, height, title, "Events per hour of day, local time; business hours shaded.")
    out.append(f'<text x="10" y="18" font-weight="600" fill="{TEXT_COLOR}">{escape(title)}</text>')
    if shade:
        sx = left + slot * shade[0]
        out.append(
            f'<rect x="{_fmt(sx)}" y="{top}" width="{_fmt(slot * (shade[1] - shade[0]))}" '
            f'height="{bottom - top}" fill="{SHADE_COLOR}"><title>{escape(shade_label)}</title></rect>'
        )
    out.extend(_y_axis(ticks, left, right, top, bottom))
    for h in range(hours):
        x = left + slot * h + 2
        w = slot - 4
        a = int(allowed[h]) if h < len(allowed) else 0
        d = int(denied[h]) if h < len(denied) else 0
        ya = bottom - a * scale
        out.append(
            f'<rect x="{_fmt(x)}" y="{_fmt(ya)}" width="{_fmt(w)}" height="{_fmt(a * scale)}" '
            f'fill="{ALLOWED_COLOR}"><title>{h:02d}:00 allowed {a}</title></rect>'
        )
        if d:
            out.append(
                f'<rect x="{_fmt(x)}" y="{_fmt(ya - d * scale)}" width="{_fmt(w)}" '
                f'height="{_fmt(d * scale)}" fill="{DENIED_COLOR}">'
                f"<title>{h:02d}:00 denied {d}</title></rect>"
            )
        if h % 3 == 0:
            out.append(
                f'<text x="{_fmt(left + slot * h)}" y="{bottom + 16}" text-anchor="middle" '
                f'fill="{TEXT_COLOR}">{h:02d}</text>'
            )
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>')
    items = [("allowed", ALLOWED_COLOR), ("denied", DENIED_COLOR)]
    if shade:
        items.append((shade_label, SHADE_COLOR))
    out.extend(_legend(items, left, height - 14))
    out.append("</svg>")
    return "".join(out)


def trend_chart(
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str = "",
    highlight_last: bool = True,
) -> str:
    """Grouped bars per period (``None`` = no report for that period), the last one highlighted."""
    width, height = 760, 280
    left, right, top, bottom = 56, 744, 44, 214
    n = max(1, len(labels))
    peak = max((v for vals in series.values() for v in vals if v is not None), default=0)
    ticks = nice_ticks(peak)
    scale = (bottom - top) / (ticks[-1] or 1)
    slot = (right - left) / n
    names = list(series)
    bar_w = max(2.0, (slot - 8) / max(1, len(names)))
    out = _open(width, height, title, "Per period: " + ", ".join(names) + ".")
    out.append(f'<text x="10" y="18" font-weight="600" fill="{TEXT_COLOR}">{escape(title)}</text>')
    if highlight_last and labels:
        out.append(
            f'<rect x="{_fmt(left + slot * (n - 1))}" y="{top}" width="{_fmt(slot)}" height="{bottom - top}" '
            f'fill="#fff6d6"><title>this period</title></rect>'
        )
    out.extend(_y_axis(ticks, left, right, top, bottom))
    step = max(1, math.ceil(n / 14))
    for i, label in enumerate(labels):
        x0 = left + slot * i + 4
        for k, name in enumerate(names):
            vals = series[name]
            v = vals[i] if i < len(vals) else None
            color = PALETTE[k % len(PALETTE)]
            x = x0 + bar_w * k
            if v is None:
                out.append(
                    f'<text x="{_fmt(x + bar_w / 2)}" y="{bottom - 4}" text-anchor="middle" fill="#999" '
                    f'font-size="10">–<title>{escape(label)}: no report</title></text>'
                )
                continue
            h = v * scale
            out.append(
                f'<rect x="{_fmt(x)}" y="{_fmt(bottom - h)}" width="{_fmt(bar_w - 1)}" height="{_fmt(h)}" '
                f'fill="{color}"><title>{escape(label)} {escape(name)}: {_num(v)}</title></rect>'
            )
        if i % step == 0 or i == n - 1:
            out.append(
                f'<text x="{_fmt(left + slot * (i + 0.5))}" y="{bottom + 16}" text-anchor="middle" '
                f'font-size="10" fill="{TEXT_COLOR}">{escape(label)}</text>'
            )
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>')
    out.extend(_legend([(nm, PALETTE[k % len(PALETTE)]) for k, nm in enumerate(names)], left, height - 14))
    out.append("</svg>")
    return "".join(out)
