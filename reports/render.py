"""Render result tables into cohort and program reports (HTML), in Spanish or English.

Reports read result tables only; every figure shown was computed upstream.
Any figure based on fewer than ``min_cell_size`` people is replaced by a
stated suppression, and the small cohorts' rows never reach the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd
import yaml

from data_contracts.rules import RULES
from instruments.model import Instrument

HERE = Path(__file__).parent
MESSAGES = yaml.safe_load((HERE / "messages.yaml").read_text(encoding="utf-8"))


def number(value: object, language: str, digits: int = 1) -> str:
    """Format a number the way the language writes it (1.234,5 vs 1,234.5).

    Examples
    --------
    >>> number(1234.5, "es"), number(1234.5, "en"), number(float("nan"), "en")
    ('1.234,5', '1,234.5', '—')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{float(value):,.{digits}f}"
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


def verdict(row: pd.Series, t: Catalogue) -> str:
    """Plain-words reading of a change row: improved, got worse, or no clear change."""
    if pd.isna(row["ci_low"]) or not row["improvement"]:
        return t("no_clear_change")
    if row["ci_low"] > 0:
        return t("improved") if row["improvement"] == "higher" else t("worsened")
    if row["ci_high"] < 0:
        return t("improved") if row["improvement"] == "lower" else t("worsened")
    return t("no_clear_change")


def change_rows(change, cohort, instruments, t, min_n, waves=None) -> list[dict]:
    """Display rows of the change table for one cohort (suppressed below min_n)."""
    lang = t.language
    labels = {w.id: w.label.get(lang) or w.id for w in waves or []}

    def wave_label(wave_id: str) -> str:
        return labels.get(wave_id, wave_id)

    rows = []
    for _, r in change[change["cohort"] == cohort].iterrows():
        hidden = r["n_pairs"] < min_n
        rows.append({
            "scale": scale_label(instruments, r["instrument"], r["scale"], lang),
            "waves": f"{wave_label(r['from_wave'])} → {wave_label(r['to_wave'])}",
            "n": r["n_pairs"] if not hidden else "—",
            "hidden": hidden,
            "small": not hidden and r["n_pairs"] < 10,
            "mean_from": number(r["mean_from"], lang),
            "mean_to": number(r["mean_to"], lang),
            "diff": f"{number(r['mean_diff'], lang)} ({number(r['ci_low'], lang)}; "
                    f"{number(r['ci_high'], lang)})",
            "d_z": number(r["d_z"], lang, 2),
            "better": t(r["improvement"]) if r["improvement"] else "",
            "verdict": verdict(r, t),
        })
    return rows


def reliability_rows(reliability, cohort, instruments, t, min_n, first_wave) -> list[dict]:
    """Alpha per scale at the first wave, this cohort beside the pooled program.

    Knowledge tests get one row per form (their items differ); small cohorts
    (n < 10) are marked so readers lean on the pooled figure.
    """
    lang = t.language
    if reliability.empty:
        return []
    at_first = reliability[reliability["wave"] == first_wave]
    mine = at_first[at_first["cohort"] == cohort]
    pooled = at_first[at_first["cohort"] == "ALL"].set_index(["instrument", "scale", "form"])
    rows = []
    for _, r in mine.iterrows():
        key = (r["instrument"], r["scale"], r["form"])
        hidden = r["n"] < min_n
        label = scale_label(instruments, r["instrument"], r["scale"], lang)
        rows.append({
            "scale": f"{label} ({t('form')} {r['form']})" if r["form"] else label,
            "n": "—" if hidden else r["n"],
            "alpha": "—" if hidden else number(r["alpha"], lang, 2),
            "pooled": number(pooled.loc[key, "alpha"], lang, 2) if key in pooled.index else "—",
            "low": not hidden and pd.notna(r["alpha"]) and r["alpha"] < 0.70,
            "few": not hidden and r["n"] < 10,
        })
    return rows


def environment() -> jinja2.Environment:
    """The Jinja2 environment with autoescaping (participant data never reach it)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_reports(tables: dict[str, pd.DataFrame], config, instruments, folder: Path) -> list[Path]:
    """Write one HTML report per cohort and a program index; return their paths."""
    t = Catalogue(config.language)
    min_n = config.min_cell_size
    env = environment()
    folder.mkdir(parents=True, exist_ok=True)
    participation = tables["participation"]
    quarantine = tables["quarantine"]
    written = []
    cohorts_ctx = []
    for cohort in config.cohorts:
        part = participation[participation["cohort"] == cohort.id]
        q = quarantine[quarantine["cohort"] == cohort.id]["rule"].value_counts()
        context = {
            "t": t, "config": config, "cohort": cohort, "min_n": min_n,
            "participation": participation_rows(part, instruments, config, t, min_n),
            "waves": [w.label.get(config.language) or w.id
                      for w in sorted(config.waves, key=lambda w: w.order)],
            "change": change_rows(tables["change"], cohort.id, instruments, t, min_n,
                                  config.waves),
            "reliability": reliability_rows(tables["reliability"], cohort.id, instruments, t,
                                            min_n, config.wave_order()[0]),
            "quarantine": [{"rule": t.rule(k), "n": int(v)} for k, v in q.items()],
        }
        path = folder / f"cohort_{cohort.id}_{config.language}.html"
        path.write_text(env.get_template("cohort.html.j2").render(**context), encoding="utf-8")
        written.append(path)
        cohorts_ctx.append({"cohort": cohort, "file": path.name})
    index = folder / f"index_{config.language}.html"
    index.write_text(env.get_template("index.html.j2").render(
        t=t, config=config, cohorts=cohorts_ctx, min_n=min_n), encoding="utf-8")
    return [index, *written]


def participation_rows(part, instruments, config, t, min_n) -> list[dict]:
    """People per instrument and wave, small counts hidden."""
    rows = []
    for inst_id, grp in part.groupby("instrument"):
        counts = dict(zip(grp["wave"], grp["n"]))
        cells = []
        for wave in config.wave_order():
            n = int(counts.get(wave, 0))
            cells.append("—" if 0 < n < min_n else str(n))
        title = instruments[inst_id].title.get(t.language) if inst_id in instruments else inst_id
        rows.append({"instrument": title, "cells": cells})
    return rows
