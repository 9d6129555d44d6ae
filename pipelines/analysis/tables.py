"""Group the per-scale statistics into the result tables of DESIGN.md.

These functions only split and stack; every formula lives in the statistics
modules (``reliability``, ``items``, ``change``), so there is one place per formula.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from instruments.model import Instrument, Subscale
from pipelines.analysis.items import distractors, knowledge_items, likert_items
from pipelines.analysis.reliability import DEFAULT_BOOT, scale_reliability
from pipelines.analysis.scoring import correct_matrix, reverse_keyed

POOLED = "ALL"  # the cohort value of program-wide (pooled) rows
GROUP_KEYS = ["cohort", "wave", "instrument", "scale", "form"]
RELIABILITY_COLUMNS = GROUP_KEYS + [
    "n", "k", "alpha", "alpha_ci_low", "alpha_ci_high", "alpha_ci_method", "alpha_boot_low",
    "alpha_boot_high", "n_boot", "std_alpha", "lambda6", "kr20", "kr21", "omega_total",
    "omega_h", "sem", "missing_rule", "flags"]
ITEM_COLUMNS = GROUP_KEYS + ["item", "n", "mean", "sd", "difficulty", "r_drop",
                             "alpha_if_dropped", "discrimination", "flags"]
OPTION_COLUMNS = ["cohort", "wave", "instrument", "form", "item", "option", "is_key",
                  "n_answered", "n_choosing", "share", "point_biserial"]


def improvement_directions(instruments: dict[str, Instrument]) -> dict[tuple[str, str], str]:
    """(instrument, scale) -> "higher" or "lower" is better, "" when neutral."""
    directions = {}
    for inst in instruments.values():
        if inst.kind == "knowledge":
            directions.update({(inst.id, s): "higher" for s in
                               ("percent_correct", "anchor_percent_correct")})
        for sub in inst.subscales:
            directions[(inst.id, sub.id)] = {"better": "higher", "worse": "lower"}.get(
                sub.higher_is, "")
    return directions


def with_pooled(frame: pd.DataFrame) -> Iterator[tuple[tuple[str, str], pd.DataFrame]]:
    """(cohort, wave) groups, then the same waves pooled over cohorts (cohort ALL)."""
    both = pd.concat([frame, frame.assign(cohort=POOLED)])
    yield from both.groupby(["cohort", "wave"], sort=True)


def subscale_groups(inst: Instrument, sub: Subscale) -> list[list[int]] | None:
    """Positions of the subscales that partition ``sub`` (2+), for omega hierarchical."""
    parts = [s.items for s in inst.subscales
             if s.id != sub.id and set(s.items) < set(sub.items)]
    flat = [i for part in parts for i in part]
    if len(parts) < 2 or sorted(flat) != sorted(sub.items):
        return None
    return [[sub.items.index(i) for i in part] for part in parts]


def _score_units(sub: Subscale | None, k: int) -> float:
    """Factor from the item sum to the score's units (mean scale, percent correct)."""
    if sub is None:
        return 100 / k if k else np.nan
    return 1 / k if sub.scoring == "mean" and k else 1.0


def _reliability_row(keys: dict, items: pd.DataFrame, n_boot: int, seed: int,
                     sub: Subscale | None = None, groups=None) -> dict:
    stats_ = scale_reliability(items, groups=groups, n_boot=n_boot, seed=seed)
    stats_["sem"] *= _score_units(sub, stats_["k"])  # SEM in the units of the score
    return {**keys, **stats_}


def knowledge_form_groups(frame: pd.DataFrame, inst: Instrument):
    """(form, 0/1 matrix of that form's items, answers) for each form present."""
    correct = correct_matrix(frame, inst)
    for form in inst.forms:
        rows = frame["form"].astype(str).eq(form.id).to_numpy()
        if rows.any():
            yield form, correct.loc[rows, form.items], frame.loc[rows, form.items]


def reliability_table(
    valid: dict[str, pd.DataFrame], instruments: dict[str, Instrument],
    n_boot: int = DEFAULT_BOOT, seed: int = 20261122,
) -> pd.DataFrame:
    """Reliability per cohort x wave x instrument x scale (x form), plus pooled rows.

    Pooled rows (cohort ``ALL``) use every cohort's respondents at that wave:
    small cohorts need them. Scale items are reverse-keyed first. Knowledge
    tests: KR-20 per form on ``percent_correct`` and over all forms on the anchor
    items. ``sem`` is in the units of the scale's score.
    """
    rows = []
    for inst_id, frame in valid.items():
        inst = instruments[inst_id]
        if frame.empty:
            continue
        if inst.kind == "scale":
            keyed = pd.concat([frame[["cohort", "wave"]], reverse_keyed(frame, inst)], axis=1)
            for (cohort, wave), grp in with_pooled(keyed):
                for sub in inst.subscales:
                    keys = dict(cohort=cohort, wave=wave, instrument=inst_id, scale=sub.id, form="")
                    rows.append(_reliability_row(keys, grp[sub.items], n_boot, seed, sub,
                                                 subscale_groups(inst, sub)))
            continue
        for (cohort, wave), grp in with_pooled(frame):
            keys = dict(cohort=cohort, wave=wave, instrument=inst_id)
            for form, correct, _ in knowledge_form_groups(grp, inst):
                rows.append(_reliability_row({**keys, "scale": "percent_correct",
                                              "form": form.id}, correct, n_boot, seed))
            if inst.anchor_items:
                anchors = correct_matrix(grp, inst)[inst.anchor_items]
                rows.append(_reliability_row({**keys, "scale": "anchor_percent_correct",
                                              "form": ""}, anchors, n_boot, seed))
    return pd.DataFrame(rows, columns=RELIABILITY_COLUMNS)


def _likert_frequencies(keys: dict, raw: pd.DataFrame, inst: Instrument) -> list[dict]:
    rows = []
    for item in raw.columns:
        answered = raw[item].dropna().astype(float)
        for option in inst.options_for(item):
            chose = int((answered == float(option.code)).sum())
            rows.append({**keys, "item": item, "option": str(option.code), "is_key": pd.NA,
                         "n_answered": len(answered), "n_choosing": chose,
                         "share": chose / len(answered) if len(answered) else np.nan,
                         "point_biserial": np.nan})
    return rows


def item_tables(
    valid: dict[str, pd.DataFrame], instruments: dict[str, Instrument]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``items`` table (one row per item per scale or form) and ``item_options``.

    Likert items: psych::alpha's item statistics per subscale (listwise within
    it) and the response frequencies of every code. Knowledge items: difficulty,
    corrected point-biserial, upper-lower index per form, and the distractor
    analysis. Both per cohort x wave and pooled (cohort ``ALL``).
    """
    items, options = [], []
    for inst_id, frame in valid.items():
        inst = instruments[inst_id]
        if frame.empty:
            continue
        if inst.kind == "scale":
            keyed = pd.concat([frame[["cohort", "wave"]], reverse_keyed(frame, inst)], axis=1)
            raw = pd.concat([frame[["cohort", "wave"]], frame[inst.item_ids]], axis=1)
            for (cohort, wave), grp in with_pooled(keyed):
                keys = dict(cohort=cohort, wave=wave, instrument=inst_id)
                for sub in inst.subscales:
                    table = likert_items(grp[sub.items]).assign(**keys, scale=sub.id, form="")
                    items.append(table)
            for (cohort, wave), grp in with_pooled(raw):
                keys = dict(cohort=cohort, wave=wave, instrument=inst_id, form="")
                options.append(pd.DataFrame(_likert_frequencies(keys, grp[inst.item_ids], inst)))
            continue
        for (cohort, wave), grp in with_pooled(frame):
            keys = dict(cohort=cohort, wave=wave, instrument=inst_id)
            for form, correct, answers in knowledge_form_groups(grp, inst):
                codes = {i: [str(o.code) for o in inst.options_for(i)] for i in form.items}
                key = {i: [str(c) for c in (k if isinstance(k, list) else [k])]
                       for i, k in form.key.items()}
                table = distractors(answers, correct, codes, key)
                items.append(knowledge_items(correct, table).assign(
                    **keys, scale="percent_correct", form=form.id))
                options.append(table.assign(**keys, form=form.id, n_answered=len(answers)))
    items_table = pd.concat(items, ignore_index=True) if items else pd.DataFrame()
    options_table = pd.concat(options, ignore_index=True) if options else pd.DataFrame()
    options_table = options_table.reindex(columns=OPTION_COLUMNS)
    options_table["is_key"] = options_table["is_key"].astype("boolean")  # NA for Likert
    return items_table.reindex(columns=ITEM_COLUMNS), options_table
