"""The reports' few plots, as inline SVG written directly (crisp on screen and paper, no files).

Plots take display-ready values (already suppressed by the caller) and draw
them; they compute no statistics. Colours are Okabe-Ito (safe for colour
vision deficiencies) and every series also differs by marker or position.
Every chart carries a ``<title>`` and a ``<desc>`` listing the values drawn
(screen readers read them; the page's text never depends on the picture).

The SVG is built from strings, not by a plotting library: a cohort page has
a few small charts and a national program has a thousand cohorts, so a chart
must cost well under a millisecond. Each chart has a natural width in CSS
pixels (its ``width``; 470 for the wide ones, 300 for a small multiple) and
shrinks on narrower screens (``max-width: 100%``): with text of at least
``MIN_FONT`` units it stays at 11 px or more on a 400 px wide phone.
"""

from __future__ import annotations

import functools
import math
import textwrap
from collections.abc import Callable
from html import escape

BLUE, ORANGE, GREEN, VERMILLION, GREY = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#8c8c8c"
LIGHT, HIDDEN, PURPLE = "#cfcfcf", "#f0f0f0", "#CC79A7"
WIDTH = 470  # wide charts, in CSS pixels at their natural size (two fit side by side)
PANEL_W, PANEL_H = 300, 250  # one small multiple of the means
MIN_FONT, TITLE_FONT = 15, 16  # 15 x 368 / 470 = 11.7 px on a 400 px phone (body padding 16)
FONT = "font-family=\"'DejaVu Sans', system-ui, sans-serif\""
Fmt = Callable[[float, int], str]


def plain(value: float, digits: int = 1) -> str:
    """English-style number (the default when the caller passes no formatter)."""
    rounded = round(float(value), digits)
    return f"{(rounded if rounded != 0 else 0.0):,.{digits}f}"


@functools.lru_cache(maxsize=4096)  # the same labels recur on every cohort's page
def wrap(text: str, width: int = 30, split_words: bool = True) -> tuple[str, ...]:
    """A long label broken over lines so panels do not overlap (a word longer than a line is
    split only when ``split_words``)."""
    return tuple(textwrap.wrap(text, width, break_long_words=split_words)) or (text,)


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


INK = "#1b1b1b"


def text(x: float, y: float, content: str, size: float = MIN_FONT, anchor: str = "start",
         colour: str = INK, extra: str = "") -> str:
    """A text element; the chart's defaults (``MIN_FONT``, start, ``INK``) are left unsaid."""
    return (f'<text x="{x:.1f}" y="{y:.1f}"'
            + (f' font-size="{size}"' if size != MIN_FONT else "")
            + (f' text-anchor="{anchor}"' if anchor != "start" else "")
            + (f' fill="{colour}"' if colour != INK else "")
            + f"{extra}>{escape(content)}</text>")


@functools.lru_cache(maxsize=16384)  # titles, labels and axes repeat on every cohort's page
def lines(x: float, y: float, content: tuple[str, ...], size: float = MIN_FONT,
          anchor: str = "start", colour: str = INK, middle: bool = False) -> str:
    """Multi-line text from its first baseline (or vertically centred on y when ``middle``)."""
    step = size * 1.2
    top = y - (len(content) - 1) * step / 2 + size * 0.35 if middle else y
    return "".join(text(x, top + i * step, line, size, anchor, colour)
                   for i, line in enumerate(content))


def svg(width: float, height: float, title: str, desc: str, body: list[str]) -> str:
    """The chart element: accessible name (title) and description first."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.1f} {height:.1f}" '
            f'width="{width:.1f}" height="{height:.1f}" role="img" {FONT}>'
            f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>"
            f'<g font-size="{MIN_FONT}" fill="{INK}">' + "".join(body) + "</g></svg>")


def marker(kind: str, x: float, y: float, colour: str) -> str:
    """A series' marker: circle (a cohort) or square (the program)."""
    if kind == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{colour}"/>'
    return f'<rect x="{(x - 4):.1f}" y="{(y - 4):.1f}" width="8" height="8" fill="{colour}"/>'


@functools.lru_cache(maxsize=4096)
def legend(items: tuple[tuple[str, str, str], ...], y: float, left: float = 8,
           width: float = WIDTH) -> tuple[str, float]:
    """Legend entries from ``left``, wrapping to new rows: (label, colour, circle|square|box).

    Returns the SVG and the y below it.
    """
    out, x = [], left
    for label, colour, kind in items:
        w = 36 + 0.64 * MIN_FONT * len(label)
        if x + w > width and x > left:
            x, y = left, y + MIN_FONT * 1.5
        if kind == "box":
            out.append(f'<rect x="{x:.1f}" y="{(y - 6):.1f}" width="18" height="12" '
                       f'fill="{colour}" stroke="#8c8c8c" stroke-width="0.5"/>')
        else:
            out.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{(x + 18):.1f}" y2="{y:.1f}" '
                       f'stroke="{colour}" stroke-width="1.5"/>' + marker(kind, x + 9, y, colour))
        out.append(text(x + 24, y + 5, label))
        x += w
    return "".join(out), y + MIN_FONT


# --- means at each wave ----------------------------------------------------------------
SERIES = (("program", GREY, "square", -1), ("cohort", BLUE, "circle", 1))
WAVE_FONT = 13  # a panel is never shrunk on a phone (300 px wide): 13 px stays readable
OFFSET = 9  # cohort and program points sit this far either side of their wave


def means_legend(labels: dict) -> str:
    """The series of :func:`means_panel` (one legend above a figure of panels)."""
    body, bottom = legend(tuple((labels[key], colour, kind) for key, colour, kind, _ in SERIES
                                if key in labels), 14, width=WIDTH)
    return svg(WIDTH, bottom + 4, " · ".join(labels.values()), " · ".join(labels.values()),
               [body])


def means_panel(panel: dict, labels: dict, fmt: Fmt = plain) -> str:
    """Mean and 95% CI per wave of one scale: this cohort (blue circles) beside the program
    (grey squares), each a little to one side of its wave so that they never overlap.

    ``panel``: {title, waves: [wave labels], cohort: [(mean, low, high) or None],
    program: [(mean, low, high) or None]} (a series may be absent).
    """
    title_lines = wrap(panel["title"], 30)
    y0 = 14 + len(title_lines) * TITLE_FONT * 1.2
    x0, x1, y1 = 62, PANEL_W - 34, PANEL_H - 50  # room for the last wave's label
    body = [lines(8, 18, title_lines, TITLE_FONT)]
    series = [(k, c, m, side) for k, c, m, side in SERIES if k in panel]
    points = [p for key, *_ in series for p in panel[key] if p is not None]
    low = min(p[1] for p in points) if points else 0
    high = max(p[2] for p in points) if points else 1
    pad = (high - low) * 0.06 or 1
    ticks, digits = nice_ticks(low - pad, high + pad, 4)
    lo, hi = min(ticks[0], low - pad), max(ticks[-1], high + pad)
    lo, hi = max(lo, low - 2.5 * pad), min(hi, high + 2.5 * pad)

    def ypos(v):
        return y1 - (v - lo) / (hi - lo) * (y1 - y0)

    n = len(panel["waves"])

    def xpos(j):
        return x0 + (x1 - x0) * (0.5 if n == 1 else 0.12 + 0.76 * j / (n - 1))

    # Wave labels share the axis: as many characters per line as the gap between waves holds.
    gap = (x1 - x0) * (1 if n == 1 else 0.76 / (n - 1))
    per_line = max(6, int(gap / (0.6 * WAVE_FONT)))

    body.append(f'<path d="M{x0:.1f} {(y0 - 4):.1f}V{y1:.1f}H{x1:.1f}" fill="none" '
                f'stroke="#1b1b1b" stroke-width="0.8"/>')
    for t in ticks:
        if lo <= t <= hi:
            y = ypos(t)
            body.append(f'<path d="M{(x0 - 4):.1f} {y:.1f}H{x0:.1f}" stroke="#1b1b1b" '
                        f'stroke-width="0.8"/>' + text(x0 - 7, y + 5, fmt(t, digits), anchor="end"))
    for j, wave in enumerate(panel["waves"]):
        body.append(lines(xpos(j), y1 + 18, wrap(wave, per_line, False), WAVE_FONT,
                          anchor="middle"))
    desc = []
    for key, colour, kind, side in series:
        drawn, path = [], []
        for j, p in enumerate(panel[key]):
            if p is None:
                continue
            x = xpos(j) + side * OFFSET
            drawn.append((x, ypos(p[0])))
            if p[1] is not None and p[2] is not None and math.isfinite(p[1]):
                path.append(f"M{x:.1f} {(ypos(p[1])):.1f}V{(ypos(p[2])):.1f}"
                            f"M{(x - 4):.1f} {(ypos(p[1])):.1f}h8M{(x - 4):.1f} {(ypos(p[2])):.1f}h8")
                desc.append(f"{panel['waves'][j]}, {labels[key]}: {fmt(p[0], 1)} "
                            f"({fmt(p[1], 1)}–{fmt(p[2], 1)})")
            else:
                desc.append(f"{panel['waves'][j]}, {labels[key]}: {fmt(p[0], 1)}")
        if not drawn:
            continue
        body.append(f'<path d="{"".join(path)}" stroke="{colour}" stroke-width="1.5" '
                    f'fill="none"/>')
        if len(drawn) > 1:
            body.append(f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in drawn)}"'
                        f' stroke="{colour}" stroke-width="1.5" fill="none"/>')
        body += [marker(kind, x, y, colour) for x, y in drawn]
    return svg(PANEL_W, PANEL_H, panel["title"], "; ".join(desc), body)


# --- horizontal bars of counts (reliable change, bands) ----------------------------------
def stacked(rows: list[dict], keys: list[str], colours: list[str], labels: dict,
            title: str | None, fmt: Fmt) -> str:
    """Horizontal 100% bars of people, one per row: {title, counts: {key: n}, hidden: n}.

    Each row's label sits above its bar (full width, readable on a phone).
    ``hidden`` (optional) is the sum of the row's suppressed cells, drawn as
    one pale segment so that no hidden count can be read off the bar; a row
    with nothing shown gets the words ``labels["all_hidden"]`` instead of a
    bar. A shown count is printed in its segment when the segment is wide enough.
    """
    x0, x1, bar_h, step = 10, WIDTH - 24, 28, MIN_FONT * 1.2
    title_lines = wrap(title, 46) if title else ()
    body = [lines(8, 20, title_lines, TITLE_FONT)] if title else []
    y = (14 + len(title_lines) * TITLE_FONT * 1.2) if title else 6
    desc, any_hidden, top = [], False, None
    for row in rows:
        label = wrap(row["title"], 50)
        body.append(lines(x0, y + MIN_FONT, label))
        y += len(label) * step + 4
        top = y if top is None else top
        parts = [(key, colour, row["counts"].get(key, 0)) for key, colour in zip(keys, colours)]
        shown_total = sum(n for *_, n in parts)
        if row.get("hidden"):
            parts.append(("hidden", HIDDEN, row["hidden"]))
            any_hidden = True
        total = sum(n for *_, n in parts)
        if not shown_total:
            body.append(text(x0 + 4, y + bar_h / 2 + 5, labels["all_hidden"], colour="#555",
                             extra=' font-style="italic"'))
            desc.append(f"{row['title']}: {labels['all_hidden']}")
            y += bar_h + 10
            continue
        left, said = 0.0, []
        for key, colour, n in parts:
            w = (n / total if total else 0) * (x1 - x0)
            if w > 0:
                body.append(f'<rect x="{(x0 + left):.1f}" y="{y:.1f}" width="{w:.1f}" '
                            f'height="{bar_h}" fill="{colour}" stroke="white" stroke-width="1"/>')
                if key != "hidden" and w >= 0.6 * MIN_FONT * (len(str(n)) + 1):
                    body.append(text(x0 + left + w / 2, y + bar_h / 2 + 5, str(n),
                                     anchor="middle"))
            if key != "hidden":
                said.append(f"{labels[key]} {n}")
            left += w
        if row.get("hidden"):
            said.append(labels["hidden"])
        desc.append(f"{row['title']}: " + ", ".join(said))
        y += bar_h + 10
    axis_y = y - 4
    body.append(f'<path d="M{x0} {((top or y) - 4):.1f}V{axis_y:.1f}H{x1}" fill="none" '
                f'stroke="#1b1b1b" stroke-width="0.8"/>')
    for share in (0, 0.5, 1):
        x = x0 + share * (x1 - x0)
        body.append(f'<path d="M{x:.1f} {axis_y:.1f}v4" stroke="#1b1b1b" stroke-width="0.8"/>'
                    + text(max(x, x0 + 12), axis_y + 20, fmt(100 * share, 0) + "%",
                           anchor="middle"))
    entries = tuple((labels[k], c, "box") for k, c in zip(keys, colours))
    if any_hidden:
        entries += ((labels["hidden"], HIDDEN, "box"),)
    legend_svg, bottom = legend(entries, axis_y + 44)
    body.append(legend_svg)
    return svg(WIDTH, bottom + 6, title or " · ".join(r["title"] for r in rows),
               "; ".join(desc), body)


def rci_bars(rows: list[dict], labels: dict, fmt: Fmt = plain, title: str | None = None) -> str:
    """Horizontal 100% bars: people reliably improved / no reliable change / deteriorated."""
    keys = ["improved", "no_change", "deteriorated"]
    return stacked(rows, keys, [GREEN, LIGHT, VERMILLION], labels, title, fmt)


def band_bars(rows: list[dict], bands: list[str], band_labels: dict, title: str,
              fmt: Fmt = plain) -> str:
    """Stacked 100% bars of people per band at each wave (e.g. ProQOL burnout low/moderate/high)."""
    palette = [GREEN, ORANGE, VERMILLION, BLUE, PURPLE]
    colours = [palette[i % len(palette)] for i in range(len(bands))]
    return stacked(rows, bands, colours, band_labels, title, fmt)


# --- effects across cohorts -----------------------------------------------------------------
def forest(rows: list[dict], pooled: dict | None, title: str, xlabel: str,
           fmt: Fmt = plain) -> str:
    """Forest plot: each cohort's d_z with its CI, and the pooled (random-effects) diamond.

    ``rows``: {title, d, low, high, n} (and ``n_label``, a second line of the
    label, e.g. "n 14"); {title, note} for a cohort counted in
    the pooled estimate but not drawn (too few people to show); or {gap:
    "label"} standing for cohorts left out (the extremes of many cohorts).
    """
    label_w, x0, x1 = 150, 160, WIDTH - 14
    title_lines = wrap(title, 46)
    top = 10 + len(title_lines) * TITLE_FONT * 1.2 + 6
    drawn = [r for r in rows if "d" in r] + ([pooled] if pooled else [])
    low = min([r["low"] for r in drawn] + [0.0])
    high = max([r["high"] for r in drawn] + [0.0])
    pad = (high - low) * 0.04 or 0.1
    ticks, digits = nice_ticks(low - pad, high + pad, 4)
    lo, hi = min(ticks[0], low - pad), max(ticks[-1], high + pad)

    def xpos(v):
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    body = [lines(8, 20, title_lines, TITLE_FONT)]
    desc = []
    every = rows + ([dict(pooled, pooled=True)] if pooled else [])
    labels = [wrap(r.get("gap") or r["title"], 17) + ((r["n_label"],) if "n_label" in r else ())
              for r in every]
    notes = [wrap(r["note"], 30) if "note" in r else () for r in every]
    heights = [10 + 1.2 * MIN_FONT * max(len(a), len(b), 1) for a, b in zip(labels, notes)]
    bottom = top + sum(heights)
    body.append(f'<path d="M{(xpos(0)):.1f} {top:.1f}V{bottom:.1f}" stroke="{GREY}" '
                f'stroke-width="1"/>')
    y_top = top
    for r, h, label, note in zip(every, heights, labels, notes):
        y = y_top + h / 2
        y_top += h
        if "gap" in r:
            body.append(lines(label_w, y, label, anchor="end", colour="#555", middle=True))
            continue
        body.append(lines(label_w, y, label, anchor="end", middle=True))
        if "note" in r:
            body.append(lines(x0 + 6, y, note, colour="#555", middle=True))
            desc.append(f"{r['title']}: {r['note']}")
            continue
        desc.append(f"{r['title']}: {fmt(r['d'], 2)} ({fmt(r['low'], 2)}; {fmt(r['high'], 2)})")
        if r.get("pooled"):
            body.append(f'<polygon points="{(xpos(r["low"])):.1f},{y:.1f} {(xpos(r["d"])):.1f},'
                        f'{(y - 9):.1f} {(xpos(r["high"])):.1f},{y:.1f} {(xpos(r["d"])):.1f},'
                        f'{(y + 9):.1f}" fill="{ORANGE}"/>')
            continue
        side = 5 + min(r["n"], 40) / 6
        body.append(f'<path d="M{(xpos(r["low"])):.1f} {y:.1f}H{(xpos(r["high"])):.1f}'
                    f'M{(xpos(r["low"])):.1f} {(y - 4):.1f}v8M{(xpos(r["high"])):.1f} {(y - 4):.1f}v8" '
                    f'stroke="{BLUE}" stroke-width="1.5" fill="none"/>'
                    f'<rect x="{(xpos(r["d"]) - side / 2):.1f}" y="{(y - side / 2):.1f}" '
                    f'width="{side:.1f}" height="{side:.1f}" fill="{BLUE}"/>')
    body.append(f'<path d="M{x0} {top:.1f}V{bottom:.1f}H{x1}" fill="none" stroke="#1b1b1b" '
                f'stroke-width="0.8"/>')
    for t in ticks:
        if lo <= t <= hi:
            body.append(f'<path d="M{(xpos(t)):.1f} {bottom:.1f}v4" stroke="#1b1b1b" '
                        f'stroke-width="0.8"/>'
                        + text(xpos(t), bottom + 20, fmt(t, digits), anchor="middle"))
    axis = wrap(xlabel, 40)
    body.append(lines((x0 + x1) / 2, bottom + 42, axis, anchor="middle"))
    return svg(WIDTH, bottom + 48 + (len(axis) - 1) * MIN_FONT * 1.2, title, "; ".join(desc),
               body)


def caterpillar(rows: list[dict], pooled: dict | None, title: str, ylabel: str, xlabel: str,
                fmt: Fmt = plain) -> str:
    """Every cohort's d_z and CI, ordered by d_z (for programs with too many cohorts to name).

    One thin whisker and dot per cohort, the pooled estimate as an orange line
    with its CI as a band, zero as a grey line. ``rows``: {d, low, high}.
    """
    rows = sorted(rows, key=lambda r: r["d"])
    title_lines = wrap(title, 46)
    x0, x1, top = 56, WIDTH - 8, 12 + len(title_lines) * TITLE_FONT * 1.2 + 8
    y0, y1 = top, top + 200
    values = [v for r in rows for v in (r["low"], r["high"])] + [0.0]
    if pooled:
        values += [pooled["low"], pooled["high"]]
    low, high = min(values), max(values)
    pad = (high - low) * 0.04 or 0.1
    ticks, digits = nice_ticks(low - pad, high + pad, 5)
    lo, hi = min(ticks[0], low - pad), max(ticks[-1], high + pad)

    def ypos(v):
        return y1 - (v - lo) / (hi - lo) * (y1 - y0)

    n = len(rows)

    def xpos(i):
        return x0 + 6 + (i + 0.5) / max(n, 1) * (x1 - x0 - 12)

    body = [lines(8, 20, title_lines, TITLE_FONT)]
    for t in ticks:
        if lo <= t <= hi:
            body.append(f'<path d="M{x0 - 4} {(ypos(t)):.1f}H{x0}" stroke="#1b1b1b" '
                        f'stroke-width="0.8"/>'
                        + text(x0 - 7, ypos(t) + 5, fmt(t, digits), anchor="end"))
    if pooled:
        body.append(f'<rect x="{x0}" y="{(ypos(pooled["high"])):.1f}" width="{x1 - x0}" '
                    f'height="{(ypos(pooled["low"]) - ypos(pooled["high"])):.1f}" fill="{ORANGE}" '
                    f'fill-opacity="0.3"/>')
    body.append(f'<path d="M{x0} {(ypos(0)):.1f}H{x1}" stroke="{GREY}" stroke-width="1"/>')
    width = min(1.5, max(0.4, 0.6 * (x1 - x0) / max(n, 1)))
    whiskers = "".join(f"M{(xpos(i)):.1f} {(ypos(r['low'])):.1f}V{(ypos(r['high'])):.1f}"
                       for i, r in enumerate(rows))
    dot = max(1.2, min(3.0, 0.4 * (x1 - x0) / max(n, 1)))
    dots = "".join(f"M{(xpos(i) - dot):.1f} {(ypos(r['d'])):.1f}h{(2 * dot):.1f}"
                   for i, r in enumerate(rows))
    body.append(f'<path d="{whiskers}" stroke="{BLUE}" stroke-opacity="0.45" '
                f'stroke-width="{width:.1f}" fill="none"/>'
                f'<path d="{dots}" stroke="{BLUE}" stroke-width="{(2 * dot):.1f}" fill="none"/>')
    if pooled:
        body.append(f'<path d="M{x0} {(ypos(pooled["d"])):.1f}H{x1}" stroke="{ORANGE}" '
                    f'stroke-width="2"/>')
    body.append(f'<path d="M{x0} {y0:.1f}V{y1:.1f}H{x1}" fill="none" stroke="#1b1b1b" '
                f'stroke-width="0.8"/>')
    body.append(text((x0 + x1) / 2, y1 + 22, xlabel, anchor="middle"))
    body.append(text(16, (y0 + y1) / 2, ylabel, anchor="middle",
                     extra=f' transform="rotate(-90 16 {((y0 + y1) / 2):.1f})"'))
    above = sum(r["low"] > 0 for r in rows)
    below = sum(r["high"] < 0 for r in rows)
    desc = (f"{n}: d_z {fmt(rows[0]['d'], 2)} … {fmt(rows[-1]['d'], 2)}; "
            f"> 0: {above}; < 0: {below}" if rows else "")
    if pooled:
        desc += f"; {pooled['title']}: {fmt(pooled['d'], 2)} ({fmt(pooled['low'], 2)}; " \
                f"{fmt(pooled['high'], 2)})"
    return svg(WIDTH, y1 + 32, title, desc, body)
