"""The view model: result tables turned into what each report section shows, per language.

:class:`TableIndex` groups the result tables once (the same for every
language) with what may be published (:class:`reports.privacy.Disclosure`);
:class:`ReportData` reads it for one language, one method per section. A
page's template context is :func:`cohort_context` or :func:`program_context`.
Nothing here computes a statistic or decides a verdict: it reads the columns
and flags the analysis wrote (``pipelines/analysis/cautions.py`` says what the
flags mean for a reader).

To add a section: a method here returning plain dicts, one entry in
:func:`cohort_context` or :func:`program_context`, and a template partial
included by the page (see ARCHITECTURE.md).
"""

from __future__ import annotations

import re

import markupsafe
import pandas as pd

from instruments.model import Instrument
from pipelines.analysis.cautions import (
    few_people,
    in_meta_analysis,
    low_reliability,
    model_flag_needs_care,
    reliability_caveat,
)
from pipelines.analysis.tables import pooled_means
from pipelines.schema import POOLED, load_schema
from reports import plots
from reports.competence import competence_section
from reports.i18n import MESSAGES, Catalogue, instrument_short, number, scale_label, short_label
from reports.privacy import RCI_CATEGORIES, SUPPRESSED, Disclosure, values

SMALL = 10  # figures from min_cell_size..SMALL-1 people are shown, marked as small


FOREST_ROWS = 30  # up to this many cohorts, the forest plot names each one


FOREST_EXTREMES = 5  # beyond: a caterpillar of all, and a forest of the k highest and lowest


REPORT_CHANGE_COLUMNS = [  # the columns of the change table the reports read
    "cohort", "instrument", "scale", "from_wave", "to_wave", "n_pairs", "mean_from", "mean_to",
    "mean_diff", "ci_low", "ci_high", "d_z", "d_z_ci_low", "d_z_ci_high", "improvement",
    "rci_improved", "rci_no_change", "rci_deteriorated", "hake_g", "normalized_change_c",
    "verdict", "verdict_family"]


LIST_COHORTS = 30  # up to this many cohorts, the program report lists them before the grid


HARDEST = 5  # questions listed as the hardest




HIDDEN = "—"


BADGE = ' <span class="badge">!</span>'  # a figure from 5-9 people


def headline_scales(instruments: dict[str, Instrument], change: pd.DataFrame) -> list[tuple]:
    """(instrument, scale) pairs a program lead reads first (when no primary outcome is declared).

    Knowledge: equated percent correct when forms were equated, else percent
    correct. Scales: the total when there is one, else each subscale.
    """
    present = set(zip(change["instrument"], change["scale"])) if not change.empty else set()
    chosen = []
    for inst in sorted(instruments.values(), key=lambda i: (i.kind != "knowledge", i.id)):
        if inst.kind == "knowledge":
            for scale in ("equated_percent_correct", "percent_correct"):
                if (inst.id, scale) in present:
                    chosen.append((inst.id, scale))
                    break
            continue
        ids = [s.id for s in inst.subscales]
        wanted = ["total"] if "total" in ids else ids
        chosen += [(inst.id, s) for s in wanted if (inst.id, s) in present]
    return chosen


def records(frame: pd.DataFrame | None, columns: list[str] | None = None) -> list[dict]:
    """Rows as plain dicts (fast to read one value at a time, unlike pandas rows).

    ``columns``: only these (those present), which keeps a thousand cohorts' tables cheap.
    """
    if frame is None or frame.empty:
        return []
    names = [c for c in columns if c in frame.columns] if columns else list(frame.columns)
    return [dict(zip(names, row)) for row in zip(*(values(frame[c]) for c in names))]


def by_cohort(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows grouped by their cohort, in table order."""
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["cohort"], []).append(row)
    return out


def key_text(key: tuple) -> str:
    """A disclosure key as text ("part|cohort|wave|instrument"): published counts carry it in
    ``data-k`` (and charts in ``data-cells``) so that tests can audit every count a page shows."""
    return "|".join(key)


def annotated(value: int, key: tuple) -> markupsafe.Markup:
    """A published count inside a running sentence, with its key (keys are made of ids, which
    program.yaml and the instrument files restrict to letters, digits, ``_ . -``)."""
    return markupsafe.Markup(f'<span data-k="{key_text(key)}">{int(value)}</span>')


def cells_attribute(cells: dict[tuple, int]) -> str:
    """The published counts a chart draws ("key=value;..."), for ``data-cells``."""
    return ";".join(f"{key_text(k)}={v}" for k, v in cells.items())


def verdict_of(row: dict) -> str:
    """The row's ``verdict`` (the analysis'), ``not_estimable`` where it has none.

    >>> verdict_of({"verdict": "improved"}), verdict_of({"verdict": None})
    ('improved', 'not_estimable')
    """
    verdict = row.get("verdict")
    return verdict if isinstance(verdict, str) else "not_estimable"


def flags_of(value) -> set[str]:
    """The flags of a ``flags`` cell ("a;b" or "a, b")."""
    if not isinstance(value, str) or not value:
        return set()
    return {f.strip() for f in re.split(r"[;,]", value) if f.strip()}


class TableIndex:
    """The result tables grouped once by cohort and key (the same for every language), and
    what may be published (:class:`Disclosure`).

    Every cohort page reads a few rows of each table: filtering the whole
    DataFrame per section and cohort costs O(cohorts²); dict look-ups do not.
    """

    def __init__(self, tables: dict[str, pd.DataFrame], config, instruments):
        self.config = config
        self.waves = config.wave_order()
        self.disclosure = Disclosure(tables, config, instruments)
        change_table = tables.get("change", pd.DataFrame())
        change = records(change_table, REPORT_CHANGE_COLUMNS)
        present = {(r["from_wave"], r["to_wave"]) for r in change}
        self.pairs = [tuple(p) for p in config.pairs() if tuple(p) in present]
        self.change = by_cohort(change)
        self.change_key = {(r["cohort"], r["instrument"], r["scale"], r["from_wave"],
                            r["to_wave"]): r for r in change}
        self.change_scale: dict[tuple, list[dict]] = {}
        for r in change:
            self.change_scale.setdefault((r["instrument"], r["scale"], r["from_wave"],
                                          r["to_wave"]), []).append(r)
        self.headlines = headline_scales(instruments, change_table)
        self.primary = [(o.instrument, o.scale, o.waves) for o in config.primary_outcomes]
        self.means = {(r["cohort"], r["instrument"], r["scale"], r["wave"]): r
                      for r in records(tables.get("wave_means"),
                                       ["cohort", "instrument", "scale", "wave", "n", "mean",
                                        "sd", "ci_low", "ci_high"])}
        self.program_means = self._program_means(tables.get("wave_means"))
        self.banded: dict[tuple, set[tuple[str, str]]] = {}  # (cohort, pair) -> scales
        for r in records(tables.get("band_transitions"),
                         ["cohort", "instrument", "scale", "from_wave", "to_wave"]):
            self.banded.setdefault((r["cohort"], r["from_wave"], r["to_wave"]), set()).add(
                (r["instrument"], r["scale"]))
        rel = tables.get("reliability", pd.DataFrame())
        at_first = records(rel[rel["wave"] == self.waves[0]] if not rel.empty else rel,
                           ["cohort", "instrument", "scale", "form", "n", "alpha", "flags"])
        self.reliability = by_cohort(at_first)
        self.reliability_key: dict[tuple, list[dict]] = {}
        for r in at_first:
            self.reliability_key.setdefault((r["cohort"], r["instrument"], r["scale"]),
                                            []).append(r)
        self.quarantine = self._quarantine(tables.get("quarantine"))
        models = tables.get("models", pd.DataFrame())
        self.models: dict[tuple, list[dict]] = {}
        for r in records(models):
            self.models.setdefault((r["instrument"], r["scale"], r["from_wave"], r["to_wave"]),
                                   []).append(r)
        self.knowledge = self._knowledge(tables.get("items", pd.DataFrame()), instruments)
        self.accounting = tables.get("accounting")
        runs = tables.get("runs")
        self.run = records(runs)[-1] if runs is not None and not runs.empty else None

    def _program_means(self, means: pd.DataFrame | None) -> dict[tuple, dict]:
        """Means of the program at each wave, pooled over the cohorts whose means are published
        (so that a hidden cohort's mean cannot be recovered from the program's)."""
        if means is None or means.empty:
            return {}
        cohorts = means[means["cohort"] != POOLED]
        shown = [self.disclosure.mean_shown(c, w, i, n) for c, w, i, n in
                 zip(cohorts["cohort"], cohorts["wave"], cohorts["instrument"], cohorts["n"])]
        published = cohorts[shown]
        if published.empty:
            return {}
        pooled = pooled_means(published, ["instrument", "scale", "wave"])
        return {(r["instrument"], r["scale"], r["wave"]): r for r in records(pooled)}

    @staticmethod
    def _quarantine(q: pd.DataFrame | None) -> dict[str, list[tuple[str, str, int]]]:
        """(rule, scope, rows) per cohort as found, the most frequent first."""
        out: dict[str, list[tuple[str, str, int]]] = {}
        if q is None or q.empty:
            return out
        scope = q["scope"] if "scope" in q.columns else pd.Series("row", index=q.index)
        counts = q.assign(scope=scope.fillna("row")).groupby(
            ["cohort", "rule", "scope"], sort=False).size()
        for (cohort, rule, kind), n in counts.items():
            out.setdefault(str(cohort), []).append((rule, kind, int(n)))
        for rules in out.values():
            rules.sort(key=lambda kv: -kv[2])
        return out

    def _knowledge(self, items: pd.DataFrame, instruments) -> dict | None:
        """Per cohort: item difficulty by form at the later wave of the first pair."""
        knowledge = [i for i in instruments.values() if i.kind == "knowledge"]
        if items is None or items.empty or not knowledge:
            return None
        inst = knowledge[0]
        wave = self.pairs[0][1] if self.pairs else self.waves[0]
        sel = items[(items["instrument"] == inst.id) & (items["wave"] == wave)
                    & (items["scale"] == "percent_correct")]
        rows = records(sel, ["cohort", "form", "item", "difficulty", "n", "flags"])
        pooled = [r for r in rows if r["cohort"] == POOLED]
        miskeyed = sorted({r["item"] for r in pooled
                           if "possible_wrong_key" in flags_of(r["flags"])})
        return {"instrument": inst, "wave": wave, "cohorts": by_cohort(rows),
                "miskeyed": miskeyed}


class ReportData:
    """The result tables, seen for one language: labels, formats and suppression applied."""

    def __init__(self, tables: dict[str, pd.DataFrame], config, instruments, t: Catalogue,
                 index: TableIndex | None = None):
        self.tables, self.config, self.instruments, self.t = tables, config, instruments, t
        self.index = index or TableIndex(tables, config, instruments)
        self.disclosure = self.index.disclosure
        self.lang, self.min_n = t.language, config.min_cell_size
        self.waves = config.wave_order()
        self.wave_label = {w.id: (w.label.get(self.lang) or w.id) for w in config.waves}
        self.pairs = self.index.pairs
        self.headlines = self.index.headlines
        self._labels: dict[tuple, str] = {}
        self._short: dict[tuple, str] = {}
        self._methods: list[dict] | None = None
        self._program_series: dict[tuple, list] = {}
        self._escaped: dict[str, str] = {}
        self._item_texts: dict[str, dict[str, str]] = {}

    # --- small helpers ---------------------------------------------------------
    def num(self, value, digits: int = 1) -> str:
        return number(value, self.lang, digits)

    def label(self, inst: str, scale: str) -> str:
        key = (inst, scale)
        if key not in self._labels:
            self._labels[key] = scale_label(self.instruments, inst, scale, self.lang)
        return self._labels[key]

    def short(self, inst: str, scale: str) -> str:
        key = (inst, scale)
        if key not in self._short:
            self._short[key] = short_label(self.instruments, inst, scale, self.lang)
        return self._short[key]

    def pair_label(self, pair: tuple[str, str]) -> str:
        return f"{self.wave_label[pair[0]]} → {self.wave_label[pair[1]]}"

    def change_row(self, cohort: str, inst: str, scale: str, pair) -> dict | None:
        return self.index.change_key.get((cohort, inst, scale, *pair))

    def pair_shown(self, row: dict) -> bool:
        return self.disclosure.pair_shown(row["cohort"], row["instrument"], row["scale"],
                                          row["from_wave"], row["to_wave"])

    def unit(self, scale: str) -> str:
        return "%" if "percent" in scale else ""

    def count_cell(self, key: tuple, percent_of=None) -> markupsafe.Markup:
        """A count's table cell: the value with its key (and its share of ``percent_of``), or
        the hidden mark. Built here, not in the template: a national program has a hundred
        thousand of them."""
        value = self.disclosure.count(key)
        if value is SUPPRESSED:
            return markupsafe.Markup(f'<td class="num hidden">{HIDDEN}</td>')
        share = f" ({self.num(100 * value / percent_of, 0)}%)" if percent_of else ""
        return markupsafe.Markup(f'<td class="num" data-k="{key_text(key)}">{value}{share}</td>')

    def count_span(self, key: tuple) -> markupsafe.Markup:
        """A count inside a table cell (with its key), or the hidden mark."""
        value = self.disclosure.count(key)
        if value is SUPPRESSED:
            return markupsafe.Markup(HIDDEN)
        return markupsafe.Markup(f'<span data-k="{key_text(key)}">{value}</span>')

    def instrument_title(self, inst_id: str) -> str:
        inst = self.instruments.get(inst_id)
        return instrument_short(inst, self.lang) if inst else inst_id

    def verdict_text(self, row: dict) -> str:
        text = self.t(row["verdict"]) if isinstance(row.get("verdict"), str) else HIDDEN
        if row.get("verdict_family") == "exploratory":
            text += " " + self.t("exploratory_tag")
        return text

    def headline_rows(self, cohort: str, pair) -> list[dict]:
        """The change rows a cohort's headlines read: primary outcomes when declared, else the
        headline scales."""
        if self.index.primary:
            return [r for r in self.index.change.get(cohort, [])
                    if (r["from_wave"], r["to_wave"]) == pair
                    and r.get("verdict_family") == "primary"]
        found = [self.change_row(cohort, i, s, pair) for i, s in self.headlines]
        return [r for r in found if r is not None]

    # --- cohort sections ----------------------------------------------------------
    def headline_groups(self, cohort: str) -> list[dict]:
        """Plain-words headlines per wave pair, each reading the row's verdict."""
        groups = []
        for pair in self.pairs:
            rows = self.headline_rows(cohort, pair)
            items = [self.headline(r) for r in rows]
            if items:
                few = any(self.pair_shown(r) and r["n_pairs"] < SMALL for r in rows)
                groups.append({"title": self.pair_label(pair), "lines": items,
                               "note": self.t("small_n_sentence") if few else ""})
        return groups

    def headline(self, row: dict) -> dict:
        t, label = self.t, self.short(row["instrument"], row["scale"])
        if not self.pair_shown(row):
            return {"text": t("headline_hidden", scale=label, n=self.min_n), "kind": "hidden"}
        verdict = verdict_of(row)
        unit = self.unit(row["scale"])
        pair = (row["cohort"], row["instrument"], row["scale"], row["from_wave"], row["to_wave"])
        n = int(row["n_pairs"])
        n_text = annotated(n, ("pairs", *pair))
        text = t.html(f"headline_{verdict}", scale=label, a=self.num(row["mean_from"]) + unit,
                      b=self.num(row["mean_to"]) + unit, n=n_text,
                      w1=self.wave_label[row["from_wave"]], w2=self.wave_label[row["to_wave"]])
        rci = [row.get(f"rci_{c}") for c in RCI_CATEGORIES]
        if verdict == "improved" and row["improvement"] and all(pd.notna(rci)) and sum(rci):
            key = ("rci", *pair, "improved")
            improved = self.disclosure.count(key)
            text += markupsafe.Markup(" ") + (
                t.html("headline_rci", k=annotated(improved, key), n=n_text)
                if improved is not SUPPRESSED else t("headline_rci_few", n=self.min_n))
        if n < SMALL:
            text += " " + t("small_n_mark")
        return {"text": text, "kind": verdict}

    def participation_rows(self, cohort: str) -> list[dict]:
        """Per instrument and wave: people, retention, forms set aside, people who did not come."""
        first = self.waves[0]
        rows = []
        for inst_id in self.instruments_of(cohort):
            start = self.disclosure.count(("part", cohort, first, inst_id))
            for wave in self.waves:
                key = (cohort, wave, inst_id)
                if ("part", *key) not in self.disclosure.cells:
                    continue
                later = wave != first
                empty = markupsafe.Markup('<td class="num"></td>')
                rows.append({"instrument": self.instrument_title(inst_id),
                             "wave": self.wave_label[wave],
                             "people": self.count_cell(("part", *key)),
                             "matched": self.count_cell(("matched", *key),
                                                        start if start is not SUPPRESSED else None)
                             if later else empty,
                             "aside": self.count_cell(("aside", *key)),
                             "absent": self.count_cell(("absent", *key)) if later else empty})
        return rows

    def instruments_of(self, cohort: str) -> list[str]:
        """The cohort's instruments with answers at the first wave, knowledge tests first."""
        found = set(self.disclosure.instruments_at(cohort, self.waves[0]))
        order = sorted(self.instruments.values(), key=lambda i: (i.kind != "knowledge", i.id))
        return [i.id for i in order if i.id in found] + sorted(found - set(self.instruments))

    def series(self, cohort: str, inst: str, scale: str) -> list:
        """(mean, low, high) per wave where the cohort's mean is published, else None."""
        out = []
        for wave in self.waves:
            r = self.index.means.get((cohort, inst, scale, wave))
            ok = r is not None and self.disclosure.mean_shown(cohort, wave, inst, r["n"])
            out.append((r["mean"], r["ci_low"], r["ci_high"]) if ok else None)
        return out

    def program_series(self, inst: str, scale: str) -> list:
        """The program's means at each wave (pooled over the published cohorts)."""
        if (inst, scale) not in self._program_series:
            out = []
            for wave in self.waves:
                r = self.index.program_means.get((inst, scale, wave))
                out.append((r["mean"], r["ci_low"], r["ci_high"]) if r else None)
            self._program_series[(inst, scale)] = out
        return self._program_series[(inst, scale)]

    def means_figure(self, cohort: str | None) -> dict | None:
        """Small multiples of the means per wave (this cohort beside the program)."""
        labels = {"program": self.t("pooled_col_shown")}
        if cohort:
            labels = {"program": self.t("pooled_col_shown"), "cohort": self.t("cohort_col")}
        panels = []
        for inst, scale in self.headlines:
            program = self.program_series(inst, scale)
            panel = {"title": self.short(inst, scale),
                     "waves": [self.wave_label[w] for w in self.waves], "program": program}
            if cohort:
                panel["cohort"] = self.series(cohort, inst, scale)
                if not any(panel["cohort"]):
                    continue
            elif not any(program):
                continue
            panels.append(plots.means_panel(panel, labels, self.num))
        if not panels:
            return None
        return {"legend": plots.means_legend(labels), "panels": panels}

    def change_sections(self, cohort: str) -> list[dict]:
        """One table per wave pair: every scale, hidden rows stating why."""
        sections = []
        for pair in self.pairs:
            rows = [r for r in self.index.change.get(cohort, [])
                    if (r["from_wave"], r["to_wave"]) == pair]
            if not rows:
                continue
            out = [self.change_cells(r) for r in rows]
            sections.append({
                "title": self.pair_label(pair), "rows": out,
                "mean_from": self.t("mean_at", wave=self.wave_label[pair[0]]),
                "mean_to": self.t("mean_at", wave=self.wave_label[pair[1]]),
                "small": any(r.get("small") for r in out),
                "hidden": any(r["hidden"] for r in out),
                "exploratory": any(r.get("exploratory") for r in out)})
        return sections

    def change_cells(self, r: dict) -> dict:
        """One scale's row of a change table, as HTML (built here: a national program has tens of
        thousands of them), and what its legend needs."""
        scale = self.escaped(self.short(r["instrument"], r["scale"]))
        if not self.pair_shown(r):  # nothing of a suppressed row is formatted
            return {"html": markupsafe.Markup(
                f'<tr><td>{scale}</td><td colspan="7" class="hidden">'
                f'{self.escaped(self.t("suppressed", n=self.min_n))}</td></tr>'), "hidden": True}
        verdict = verdict_of(r)
        key = key_text(("pairs", r["cohort"], r["instrument"], r["scale"], r["from_wave"],
                        r["to_wave"]))
        small = r["n_pairs"] < SMALL
        better = self.escaped(self.t(r["improvement"])) if r["improvement"] else ""
        num = self.num
        return {"hidden": False, "small": small,
                "exploratory": r.get("verdict_family") == "exploratory",
                "html": markupsafe.Markup(
                    f'<tr><td>{scale}</td><td class="num"><span data-k="{key}">'
                    f'{int(r["n_pairs"])}</span>{BADGE if small else ""}</td>'
                    f'<td class="num">{num(r["mean_from"])}</td><td class="num">'
                    f'{num(r["mean_to"])}</td><td class="num">{num(r["mean_diff"])} '
                    f'({num(r["ci_low"])}; {num(r["ci_high"])})</td><td class="num">'
                    f'{num(r["d_z"], 2)}</td><td>{better}</td><td class="{verdict}">'
                    f'{self.escaped(self.verdict_text(r))}</td></tr>')}

    def escaped(self, text: str) -> str:
        """``text`` escaped for HTML (labels repeat on every page: escaped once)."""
        if text not in self._escaped:
            self._escaped[text] = str(markupsafe.escape(text))
        return self._escaped[text]

    def rci_figures(self, cohort: str) -> list[dict]:
        """Reliable change per wave pair: one bar per headline scale, hidden counts merged
        ({svg, cells}: the chart and the counts it shows)."""
        labels = {k: self.t(f"rci_{k}") for k in RCI_CATEGORIES}
        labels["hidden"] = self.t("hidden_segment", n=self.min_n)
        labels["all_hidden"] = self.t("all_hidden", n=self.min_n)
        out = []
        for pair in self.pairs:
            rows, cells = [], {}
            for row in self.headline_rows(cohort, pair):
                if not row["improvement"] or not self.pair_shown(row) or \
                        pd.isna(row.get("rci_improved")) or not sum(
                            row[f"rci_{c}"] for c in RCI_CATEGORIES):  # no RCI reference
                    continue
                key = (cohort, row["instrument"], row["scale"], *pair)
                counts, hidden = {}, 0
                for category in RCI_CATEGORIES:
                    value = self.disclosure.count(("rci", *key, category))
                    if value is SUPPRESSED:
                        hidden += self.disclosure.cells.get(("rci", *key, category), 0)
                    else:
                        counts[category] = value
                        cells[("rci", *key, category)] = value
                rows.append({"title": self.short(row["instrument"], row["scale"]),
                             "counts": counts, "hidden": hidden})
            if rows:
                out.append({"svg": plots.rci_bars(rows, labels, self.num, self.pair_label(pair)),
                            "cells": cells_attribute(cells)})
        return out

    def band_figures(self, cohort: str) -> tuple[list[dict], list[str]]:
        """Per banded scale, people per band at both waves of each wave pair (one chart), hidden
        counts merged; and the scales whose every band is hidden (named, not drawn)."""
        out, none_shown = [], []
        labels_base = {"hidden": self.t("hidden_segment", n=self.min_n),
                       "all_hidden": self.t("all_hidden", n=self.min_n)}
        scales = sorted({s for pair in self.pairs
                         for s in self.index.banded.get((cohort, *pair), ())})
        for inst, scale in scales:
            sub = next((s for s in self.instruments[inst].subscales if s.id == scale), None)
            if sub is None or not sub.bands:
                continue
            bands = [b.id for b in sub.bands]
            rows, cells = [], {}
            for pair in self.pairs:
                if (inst, scale) not in self.index.banded.get((cohort, *pair), ()) or \
                        not self.disclosure.pair_shown(cohort, inst, scale, *pair):
                    continue
                for wave in pair:
                    row = self.band_row(cohort, inst, scale, pair, wave, bands)
                    row["title"] = f"{self.pair_label(pair)}: {self.wave_label[wave]}"
                    rows.append(row)
                    cells.update({("band", cohort, inst, scale, *pair, wave, band): n
                                  for band, n in row["counts"].items()})
            title = self.short(inst, scale)
            if not any(sum(row["counts"].values()) for row in rows):
                if rows:
                    none_shown.append(title)
                continue
            labels = {b.id: b.label.get(self.lang) for b in sub.bands} | labels_base
            out.append({"svg": plots.band_bars(rows, bands, labels, title, self.num),
                        "cells": cells_attribute(cells)})
        return out, none_shown

    def band_row(self, cohort, inst, scale, pair, wave, bands) -> dict:
        counts, hidden = {}, 0
        for band in bands:
            key = ("band", cohort, inst, scale, *pair, wave, band)
            value = self.disclosure.count(key)
            if value is SUPPRESSED:
                hidden += self.disclosure.cells.get(key, 0)
            else:
                counts[band] = value
        return {"title": self.wave_label[wave], "counts": counts, "hidden": hidden}

    def knowledge_items(self, cohort: str) -> dict | None:
        """The hardest questions on the forms whose takers are published; questions to review."""
        known = self.index.knowledge
        if known is None:
            return None
        inst, wave = known["instrument"], known["wave"]
        rows = [r for r in known["cohorts"].get(cohort, [])
                if self.disclosure.form_shown(cohort, wave, inst.id, r["form"])
                and pd.notna(r["difficulty"])]
        rows.sort(key=lambda r: r["difficulty"])

        texts = self.item_texts(inst)

        def text(item_id):
            return texts.get(item_id, "")

        return {
            "wave": self.wave_label[wave],
            "hardest": [{"item": r["item"], "form": r["form"], "text": text(r["item"]),
                         "p": self.num(100 * r["difficulty"], 0)} for r in rows[:HARDEST]],
            "miskeyed": [{"item": i, "text": text(i)} for i in known["miskeyed"]],
        }

    def item_texts(self, inst: Instrument) -> dict[str, str]:
        """Item id -> its text in this language (looked up once)."""
        if inst.id not in self._item_texts:
            self._item_texts[inst.id] = {i.id: i.text.get(self.lang) for i in inst.items}
        return self._item_texts[inst.id]

    def gain_rows(self, cohort: str) -> list[dict]:
        out = []
        for pair in self.pairs:
            for row in self.headline_rows(cohort, pair):
                if "percent" not in row["scale"] or not self.pair_shown(row):
                    continue
                out.append({"scale": self.short(row["instrument"], row["scale"]),
                            "pair": self.pair_label(pair),
                            "hake": self.num(row["hake_g"], 2),
                            "c": self.num(row["normalized_change_c"], 2)})
        return out

    def reliability_rows(self, cohort: str) -> list[dict]:
        """Alpha at the first wave per scale (per form of a test), beside the whole program's."""
        pooled = {(r["instrument"], r["scale"], r["form"]): r["alpha"]
                  for r in self.index.reliability.get(POOLED, [])}
        rows, first = [], self.waves[0]
        for r in self.index.reliability.get(cohort, []):
            key = (r["instrument"], r["scale"], r["form"])
            if r["form"]:
                shown = self.disclosure.form_shown(cohort, first, r["instrument"], r["form"])
                n_key = ("form", cohort, first, r["instrument"], r["form"])
            else:
                shown = self.disclosure.mean_shown(cohort, first, r["instrument"], r["n"])
                n_key = ("part", cohort, first, r["instrument"])
                if self.disclosure.cells.get(n_key) != r["n"]:  # fewer than all who answered
                    n_key = ("rel", cohort, first, r["instrument"], r["scale"])
            flags = flags_of(r["flags"])
            label = self.short(r["instrument"], r["scale"])
            rows.append({
                "scale": f"{label} ({self.t('form')} {r['form']})" if r["form"] else label,
                "n": int(r["n"]) if shown else HIDDEN, "n_key": key_text(n_key) if shown else "",
                "alpha": self.num(r["alpha"], 2) if shown else HIDDEN,
                "pooled": self.num(pooled[key], 2) if key in pooled else HIDDEN,
                "low": shown and low_reliability(flags),
                "few": shown and few_people(flags), "hidden": not shown})
        return rows

    def caveats(self, cohort: str) -> list[str]:
        """Plain-words warnings on the headline scales' reliability in this cohort."""
        out, first = [], self.waves[0]
        for inst, scale in self.headlines:
            for r in self.index.reliability_key.get((cohort, inst, scale), []):
                flags = flags_of(r["flags"])
                if reliability_caveat(flags) and \
                        self.disclosure.mean_shown(cohort, first, inst, r["n"]):
                    out.append(self.t("caveat_reliability", scale=self.label(inst, scale),
                                      alpha=self.num(r["alpha"], 2)))
        return out

    def quarantine_rows(self, cohort: str | None) -> list[dict]:
        """Rows set aside (whole forms) and answers set aside, by reason."""
        if cohort is None:
            merged: dict[tuple, int] = {}
            for rules in self.index.quarantine.values():
                for rule, kind, n in rules:
                    merged[(rule, kind)] = merged.get((rule, kind), 0) + n
            found = sorted(((r, k, n) for (r, k), n in merged.items()), key=lambda x: -x[2])
        else:
            found = self.index.quarantine.get(cohort, [])
        return [{"rule": self.t.rule(rule), "n": n,
                 "scope": self.t("scope_cell" if kind == "cell" else "scope_row")}
                for rule, kind, n in found]

    def methods(self) -> list[dict]:
        if self._methods is not None:
            return self._methods
        schema = load_schema().tables
        entries = [("change", "verdict"), ("change", "p_verdict"), ("change", "d_z"),
                   ("change", "d_z_ci_high"), ("reliability", "alpha"),
                   ("reliability", "omega_total"), ("change", "d_av"),
                   ("change", "rci_improved"), ("change", "rci_reliability_source"),
                   ("change", "hake_g"), ("change", "normalized_change_c"),
                   ("change", "attrition_d"), ("participation", "n_absent")]
        out = []
        for table, column in entries:
            spec = schema[table].columns.get(column)
            if spec is not None and spec.definition.get(self.lang):
                out.append({"term": spec.label.get(self.lang),
                            "definition": spec.definition.get(self.lang)})
        self._methods = out
        return out

    def verdict_rule(self) -> str:
        """The verdict rule in plain words, naming the family used."""
        if self.index.primary:
            names = ", ".join(
                f"{self.short(i, s)}" + (f" ({self.pair_label(w)})" if w else "")
                for i, s, w in self.index.primary)
            return self.t("rule_primary", outcomes=names)
        return self.t("rule_all")

    def run_info(self) -> dict | None:
        run = self.index.run
        if run is None:
            return None
        when = str(run.get("finished") or run.get("started") or "")
        status = str(run.get("status") or "")
        problems = [p for p in str(run.get("problems") or "").split(" | ") if p.strip()]
        return {"id": run.get("run_id"), "date": when.replace("T", " ").replace("+00:00",
                                                                                " UTC"),
                "version": run.get("code_version"), "status": status,
                "status_text": self.t("status_" + status) if f"status_{status}" in MESSAGES
                else status, "problems": problems,
                "clean": status == "complete" and not problems}

    # --- program sections ----------------------------------------------------------
    def program_headlines(self) -> list[dict]:
        """The program's verdicts (pooled d_z, REML) per wave pair and headline scale."""
        groups = []
        for pair in self.pairs:
            items = []
            for inst, scale in self.program_scales(pair):
                meta = self.model(inst, scale, pair, "meta_reml", "pooled_d_z")
                if meta is None or pd.isna(meta["estimate"]):
                    continue
                verdict = verdict_of(meta)
                text = self.t(f"program_{verdict}", scale=self.short(inst, scale),
                              d=self.num(meta["estimate"], 2), low=self.num(meta["ci_low"], 2),
                              high=self.num(meta["ci_high"], 2), k=int(meta["n_groups"]))
                if meta.get("verdict_family") == "exploratory":
                    text += " " + self.t("exploratory_tag")
                items.append({"text": text, "kind": verdict})
            if items:
                groups.append({"title": self.pair_label(pair), "lines": items})
        return groups

    def program_scales(self, pair) -> list[tuple[str, str]]:
        if self.index.primary:
            return [(i, s) for i, s, w in self.index.primary if w is None or tuple(w) == pair]
        return self.headlines

    def model(self, inst, scale, pair, model: str, term: str) -> dict | None:
        for m in self.index.models.get((inst, scale, *pair), []):
            if m["model"] == model and m["term"] == term:
                return m
        return None

    def cohort_entries(self, files: dict[str, str]) -> list[dict]:
        return [{"cohort": c, "file": files.get(c.id),
                 "reportable": self.disclosure.reportable(c.id)} for c in self.config.cohorts]

    def participation_tables(self) -> list[dict]:
        """Per instrument: each cohort's people per wave with retention, and the program total
        over the published cells."""
        first = self.waves[0]
        tables = []
        instruments = sorted({k[3] for k in self.disclosure.cells if k[0] == "part"})
        order = sorted(self.instruments.values(), key=lambda i: (i.kind != "knowledge", i.id))
        instruments = [i.id for i in order if i.id in instruments] + \
            [i for i in instruments if i not in self.instruments]
        for inst_id in instruments:
            rows, totals = [], {w: 0 for w in self.waves}
            kept_first, kept = {w: 0 for w in self.waves}, {w: 0 for w in self.waves}
            for cohort in self.config.cohorts:
                if ("part", cohort.id, first, inst_id) not in self.disclosure.cells:
                    continue
                if not self.disclosure.reportable(cohort.id):
                    rows.append({"site": cohort.site, "hidden_cohort": True})
                    continue
                start = self.disclosure.count(("part", cohort.id, first, inst_id))
                cells = []
                for wave in self.waves:
                    key = (cohort.id, wave, inst_id)
                    people = self.disclosure.count(("part", *key))
                    cell = {"people": self.count_cell(("part", *key))}
                    if people is not SUPPRESSED:
                        totals[wave] += people
                    if wave != first:
                        matched = self.disclosure.count(("matched", *key))
                        known = start is not SUPPRESSED and start
                        cell["matched"] = self.count_cell(("matched", *key),
                                                          start if known else None)
                        if matched is not SUPPRESSED and known:
                            kept_first[wave] += start
                            kept[wave] += matched
                        cell["aside"] = self.count_span(("aside", *key))
                        cell["absent"] = self.count_span(("absent", *key))
                    cells.append(cell)
                rows.append({"site": cohort.site, "cells": cells})
            if not rows:
                continue
            total = [{"people": totals[w], "key": key_text(("part", "*", w, inst_id)),
                      "retention": (self.num(100 * kept[w] / kept_first[w], 0) + "%")
                      if w != first and kept_first[w] else ""} for w in self.waves]
            tables.append({"instrument": self.instrument_title(inst_id), "rows": rows,
                           "total": total})
        return tables

    def grid_cell(self, cohort: str, inst: str, scale: str, pair) -> dict:
        """One cohort's change on a scale, or why it is not shown; ``sort`` orders the column."""
        row = self.change_row(cohort, inst, scale, pair)
        if row is None:
            return {"text": "—", "short": "—", "kind": "", "sort": ""}
        if not self.pair_shown(row):
            hidden = self.t("hidden_short", n=self.min_n)
            return {"text": hidden, "short": hidden, "kind": "hidden", "sort": ""}
        unit, d, n = self.unit(scale), row["d_z"], int(row["n_pairs"])
        n_text = annotated(n, ("pairs", cohort, inst, scale, *pair))
        verdict = verdict_of(row)
        means = f"{self.num(row['mean_from'])}{unit} → {self.num(row['mean_to'])}{unit}"
        d_text = self.num(d, 2)
        return {"text": markupsafe.Markup(f"{markupsafe.escape(means)} · d_z {d_text} "
                                          f"(n {n_text})"),
                "title": f"{means} · d_z {d_text}",
                "short": markupsafe.Markup(f"{d_text} (n {n_text})"),
                "verdict": self.t(verdict), "kind": verdict,
                "sort": "" if pd.isna(d) else f"{d:.4f}"}

    def cohort_grids(self, files: dict[str, str] | None = None) -> list[dict]:
        """Per wave pair: change per cohort (rows) and scale (columns), verdict counts per scale."""
        grids = []
        for pair in self.pairs:
            scales = self.program_scales(pair)
            if not scales:
                continue
            header = [self.short(i, s) for i, s in scales]
            rows = []
            tally = [dict.fromkeys(("improved", "no_clear_change", "worsened", "hidden"), 0)
                     for _ in scales]
            for cohort in self.config.cohorts:
                cells = [self.grid_cell(cohort.id, inst, scale, pair) for inst, scale in scales]
                for counts, cell in zip(tally, cells):
                    if cell["kind"] in counts:
                        counts[cell["kind"]] += 1
                rows.append({"site": cohort.site, "id": cohort.id,
                             "file": (files or {}).get(cohort.id), "cells": cells})
            summary = [{"scale": h, **counts} for h, counts in zip(header, tally)]
            grids.append({"title": self.pair_label(pair), "header": header, "rows": rows,
                          "summary": summary})
        return grids

    def forest_sections(self) -> list[dict]:
        """A forest per wave pair and headline scale; every cohort of the pooled estimate is
        listed (a hidden one as a line of text); with many cohorts, a caterpillar and extremes."""
        sites = {c.id: c.site for c in self.config.cohorts}
        sections = []
        for pair in self.pairs:
            svgs = []
            for inst, scale in self.program_scales(pair):
                chart = self.forest(inst, scale, pair, sites)
                if chart:
                    svgs.append(chart)
            if svgs:
                sections.append({"title": self.pair_label(pair), "svgs": svgs})
        return sections

    def forest(self, inst: str, scale: str, pair, sites: dict[str, str]) -> dict | None:
        in_meta = [r for r in self.index.change_scale.get((inst, scale, *pair), [])
                   if r["cohort"] in sites and in_meta_analysis(r["d_z"], r["n_pairs"])]
        shown = [r for r in in_meta if self.pair_shown(r) and pd.notna(r["d_z_ci_low"])]
        hidden = [r for r in in_meta if not self.pair_shown(r)]
        if not shown and not hidden:
            return None
        cells = cells_attribute({("pairs", r["cohort"], inst, scale, *pair): int(r["n_pairs"])
                                 for r in shown})
        rows = [{"title": sites[r["cohort"]], "n_label": f"n {int(r['n_pairs'])}", "d": r["d_z"],
                 "low": r["d_z_ci_low"], "high": r["d_z_ci_high"], "n": r["n_pairs"]}
                for r in shown]
        notes = [{"title": sites[r["cohort"]], "note": self.t("forest_hidden", n=self.min_n)}
                 for r in hidden]
        pooled = None
        meta = self.model(inst, scale, pair, "meta_reml", "pooled_d_z")
        if meta and pd.notna(meta["estimate"]):
            pooled = {"title": self.t("pooled_effect"), "d": meta["estimate"],
                      "low": meta["ci_low"], "high": meta["ci_high"]}
        title = f"{self.short(inst, scale)} · {self.pair_label(pair)}"
        if not rows and pooled is None:
            return None
        if len(rows) + len(notes) <= FOREST_ROWS:
            return {"svg": plots.forest(rows + notes, pooled, title, self.t("forest_axis"),
                                        self.num), "cells": cells}
        ranked = sorted(rows, key=lambda r: -r["d"])
        k = FOREST_EXTREMES
        extremes = [*ranked[:k], {"gap": self.t("forest_more", n=len(rows) - 2 * k)},
                    *ranked[-k:]]
        if notes:
            extremes.append({"gap": self.t("forest_hidden_many", k=len(notes), n=self.min_n)})
        return {"svg": plots.caterpillar(rows, pooled, title, "d_z",
                                         self.t("caterpillar_axis", n=len(rows)), self.num)
                + plots.forest(extremes, pooled, self.t("forest_extremes", k=k),
                               self.t("forest_axis"), self.num), "cells": cells}

    def model_sections(self) -> list[dict]:
        """Per wave pair: the program's average change, pooled d_z, I², verdict and notes."""
        sections = []
        for pair in self.pairs:
            rows = []
            for inst, scale in self.program_scales(pair):
                mixed = self.model(inst, scale, pair, "mixed_random_cohorts", "change")
                meta = self.model(inst, scale, pair, "meta_reml", "pooled_d_z")
                if mixed is None and meta is None:
                    continue
                better = (self.change_scale_direction(inst, scale, pair))
                row = {"scale": self.short(inst, scale), "change": HIDDEN, "pooled_d": HIDDEN,
                       "i2": HIDDEN, "verdict": HIDDEN, "kind": "", "notes": [],
                       "better": self.t(better) if better else ""}
                if mixed and pd.notna(mixed["estimate"]):
                    row["change"] = f"{self.num(mixed['estimate'])} ({self.num(mixed['ci_low'])};" \
                                    f" {self.num(mixed['ci_high'])})"
                if mixed:
                    row["notes"] += self.model_notes(mixed["flags"])
                if meta and pd.notna(meta["estimate"]):
                    row["pooled_d"] = f"{self.num(meta['estimate'], 2)} " \
                                      f"({self.num(meta['ci_low'], 2)}; " \
                                      f"{self.num(meta['ci_high'], 2)})"
                    row["i2"] = self.num(meta["i2"], 0) + "%"
                    verdict = verdict_of(meta)
                    row["verdict"], row["kind"] = self.verdict_text(meta), verdict
                if meta:
                    row["notes"] += self.model_notes(meta["flags"])
                rows.append(row)
            if rows:
                sections.append({"title": self.pair_label(pair), "rows": rows,
                                 "notes": any(r["notes"] for r in rows)})
        return sections

    def change_scale_direction(self, inst: str, scale: str, pair) -> str:
        rows = self.index.change_scale.get((inst, scale, *pair), [])
        return rows[0]["improvement"] if rows and rows[0]["improvement"] else ""

    def model_notes(self, flags) -> list[dict]:
        """Model flags that ask for care, in words; routine ones (expected with few cohorts,
        explained once in the legend) are left out."""
        out = []
        for flag in sorted(flags_of(flags)):
            if not model_flag_needs_care(flag):
                continue
            key = f"model_flag_{flag.split(':')[0].strip()}"
            out.append({"text": self.t(key) if key in MESSAGES else flag})
        return out

    def program_reliability(self) -> dict:
        header = [self.short(i, s) for i, s in self.headlines]
        rows, low = [], [0] * len(self.headlines)
        first = self.waves[0]
        for cohort_id, site in [(POOLED, self.t("pooled_col")),
                                *[(c.id, c.site) for c in self.config.cohorts]]:
            cells = []
            for j, (inst, scale) in enumerate(self.headlines):
                found = [r for r in self.index.reliability_key.get((cohort_id, inst, scale), [])
                         if r["form"] == ""]
                if not found:
                    # Knowledge tests: reliability is per form; one number per cell: the first
                    # form's (form A).
                    found = self.index.reliability_key.get(
                        (cohort_id, inst, "percent_correct"), [])
                r = found[0] if found else None
                if r is None:
                    shown = False
                elif cohort_id == POOLED:
                    shown = True
                elif r["form"]:
                    shown = self.disclosure.form_shown(cohort_id, first, inst, r["form"])
                else:
                    shown = self.disclosure.mean_shown(cohort_id, first, inst, r["n"])
                if not shown:
                    cells.append({"text": HIDDEN, "sort": "", "low": False})
                    continue
                is_low = low_reliability(flags_of(r["flags"]))
                cells.append({"text": self.num(r["alpha"], 2), "low": is_low,
                              "sort": "" if pd.isna(r["alpha"]) else f"{r['alpha']:.4f}"})
                if cohort_id != POOLED and is_low:
                    low[j] += 1
            rows.append({"site": site, "cells": cells})
        return {"header": header, "rows": rows, "low": low}

    def data_quality(self) -> dict:
        """Files read (row accounting), rows and answers set aside by reason, files skipped."""
        acc = self.index.accounting
        files = []
        if acc is not None and not acc.empty:
            for r in records(acc):
                rows_in = r.get("rows_in", r.get("rows_read"))
                files.append({
                    "file": r["source_file"], "instrument": self.instrument_title(
                        r["instrument"]) if isinstance(r["instrument"], str) else "",
                    "rows_in": "" if pd.isna(rows_in) else int(rows_in),
                    "valid": int(r["rows_valid"]), "quarantined": int(r["rows_quarantined"]),
                    "skipped": "" if pd.isna(r.get("rows_skipped", float("nan")))
                    else int(r["rows_skipped"]),
                    "cells": "" if pd.isna(r.get("cells_quarantined", float("nan")))
                    else int(r["cells_quarantined"]),
                    "balanced": bool(r.get("balanced", True))})
        run = self.run_info()
        return {"files": files, "has_skipped": acc is not None and "rows_skipped" in acc,
                "has_cells": acc is not None and "cells_quarantined" in acc,
                "quarantine": self.quarantine_rows(None),
                "problems": run["problems"] if run else [],
                "known": acc is not None}


def cohort_context(data: ReportData, cohort) -> dict:
    knowledge = data.knowledge_items(cohort.id)
    return {
        "cohort": cohort,
        "headlines": data.headline_groups(cohort.id),
        "caveats": data.caveats(cohort.id),
        "participation": data.participation_rows(cohort.id),
        "means": data.means_figure(cohort.id),
        "change": data.change_sections(cohort.id),
        "rci_svgs": data.rci_figures(cohort.id),
        "bands": data.band_figures(cohort.id),
        "knowledge": knowledge if knowledge and (knowledge["hardest"] or knowledge["miskeyed"])
        else None,
        "gains": data.gain_rows(cohort.id),
        "reliability": data.reliability_rows(cohort.id),
        "quarantine": data.quarantine_rows(cohort.id),
        "competence": competence_section(data, cohort.id),
    }


def program_context(data: ReportData, files: dict[str, str]) -> dict:
    """The program page's sections (``files``: each cohort's page in this language)."""
    cohorts = data.cohort_entries(files)
    return {
        "cohorts": cohorts, "listed": len(cohorts) <= LIST_COHORTS,
        "hidden_cohorts": sum(not c["reportable"] for c in cohorts),
        "headlines": data.program_headlines(), "participation": data.participation_tables(),
        "grids": data.cohort_grids(files), "means": data.means_figure(None),
        "forests": data.forest_sections(), "many": len(cohorts) > FOREST_ROWS,
        "models": data.model_sections(), "reliability": data.program_reliability(),
        "quality": data.data_quality(),
        "competence": competence_section(data, None),
    }
