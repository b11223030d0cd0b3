"""The dashboard's four charts as SVG, drawn on the server from the snapshot's JSON.

Plain SVG with presentation attributes only (the page's CSP allows no inline style), every
text from the chain escaped, a <title> and <desc> with the figures; the page puts a data
table next to each chart as its text alternative. Colours have at least 3:1 contrast on
white (WCAG 1.4.11), segments are separated by white lines, and every series is named in a
legend, so no chart depends on colour alone.

    svg = render(data, "nl")               # {"spending_time": "<svg ...>", "providers": ..., "take_up": ..., "where": ...}
    svg = render(data, "nl", narrow=True)  # the same, laid out for a phone (the page shows one or the other)
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Callable, Sequence

WIDE = (760, 210, 130, 26)  # (width, label column, room right of the bars, label characters)
NARROW = (420, 130, 96, 16)
FONT = "Noto Sans, Arial, sans-serif"
INK = "#1a1a1a"
GRID = "#767676"  # 4.5:1 on white
# 3:1 or more against white each; distinguishable from their neighbours.
PALETTE = ["#01689b", "#ca005d", "#39870c", "#8a5a00", "#42145f", "#d52b1e", "#007873", "#5b3f00"]
PART_COLOURS = {"settled": "#39870c", "held_by_providers": "#b45309", "reclaimed": "#696969",
                "held_by_residents": "#01689b", "corrected": "#76206e"}

LABELS = {
    "nl": {
        "settled": "uitbetaald aan aanbieders", "held_by_providers": "nog te betalen aan aanbieders",
        "reclaimed": "teruggevorderd", "held_by_residents": "nog bij inwoners", "corrected": "gecorrigeerd",
        "paid": "uitbetaald", "owed": "nog te betalen", "no_data": "Nog geen gegevens",
        "spending_time": "Besteed per categorie, opgeteld per week (na terugbetalingen)",
        "providers": "Ontvangen per aanbieder: uitbetaald en nog te betalen",
        "take_up": "Gebruik per budget: deel van de inwoners met tegoed dat iets besteedde",
        "where": "Waar het tegoed van elk budget nu is",
        "of": "van", "week": "week", "total": "totaal",
    },
    "en": {
        "settled": "paid to providers", "held_by_providers": "still to pay to providers",
        "reclaimed": "reclaimed", "held_by_residents": "still with residents", "corrected": "corrected",
        "paid": "paid", "owed": "still to pay", "no_data": "No data yet",
        "spending_time": "Spent per category, cumulative per week (after refunds)",
        "providers": "Received per provider: paid and still to pay",
        "take_up": "Take-up per budget: share of credited residents who spent anything",
        "where": "Where each budget's credit is now",
        "of": "of", "week": "week", "total": "total",
    },
}


def euros(cents: int, lang: str, whole: bool = False) -> str:
    """nl: '€ 1.234,56', en: '€1,234.56' (whole: no cents)."""
    sign = "-" if cents < 0 else ""
    c = abs(int(cents))
    units = f"{c // 100:,}" if not whole else f"{round(c / 100):,}"
    if lang == "nl":
        units = units.replace(",", ".")
        return f"{sign}€ {units}" if whole else f"{sign}€ {units},{c % 100:02d}"
    return f"{sign}€{units}" if whole else f"{sign}€{units}.{c % 100:02d}"


def percent(share: float, lang: str) -> str:
    text = f"{100 * share:.0f}%"
    return text if lang != "nl" else text.replace("%", " %")


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


def _ticks(top: float, count: int = 4) -> list[float]:
    """Round axis steps (1, 2, 5 x 10^k) from 0 to at least `top`."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(math.ceil(top / step)) + 1)]


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


class _Svg:
    def __init__(self, ident: str, height: int, title: str, desc: str, width: int):
        self.width = width
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'class="db-chart-svg" role="img" aria-labelledby="{ident}-t {ident}-d" font-family="{FONT}" font-size="15" '
            f'fill="{INK}">',
            f'<title id="{ident}-t">{_e(title)}</title><desc id="{ident}-d">{_e(desc)}</desc>',
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        ]

    def add(self, text: str) -> None:
        self.parts.append(text)

    def text(self, x: float, y: float, s: str, anchor: str = "start", weight: str = "normal", size: int = 15) -> None:
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-weight="{weight}" font-size="{size}">'
                 f"{_e(s)}</text>")

    def rect(self, x: float, y: float, w: float, h: float, colour: str) -> None:
        if w > 0 and h > 0:
            self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{colour}" '
                     f'stroke="#ffffff" stroke-width="1"/>')

    def line(self, x1: float, y1: float, x2: float, y2: float, colour: str = GRID, width: float = 1,
             dash: str | None = None) -> None:
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
                 f'stroke-width="{width}"{d}/>')

    def legend(self, y: float, items: Sequence[tuple[str, str]]) -> float:
        """Coloured squares with names, wrapped over lines; returns the y below them."""
        x = 8.0
        for name, colour in items:
            w = 22 + 8.2 * len(name) + 18
            if x + w > self.width - 8 and x > 8:
                x, y = 8.0, y + 22
            self.rect(x, y - 11, 14, 14, colour)
            self.text(x + 20, y + 1, name)
            x += w
        return y + 22

    def done(self) -> str:
        return "".join(self.parts) + "</svg>"


def _empty(ident: str, title: str, lang: str, width: int) -> str:
    svg = _Svg(ident, 80, title, LABELS[lang]["no_data"], width)
    svg.text(width / 2, 46, LABELS[lang]["no_data"], anchor="middle")
    return svg.done()


def stacked_bars(ident: str, title: str, desc: str, rows: Sequence[tuple[str, Sequence[int]]],
                 series: Sequence[tuple[str, str]], label: Callable[[int], str], lang: str,
                 axis: Callable[[float], str], layout: tuple[int, int, int, int]) -> str:
    """Horizontal bars, one per row, each split into the series' segments (cents)."""
    width, left, right, chars = layout
    if not rows:
        return _empty(ident, title, lang, width)
    bar, gap = 24, 14
    top_legend = 24
    svg_rows = len(rows)
    top = max([sum(v) for _, v in rows] + [1])
    ticks = _ticks(top, 4 if width > 600 else 2)
    scale = (width - left - right) / ticks[-1]
    # legend height: the same wrapping as _Svg.legend
    legend_bottom = _Svg(ident, 10, "", "", width).legend(top_legend, series)
    y0 = legend_bottom + 8
    height = int(y0 + svg_rows * (bar + gap) + 34)
    svg = _Svg(ident, height, title, desc, width)
    svg.legend(top_legend, series)
    for t in ticks:
        x = left + t * scale
        svg.line(x, y0 - 4, x, y0 + svg_rows * (bar + gap) - gap + 4, dash="2 3" if t else None)
        svg.text(x, height - 12, axis(t), anchor="middle", size=12)
    for i, (name, values) in enumerate(rows):
        y = y0 + i * (bar + gap)
        svg.text(left - 8, y + bar * 0.7, _fit(name, chars), anchor="end")
        x = float(left)
        for v, (_, colour) in zip(values, series):
            w = v * scale
            svg.rect(x, y, w, bar, colour)
            x += w
        svg.text(x + 6, y + bar * 0.7, label(sum(values)), size=13)
    return svg.done()


def render(data: dict[str, Any], lang: str, narrow: bool = False) -> dict[str, str]:
    """The four charts of the snapshot JSON (Snapshot.public) in `lang` ('nl' or 'en'), laid
    out for a wide screen or (narrow) a phone."""
    t = LABELS[lang]
    layout = NARROW if narrow else WIDE
    width, left, right, chars = layout
    suffix = "-n" if narrow else ""
    eur = lambda c: euros(c, lang)  # noqa: E731
    axis = lambda v: euros(int(v), lang, whole=True)  # noqa: E731
    out = {}

    # 1. Spending per category over time: cumulative net spending at the end of each ISO week,
    #    from zero before the first week.
    weeks = sorted({w["week"] for w in data["weeks"]})
    cats = sorted({w["category_name"] for w in data["weeks"]})
    if weeks:
        net = {(w["week"], w["category_name"]): w["net_cents"] for w in data["weeks"]}
        lines = {}
        for c in cats:
            total, ys_ = 0, []
            for wk in weeks:
                total += net.get((wk, c), 0)
                ys_.append(total)
            lines[c] = ys_
        series = [(f"{c} ({eur(lines[c][-1])})", PALETTE[i % len(PALETTE)]) for i, c in enumerate(cats)]
        desc = "; ".join(f"{c}: {eur(lines[c][-1])} {t['total']}" for c in cats)
        plot_left, plot_right = (96, 24) if not narrow else (80, 16)
        y0 = _Svg("p", 10, "", "", width).legend(24, series) + 12
        plot_h = 220 if not narrow else 180
        height = int(y0 + plot_h + 44)
        svg = _Svg("chart-time" + suffix, height, t["spending_time"], desc, width)
        svg.legend(24, series)
        top = max([max(v) for v in lines.values()] + [1])
        ticks = _ticks(top)
        ys = lambda v: y0 + plot_h - v / ticks[-1] * plot_h  # noqa: E731
        for tk in ticks:
            svg.line(plot_left, ys(tk), width - plot_right, ys(tk), dash="2 3" if tk else None)
            svg.text(plot_left - 8, ys(tk) + 5, axis(tk), anchor="end", size=13)
        n = len(weeks)
        span = width - plot_left - plot_right
        xs = [plot_left + span * ((i + 1) / (n + 0.3)) for i in range(n)]  # x of the start: plot_left
        every = max(1, math.ceil(n / (8 if not narrow else 3)))
        for i, wk in enumerate(weeks):
            if i % every == 0 or i == n - 1:
                svg.text(xs[i], y0 + plot_h + 22, wk, anchor="middle", size=13)
        for i, c in enumerate(cats):
            colour = PALETTE[i % len(PALETTE)]
            pts = " ".join(f"{x:.1f},{ys(v):.1f}" for x, v in zip([plot_left, *xs], [0, *lines[c]]))
            svg.add(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="3"/>')
            for x, v in zip(xs, lines[c]):
                svg.add(f'<circle cx="{x:.1f}" cy="{ys(v):.1f}" r="4.5" fill="{colour}"/>')
        out["spending_time"] = svg.done()
    else:
        out["spending_time"] = _empty("chart-time" + suffix, t["spending_time"], lang, width)

    # 2. Per provider: paid and still to pay (= received after refunds).
    provs = [p for p in data["providers"] if p["received_cents"] or p["settled_cents"] or p["unsettled_cents"]]
    provs.sort(key=lambda p: -(p["settled_cents"] + p["unsettled_cents"]))
    rows = [(p["name"] or _short(p["address"]), [p["settled_cents"], p["unsettled_cents"]]) for p in provs]
    desc = "; ".join(f"{name}: {t['paid']} {eur(v[0])}, {t['owed']} {eur(v[1])}" for name, v in rows)
    out["providers"] = stacked_bars("chart-providers" + suffix, t["providers"], desc, rows,
                                    [(t["paid"], PART_COLOURS["settled"]), (t["owed"], PART_COLOURS["held_by_providers"])],
                                    eur, lang, axis, layout)

    # 3. Take-up per budget (share of credited residents who spent anything).
    budgets = data["budgets"]
    if budgets:
        bar, gap = 24, 14
        height = int(24 + len(budgets) * (bar + gap) + 34)
        desc = "; ".join(f"{b['name']}: {percent(b['take_up'], lang)} ({b['residents_who_spent']} {t['of']} "
                         f"{b['residents_credited']})" for b in budgets)
        svg = _Svg("chart-take-up" + suffix, height, t["take_up"], desc, width)
        span = width - left - right
        for tk in (0, 0.25, 0.5, 0.75, 1.0) if not narrow else (0, 0.5, 1.0):
            x = left + tk * span
            svg.line(x, 16, x, 24 + len(budgets) * (bar + gap) - gap + 4, dash="2 3" if tk else None)
            svg.text(x, height - 12, percent(tk, lang), anchor="middle", size=13)
        for i, b in enumerate(budgets):
            y = 24 + i * (bar + gap)
            svg.text(left - 8, y + bar * 0.7, _fit(b["name"], chars), anchor="end")
            svg.rect(left, y, b["take_up"] * span, bar, PALETTE[i % len(PALETTE)])
            label = percent(b["take_up"], lang)
            if not narrow:
                label += f" ({b['residents_who_spent']} {t['of']} {b['residents_credited']})"
            svg.text(left + b["take_up"] * span + 6, y + bar * 0.7, label, size=13)
        out["take_up"] = svg.done()
    else:
        out["take_up"] = _empty("chart-take-up" + suffix, t["take_up"], lang, width)

    # 4. Where each budget's issued credit is now.
    parts = data["where_parts"]
    rows = [(b["name"], [b[f"{p}_cents"] for p in parts]) for b in budgets]
    desc = "; ".join(f"{b['name']}: " + ", ".join(f"{t[p]} {eur(b[f'{p}_cents'])}" for p in parts) for b in budgets)
    out["where"] = stacked_bars("chart-where" + suffix, t["where"], desc, rows,
                                [(t[p], PART_COLOURS[p]) for p in parts], eur, lang, axis, layout)
    return out


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


__all__ = ["euros", "percent", "render"]
