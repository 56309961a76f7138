"""Charts as inline SVG, drawn on the server: they render with no internet and no script, in the
browser and in the PDF export alike, with the page's own (CJK) font for their labels."""
from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Sequence

from markupsafe import Markup

PALETTE = ("#1769aa", "#f0a202", "#2e9e5b", "#b42318", "#7b4bb7", "#5f6b7a")
FONT = "Noto Sans CJK SC, PingFang SC, Microsoft YaHei, sans-serif"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 2.5, 5, 10):
        magnitude = 10 ** (len(str(int(value))) - 1)
        top = step * magnitude
        if top >= value:
            return float(top)
    return float(value)


def _label(value: float, percent: bool) -> str:
    return f"{value * 100:.0f}%" if percent else (f"{value:.0f}" if value == int(value) else f"{value:.1f}")


def _frame(width: int, height: int, title: str, body: list[str], legend: Sequence[Series]) -> Markup:
    keys = "".join(
        f'<rect x="{12 + i * 130}" y="{height - 16}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
        f'<text x="{26 + i * 130}" y="{height - 7}" font-size="12">{escape(s.name)}</text>'
        for i, s in enumerate(legend))
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
           f'aria-label="{escape(title)}" font-family="{FONT}" class="chart">'
           f'<title>{escape(title)}</title>'
           f'<text x="12" y="18" font-size="14" font-weight="bold">{escape(title)}</text>'
           + "".join(body) + keys + "</svg>")
    return Markup(svg)  # noqa: S704 - every text inside went through escape()


def bar_chart(title: str, categories: Sequence[str], series: Sequence[Series], *, percent: bool = False,
              width: int = 640, height: int = 260) -> Markup:
    """Grouped bars: one group per category, one bar per series (e.g. this quarter, the last)."""
    left, top, bottom = 44, 30, 56
    plot_w, plot_h = width - left - 12, height - top - bottom
    values = [v for s in series for v in s.values if v is not None]
    top_value = 1.0 if percent else _nice_max(max(values, default=0))
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 12}" y2="{top + plot_h}" stroke="#9aa5b1"/>']
    for tick in range(5):
        y = top + plot_h - plot_h * tick / 4
        body.append(f'<text x="{left - 6}" y="{y + 4:.0f}" font-size="11" text-anchor="end" fill="#6b7785">'
                    f'{_label(top_value * tick / 4, percent)}</text>')
    group = plot_w / max(len(categories), 1)
    bar = group * 0.8 / max(len(series), 1)
    for c, category in enumerate(categories):
        x0 = left + c * group + group * 0.1
        for s_index, s in enumerate(series):
            value = s.values[c] if c < len(s.values) else None
            if value is None:
                continue
            h = plot_h * min(value / top_value, 1.0)
            x = x0 + s_index * bar
            body.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar * 0.92:.1f}" height="{h:.1f}" '
                        f'fill="{PALETTE[s_index % len(PALETTE)]}"><title>{escape(category)} · {escape(s.name)}: '
                        f'{_label(value, percent)}</title></rect>')
        body.append(f'<text x="{x0 + group * 0.4:.1f}" y="{top + plot_h + 16}" font-size="12" text-anchor="middle">'
                    f'{escape(category)}</text>')
    return _frame(width, height, title, body, series)


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], *, percent: bool = False,
               width: int = 640, height: int = 240) -> Markup:
    """Trend lines over periods (months, quarters)."""
    left, top, bottom = 44, 30, 52
    plot_w, plot_h = width - left - 16, height - top - bottom
    values = [v for s in series for v in s.values if v is not None]
    top_value = 1.0 if percent else _nice_max(max(values, default=0))
    step = plot_w / max(len(labels) - 1, 1)
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 16}" y2="{top + plot_h}" stroke="#9aa5b1"/>']
    for tick in range(5):
        y = top + plot_h - plot_h * tick / 4
        body.append(f'<text x="{left - 6}" y="{y + 4:.0f}" font-size="11" text-anchor="end" fill="#6b7785">'
                    f'{_label(top_value * tick / 4, percent)}</text>')
    for i, label in enumerate(labels):
        anchor = "end" if i == len(labels) - 1 and len(labels) > 1 else "start" if i == 0 else "middle"
        body.append(f'<text x="{left + i * step:.1f}" y="{top + plot_h + 16}" font-size="11" text-anchor="{anchor}">'
                    f'{escape(label)}</text>')
    for s_index, s in enumerate(series):
        colour = PALETTE[s_index % len(PALETTE)]
        points = [(left + i * step, top + plot_h - plot_h * min(v / top_value, 1.0))
                  for i, v in enumerate(s.values) if v is not None]
        if points:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            body += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points]
    return _frame(width, height, title, body, series)
