"""The reports' few plots, as inline SVG (crisp on screen and paper, no extra files).

Plots take display-ready values (already suppressed by the caller) and draw
them; they compute no statistics. Colours are Okabe-Ito (safe for colour
vision deficiencies) and every series also differs by marker or position.
"""

from __future__ import annotations

import io
import math
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BLUE, ORANGE, GREEN, VERMILLION, GREY = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#8c8c8c"
plt.rcParams.update({"svg.fonttype": "none", "font.family": "DejaVu Sans", "font.size": 9,
                     "axes.spines.top": False, "axes.spines.right": False})


def to_svg(fig) -> str:
    """The figure as an SVG string (without the XML prolog), then closed."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def wrap(text: str, width: int = 30) -> str:
    """Break a long label over lines so panels do not overlap."""
    return "\n".join(textwrap.wrap(text, width)) or text


def _grid(n: int, width: float = 7.2, cols: int = 3):
    cols = min(cols, max(n, 1))
    rows = math.ceil(max(n, 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width, 2.3 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def means_panels(panels: list[dict], labels: dict) -> str:
    """Small multiples: mean and 95% CI per wave, this cohort beside the whole program.

    ``panels``: {title, waves: [wave labels], cohort: [(mean, low, high) or None],
    program: [(mean, low, high) or None], note}.
    """
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels):
        x = range(len(panel["waves"]))
        for offset, key, colour, marker in ((-0.08, "program", GREY, "s"),
                                            (0.08, "cohort", BLUE, "o")):
            points = [(i + offset, p) for i, p in zip(x, panel[key]) if p is not None]
            if not points:
                continue
            xs = [i for i, _ in points]
            means = [p[0] for _, p in points]
            errors = [[p[0] - p[1] for _, p in points], [p[2] - p[0] for _, p in points]]
            ax.errorbar(xs, means, yerr=errors, color=colour, marker=marker, capsize=3,
                        linewidth=1.5, label=labels[key])
        ax.set_xticks(list(x), [wrap(w, 12) for w in panel["waves"]], fontsize=8)
        ax.set_title(wrap(panel["title"], 34), fontsize=9, loc="left")
        if panel.get("note"):
            ax.text(0.02, 0.02, panel["note"], transform=ax.transAxes, fontsize=7, color=GREY)
        ax.margins(x=0.15)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(frameon=False, fontsize=8, loc="best")
    fig.tight_layout()
    return to_svg(fig)


def rci_bars(rows: list[dict], labels: dict) -> str:
    """Horizontal 100% bars: share reliably improved / no reliable change / deteriorated."""
    fig, ax = plt.subplots(figsize=(7.2, 0.45 * len(rows) + 0.9))
    colours = {"improved": GREEN, "no_change": "#cfcfcf", "deteriorated": VERMILLION}
    for y, row in enumerate(rows):
        left = 0.0
        total = sum(row["counts"].values())
        for key in ("improved", "no_change", "deteriorated"):
            share = row["counts"][key] / total if total else 0
            ax.barh(y, share, left=left, color=colours[key], edgecolor="white",
                    label=labels[key] if y == 0 else None)
            if share >= 0.08:
                ax.text(left + share / 2, y, f"{row['counts'][key]}", ha="center", va="center",
                        fontsize=8)
            left += share
    ax.set_yticks(range(len(rows)), [wrap(r["title"], 32) for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.5, 1], ["0%", "50%", "100%"])
    ax.legend(frameon=False, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=8)
    fig.tight_layout()
    return to_svg(fig)


def band_bars(rows: list[dict], bands: list[str], band_labels: dict, title: str) -> str:
    """Stacked 100% bars of people per band at each wave (e.g. ProQOL burnout low/moderate/high)."""
    fig, ax = plt.subplots(figsize=(7.2, 0.5 * len(rows) + 1.0))
    palette = [GREEN, ORANGE, VERMILLION, BLUE, GREY]
    for y, row in enumerate(rows):
        total = sum(row["counts"].values())
        left = 0.0
        for i, band in enumerate(bands):
            share = row["counts"].get(band, 0) / total if total else 0
            ax.barh(y, share, left=left, color=palette[i % len(palette)], edgecolor="white",
                    label=band_labels[band] if y == 0 else None)
            left += share
    ax.set_yticks(range(len(rows)), [r["title"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.5, 1], ["0%", "50%", "100%"])
    ax.set_title(wrap(title, 80), fontsize=9, loc="left")
    ax.legend(frameon=False, ncol=len(bands), loc="upper center", bbox_to_anchor=(0.5, -0.15),
              fontsize=8)
    fig.tight_layout()
    return to_svg(fig)


def forest(rows: list[dict], pooled: dict | None, title: str, xlabel: str) -> str:
    """Forest plot: each cohort's d_z with its CI, and the pooled (random-effects) diamond."""
    n = len(rows) + (1 if pooled else 0)
    fig, ax = plt.subplots(figsize=(7.2, 0.38 * n + 1.1))
    for y, row in enumerate(rows):
        ax.errorbar(row["d"], y, xerr=[[row["d"] - row["low"]], [row["high"] - row["d"]]],
                    fmt="s", color=BLUE, markersize=4 + min(row["n"], 40) / 8, capsize=2)
    labels = [r["title"] for r in rows]
    if pooled:
        y = len(rows)
        ax.fill([pooled["low"], pooled["d"], pooled["high"], pooled["d"]],
                [y, y - 0.3, y, y + 0.3], color=ORANGE)
        labels.append(pooled["title"])
    ax.axvline(0, color=GREY, linewidth=1)
    ax.set_yticks(range(n), labels)
    ax.invert_yaxis()
    ax.set_title(wrap(title, 80), fontsize=9, loc="left")
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    return to_svg(fig)
