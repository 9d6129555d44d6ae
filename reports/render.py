"""Render result tables into cohort and program reports (HTML and PDF), in Spanish and English.

Reports read result tables only; every figure shown was computed upstream.
Any figure based on fewer than ``min_cell_size`` people is replaced by a
stated suppression (with secondary suppression of counts), figures from 5-9
people are marked as small, and no individual row ever reaches a page.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd
import yaml

from data_contracts.rules import RULES
from instruments.model import Instrument
from pipelines.publish import write_folder
from pipelines.schema import load_schema
from reports import plots
from reports.pdf import print_all
from reports.privacy import SUPPRESSED, enough, suppress_counts

HERE = Path(__file__).parent
MESSAGES = yaml.safe_load((HERE / "messages.yaml").read_text(encoding="utf-8"))
LANGUAGES = ("es", "en")
SMALL = 10  # figures from min_cell_size..SMALL-1 people are shown, marked as small
POOLED = "ALL"
FOREST_ROWS = 30  # up to this many cohorts, the forest plot names each one
FOREST_EXTREMES = 5  # beyond: a caterpillar of all, and a forest of the k highest and lowest
CHANGE_COLUMNS = ["cohort", "instrument", "scale", "from_wave", "to_wave", "n_pairs", "mean_from",
                  "mean_to", "mean_diff", "ci_low", "ci_high", "d_z", "d_z_ci_low", "d_z_ci_high",
                  "improvement", "rci_improved", "rci_no_change", "rci_deteriorated", "hake_g",
                  "normalized_change_c"]
LIST_COHORTS = 30  # up to this many cohorts, the program report lists them before the grid
log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=16384)  # ticks and program-wide figures repeat on every page
def number(value: object, language: str, digits: int = 1) -> str:
    """Format a number the way the language writes it (1.234,5 vs 1,234.5).

    Examples
    --------
    >>> number(1234.5, "es"), number(1234.5, "en"), number(float("nan"), "en")
    ('1.234,5', '1,234.5', '—')
    >>> number(-0.04, "es")  # no "-0,0"
    '0,0'
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    rounded = round(float(value), digits)
    text = f"{(rounded if rounded != 0 else 0.0):,.{digits}f}"
    return text.translate(SPANISH_MARKS) if language == "es" else text


SPANISH_MARKS = str.maketrans(",.", ".,")


@dataclass
class Catalogue:
    """Message lookup for one language."""

    language: str

    def __call__(self, key: str, **values) -> str:
        entry = MESSAGES[key]
        return entry[self.language].format(**values)

    def rule(self, rule: str) -> str:
        entry = RULES.get(rule)
        return entry["label"][self.language] if entry else rule


def scale_label(instruments: dict[str, Instrument], inst_id: str, scale: str, lang: str) -> str:
    """Human label of an instrument's scale."""
    inst = instruments.get(inst_id)
    if inst is None:
        return f"{inst_id} / {scale}"
    title = inst.title.get(lang)
    for sub in inst.subscales:
        if sub.id == scale:
            return f"{title}: {sub.label.get(lang)}"
    pretty = {"percent_correct": {"es": "% de respuestas correctas", "en": "% correct"},
              "anchor_percent_correct": {"es": "% correctas en ítems ancla",
                                         "en": "% correct on anchor items"},
              "equated_percent_correct": {"es": "% correctas equiparado entre formas",
                                          "en": "% correct, equated across forms"}}
    return f"{title}: {pretty.get(scale, {}).get(lang, scale)}"


def instrument_short(inst: Instrument, lang: str) -> str:
    """The abbreviation in the title's last parentheses (ProQOL 5, OMS-HC-15), else the title.

    Examples
    --------
    >>> from instruments import load_builtin
    >>> instrument_short(load_builtin()["omshc"], "es")
    'OMS-HC-15'
    """
    title = inst.title.get(lang)
    match = re.search(r"\(([^()]+)\)\s*$", title)
    return match.group(1).split(",")[0] if match else title


def short_label(instruments, inst_id: str, scale: str, lang: str) -> str:
    """'OMS-HC-15: Total'-style label for tables and plots."""
    inst = instruments.get(inst_id)
    if inst is None:
        return scale
    full = scale_label(instruments, inst_id, scale, lang)
    return f"{instrument_short(inst, lang)}: {full.split(': ', 1)[-1]}"


def headline_scales(instruments: dict[str, Instrument], change: pd.DataFrame) -> list[tuple]:
    """(instrument, scale) pairs a program lead reads first.

    Knowledge: equated percent correct when forms were equated, else percent
    correct. Scales: the total when there is one, else each subscale.
    """
    present = set(zip(change["instrument"], change["scale"]))
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


def verdict_key(row) -> str:
    """improved / worsened / no_clear_change from the CI of the mean difference."""
    if pd.isna(row["ci_low"]) or not row["improvement"]:
        return "no_clear_change"
    if row["ci_low"] > 0:
        return "improved" if row["improvement"] == "higher" else "worsened"
    if row["ci_high"] < 0:
        return "improved" if row["improvement"] == "lower" else "worsened"
    return "no_clear_change"


def effect_words(d: float, t: Catalogue) -> str:
    """Cohen's conventional size words for |d| (.2 small, .5 medium, .8 large)."""
    size = abs(d)
    key = ("effect_negligible" if size < 0.2 else "effect_small" if size < 0.5
           else "effect_medium" if size < 0.8 else "effect_large")
    return t(key)


def records(frame: pd.DataFrame | None, columns: list[str] | None = None) -> list[dict]:
    """Rows as plain dicts (fast to read one value at a time, unlike pandas rows).

    ``columns``: only these (those present), which keeps a thousand cohorts' tables cheap.
    """
    if frame is None or frame.empty:
        return []
    names = [c for c in columns if c in frame.columns] if columns else list(frame.columns)
    values = [frame[c].tolist() for c in names]
    return [dict(zip(names, row)) for row in zip(*values)]


def by_cohort(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows grouped by their cohort, in table order."""
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["cohort"], []).append(row)
    return out


class TableIndex:
    """The result tables grouped once by cohort and key (the same for every language).

    Every cohort page reads a few rows of each table: filtering the whole
    DataFrame per section and cohort costs O(cohorts²); dict look-ups do not.
    """

    def __init__(self, tables: dict[str, pd.DataFrame], config, instruments):
        waves = config.wave_order()
        self.pair = config.pairs()[0]
        change = records(tables["change"], CHANGE_COLUMNS)
        self.change = by_cohort(change)
        self.change_key = {(r["cohort"], r["instrument"], r["scale"], r["from_wave"],
                            r["to_wave"]): r for r in change}
        self.change_scale: dict[tuple, list[dict]] = {}
        for r in change:
            self.change_scale.setdefault((r["instrument"], r["scale"], r["from_wave"],
                                          r["to_wave"]), []).append(r)
        self.participation = by_cohort(records(tables["participation"]))
        self.means = {(r["cohort"], r["instrument"], r["scale"], r["wave"]): r
                      for r in records(tables["wave_means"], ["cohort", "instrument", "scale",
                                                              "wave", "n", "mean", "ci_low",
                                                              "ci_high"])}
        f, t_ = self.pair
        moves = tables.get("band_transitions", pd.DataFrame())
        if not moves.empty:
            moves = moves[(moves["from_wave"] == f) & (moves["to_wave"] == t_)]
        self.bands = by_cohort(records(moves))
        rel = tables["reliability"]
        at_first = records(rel[rel["wave"] == waves[0]],
                           ["cohort", "instrument", "scale", "form", "n", "alpha"])
        self.reliability = by_cohort(at_first)
        self.reliability_key: dict[tuple, list[dict]] = {}
        for r in at_first:
            self.reliability_key.setdefault((r["cohort"], r["instrument"], r["scale"]),
                                            []).append(r)
        self.quarantine: dict[str, list[tuple[str, int]]] = {}
        q = tables["quarantine"]
        if not q.empty:
            counts = q.groupby(["cohort", "rule"], sort=False).size()
            for (cohort, rule), n in counts.items():
                self.quarantine.setdefault(cohort, []).append((rule, int(n)))
            for cohort, rules in self.quarantine.items():
                rules.sort(key=lambda kv: -kv[1])
        models = tables.get("models", pd.DataFrame())
        self.models: dict[tuple, list[dict]] = {}
        if not models.empty:
            for r in records(models[(models["from_wave"] == f) & (models["to_wave"] == t_)]):
                self.models.setdefault((r["instrument"], r["scale"]), []).append(r)
        self.knowledge = self._knowledge(tables.get("items", pd.DataFrame()), instruments)

    def _knowledge(self, items: pd.DataFrame, instruments) -> dict | None:
        """Per cohort and for the program: item difficulty at the pair's later wave."""
        knowledge = [i for i in instruments.values() if i.kind == "knowledge"]
        if items.empty or not knowledge:
            return None
        inst = knowledge[0]
        sel = items[(items["instrument"] == inst.id) & (items["wave"] == self.pair[1])]
        sel = sel.assign(wrong_key=sel["flags"].fillna("").str.contains("possible_wrong_key"))
        per_item = sel.groupby(["cohort", "item"], sort=True).agg(
            difficulty=("difficulty", "mean"), wrong_key=("wrong_key", "any"),
            n=("n", "min")).reset_index()
        per_item = per_item.sort_values(["cohort", "difficulty"], kind="stable")
        cohorts: dict[str, list[dict]] = by_cohort(records(per_item))
        pooled = cohorts.get(POOLED, [])
        miskeyed = sorted(r["item"] for r in pooled if r["wrong_key"])
        return {"instrument": inst, "cohorts": cohorts, "miskeyed": miskeyed}


class ReportData:
    """The result tables, seen for one language: labels, formats and suppression applied."""

    def __init__(self, tables: dict[str, pd.DataFrame], config, instruments, t: Catalogue,
                 index: TableIndex | None = None):
        self.tables, self.config, self.instruments, self.t = tables, config, instruments, t
        self.index = index or TableIndex(tables, config, instruments)
        self.lang, self.min_n = t.language, config.min_cell_size
        self.waves = config.wave_order()
        self.wave_label = {w.id: (w.label.get(self.lang) or w.id) for w in config.waves}
        self.pair = config.pairs()[0]
        self.headlines = headline_scales(instruments, tables["change"])
        self._labels: dict[tuple, str] = {}
        self._short: dict[tuple, str] = {}
        self._methods: list[dict] | None = None
        self._program_means: dict[tuple, list] = {}

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

    def change_row(self, cohort: str, inst: str, scale: str, pair=None) -> dict | None:
        f, t_ = pair or self.pair
        return self.index.change_key.get((cohort, inst, scale, f, t_))

    def unit(self, scale: str) -> str:
        return "%" if "percent" in scale else ""

    # --- cohort sections ----------------------------------------------------------
    def headline_sentences(self, cohort: str) -> list[dict]:
        t, out = self.t, []
        for inst, scale in self.headlines:
            row = self.change_row(cohort, inst, scale)
            if row is None:
                continue
            label = self.label(inst, scale)
            if not enough(row["n_pairs"], self.min_n):
                out.append({"text": t("headline_hidden", scale=label, n=self.min_n),
                            "kind": "hidden"})
                continue
            unit = self.unit(scale)
            key = verdict_key(row)
            text = t(f"headline_{key}", scale=label, a=self.num(row["mean_from"]) + unit,
                     b=self.num(row["mean_to"]) + unit, n=int(row["n_pairs"]),
                     w1=self.wave_label[row["from_wave"]], w2=self.wave_label[row["to_wave"]])
            improved = row.get("rci_improved")
            if pd.notna(improved) and row["improvement"] and key == "improved":
                if enough(improved, self.min_n):
                    text += " " + t("headline_rci", k=int(improved), n=int(row["n_pairs"]))
                else:
                    text += " " + t("headline_rci_few", n=self.min_n)
            if row["n_pairs"] < SMALL:
                text += " " + t("small_n_sentence")
            out.append({"text": text, "kind": key})
        return out

    def participation_rows(self, cohort: str) -> list[dict]:
        by_inst: dict[str, dict[str, int]] = {}
        for r in self.index.participation.get(cohort, []):
            by_inst.setdefault(r["instrument"], {})[r["wave"]] = int(r["n"])
        rows = []
        for inst_id in sorted(by_inst):
            counts = by_inst[inst_id]
            shown = suppress_counts({w: counts.get(w, 0) for w in self.waves}, self.min_n,
                                    total_shown=False)
            first = counts.get(self.waves[0], 0)
            cells = []
            for wave in self.waves:
                value = shown[wave]
                if value is SUPPRESSED:
                    cells.append("—")
                elif wave != self.waves[0] and enough(first, self.min_n) and value:
                    cells.append(f"{value} ({self.num(100 * value / first, 0)}%)")
                else:
                    cells.append(str(value))
            title = self.instruments[inst_id].title.get(self.lang) \
                if inst_id in self.instruments else inst_id
            rows.append({"instrument": title, "cells": cells})
        return rows

    def change_rows(self, cohort: str) -> list[dict]:
        rows = []
        for r in self.index.change.get(cohort, []):
            hidden = not enough(r["n_pairs"], self.min_n)
            if hidden:  # nothing of a suppressed row is formatted, so nothing can slip out
                rows.append({"scale": self.short(r["instrument"], r["scale"]),
                             "pair": (r["from_wave"], r["to_wave"]),
                             "waves": f"{self.wave_label[r['from_wave']]} → "
                                      f"{self.wave_label[r['to_wave']]}",
                             "n": "—", "hidden": True})
                continue
            key = verdict_key(r)
            rows.append({
                "scale": self.short(r["instrument"], r["scale"]),
                "pair": (r["from_wave"], r["to_wave"]),
                "waves": f"{self.wave_label[r['from_wave']]} → {self.wave_label[r['to_wave']]}",
                "n": int(r["n_pairs"]), "hidden": False, "small": r["n_pairs"] < SMALL,
                "mean_from": self.num(r["mean_from"]), "mean_to": self.num(r["mean_to"]),
                "diff": f"{self.num(r['mean_diff'])} ({self.num(r['ci_low'])}; "
                        f"{self.num(r['ci_high'])})",
                "d_z": self.num(r["d_z"], 2),
                "better": self.t(r["improvement"]) if r["improvement"] else "",
                "verdict": self.t(key), "verdict_key": key,
            })
        return rows

    def effect_explanations(self, cohort: str) -> list[str]:
        out = []
        for inst, scale in self.headlines:
            row = self.change_row(cohort, inst, scale)
            if row is None or not enough(row["n_pairs"], self.min_n) or pd.isna(row["d_z"]):
                continue
            out.append(self.t("effect_item", scale=self.short(inst, scale),
                              d=self.num(row["d_z"], 2), words=effect_words(row["d_z"], self.t)))
        return out

    def series(self, who: str, inst: str, scale: str) -> list:
        """(mean, low, high) per wave, None where fewer than min_n people or no CI."""
        out = []
        for wave in self.waves:
            r = self.index.means.get((who, inst, scale, wave))
            ok = r is not None and enough(r["n"], self.min_n) and pd.notna(r["ci_low"])
            out.append((r["mean"], r["ci_low"], r["ci_high"]) if ok else None)
        return out

    def means_plot(self, cohort: str | None) -> str:
        panels = []
        for inst, scale in self.headlines:
            if (inst, scale) not in self._program_means:
                self._program_means[(inst, scale)] = self.series(POOLED, inst, scale)
            mine = self.series(cohort, inst, scale) if cohort else [None] * len(self.waves)
            if cohort and not any(mine):
                continue
            panels.append({"title": self.short(inst, scale),
                           "waves": [self.wave_label[w] for w in self.waves],
                           "cohort": mine, "program": self._program_means[(inst, scale)]})
        if not panels:
            return ""
        return plots.means_panels(panels, {"cohort": self.t("cohort_col"),
                                           "program": self.t("pooled_col")}, self.num)

    def rci_plot(self, cohort: str) -> tuple[str, bool]:
        rows, hidden = [], False
        for inst, scale in self.headlines:
            row = self.change_row(cohort, inst, scale)
            if row is None or pd.isna(row.get("rci_improved")) or not row["improvement"]:
                continue
            counts = {k: int(row[f"rci_{k}"]) for k in ("improved", "no_change", "deteriorated")}
            shown = suppress_counts(counts, self.min_n)
            if SUPPRESSED in shown.values() or not enough(row["n_pairs"], self.min_n):
                hidden = True
                continue
            rows.append({"title": self.short(inst, scale), "counts": counts})
        if not rows:
            return "", hidden
        labels = {k: self.t(f"rci_{k}") for k in ("improved", "no_change", "deteriorated")}
        return plots.rci_bars(rows, labels, self.num), hidden

    def band_plots(self, cohort: str) -> tuple[list[str], bool]:
        groups: dict[tuple, list[dict]] = {}
        for r in self.index.bands.get(cohort, []):
            groups.setdefault((r["instrument"], r["scale"]), []).append(r)
        if not groups:
            return [], False
        f, t_ = self.pair
        svgs, hidden = [], False
        for (inst, scale), grp in groups.items():
            sub = next(s for s in self.instruments[inst].subscales if s.id == scale)
            bands = [b.id for b in sub.bands]
            before, after = dict.fromkeys(bands, 0), dict.fromkeys(bands, 0)
            for r in grp:
                if r["band_from"] in before:
                    before[r["band_from"]] += int(r["n"])
                if r["band_to"] in after:
                    after[r["band_to"]] += int(r["n"])
            counts = [before, after]
            if any(SUPPRESSED in suppress_counts(c, self.min_n).values() for c in counts):
                hidden = True
                continue
            rows = [{"title": self.wave_label[w], "counts": c} for w, c in zip((f, t_), counts)]
            svgs.append(plots.band_bars(rows, bands, {b.id: b.label.get(self.lang)
                                                      for b in sub.bands},
                                        self.label(inst, scale), self.num))
        return svgs, hidden

    def knowledge_items(self, cohort: str) -> dict | None:
        known = self.index.knowledge
        if known is None:
            return None
        inst, wave = known["instrument"], self.pair[1]
        mine = known["cohorts"].get(cohort, [])
        source = "cohort" if mine and min(r["n"] for r in mine) >= SMALL else "program"
        rows = mine if source == "cohort" else known["cohorts"].get(POOLED, [])
        if not rows:
            return None

        def text(item_id):
            return inst.item(item_id).text.get(self.lang)

        return {
            "source": self.t("items_from_cohort" if source == "cohort" else "items_from_program"),
            "wave": self.wave_label[wave],
            "hardest": [{"item": r["item"], "text": text(r["item"]),
                         "p": self.num(100 * r["difficulty"], 0)} for r in rows[:3]],
            "miskeyed": [{"item": i, "text": text(i)} for i in known["miskeyed"]],
            "suspicious_here": sum(r["wrong_key"] for r in rows),
        }

    def gain_rows(self, cohort: str) -> list[dict]:
        out = []
        for inst, scale in self.headlines:
            if "percent" not in scale:
                continue
            row = self.change_row(cohort, inst, scale)
            if row is None or not enough(row["n_pairs"], self.min_n):
                continue
            out.append({"scale": self.short(inst, scale),
                        "hake": self.num(row["hake_g"], 2),
                        "c": self.num(row["normalized_change_c"], 2)})
        return out

    def reliability_rows(self, cohort: str) -> list[dict]:
        pooled = {(r["instrument"], r["scale"], r["form"]): r["alpha"]
                  for r in self.index.reliability.get(POOLED, [])}
        rows = []
        for r in self.index.reliability.get(cohort, []):
            key = (r["instrument"], r["scale"], r["form"])
            hidden = not enough(r["n"], self.min_n)
            label = self.short(r["instrument"], r["scale"])
            rows.append({
                "scale": f"{label} ({self.t('form')} {r['form']})" if r["form"] else label,
                "n": "—" if hidden else int(r["n"]),
                "alpha": "—" if hidden else self.num(r["alpha"], 2),
                "pooled": self.num(pooled[key], 2) if key in pooled else "—",
                "low": not hidden and pd.notna(r["alpha"]) and r["alpha"] < 0.70,
                "few": not hidden and r["n"] < SMALL,
            })
        return rows

    def caveats(self, cohort: str) -> list[str]:
        """Plain-words warnings on the headline scales' reliability in this cohort."""
        out = []
        for inst, scale in self.headlines:
            for r in self.index.reliability_key.get((cohort, inst, scale), []):
                if enough(r["n"], SMALL) and pd.notna(r["alpha"]) and r["alpha"] < 0.70:
                    out.append(self.t("caveat_reliability", scale=self.label(inst, scale),
                                      alpha=self.num(r["alpha"], 2)))
        return out

    def quarantine_rows(self, cohort: str) -> list[dict]:
        return [{"rule": self.t.rule(k), "n": n} for k, n in self.index.quarantine.get(cohort, [])]

    def methods(self) -> list[dict]:
        if self._methods is not None:
            return self._methods
        schema = load_schema().tables
        entries = [("reliability", "alpha"), ("reliability", "omega_total"),
                   ("change", "d_z"), ("change", "d_z_ci_high"), ("change", "d_av"),
                   ("change", "p_holm"), ("change", "rci_improved"),
                   ("change", "rci_reliability_source"), ("change", "hake_g"),
                   ("change", "normalized_change_c"), ("change", "attrition_d")]
        out = []
        for table, column in entries:
            spec = schema[table].columns[column]
            if spec.definition.get(self.lang):
                out.append({"term": spec.label.get(self.lang),
                            "definition": spec.definition.get(self.lang)})
        self._methods = out
        return out

    # --- program sections ----------------------------------------------------------
    def grid_cell(self, cohort: str, inst: str, scale: str) -> dict:
        """One cohort's headline change, or why it is not shown; ``sort`` orders the column."""
        row = self.change_row(cohort, inst, scale)
        if row is None:
            return {"text": "—", "short": "—", "kind": "", "sort": ""}
        if not enough(row["n_pairs"], self.min_n):
            hidden = self.t("hidden_short")
            return {"text": hidden, "short": hidden, "kind": "hidden", "sort": ""}
        unit, d, n = self.unit(scale), row["d_z"], int(row["n_pairs"])
        return {"text": f"{self.num(row['mean_from'])}{unit} → {self.num(row['mean_to'])}{unit}"
                        f" · d_z {self.num(d, 2)} (n {n})",
                "short": f"{self.num(d, 2)} (n {n})",
                "kind": verdict_key(row), "sort": "" if pd.isna(d) else f"{d:.4f}"}

    def cohort_grid(self, files: dict[str, str] | None = None) -> dict:
        """Headline change per cohort (rows) and scale (columns), and verdict counts per scale."""
        header = [self.short(i, s) for i, s in self.headlines]
        rows = []
        tally = [dict.fromkeys(("improved", "no_clear_change", "worsened", "hidden"), 0)
                 for _ in self.headlines]
        for cohort in self.config.cohorts:
            cells = [self.grid_cell(cohort.id, inst, scale) for inst, scale in self.headlines]
            for counts, cell in zip(tally, cells):
                if cell["kind"] in counts:
                    counts[cell["kind"]] += 1
            rows.append({"site": cohort.site, "id": cohort.id,
                         "file": (files or {}).get(cohort.id), "cells": cells})
        summary = [{"scale": h, **counts} for h, counts in zip(header, tally)]
        return {"header": header, "rows": rows, "summary": summary}

    def forest_plots(self) -> list[str]:
        """A forest per headline scale; with many cohorts, a caterpillar plus the extremes."""
        f, t_ = self.pair
        sites = {c.id: c.site for c in self.config.cohorts}
        svgs = []
        for inst, scale in self.headlines:
            sel = [r for r in self.index.change_scale.get((inst, scale, f, t_), [])
                   if r["cohort"] in sites and r["n_pairs"] >= self.min_n
                   and pd.notna(r["d_z_ci_low"])]
            if not sel:
                continue
            rows = [{"title": f"{sites[r['cohort']]} (n {int(r['n_pairs'])})",
                     "d": r["d_z"], "low": r["d_z_ci_low"], "high": r["d_z_ci_high"],
                     "n": r["n_pairs"]} for r in sel]
            pooled = None
            meta = [m for m in self.index.models.get((inst, scale), [])
                    if m["model"] == "meta_reml"]
            if meta and pd.notna(meta[0]["estimate"]):
                m = meta[0]
                pooled = {"title": self.t("pooled_effect"), "d": m["estimate"],
                          "low": m["ci_low"], "high": m["ci_high"]}
            title = self.label(inst, scale)
            if len(rows) <= FOREST_ROWS:
                svgs.append(plots.forest(rows, pooled, title, self.t("forest_axis"), self.num))
                continue
            ranked = sorted(rows, key=lambda r: -r["d"])
            k = FOREST_EXTREMES
            extremes = [*ranked[:k], {"gap": self.t("forest_more", n=len(rows) - 2 * k)},
                        *ranked[-k:]]
            svgs.append(plots.caterpillar(rows, pooled, title, "d_z",
                                          self.t("caterpillar_axis", n=len(rows)), self.num)
                        + plots.forest(extremes, pooled, self.t("forest_extremes", k=k),
                                       self.t("forest_axis"), self.num))
        return svgs

    def model_rows(self) -> list[dict]:
        if not self.index.models:
            return []
        out = []
        for inst, scale in self.headlines:
            sel = self.index.models.get((inst, scale), [])
            mixed = [m for m in sel
                     if m["model"] == "mixed_random_cohorts" and m["term"] == "change"]
            meta = [m for m in sel if m["model"] == "meta_reml"]
            row = {"scale": self.label(inst, scale), "change": "—", "pooled_d": "—",
                   "i2": "—", "note": ""}
            if mixed and pd.notna(mixed[0]["estimate"]):
                m = mixed[0]
                row["change"] = f"{self.num(m['estimate'])} ({self.num(m['ci_low'])}; " \
                                f"{self.num(m['ci_high'])})"
                if m["flags"]:
                    row["note"] = self.t("model_caveat")
            if meta and pd.notna(meta[0]["estimate"]):
                m = meta[0]
                row["pooled_d"] = f"{self.num(m['estimate'], 2)} ({self.num(m['ci_low'], 2)}; " \
                                  f"{self.num(m['ci_high'], 2)})"
                row["i2"] = self.num(m["i2"], 0) + "%"
            out.append(row)
        return out

    def program_reliability(self) -> dict:
        header = [self.short(i, s) for i, s in self.headlines]
        rows, low = [], [0] * len(self.headlines)
        for cohort_id, site in [(POOLED, self.t("pooled_col")),
                                *[(c.id, c.site) for c in self.config.cohorts]]:
            cells = []
            for j, (inst, scale) in enumerate(self.headlines):
                found = [r for r in self.index.reliability_key.get((cohort_id, inst, scale), [])
                         if r["form"] == ""]
                if not found:
                    # Knowledge tests: reliability is per form; the program report shows alpha
                    # of the first form to keep one number per cell.
                    found = self.index.reliability_key.get(
                        (cohort_id, inst, "percent_correct"), [])
                if not found or not enough(found[0]["n"], self.min_n):
                    cells.append({"text": "—", "sort": ""})
                else:
                    alpha = found[0]["alpha"]
                    cells.append({"text": self.num(alpha, 2),
                                  "sort": "" if pd.isna(alpha) else f"{alpha:.4f}"})
                    if cohort_id != POOLED and pd.notna(alpha) and alpha < 0.70:
                        low[j] += 1
            rows.append({"site": site, "cells": cells})
        return {"header": header, "rows": rows, "low": low}


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja2 environment with autoescaping (participant data never reach it), made once."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def cohort_context(data: ReportData, cohort) -> dict:
    rci_svg, rci_hidden = data.rci_plot(cohort.id)
    band_svgs, band_hidden = data.band_plots(cohort.id)
    return {
        "cohort": cohort,
        "waves": [data.wave_label[w] for w in data.waves],
        "headlines": data.headline_sentences(cohort.id),
        "caveats": data.caveats(cohort.id),
        "participation": data.participation_rows(cohort.id),
        "means_svg": data.means_plot(cohort.id),
        "change": data.change_rows(cohort.id),
        "effects": data.effect_explanations(cohort.id),
        "rci_svg": rci_svg, "rci_hidden": rci_hidden,
        "band_svgs": band_svgs, "band_hidden": band_hidden,
        "knowledge": data.knowledge_items(cohort.id),
        "gains": data.gain_rows(cohort.id),
        "reliability": data.reliability_rows(cohort.id),
        "quarantine": data.quarantine_rows(cohort.id),
        "methods": data.methods(),
    }


def report_pages(tables: dict[str, pd.DataFrame], config, instruments) -> dict[str, str]:
    """Every report page's HTML by file name, the program report in the program's language first.

    Index pages (``index_<lang>.html``, a stable entry point) repeat the program report.
    """
    env = environment()
    cohort_template = env.get_template("cohort.html.j2")
    program_template = env.get_template("program.html.j2")
    index = TableIndex(tables, config, instruments)
    pages: dict[str, str] = {}
    for lang in sorted(LANGUAGES, key=lambda code: code != config.language):
        t = Catalogue(lang)
        data = ReportData(tables, config, instruments, t, index)
        common = {"t": t, "config": config, "min_n": config.min_cell_size, "lang": lang,
                  "other": [code for code in LANGUAGES if code != lang]}
        cohorts, cohort_pages = [], {}
        for cohort in config.cohorts:
            name = f"cohort_{cohort.id}_{lang}.html"
            cohort_pages[name] = cohort_template.render(**common, **cohort_context(data, cohort))
            cohorts.append({"cohort": cohort, "file": name})
        files = {c["cohort"].id: c["file"] for c in cohorts}
        program = program_template.render(
            **common, cohorts=cohorts, listed=len(cohorts) <= LIST_COHORTS,
            grid=data.cohort_grid(files), means_svg=data.means_plot(None),
            forests=data.forest_plots(), many=len(cohorts) > FOREST_ROWS,
            models=data.model_rows(), reliability=data.program_reliability(),
            methods=data.methods())
        pages.update({f"program_{lang}.html": program, **cohort_pages,
                      f"index_{lang}.html": program})
    return pages


@dataclass
class Rendered:
    """What a report run wrote: every page, and how many PDFs were printed or reused."""

    paths: list[Path]
    printed: int = 0
    reused: int = 0
    message: str = ""


def render_reports(tables: dict[str, pd.DataFrame], config, instruments, folder: Path,
                   pdf: bool = True) -> list[Path]:
    """Write a report per cohort and a program report, in Spanish and English, HTML and PDF.

    Returns the paths written (the program report in the program's language first).
    See :func:`render_report_folder` for what is reused between runs.
    """
    return render_report_folder(tables, config, instruments, folder, pdf).paths


def render_report_folder(tables: dict[str, pd.DataFrame], config, instruments, folder: Path,
                         pdf: bool = True, staging: Path | None = None,
                         run_id: str = "report") -> Rendered:
    """Render into a staging folder and swap it in whole (a failed run keeps the old reports).

    With ``staging`` the pages are written there and the caller publishes them
    (a run does, together with its tables); the paths returned are those in ``folder``.
    A page whose HTML is byte-identical to the one already published keeps its
    PDF (hard-linked, not re-printed): printing is the slow part, and most
    cohorts do not change between weekly runs. Without PDFs (``pdf=False``)
    the published PDFs are kept as they are. PDFs need Chromium/Chrome;
    without one they are skipped with a logged message.
    """
    pages = report_pages(tables, config, instruments)
    result = Rendered([])

    def fill(staging: Path) -> list[Path]:
        written, to_print = [], []
        for name, html in pages.items():
            path = staging / name
            path.write_text(html, encoding="utf-8")
            written.append(path)
            if name.startswith("index_"):
                continue
            if not pdf:
                if keep_pdf(folder / name, path.with_suffix(".pdf")):
                    written.append(path.with_suffix(".pdf"))
                continue
            if reuse_pdf(folder / name, html, path.with_suffix(".pdf")):
                result.reused += 1
                written.append(path.with_suffix(".pdf"))
            else:
                to_print.append(path)
        if to_print:
            printed, result.message = print_all(to_print)
            written += printed
            result.printed = len(printed)
        return [p for p in written if not p.name.startswith("index_")] + [
            p for p in written if p.name.startswith("index_")]

    if staging is None:
        result.paths = write_folder(folder, fill, run_id)
    else:
        result.paths = [folder / p.relative_to(staging) for p in fill(staging)]
    if result.message:
        log.warning(result.message)
    return result


def reuse_pdf(published: Path, html: str, target: Path) -> bool:
    """Link the published PDF into ``target`` when its HTML is unchanged; False otherwise."""
    try:
        if published.read_text(encoding="utf-8") != html:
            return False
    except OSError:
        return False
    return keep_pdf(published, target)


def keep_pdf(published: Path, target: Path) -> bool:
    """Link the published page's PDF into ``target`` (False when there is none)."""
    old_pdf = published.with_suffix(".pdf")
    try:
        if not old_pdf.exists():
            return False
        try:
            os.link(old_pdf, target)
        except OSError:  # file systems without hard links
            shutil.copy2(old_pdf, target)
        return True
    except OSError:
        return False
