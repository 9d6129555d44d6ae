"""Render result tables into cohort and program reports (HTML and PDF), in Spanish and English.

Reports read result tables only; every figure shown was computed upstream.
Any figure based on fewer than ``min_cell_size`` people is replaced by a
stated suppression (with secondary suppression of counts), figures from 5-9
people are marked as small, and no individual row ever reaches a page.
"""

from __future__ import annotations

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
from pipelines.export import write_folder
from pipelines.schema import load_schema
from reports import plots
from reports.pdf import print_all
from reports.privacy import SUPPRESSED, enough, suppress_counts

HERE = Path(__file__).parent
MESSAGES = yaml.safe_load((HERE / "messages.yaml").read_text(encoding="utf-8"))
LANGUAGES = ("es", "en")
SMALL = 10  # figures from min_cell_size..SMALL-1 people are shown, marked as small
POOLED = "ALL"
log = logging.getLogger(__name__)


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
    if language == "es":
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


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


class ReportData:
    """The result tables, seen for one language: labels, formats and suppression applied."""

    def __init__(self, tables: dict[str, pd.DataFrame], config, instruments, t: Catalogue):
        self.tables, self.config, self.instruments, self.t = tables, config, instruments, t
        self.lang, self.min_n = t.language, config.min_cell_size
        self.waves = config.wave_order()
        self.wave_label = {w.id: (w.label.get(self.lang) or w.id) for w in config.waves}
        self.pair = config.pairs()[0]
        self.headlines = headline_scales(instruments, tables["change"])

    # --- small helpers ---------------------------------------------------------
    def num(self, value, digits: int = 1) -> str:
        return number(value, self.lang, digits)

    def label(self, inst: str, scale: str) -> str:
        return scale_label(self.instruments, inst, scale, self.lang)

    def change_row(self, cohort: str, inst: str, scale: str, pair=None):
        change = self.tables["change"]
        f, t_ = pair or self.pair
        rows = change[(change["cohort"] == cohort) & (change["instrument"] == inst)
                      & (change["scale"] == scale) & (change["from_wave"] == f)
                      & (change["to_wave"] == t_)]
        return rows.iloc[0] if len(rows) else None

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
        part = self.tables["participation"]
        part = part[part["cohort"] == cohort]
        rows = []
        for inst_id, grp in part.groupby("instrument"):
            counts = {w: int(n) for w, n in zip(grp["wave"], grp["n"])}
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
        change = self.tables["change"]
        rows = []
        for _, r in change[change["cohort"] == cohort].iterrows():
            hidden = not enough(r["n_pairs"], self.min_n)
            key = verdict_key(r)
            rows.append({
                "scale": short_label(self.instruments, r["instrument"], r["scale"], self.lang),
                "pair": (r["from_wave"], r["to_wave"]),
                "waves": f"{self.wave_label[r['from_wave']]} → {self.wave_label[r['to_wave']]}",
                "n": "—" if hidden else int(r["n_pairs"]), "hidden": hidden,
                "small": not hidden and r["n_pairs"] < SMALL,
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
            out.append(self.t("effect_item", scale=short_label(self.instruments, inst, scale,
                                                                 self.lang),
                              d=self.num(row["d_z"], 2), words=effect_words(row["d_z"], self.t)))
        return out

    def means_plot(self, cohort: str | None) -> str:
        means = self.tables["wave_means"]
        panels = []
        for inst, scale in self.headlines:
            sel = means[(means["instrument"] == inst) & (means["scale"] == scale)]

            def series(who):
                out = []
                for wave in self.waves:
                    r = sel[(sel["cohort"] == who) & (sel["wave"] == wave)]
                    ok = len(r) and enough(r["n"].iloc[0], self.min_n) and pd.notna(
                        r["ci_low"].iloc[0])
                    out.append((r["mean"].iloc[0], r["ci_low"].iloc[0], r["ci_high"].iloc[0])
                               if ok else None)
                return out

            mine = series(cohort) if cohort else [None] * len(self.waves)
            if cohort and not any(mine):
                continue
            panels.append({"title": short_label(self.instruments, inst, scale, self.lang),
                           "waves": [self.wave_label[w] for w in self.waves],
                           "cohort": mine, "program": series(POOLED)})
        if not panels:
            return ""
        return plots.means_panels(panels, {"cohort": self.t("cohort_col"),
                                           "program": self.t("pooled_col")})

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
            rows.append({"title": short_label(self.instruments, inst, scale, self.lang),
                         "counts": counts})
        if not rows:
            return "", hidden
        labels = {k: self.t(f"rci_{k}") for k in ("improved", "no_change", "deteriorated")}
        return plots.rci_bars(rows, labels), hidden

    def band_plots(self, cohort: str) -> tuple[list[str], bool]:
        moves = self.tables.get("band_transitions", pd.DataFrame())
        if moves.empty:
            return [], False
        f, t_ = self.pair
        sel = moves[(moves["cohort"] == cohort) & (moves["from_wave"] == f)
                    & (moves["to_wave"] == t_)]
        svgs, hidden = [], False
        for (inst, scale), grp in sel.groupby(["instrument", "scale"], sort=False):
            sub = next(s for s in self.instruments[inst].subscales if s.id == scale)
            bands = [b.id for b in sub.bands]
            before = grp.groupby("band_from")["n"].sum().reindex(bands, fill_value=0)
            after = grp.groupby("band_to")["n"].sum().reindex(bands, fill_value=0)
            counts = [before.to_dict(), after.to_dict()]
            if any(SUPPRESSED in suppress_counts(c, self.min_n).values() for c in counts):
                hidden = True
                continue
            rows = [{"title": self.wave_label[w], "counts": c} for w, c in zip((f, t_), counts)]
            svgs.append(plots.band_bars(rows, bands, {b.id: b.label.get(self.lang)
                                                      for b in sub.bands},
                                        self.label(inst, scale)))
        return svgs, hidden

    def knowledge_items(self, cohort: str) -> dict | None:
        items = self.tables.get("items", pd.DataFrame())
        knowledge = [i for i in self.instruments.values() if i.kind == "knowledge"]
        if items.empty or not knowledge:
            return None
        inst = knowledge[0]
        wave = self.pair[1]
        sel = items[(items["instrument"] == inst.id) & (items["wave"] == wave)]
        mine = sel[sel["cohort"] == cohort]
        source = "cohort" if len(mine) and mine["n"].min() >= SMALL else "program"
        rows = mine if source == "cohort" else sel[sel["cohort"] == POOLED]
        if rows.empty:
            return None
        per_item = rows.groupby("item").agg(difficulty=("difficulty", "mean"),
                                            flags=("flags", lambda f: ";".join(f)))
        hardest = per_item.sort_values("difficulty").head(3)
        suspicious = per_item[per_item["flags"].str.contains("possible_wrong_key")]
        pooled = sel[sel["cohort"] == POOLED]
        pooled_flags = pooled.groupby("item")["flags"].agg(";".join)
        miskeyed = sorted(set(pooled_flags[pooled_flags.str.contains("possible_wrong_key")].index))

        def text(item_id):
            return inst.item(item_id).text.get(self.lang)

        return {
            "source": self.t("items_from_cohort" if source == "cohort" else "items_from_program"),
            "wave": self.wave_label[wave],
            "hardest": [{"item": i, "text": text(i), "p": self.num(100 * r["difficulty"], 0)}
                        for i, r in hardest.iterrows()],
            "miskeyed": [{"item": i, "text": text(i)} for i in miskeyed],
            "suspicious_here": len(suspicious),
        }

    def gain_rows(self, cohort: str) -> list[dict]:
        out = []
        for inst, scale in self.headlines:
            if "percent" not in scale:
                continue
            row = self.change_row(cohort, inst, scale)
            if row is None or not enough(row["n_pairs"], self.min_n):
                continue
            out.append({"scale": short_label(self.instruments, inst, scale, self.lang),
                        "hake": self.num(row["hake_g"], 2),
                        "c": self.num(row["normalized_change_c"], 2)})
        return out

    def reliability_rows(self, cohort: str) -> list[dict]:
        rel = self.tables["reliability"]
        at_first = rel[rel["wave"] == self.waves[0]]
        mine = at_first[at_first["cohort"] == cohort]
        pooled = at_first[at_first["cohort"] == POOLED].set_index(["instrument", "scale", "form"])
        rows = []
        for _, r in mine.iterrows():
            key = (r["instrument"], r["scale"], r["form"])
            hidden = not enough(r["n"], self.min_n)
            label = short_label(self.instruments, r["instrument"], r["scale"], self.lang)
            rows.append({
                "scale": f"{label} ({self.t('form')} {r['form']})" if r["form"] else label,
                "n": "—" if hidden else int(r["n"]),
                "alpha": "—" if hidden else self.num(r["alpha"], 2),
                "pooled": self.num(pooled.loc[key, "alpha"], 2) if key in pooled.index else "—",
                "low": not hidden and pd.notna(r["alpha"]) and r["alpha"] < 0.70,
                "few": not hidden and r["n"] < SMALL,
            })
        return rows

    def caveats(self, cohort: str) -> list[str]:
        """Plain-words warnings on the headline scales' reliability in this cohort."""
        rel = self.tables["reliability"]
        out = []
        for inst, scale in self.headlines:
            rows = rel[(rel["cohort"] == cohort) & (rel["wave"] == self.waves[0])
                       & (rel["instrument"] == inst) & (rel["scale"] == scale)]
            for _, r in rows.iterrows():
                if enough(r["n"], SMALL) and pd.notna(r["alpha"]) and r["alpha"] < 0.70:
                    out.append(self.t("caveat_reliability", scale=self.label(inst, scale),
                                      alpha=self.num(r["alpha"], 2)))
        return out

    def quarantine_rows(self, cohort: str) -> list[dict]:
        q = self.tables["quarantine"]
        counts = q[q["cohort"] == cohort]["rule"].value_counts()
        return [{"rule": self.t.rule(k), "n": int(v)} for k, v in counts.items()]

    def methods(self) -> list[dict]:
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
        return out

    # --- program sections ----------------------------------------------------------
    def cohort_grid(self) -> dict:
        header = [short_label(self.instruments, i, s, self.lang) for i, s in self.headlines]
        rows = []
        for cohort in self.config.cohorts:
            cells = []
            for inst, scale in self.headlines:
                row = self.change_row(cohort.id, inst, scale)
                if row is None:
                    cells.append({"text": "—", "kind": ""})
                elif not enough(row["n_pairs"], self.min_n):
                    cells.append({"text": self.t("hidden_short"), "kind": "hidden"})
                else:
                    unit = self.unit(scale)
                    cells.append({"text": f"{self.num(row['mean_from'])}{unit} → "
                                          f"{self.num(row['mean_to'])}{unit} · d_z "
                                          f"{self.num(row['d_z'], 2)} (n {int(row['n_pairs'])})",
                                  "kind": verdict_key(row)})
            rows.append({"site": cohort.site, "cells": cells})
        return {"header": header, "rows": rows}

    def forest_plots(self) -> list[str]:
        change, models = self.tables["change"], self.tables.get("models", pd.DataFrame())
        f, t_ = self.pair
        svgs = []
        for inst, scale in self.headlines:
            sel = change[(change["instrument"] == inst) & (change["scale"] == scale)
                         & (change["from_wave"] == f) & (change["to_wave"] == t_)
                         & (change["n_pairs"] >= self.min_n) & change["d_z_ci_low"].notna()]
            if sel.empty:
                continue
            sites = {c.id: c.site for c in self.config.cohorts}
            rows = [{"title": f"{sites.get(r['cohort'], r['cohort'])} (n {int(r['n_pairs'])})",
                     "d": r["d_z"], "low": r["d_z_ci_low"], "high": r["d_z_ci_high"],
                     "n": r["n_pairs"]} for _, r in sel.iterrows()]
            meta = models[(models["model"] == "meta_reml") & (models["instrument"] == inst)
                          & (models["scale"] == scale) & (models["from_wave"] == f)
                          & (models["to_wave"] == t_)] if not models.empty else models
            pooled = None
            if len(meta) and pd.notna(meta["estimate"].iloc[0]):
                m = meta.iloc[0]
                pooled = {"title": self.t("pooled_effect"), "d": m["estimate"],
                          "low": m["ci_low"], "high": m["ci_high"]}
            svgs.append(plots.forest(rows, pooled, self.label(inst, scale),
                                     self.t("forest_axis")))
        return svgs

    def model_rows(self) -> list[dict]:
        models = self.tables.get("models", pd.DataFrame())
        if models.empty:
            return []
        f, t_ = self.pair
        out = []
        for inst, scale in self.headlines:
            sel = models[(models["instrument"] == inst) & (models["scale"] == scale)
                         & (models["from_wave"] == f) & (models["to_wave"] == t_)]
            mixed = sel[(sel["model"] == "mixed_random_cohorts") & (sel["term"] == "change")]
            meta = sel[sel["model"] == "meta_reml"]
            row = {"scale": self.label(inst, scale), "change": "—", "pooled_d": "—",
                   "i2": "—", "note": ""}
            if len(mixed) and pd.notna(mixed["estimate"].iloc[0]):
                m = mixed.iloc[0]
                row["change"] = f"{self.num(m['estimate'])} ({self.num(m['ci_low'])}; " \
                                f"{self.num(m['ci_high'])})"
                if m["flags"]:
                    row["note"] = self.t("model_caveat")
            if len(meta) and pd.notna(meta["estimate"].iloc[0]):
                m = meta.iloc[0]
                row["pooled_d"] = f"{self.num(m['estimate'], 2)} ({self.num(m['ci_low'], 2)}; " \
                                  f"{self.num(m['ci_high'], 2)})"
                row["i2"] = self.num(m["i2"], 0) + "%"
            out.append(row)
        return out

    def program_reliability(self) -> dict:
        rel = self.tables["reliability"]
        at_first = rel[(rel["wave"] == self.waves[0]) & (rel["form"] == "")]
        header = [short_label(self.instruments, i, s, self.lang) for i, s in self.headlines]
        rows = []
        for cohort_id, site in [*[(c.id, c.site) for c in self.config.cohorts],
                                (POOLED, self.t("pooled_col"))]:
            cells = []
            for inst, scale in self.headlines:
                r = at_first[(at_first["cohort"] == cohort_id) & (at_first["instrument"] == inst)
                             & (at_first["scale"] == scale)]
                if r.empty:
                    # Knowledge tests: reliability is per form; the program report shows alpha
                    # of the first form to keep one number per cell.
                    r = rel[(rel["wave"] == self.waves[0]) & (rel["cohort"] == cohort_id)
                            & (rel["instrument"] == inst) & (rel["scale"] == "percent_correct")]
                if r.empty or not enough(r["n"].iloc[0], self.min_n):
                    cells.append("—")
                else:
                    cells.append(self.num(r["alpha"].iloc[0], 2))
            rows.append({"site": site, "cells": cells})
        return {"header": header, "rows": rows}


def environment() -> jinja2.Environment:
    """The Jinja2 environment with autoescaping (participant data never reach it)."""
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
    pages: dict[str, str] = {}
    for lang in sorted(LANGUAGES, key=lambda code: code != config.language):
        t = Catalogue(lang)
        data = ReportData(tables, config, instruments, t)
        common = {"t": t, "config": config, "min_n": config.min_cell_size, "lang": lang,
                  "other": [code for code in LANGUAGES if code != lang]}
        cohorts, cohort_pages = [], {}
        for cohort in config.cohorts:
            name = f"cohort_{cohort.id}_{lang}.html"
            cohort_pages[name] = env.get_template("cohort.html.j2").render(
                **common, **cohort_context(data, cohort))
            cohorts.append({"cohort": cohort, "file": name})
        program = env.get_template("program.html.j2").render(
            **common, cohorts=cohorts, grid=data.cohort_grid(), means_svg=data.means_plot(None),
            forests=data.forest_plots(), models=data.model_rows(),
            reliability=data.program_reliability(), methods=data.methods())
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
                         pdf: bool = True) -> Rendered:
    """Render into a staging folder and swap it in whole (a failed run keeps the old reports).

    A page whose HTML is byte-identical to the one already published keeps its
    PDF (hard-linked, not re-printed): printing is the slow part, and most
    cohorts do not change between weekly runs. PDFs need Chromium/Chrome;
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
            if not pdf or name.startswith("index_"):
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

    result.paths = write_folder(folder, fill)
    if result.message:
        log.warning(result.message)
    return result


def reuse_pdf(published: Path, html: str, target: Path) -> bool:
    """Link the published PDF into ``target`` when its HTML is unchanged; False otherwise."""
    old_pdf = published.with_suffix(".pdf")
    try:
        if not old_pdf.exists() or published.read_text(encoding="utf-8") != html:
            return False
        try:
            os.link(old_pdf, target)
        except OSError:  # file systems without hard links
            shutil.copy2(old_pdf, target)
        return True
    except OSError:
        return False
