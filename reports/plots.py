"""The reports' few plots, as inline SVG written directly (crisp on screen and paper, no files).

Plots take display-ready values (already suppressed by the caller) and draw
them; they compute no statistics. Colours are Okabe-Ito (safe for colour
vision deficiencies) and every series also differs by marker or position.
Every chart carries a ``<title>`` and a ``<desc>`` listing the values drawn
(screen readers read them; the page's text never depends on the picture).

The SVG is built from strings, not by a plotting library: a cohort page has
three or four small charts and a national program has a thousand cohorts, so
a chart must cost well under a millisecond. Coordinates are in a 720-unit
wide viewBox (the width of the page's text column at 100 units per inch);
CSS scales it to the column.
"""

from __future__ import annotations

import functools
import math
import textwrap
from collections.abc import Callable
from html import escape

BLUE, ORANGE, GREEN, VERMILLION, GREY = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#8c8c8c"
LIGHT = "#cfcfcf"
WIDTH = 720
FONT = "font-family=\"'DejaVu Sans', system-ui, sans-serif\""
Fmt = Callable[[float, int], str]


def plain(value: float, digits: int = 1) -> str:
    """English-style number (the default when the caller passes no formatter)."""
    rounded = round(float(value), digits)
    return f"{(rounded if rounded != 0 else 0.0):,.{digits}f}"


@functools.lru_cache(maxsize=4096)  # the same labels recur on every cohort's page
def wrap(text: str, width: int = 30) -> tuple[str, ...]:
    """A long label broken over lines so panels do not overlap."""
    return tuple(textwrap.wrap(text, width)) or (text,)


def f2(x: float) -> str:
    """A coordinate with one decimal (exact enough at any zoom)."""
    return f"{x:.1f}"


def nice_ticks(low: float, high: float, count: int = 5) -> tuple[list[float], int]:
    """Round tick values covering [low, high] and the decimals they need.

    Examples
    --------
    >>> nice_ticks(27.3, 37.9)
    ([28.0, 30.0, 32.0, 34.0, 36.0], 0)
    >>> nice_ticks(0, 1)
    ([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], 1)
    """
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        high = low + 1
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 5, 10)), key=lambda s: abs(math.log(s / raw)))
    first = math.ceil(low / step - 1e-9)
    ticks = [round(i * step, 10) for i in range(first, math.floor(high / step + 1e-9) + 1)]
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    return [float(t) for t in ticks], digits


def text(x: float, y: float, content: str, size: float = 11, anchor: str = "start",
         colour: str = "#1b1b1b", extra: str = "") -> str:
    return (f'<text x="{f2(x)}" y="{f2(y)}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{colour}"{extra}>{escape(content)}</text>')


def lines(x: float, y: float, content: tuple[str, ...] | list[str], size: float = 11,
          anchor: str = "start", colour: str = "#1b1b1b", middle: bool = False) -> str:
    """Multi-line text from its first baseline (or vertically centred on y when ``middle``)."""
    step = size * 1.2
    top = y - (len(content) - 1) * step / 2 + size * 0.35 if middle else y
    return "".join(text(x, top + i * step, line, size, anchor, colour)
                   for i, line in enumerate(content))


def svg(width: float, height: float, title: str, desc: str, body: list[str]) -> str:
    """The chart element: accessible name (title) and description first."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {f2(width)} {f2(height)}" '
            f'width="{f2(width)}" height="{f2(height)}" role="img" {FONT}>'
            f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>"
            + "".join(body) + "</svg>")


def legend(items: list[tuple[str, str, str]], y: float, centre: float = WIDTH / 2) -> str:
    """A one-row legend centred at ``centre``: (label, colour, marker: box|circle|square)."""
    widths = [34 + 6.9 * len(label) for label, _, _ in items]
    x = centre - sum(widths) / 2
    out = []
    for (label, colour, marker), w in zip(items, widths):
        if marker == "circle":
            out.append(f'<line x1="{f2(x)}" y1="{f2(y)}" x2="{f2(x + 18)}" y2="{f2(y)}" '
                       f'stroke="{colour}" stroke-width="1.5"/>'
                       f'<circle cx="{f2(x + 9)}" cy="{f2(y)}" r="4" fill="{colour}"/>')
        elif marker == "square":
            out.append(f'<line x1="{f2(x)}" y1="{f2(y)}" x2="{f2(x + 18)}" y2="{f2(y)}" '
                       f'stroke="{colour}" stroke-width="1.5"/>'
                       f'<rect x="{f2(x + 5)}" y="{f2(y - 4)}" width="8" height="8" '
                       f'fill="{colour}"/>')
        else:
            out.append(f'<rect x="{f2(x)}" y="{f2(y - 5)}" width="18" height="10" '
                       f'fill="{colour}"/>')
        out.append(text(x + 24, y + 4, label, 11))
        x += w
    return "".join(out)


# --- means at each wave ----------------------------------------------------------------
PANEL_W, PANEL_H = 240, 230


def means_panels(panels: list[dict], labels: dict, fmt: Fmt = plain) -> str:
    """Small multiples: mean and 95% CI per wave, this cohort beside the whole program.

    ``panels``: {title, waves: [wave labels], cohort: [(mean, low, high) or None],
    program: [(mean, low, high) or None]}. Program: grey squares; cohort: blue
    circles, each line joining the waves it has.
    """
    cols = min(3, max(len(panels), 1))
    rows = math.ceil(max(len(panels), 1) / cols)
    series = [(key, colour, marker, offset) for key, colour, marker, offset in
              (("program", GREY, "square", -0.08), ("cohort", BLUE, "circle", 0.08))
              if any(p is not None for panel in panels for p in panel[key])]
    top = 24
    body = [legend([(labels[key], colour, marker) for key, colour, marker, _ in series], 10)]
    desc = []
    for i, panel in enumerate(panels):
        ox, oy = (i % cols) * PANEL_W, top + (i // cols) * PANEL_H
        body.append(lines(ox + 46, oy + 14, wrap(panel["title"], 30), 12))
        x0, x1, y0, y1 = ox + 50, ox + PANEL_W - 12, oy + 44, oy + 168
        points = [p for key, *_ in series for p in panel[key] if p is not None]
        low = min(p[1] for p in points) if points else 0
        high = max(p[2] for p in points) if points else 1
        pad = (high - low) * 0.06 or 1
        ticks, digits = nice_ticks(low - pad, high + pad, 5)
        lo, hi = min(ticks[0], low - pad), max(ticks[-1], high + pad)
        lo, hi = max(lo, low - 2.5 * pad), min(hi, high + 2.5 * pad)
        ticks = [t for t in ticks if lo <= t <= hi]

        def ypos(v, lo=lo, hi=hi, y0=y0, y1=y1):
            return y1 - (v - lo) / (hi - lo) * (y1 - y0)

        n = len(panel["waves"])

        def xpos(j, x0=x0, x1=x1, n=n):
            return x0 + (x1 - x0) * (0.5 if n == 1 else 0.12 + 0.76 * j / (n - 1))

        body.append(f'<path d="M{f2(x0)} {f2(y0 - 4)}V{f2(y1)}H{f2(x1)}" fill="none" '
                    f'stroke="#1b1b1b" stroke-width="0.8"/>')
        for t in ticks:
            y = ypos(t)
            body.append(f'<path d="M{f2(x0 - 4)} {f2(y)}H{f2(x0)}" stroke="#1b1b1b" '
                        f'stroke-width="0.8"/>' + text(x0 - 7, y + 4, fmt(t, digits), 10.5, "end"))
        for j, wave in enumerate(panel["waves"]):
            body.append(lines(xpos(j), y1 + 16, wrap(wave, 12), 10.5, "middle"))
        for key, colour, marker, offset in series:
            drawn, path = [], []
            for j, p in enumerate(panel[key]):
                if p is None:
                    continue
                x = xpos(j) + offset * (x1 - x0) / max(n, 2)
                drawn.append((x, ypos(p[0])))
                path.append(f"M{f2(x)} {f2(ypos(p[1]))}V{f2(ypos(p[2]))}"
                            f"M{f2(x - 4)} {f2(ypos(p[1]))}h8M{f2(x - 4)} {f2(ypos(p[2]))}h8")
                desc.append(f"{panel['title']}, {panel['waves'][j]}, {labels[key]}: "
                            f"{fmt(p[0], 1)} ({fmt(p[1], 1)}–{fmt(p[2], 1)})")
            if not drawn:
                continue
            body.append(f'<path d="{"".join(path)}" stroke="{colour}" stroke-width="1.5" '
                        f'fill="none"/>')
            if len(drawn) > 1:
                body.append(f'<polyline points="{" ".join(f"{f2(x)},{f2(y)}" for x, y in drawn)}"'
                            f' stroke="{colour}" stroke-width="1.5" fill="none"/>')
            for x, y in drawn:
                body.append(f'<circle cx="{f2(x)}" cy="{f2(y)}" r="4.5" fill="{colour}"/>'
                            if marker == "circle" else
                            f'<rect x="{f2(x - 4)}" y="{f2(y - 4)}" width="8" height="8" '
                            f'fill="{colour}"/>')
    title = " · ".join(p["title"] for p in panels)
    return svg(cols * PANEL_W, top + rows * PANEL_H, title, "; ".join(desc), body)


# --- 100% bars (reliable change, bands) --------------------------------------------------
def stacked(rows: list[dict], keys: list[str], colours: list[str], labels: dict,
            title: str | None, fmt: Fmt, value_labels: str) -> str:
    """Horizontal 100% bars, one per row: {title, counts: {key: n}}.

    ``value_labels``: "count" prints n inside each segment of 8% or more,
    "percent" prints its share.
    """
    label_w, x0, x1, row_h, bar_h = 205, 215, 700, 40, 30
    top = 30 if title else 8
    body = [lines(x0, 18, wrap(title, 80), 12)] if title else []
    desc = []
    for i, row in enumerate(rows):
        y = top + i * row_h
        total = sum(row["counts"].get(k, 0) for k in keys)
        body.append(lines(label_w, y + bar_h / 2, wrap(row["title"], 32), 12, "end", middle=True))
        left, parts = 0.0, []
        for key, colour in zip(keys, colours):
            n = row["counts"].get(key, 0)
            share = n / total if total else 0
            w = share * (x1 - x0)
            if w > 0:
                body.append(f'<rect x="{f2(x0 + left)}" y="{f2(y)}" width="{f2(w)}" '
                            f'height="{bar_h}" fill="{colour}" stroke="white" stroke-width="1"/>')
                if share >= 0.08:
                    shown = str(n) if value_labels == "count" else fmt(100 * share, 0) + "%"
                    body.append(text(x0 + left + w / 2, y + bar_h / 2 + 4, shown, 11, "middle"))
            parts.append(f"{labels[key]} {n} ({fmt(100 * share, 0)}%)")
            left += w
        desc.append(f"{row['title']}: " + ", ".join(parts))
    axis_y = top + len(rows) * row_h - (row_h - bar_h) / 2 + 2
    body.append(f'<path d="M{x0} {top - 4}V{f2(axis_y)}H{x1}" fill="none" stroke="#1b1b1b" '
                f'stroke-width="0.8"/>')
    for share in (0, 0.5, 1):
        x = x0 + share * (x1 - x0)
        body.append(f'<path d="M{f2(x)} {f2(axis_y)}v4" stroke="#1b1b1b" stroke-width="0.8"/>'
                    + text(x, axis_y + 17, fmt(100 * share, 0) + "%", 11, "middle"))
    body.append(legend([(labels[k], c, "box") for k, c in zip(keys, colours)], axis_y + 38,
                       (x0 + x1) / 2))
    return svg(WIDTH, axis_y + 50, title or " · ".join(r["title"] for r in rows),
               "; ".join(desc), body)


def rci_bars(rows: list[dict], labels: dict, fmt: Fmt = plain) -> str:
    """Horizontal 100% bars: share reliably improved / no reliable change / deteriorated."""
    keys = ["improved", "no_change", "deteriorated"]
    return stacked(rows, keys, [GREEN, LIGHT, VERMILLION], labels, None, fmt, "count")


def band_bars(rows: list[dict], bands: list[str], band_labels: dict, title: str,
              fmt: Fmt = plain) -> str:
    """Stacked 100% bars of people per band at each wave (e.g. ProQOL burnout low/moderate/high)."""
    palette = [GREEN, ORANGE, VERMILLION, BLUE, GREY]
    colours = [palette[i % len(palette)] for i in range(len(bands))]
    return stacked(rows, bands, colours, band_labels, title, fmt, "percent")


# --- effects across cohorts -----------------------------------------------------------------
def forest(rows: list[dict], pooled: dict | None, title: str, xlabel: str,
           fmt: Fmt = plain) -> str:
    """Forest plot: each cohort's d_z with its CI, and the pooled (random-effects) diamond.

    ``rows``: {title, d, low, high, n}, or {gap: "label"} for a row of text
    standing for cohorts not drawn (``forest`` of the extremes of many cohorts).
    """
    label_w, x0, x1, row_h = 225, 235, 700, 28
    top = 14 + 15 * len(wrap(title, 80)) + 6
    drawn = [r for r in rows if "gap" not in r] + ([pooled] if pooled else [])
    low = min([r["low"] for r in drawn] + [0.0])
    high = max([r["high"] for r in drawn] + [0.0])
    pad = (high - low) * 0.04 or 0.1
    ticks, digits = nice_ticks(low - pad, high + pad, 6)
    lo, hi = min(ticks[0], low - pad), max(ticks[-1], high + pad)

    def xpos(v):
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    body = [lines(x0, 16, wrap(title, 80), 12)]
    desc = []
    every = rows + ([dict(pooled, pooled=True)] if pooled else [])
    bottom = top + len(every) * row_h
    body.append(f'<path d="M{f2(xpos(0))} {top}V{f2(bottom)}" stroke="{GREY}" stroke-width="1"/>')
    for i, r in enumerate(every):
        y = top + i * row_h + row_h / 2
        if "gap" in r:
            body.append(text(label_w, y + 4, r["gap"], 11, "end", "#555",
                             ' font-style="italic"'))
            continue
        body.append(text(label_w, y + 4, r["title"], 11.5, "end"))
        desc.append(f"{r['title']}: {fmt(r['d'], 2)} ({fmt(r['low'], 2)}; {fmt(r['high'], 2)})")
        if r.get("pooled"):
            body.append(f'<polygon points="{f2(xpos(r["low"]))},{f2(y)} {f2(xpos(r["d"]))},'
                        f'{f2(y - 9)} {f2(xpos(r["high"]))},{f2(y)} {f2(xpos(r["d"]))},'
                        f'{f2(y + 9)}" fill="{ORANGE}"/>')
            continue
        side = 5 + min(r["n"], 40) / 6
        body.append(f'<path d="M{f2(xpos(r["low"]))} {f2(y)}H{f2(xpos(r["high"]))}'
                    f'M{f2(xpos(r["low"]))} {f2(y - 4)}v8M{f2(xpos(r["high"]))} {f2(y - 4)}v8" '
                    f'stroke="{BLUE}" stroke-width="1.5" fill="none"/>'
                    f'<rect x="{f2(xpos(r["d"]) - side / 2)}" y="{f2(y - side / 2)}" '
                    f'width="{f2(side)}" height="{f2(side)}" fill="{BLUE}"/>')
    body.append(f'<path d="M{x0} {top}V{f2(bottom)}H{x1}" fill="none" stroke="#1b1b1b" '
                f'stroke-width="0.8"/>')
    for t in ticks:
        if lo <= t <= hi:
            body.append(f'<path d="M{f2(xpos(t))} {f2(bottom)}v4" stroke="#1b1b1b" '
                        f'stroke-width="0.8"/>'
                        + text(xpos(t), bottom + 17, fmt(t, digits), 11, "middle"))
    body.append(text((x0 + x1) / 2, bottom + 36, xlabel, 11.5, "middle"))
    return svg(WIDTH, bottom + 44, title, "; ".join(desc), body)


def caterpillar(rows: list[dict], pooled: dict | None, title: str, ylabel: str, xlabel: str,
                fmt: Fmt = plain) -> str:
    """Every cohort's d_z and CI, ordered by d_z (for programs with too many cohorts to name).

    One thin whisker and dot per cohort, the pooled estimate as an orange line
    with its CI as a band, zero as a grey line. ``rows``: {d, low, high}.
    """
    rows = sorted(rows, key=lambda r: r["d"])
    x0, x1, top = 60, 705, 14 + 15 * len(wrap(title, 80)) + 8
    y0, y1 = top, top + 210
    values = [v for r in rows for v in (r["low"], r["high"])] + [0.0]
    if pooled:
        values += [pooled["low"], pooled["high"]]
    low, high = min(values), max(values)
    pad = (high - low) * 0.04 or 0.1
    ticks, digits = nice_ticks(low - pad, high + pad, 6)
    lo, hi = min(ticks[0], low - pad), max(ticks[-1], high + pad)

    def ypos(v):
        return y1 - (v - lo) / (hi - lo) * (y1 - y0)

    n = len(rows)

    def xpos(i):
        return x0 + 6 + (i + 0.5) / max(n, 1) * (x1 - x0 - 12)

    body = [lines(x0, 16, wrap(title, 80), 12)]
    for t in ticks:
        if lo <= t <= hi:
            body.append(f'<path d="M{x0 - 4} {f2(ypos(t))}H{x0}" stroke="#1b1b1b" '
                        f'stroke-width="0.8"/>'
                        + text(x0 - 7, ypos(t) + 4, fmt(t, digits), 11, "end"))
    if pooled:
        body.append(f'<rect x="{x0}" y="{f2(ypos(pooled["high"]))}" width="{x1 - x0}" '
                    f'height="{f2(ypos(pooled["low"]) - ypos(pooled["high"]))}" fill="{ORANGE}" '
                    f'fill-opacity="0.3"/>')
    body.append(f'<path d="M{x0} {f2(ypos(0))}H{x1}" stroke="{GREY}" stroke-width="1"/>')
    width = min(1.5, max(0.4, 0.6 * (x1 - x0) / max(n, 1)))
    whiskers = "".join(f"M{f2(xpos(i))} {f2(ypos(r['low']))}V{f2(ypos(r['high']))}"
                       for i, r in enumerate(rows))
    dot = max(1.2, min(3.0, 0.4 * (x1 - x0) / max(n, 1)))
    dots = "".join(f"M{f2(xpos(i) - dot)} {f2(ypos(r['d']))}h{f2(2 * dot)}"
                   for i, r in enumerate(rows))
    body.append(f'<path d="{whiskers}" stroke="{BLUE}" stroke-opacity="0.45" '
                f'stroke-width="{f2(width)}" fill="none"/>'
                f'<path d="{dots}" stroke="{BLUE}" stroke-width="{f2(2 * dot)}" fill="none"/>')
    if pooled:
        body.append(f'<path d="M{x0} {f2(ypos(pooled["d"]))}H{x1}" stroke="{ORANGE}" '
                    f'stroke-width="2"/>')
    body.append(f'<path d="M{x0} {y0}V{y1}H{x1}" fill="none" stroke="#1b1b1b" '
                f'stroke-width="0.8"/>')
    body.append(text((x0 + x1) / 2, y1 + 20, xlabel, 11.5, "middle"))
    body.append(text(16, (y0 + y1) / 2, ylabel, 11.5, "middle",
                     extra=f' transform="rotate(-90 16 {f2((y0 + y1) / 2)})"'))
    above = sum(r["low"] > 0 for r in rows)
    below = sum(r["high"] < 0 for r in rows)
    desc = (f"{n}: d_z {fmt(rows[0]['d'], 2)} … {fmt(rows[-1]['d'], 2)}; "
            f"> 0: {above}; < 0: {below}" if rows else "")
    if pooled:
        desc += f"; {pooled['title']}: {fmt(pooled['d'], 2)} ({fmt(pooled['low'], 2)}; " \
                f"{fmt(pooled['high'], 2)})"
    return svg(WIDTH, y1 + 30, title, desc, body)
