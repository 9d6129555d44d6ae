"""The competence section of cohort and program reports (observer-rated instruments).

Reads the ``competence_levels``, ``interrater`` and ``raters`` tables; every judgement
(agreement level, harsh/lenient, drifting) comes from them, the words from
``messages.yaml``. Suppression follows the reports' rules:

- levels: a wave's bars only when the cohort's people at that wave are published; a level
  with 1..min_n-1 ratings is hidden, with complements (:func:`privacy.secondary_suppression`).
  The program's bars pool the cohorts published at that wave, and hide a level hidden in any
  of them, so no cohort's hidden count can be recovered by subtraction;
- agreement: figures from fewer than min_n people rated twice are not shown;
- raters: pseudonyms only; a rater's figures from fewer than min_n shared people are not shown.
"""

from __future__ import annotations

import pandas as pd

from pipelines.schema import POOLED
from reports import plots
from reports.privacy import secondary_suppression

HIDDEN = "—"
LEVEL_COLOURS = [plots.VERMILLION, plots.ORANGE, plots.BLUE, plots.GREEN, plots.PURPLE]


def competence_section(data, cohort: str | None) -> list[dict]:
    """One entry per rating instrument with data for ``cohort`` (None: the program)."""
    levels = data.tables.get("competence_levels")
    if levels is None or levels.empty:
        return []
    out = []
    for inst_id in sorted(levels["instrument"].unique()):
        inst = data.instruments.get(inst_id)
        if inst is None or inst.kind != "rating":
            continue
        charts = level_charts(data, level_counts(levels[levels["instrument"] == inst_id]), inst,
                              cohort)
        agreement = agreement_rows(data, inst_id, cohort)
        raters = rater_rows(data, inst_id, cohort)
        if charts or agreement or raters:
            out.append({"title": data.instrument_title(inst_id), "charts": charts,
                        "agreement": agreement, "summary": agreement_summary(data, inst_id, cohort),
                        "raters": raters, "levels": level_legend(data, inst)})
    return out


def measures(inst) -> list[tuple[str, str]]:
    """(measure kind, measure) of the domains, then the total."""
    return [("domain", s.id) for s in inst.subscales if s.id != "total"] + [("total", "total")]


def measure_label(data, inst, measure: str) -> str:
    return data.short(inst.id, measure)


def level_legend(data, inst) -> list[dict]:
    """Each level's label and anchor, for the legend under the charts."""
    return [{"label": f"{o.code} = {getattr(o, data.lang)}",
             "anchor": o.anchor.get(data.lang) if o.anchor else ""}
            for o in inst.response_options]


def level_counts(levels: pd.DataFrame) -> dict[tuple[str, str, str], dict[float, int]]:
    """Ratings per level of each (cohort, wave, measure) of one instrument's rows."""
    counts: dict[tuple[str, str, str], dict[float, int]] = {}
    for cohort, wave, measure, level, n in zip(
            levels["cohort"], levels["wave"], levels["measure"], levels["level"].astype(float),
            levels["n_level"].astype(int)):
        counts.setdefault((cohort, wave, measure), {})[level] = n
    return counts


def cells_of(counts: dict, cohort: str, wave: str, measure: str) -> dict[float, int]:
    """Ratings per level of one measure at one wave in one cohort (``counts``:
    :func:`level_counts`)."""
    return dict(counts.get((cohort, wave, measure), {}))


def suppressed(cells: dict[float, int], min_n: int, hidden: set | None = None) -> set:
    """Levels to hide: small counts, levels already hidden, then complements."""
    keyed = {**cells, "total": sum(cells.values())}
    return secondary_suppression(keyed, [("total", list(cells))], min_n,
                                 hidden=set(hidden or ())) - {"total"}


def wave_cells(data, counts: dict, inst_id: str, cohort: str | None, wave: str,
               measure: str) -> tuple[dict[float, int], set] | None:
    """The shown cells of a bar and the hidden levels, or None when the bar is not shown."""
    published = [c.id for c in data.config.cohorts
                 if data.disclosure.participation(c.id, wave, inst_id)]
    if cohort is not None:
        if cohort not in published:
            return None
        cells = cells_of(counts, cohort, wave, measure)
        return cells, suppressed(cells, data.min_n)
    cells: dict[float, int] = {}
    hidden: set = set()
    for one in published:
        mine = cells_of(counts, one, wave, measure)
        hidden |= suppressed(mine, data.min_n)
        for level, n in mine.items():
            cells[level] = cells.get(level, 0) + n
    if sum(cells.values()) == 0:
        return None
    return cells, suppressed(cells, data.min_n, hidden)


def level_charts(data, counts: dict, inst, cohort: str | None) -> list[dict]:
    """One chart per domain and the total: ratings per level before/after (100% bars)."""
    codes = [float(o.code) for o in inst.response_options]
    keys = [str(int(c)) for c in codes]
    labels = {str(o.code): getattr(o, data.lang) for o in inst.response_options} | {
        "hidden": data.t("hidden_segment", n=data.min_n),
        "all_hidden": data.t("all_hidden", n=data.min_n)}
    charts = []
    for _, measure in measures(inst):
        rows = []
        for wave in data.waves:
            found = wave_cells(data, counts, inst.id, cohort, wave, measure)
            if found is None:
                continue
            cells, hidden = found
            rows.append({"title": data.wave_label[wave],
                         "counts": {str(int(c)): cells.get(c, 0) for c in codes
                                    if c not in hidden},
                         "hidden": sum(cells.get(c, 0) for c in hidden)})
        if rows:
            svg = plots.stacked(rows, keys, LEVEL_COLOURS[:len(keys)], labels,
                                measure_label(data, inst, measure), data.num)
            charts.append({"svg": svg})
    return charts


def agreement_rows(data, inst_id: str, cohort: str | None) -> list[dict]:
    """ICC headline with its CI and agreement level per domain and the total."""
    table = data.tables.get("interrater")
    if table is None or table.empty:
        return []
    rows = table[(table["cohort"] == (cohort or POOLED)) & (table["instrument"] == inst_id)
                 & (table["measure_kind"] != "item")]
    out = []
    for row in rows.itertuples():
        shown = row.n_targets >= data.min_n
        out.append({
            "measure": data.short(inst_id, row.measure),
            "n": int(row.n_targets) if shown else HIDDEN,
            "icc": data.num(row.headline, 2) if shown else HIDDEN,
            "ci": (f"{data.num(row.headline_ci_low, 2)} – {data.num(row.headline_ci_high, 2)}"
                   if shown else HIDDEN),
            "level": data.t(f"agreement_{row.agreement_level}") if shown
            else data.t("agreement_not_estimable")})
    return out


def agreement_summary(data, inst_id: str, cohort: str | None) -> str:
    """The total's agreement in plain words, read from its ``agreement_level``."""
    table = data.tables.get("interrater")
    if table is None or table.empty:
        return data.t("agreement_words_none")
    rows = table[(table["cohort"] == (cohort or POOLED)) & (table["instrument"] == inst_id)
                 & (table["measure"] == "total")]
    if rows.empty:
        return data.t("agreement_words_none")
    row = rows.iloc[0]
    level = row["agreement_level"] if row["n_targets"] >= data.min_n else "not_estimable"
    return data.t(f"agreement_words_{level}", n=int(row["n_targets"]),
                  icc=data.num(row["headline"], 2))


def rater_rows(data, inst_id: str, cohort: str | None) -> list[dict]:
    """Each rater's severity on the total over all waves, calibration and drift in words."""
    table = data.tables.get("raters")
    if table is None or table.empty:
        return []
    rows = table[(table["cohort"] == (cohort or POOLED)) & (table["instrument"] == inst_id)
                 & (table["measure"] == "total") & (table["wave"] == POOLED)]
    out = []
    for row in rows.itertuples():
        shown = row.n_targets >= data.min_n
        drift = ""
        if shown and row.drifting:
            drift = data.t("rater_drift_harsher" if row.drift < 0 else "rater_drift_lenient",
                           first=data.wave_label.get(row.drift_from, row.drift_from),
                           last=data.wave_label.get(row.drift_to, row.drift_to))
        out.append({
            "rater": row.rater, "n": int(row.n_targets) if shown else HIDDEN,
            "severity": data.num(row.severity, 2) if shown else HIDDEN,
            "ci": f"{data.num(row.ci_low, 2)} – {data.num(row.ci_high, 2)}" if shown else HIDDEN,
            "calibration": data.t(f"rater_{row.direction}" if shown else "rater_not_estimable"),
            "flagged": bool(shown and (row.outside_band or row.drifting)),
            "drift": drift})
    return out
