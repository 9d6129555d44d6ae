"""Group the per-scale statistics into the result tables (ARCHITECTURE.md, "Where each figure is computed").

These functions only split and stack; every formula lives in the statistics
modules (``reliability``, ``items``, ``change``, ``gains``, ``models``), so there
is one place per formula.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from instruments.model import KNOWLEDGE_SCALES, Instrument, Subscale
from pipelines.analysis.change import (
    VERDICT_ALPHA, attrition_effect, family_verdicts, holm_by_group, improvement_sign,
    matched_pairs, paired_change_by_group, rci_reliability, rci_s_diff, reliable_change,
    reliable_change_index,
)
from pipelines.analysis.gains import hake_gain, individual_gains, normalized_change
from pipelines.analysis.items import knowledge_items_by_group, likert_item_statistics_by_group
from pipelines.analysis.models import (
    FEW_COHORTS, cohort_fixed_model, d_z_variance, random_cohort_model, random_effects_meta,
)
from pipelines.analysis.batched import level_groups
from pipelines.analysis.reliability import DEFAULT_BOOT, reliability_many
from pipelines.analysis.scoring import correct_matrix, reverse_keyed
from pipelines.schema import POOLED
GROUP_KEYS = ["cohort", "wave", "instrument", "scale", "form"]
RELIABILITY_COLUMNS = GROUP_KEYS + [
    "n", "k", "alpha", "alpha_ci_low", "alpha_ci_high", "alpha_ci_method", "alpha_boot_low",
    "alpha_boot_high", "n_boot", "std_alpha", "lambda6", "kr20", "kr21", "omega_total",
    "omega_h", "sem", "missing_rule", "flags"]
ITEM_COLUMNS = GROUP_KEYS + ["item", "n", "mean", "sd", "difficulty", "r_drop",
                             "alpha_if_dropped", "discrimination", "flags"]
OPTION_COLUMNS = ["cohort", "wave", "instrument", "form", "item", "option", "is_key",
                  "n_answered", "n_choosing", "share", "point_biserial"]


SCOPES = ("all", "cohorts", "pooled")


def at_levels(frame: pd.DataFrame, scope: str = "all") -> pd.DataFrame:
    """``frame`` per cohort, pooled (cohort ALL), or both stacked, as ``scope`` asks.

    ``cohorts`` and ``pooled`` let a run recompute only the cohorts whose data
    changed while refreshing the program-wide rows.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, not {scope!r}")
    parts = ([frame] if scope != "pooled" else []) + (
        [frame.assign(cohort=POOLED)] if scope != "cohorts" else [])
    return pd.concat(parts)


def with_keys(frame: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """``items`` beside the cohort and wave of ``frame``'s rows (what grouping needs)."""
    return pd.concat([frame[["cohort", "wave"]], items], axis=1)


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


def reliability_table(
    valid: dict[str, pd.DataFrame], instruments: dict[str, Instrument],
    n_boot: int = DEFAULT_BOOT, seed: int = 20261122, scope: str = "all",
) -> pd.DataFrame:
    """Reliability per cohort x wave x instrument x scale (x form), plus pooled rows.

    Pooled rows (cohort ``ALL``) use every cohort's respondents at that wave:
    small cohorts need them. Scale items are reverse-keyed first. Knowledge
    tests: KR-20 per form on ``percent_correct`` and over all forms on the anchor
    items. ``sem`` is in the units of the scale's score. ``scope``: "all",
    "cohorts" (no pooled rows) or "pooled" (only them). Every group is
    computed at once (:func:`~pipelines.analysis.reliability.reliability_many`).
    """
    jobs = []  # (keys, respondents x items matrix, subscale, omega_h groups)
    for inst_id, frame in valid.items():
        inst = instruments[inst_id]
        if frame.empty or inst.kind == "rating":  # raters' agreement: the interrater table
            continue
        if inst.kind == "scale":
            keyed = at_levels(with_keys(frame, reverse_keyed(frame, inst)), scope)
            values = keyed[inst.item_ids].to_numpy(dtype=float)
            columns = {item: j for j, item in enumerate(inst.item_ids)}
            for (cohort, wave), rows in level_groups(keyed):
                for sub in inst.subscales:
                    keys = dict(cohort=cohort, wave=wave, instrument=inst_id, scale=sub.id, form="")
                    cols = [columns[i] for i in sub.items]
                    jobs.append((keys, values[np.ix_(rows, cols)], sub,
                                 subscale_groups(inst, sub)))
            continue
        # Correctness is row by row: score the whole frame once, then split.
        correct = correct_matrix(frame, inst)
        levels = at_levels(pd.concat([frame[["cohort", "wave"]], correct], axis=1), scope)
        values = levels[inst.item_ids].to_numpy(dtype=float)
        columns = {item: j for j, item in enumerate(inst.item_ids)}
        forms = at_levels(frame[["cohort", "form"]], scope)["form"].astype(str).to_numpy()
        for (cohort, wave), rows in level_groups(levels):
            keys = dict(cohort=cohort, wave=wave, instrument=inst_id)
            for form in inst.forms:
                on_form = rows[forms[rows] == form.id]
                if on_form.size:
                    jobs.append(({**keys, "scale": "percent_correct", "form": form.id},
                                 values[np.ix_(on_form, [columns[i] for i in form.items])],
                                 None, None))
            if inst.anchor_items:
                jobs.append(({**keys, "scale": "anchor_percent_correct", "form": ""},
                             values[np.ix_(rows, [columns[i] for i in inst.anchor_items])],
                             None, None))
    figures = reliability_many([m for _, m, _, _ in jobs], [g for *_, g in jobs],
                               n_boot=n_boot, seed=seed)
    rows_out = []
    for (keys, _, sub, _), stats_ in zip(jobs, figures):
        stats_["sem"] *= _score_units(sub, stats_["k"])  # SEM in the units of the score
        rows_out.append({**keys, **stats_})
    return pd.DataFrame(rows_out, columns=RELIABILITY_COLUMNS)


def _likert_frequencies(raw: pd.DataFrame, group: np.ndarray, n_groups: int,
                        inst: Instrument) -> pd.DataFrame:
    """Answers per code of every Likert item, every group at once (one count per code).

    Rows: group-major, then item, then code, with a ``group`` column.
    """
    counts, answered, item_col, option_col = [], [], [], []
    values = raw.astype(float).to_numpy()
    for j, item in enumerate(raw.columns):
        codes = [float(option.code) for option in inst.options_for(item)]
        chosen = np.full(len(values), -1)  # which code each answer is (-1: none, NaN)
        for o, code in enumerate(codes):
            chosen[values[:, j] == code] = o
        if len(set(codes)) < len(codes):  # a repeated code counts for each of its options
            counts += [np.bincount(group, weights=values[:, j] == code, minlength=n_groups)
                       for code in codes]
        else:
            hit = chosen >= 0
            counts += list(np.bincount(group[hit] * len(codes) + chosen[hit],
                                       minlength=n_groups * len(codes))
                           .reshape(n_groups, len(codes)).T)
        answered += [np.bincount(group[~np.isnan(values[:, j])], minlength=n_groups)] * len(codes)
        item_col += [item] * len(codes)
        option_col += [str(option.code) for option in inst.options_for(item)]
    chose = np.column_stack(counts).reshape(-1).astype(np.int64)
    n_answered = np.column_stack(answered).reshape(-1).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(n_answered > 0, chose / n_answered, np.nan)
    slots = np.tile(np.arange(len(item_col)), n_groups)
    return pd.DataFrame({
        "group": np.repeat(np.arange(n_groups), len(item_col)),
        "item": pd.Index(item_col).take(slots), "option": pd.Index(option_col).take(slots),
        "is_key": pd.NA, "n_answered": n_answered, "n_choosing": chose, "share": share,
        "point_biserial": np.nan})


def item_tables(
    valid: dict[str, pd.DataFrame], instruments: dict[str, Instrument], scope: str = "all",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``items`` table (one row per item per scale or form) and ``item_options``.

    Likert items: psych::alpha's item statistics per subscale (listwise within
    it) and the response frequencies of every code. Knowledge items: difficulty,
    corrected point-biserial, upper-lower index per form, and the distractor
    analysis. Both per cohort x wave and pooled (cohort ``ALL``).

    Every cohort x wave group is analysed at once (``likert_item_statistics_by_group``,
    ``knowledge_items_by_group``); the rows and their order are those of
    the (cohort, wave) groups (pooled last) analysed one by one.
    """
    items, options = [], []
    for inst_id, frame in valid.items():
        inst = instruments[inst_id]
        if frame.empty or inst.kind == "rating":  # level shares: the competence_levels table
            continue
        needed = ["cohort", "wave", *(["form"] if inst.kind != "scale" else []), *inst.item_ids]
        leveled = at_levels(frame[needed], scope)
        grouping = leveled.groupby(["cohort", "wave"], sort=True)
        number = grouping.ngroup().to_numpy(dtype=float)
        kept = ~np.isnan(number)  # rows without a cohort or wave are in no group
        group = number[kept].astype(np.int64)
        levels = grouping.size().index
        n_groups = len(levels)
        if not n_groups:
            continue
        if not kept.all():
            leveled = leveled[kept]

        def keyed_rows(parts: list[pd.DataFrame], **keys) -> pd.DataFrame:
            """``parts`` stacked group by group (stable), beside their group's keys."""
            table = pd.concat(parts, ignore_index=True)
            order = np.argsort(table["group"].to_numpy(), kind="stable")
            table = table.take(order)
            at = table["group"].to_numpy()
            return pd.DataFrame({
                **{name: table[name].array for name in table.columns if name != "group"},
                "cohort": levels.get_level_values(0).take(at),
                "wave": levels.get_level_values(1).take(at), "instrument": inst_id,
                **{name: np.asarray(value)[order] if np.ndim(value) else value
                   for name, value in keys.items()}})

        if inst.kind == "scale":
            keyed = reverse_keyed(leveled, inst)
            parts = [likert_item_statistics_by_group(keyed[sub.items], group, n_groups)
                     for sub in inst.subscales]
            if parts:
                scale = np.repeat([sub.id for sub in inst.subscales], [len(t) for t in parts])
                items.append(keyed_rows(parts, scale=scale, form=""))
            frequencies = _likert_frequencies(leveled[inst.item_ids], group, n_groups, inst)
            options.append(keyed_rows([frequencies], form=""))
            continue
        correct = correct_matrix(leveled, inst).to_numpy()
        form_of_row = leveled["form"].astype(str).to_numpy()
        item_parts, option_parts = [], []
        for form in inst.forms:
            rows = form_of_row == form.id
            if not rows.any():
                continue
            codes = {i: [str(o.code) for o in inst.options_for(i)] for i in form.items}
            key = {i: [str(c) for c in (k if isinstance(k, list) else [k])]
                   for i, k in form.key.items()}
            columns = [inst.item_ids.index(i) for i in form.items]
            table, choices = knowledge_items_by_group(
                leveled.loc[rows, form.items], correct[np.ix_(rows, columns)], group[rows],
                codes, key)
            item_parts.append((form.id, table))
            option_parts.append((form.id, choices))
        for parts, out, keys in ((item_parts, items, {"scale": "percent_correct"}),
                                 (option_parts, options, {})):
            if parts:
                form_ids = np.concatenate([np.repeat(f, len(t)) for f, t in parts])
                out.append(keyed_rows([t for _, t in parts], **keys, form=form_ids))
    items_table = pd.concat(items, ignore_index=True) if items else pd.DataFrame()
    options_table = pd.concat(options, ignore_index=True) if options else pd.DataFrame()
    options_table = options_table.reindex(columns=OPTION_COLUMNS)
    options_table["is_key"] = options_table["is_key"].astype("boolean")  # NA for Likert
    return items_table.reindex(columns=ITEM_COLUMNS), options_table


# ---- change -----------------------------------------------------------------

CHANGE_COLUMNS = [
    "cohort", "instrument", "scale", "from_wave", "to_wave", "n_pairs",
    "mean_from", "sd_from", "mean_to", "sd_to", "mean_diff", "sd_diff", "ci_low", "ci_high",
    "t", "df", "p", "p_holm", "d_z", "d_z_ci_low", "d_z_ci_high", "d_av", "g_av",
    "wilcoxon_v", "wilcoxon_p", "rank_biserial", "improvement",
    "rci_improved", "rci_no_change", "rci_deteriorated", "rci_s_diff", "rci_reliability",
    "rci_reliability_source", "hake_g", "mean_individual_gain", "normalized_change_c",
    "n_normalized_change", "n_from", "n_lost", "attrition_diff", "attrition_d", "flags"]
INDIVIDUAL_COLUMNS = ["cohort", "participant", "instrument", "scale", "from_wave", "to_wave",
                      "score_from", "score_to", "diff", "rci", "rci_category"]
TRANSITION_COLUMNS = ["cohort", "instrument", "scale", "from_wave", "to_wave", "band_from",
                      "band_to", "n"]


def rci_references(scores: pd.DataFrame, reliability: pd.DataFrame,
                   instruments: dict[str, Instrument], baseline_wave: str,
                   rated: dict | None = None) -> dict:
    """(instrument, scale) -> (baseline SD, r_xx, source) for the Reliable Change Index.

    SD and alpha come from the whole program at the baseline wave (cohort
    reliability is unstable in small cohorts). Below 30 people at baseline,
    a published alpha declared in the instrument is used when there is one.
    Knowledge scales use the n-weighted alpha (KR-20) of their forms. Rated scales use
    ``rated``: (instrument, scale) -> (reliability, source), the inter-rater reliability of
    the score (``pipelines.competence.rci_reliabilities``).
    """
    base = scores[scores["wave"] == baseline_wave]
    pooled = reliability[(reliability["cohort"] == POOLED) & (reliability["wave"] == baseline_wave)]
    refs = {}
    for (inst_id, scale), grp in base.groupby(["instrument", "scale"]):
        rel_scale = "percent_correct" if scale == "equated_percent_correct" else scale
        rows = pooled[(pooled["instrument"] == inst_id) & (pooled["scale"] == rel_scale)]
        sub = next((s for s in instruments[inst_id].subscales if s.id == scale), None)
        alpha, source = rci_reliability(rows["alpha"], rows["n"], sub.reliability if sub else None)
        alpha, source = (rated or {}).get((inst_id, scale), (alpha, source))
        refs[(inst_id, scale)] = (float(grp["score"].std(ddof=1)), alpha, source)
    return refs


def _attrition(at_from: pd.DataFrame, matched: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group: baseline scores of people lost at the later wave vs completers.

    ``at_from``: keys + participant + score at the from-wave; ``matched``: the
    completers (people with both scores). Columns n_from, n_lost,
    attrition_diff (lost minus kept mean) and attrition_d (pooled-SD d).
    """
    kept_ids = matched[keys + ["participant"]].assign(kept=True)
    base = at_from.merge(kept_ids, on=keys + ["participant"], how="left")
    base["kept"] = base["kept"].fillna(False).astype(bool)
    stats_ = base.groupby(keys + ["kept"])["score"].agg(["size", "mean", "var"]).unstack("kept")
    def part(stat: str, kept: bool) -> pd.Series:
        column = (stat, kept)
        values = stats_[column] if column in stats_.columns else pd.Series(np.nan, stats_.index)
        return values.fillna(0) if stat == "size" else values
    n_lost, n_kept = part("size", False), part("size", True)
    diff, d = attrition_effect(n_lost, part("mean", False), part("var", False),
                               n_kept, part("mean", True), part("var", True))
    out = pd.DataFrame({"n_from": (n_lost + n_kept).astype("int64"),
                        "n_lost": n_lost.astype("int64"), "attrition_diff": diff,
                        "attrition_d": d})
    return out.reset_index()


def _knowledge_gains(pairs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Hake's <g>, mean individual gain and Marx-Cummings c per group (percent scores)."""
    pre, post = pairs["from"].to_numpy(dtype=float), pairs["to"].to_numpy(dtype=float)
    c = normalized_change(pre, post)  # equated scores can pass 100: c may be infinite
    frame = pairs[keys].assign(pre=pre, post=post, gain=individual_gains(pre, post), c=c,
                               finite=np.isfinite(c), below=pre < 100)
    grouped = frame.groupby(keys, sort=True)
    out = grouped.agg(mean_pre=("pre", "mean"), mean_post=("post", "mean"),
                      gain=("gain", "mean"), any_below=("below", "any"), c=("c", "mean"),
                      n_c=("finite", "sum"))
    return pd.DataFrame({
        "hake_g": hake_gain(out["mean_pre"], out["mean_post"]),
        "mean_individual_gain": out["gain"].where(out["any_below"]),
        "normalized_change_c": out["c"].where(out["n_c"] > 0), "n_normalized_change": out["n_c"].astype("int64"),
    }).reset_index()


def change_tables(
    scores: pd.DataFrame, pairs: list[tuple[str, str]], improvement: dict[tuple[str, str], str],
    references: dict | None = None, scope: str = "all",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The ``change``, ``individual_change`` and ``band_transitions`` tables.

    ``change``: every cohort x instrument x scale x wave pair on people present
    at both waves (paired tests, effect sizes signed positive = improvement,
    Holm across the scales of a cohort x pair, RCI counts, knowledge gains,
    attrition). ``references`` are the RCI references of :func:`rci_references`.
    ``scope`` applies to the band transitions (change rows are per cohort).
    All groups are computed at once (:func:`paired_change_by_group`).
    """
    rows, people, transitions = [], [], []
    keys = ["cohort", "instrument", "scale"]
    for from_wave, to_wave in pairs:
        matched = matched_pairs(scores, from_wave, to_wave)
        if matched.empty:
            transitions.append(band_transitions(scores, from_wave, to_wave, scope))
            continue
        scales = matched[["instrument", "scale"]].drop_duplicates()
        scales["improvement"] = [improvement.get((i, s), "") for i, s in
                                 zip(scales["instrument"], scales["scale"])]
        better = matched[["instrument", "scale"]].merge(scales, how="left")["improvement"]
        better.index = matched.index
        sign = better.map(improvement_sign)
        table = paired_change_by_group(matched, keys, sign)
        table = table.merge(
            matched[keys].assign(improvement=better).drop_duplicates(keys), on=keys, how="left")
        knowledge = matched[matched["scale"].isin(KNOWLEDGE_SCALES)]
        if not knowledge.empty:
            table = table.merge(_knowledge_gains(knowledge, keys), on=keys, how="left")
        at_from = scores[(scores["wave"] == from_wave) & scores["score"].notna()][
            keys + ["participant", "score"]]
        table = table.merge(_attrition(at_from, matched, keys), on=keys, how="left")
        rows.append(table.assign(from_wave=from_wave, to_wave=to_wave))
        people.append(matched.assign(from_wave=from_wave, to_wave=to_wave,
                                     diff=matched["to"] - matched["from"])
                      .rename(columns={"from": "score_from", "to": "score_to"}))
        transitions.append(band_transitions(scores, from_wave, to_wave, scope))
    change = (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
              ).reindex(columns=CHANGE_COLUMNS)
    change["p_holm"] = holm_by_group(change["p"], change[["cohort", "from_wave", "to_wave"]])
    individual = pd.concat(people, ignore_index=True) if people else pd.DataFrame()
    individual = individual.reindex(columns=INDIVIDUAL_COLUMNS)
    change, individual = apply_rci(change, individual, references or {}, improvement)
    moves = pd.concat(transitions, ignore_index=True) if transitions else pd.DataFrame()
    return change, individual, moves.reindex(columns=TRANSITION_COLUMNS)


RCI_CATEGORIES = ("improved", "no_change", "deteriorated")


def apply_rci(change: pd.DataFrame, individual: pd.DataFrame, references: dict,
              improvement: dict[tuple[str, str], str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reliable Change Index columns of ``change`` and ``individual_change`` from the references.

    Kept apart from the paired statistics because the references are
    program-wide: when a cohort is added they move, and every cohort's RCI
    counts are refreshed without recomputing the cohorts' other figures.
    """
    change, individual = change.copy(), individual.copy()
    individual.columns.name = None
    individual["rci"], individual["rci_category"] = np.nan, ""
    for (inst, scale), rows in individual.groupby(["instrument", "scale"]).groups.items():
        sd, r_xx, _ = references.get((inst, scale), (np.nan, np.nan, ""))
        diff = individual.loc[rows, "diff"].to_numpy(dtype=float)
        individual.loc[rows, "rci"] = reliable_change_index(diff, sd, r_xx)
        individual.loc[rows, "rci_category"] = reliable_change(
            diff, sd, r_xx, improvement.get((inst, scale), ""))
    keys = ["cohort", "instrument", "scale", "from_wave", "to_wave"]
    counts = (individual.groupby([*keys, "rci_category"]).size().unstack(fill_value=0)
              .reindex(columns=list(RCI_CATEGORIES), fill_value=0)
              .add_prefix("rci_").reset_index())
    counts.columns.name = None
    change = change.drop(columns=[f"rci_{c}" for c in RCI_CATEGORIES]).merge(
        counts, on=keys, how="left")
    for column in (f"rci_{c}" for c in RCI_CATEGORIES):
        change[column] = change[column].fillna(0).where(change["improvement"].fillna("") != "")
    refs = [references.get((i, s), (np.nan, np.nan, ""))
            for i, s in zip(change["instrument"], change["scale"])]
    r_xx = np.array([r for _, r, _ in refs], dtype=float)
    sd = np.array([d for d, _, _ in refs], dtype=float)
    change["rci_s_diff"] = rci_s_diff(sd, r_xx)
    change["rci_reliability"] = r_xx
    change["rci_reliability_source"] = [src for _, _, src in refs]
    return change[CHANGE_COLUMNS], individual[INDIVIDUAL_COLUMNS]


def band_transitions(scores: pd.DataFrame, from_wave: str, to_wave: str,
                     scope: str = "all") -> pd.DataFrame:
    """People moving from each band to each band (cross-table, long), per cohort and pooled."""
    if "band" not in scores:
        return pd.DataFrame(columns=TRANSITION_COLUMNS)
    banded = scores[scores["band"].notna() & scores["wave"].isin([from_wave, to_wave])]
    if banded.empty:
        return pd.DataFrame(columns=TRANSITION_COLUMNS)
    wide = banded.pivot_table(index=["cohort", "instrument", "scale", "participant"],
                              columns="wave", values="band", aggfunc="first")
    wide = wide.reindex(columns=[from_wave, to_wave]).dropna().reset_index()
    wide = at_levels(wide, scope)
    counts = wide.groupby(["cohort", "instrument", "scale", from_wave, to_wave]).size()
    return (counts.rename("n").reset_index()
            .rename(columns={from_wave: "band_from", to_wave: "band_to"})
            .assign(from_wave=from_wave, to_wave=to_wave))


# ---- models across cohorts ---------------------------------------------------

MODEL_COLUMNS = ["model", "instrument", "scale", "from_wave", "to_wave", "term", "cohort",
                 "estimate", "se", "ci_low", "ci_high", "p", "n_obs", "n_groups", "tau2", "i2", "q",
                 "converged", "flags"]


def _meta_rows(change: pd.DataFrame) -> list[dict]:
    rows = []
    usable = change[change["d_z"].notna() & (change["n_pairs"] >= 3)]
    # The REML optimiser's last digits depend on the order of the cohorts: fix it.
    usable = usable.sort_values(["cohort"], kind="stable")
    for (inst, scale, f, t), grp in usable.groupby(["instrument", "scale", "from_wave",
                                                    "to_wave"]):
        v = d_z_variance(grp["d_z"].to_numpy(), grp["n_pairs"].to_numpy())
        for method in ("REML", "DL"):
            r = random_effects_meta(grp["d_z"], v, method=method)
            rows.append({"model": f"meta_{method.lower()}", "instrument": inst, "scale": scale,
                         "from_wave": f, "to_wave": t, "term": "pooled_d_z", "cohort": POOLED,
                         **{k: r[k] for k in ("estimate", "se", "ci_low", "ci_high", "p",
                                              "tau2", "i2", "q")},
                         "n_obs": int(grp["n_pairs"].sum()), "n_groups": r["k"],
                         "converged": bool(np.isfinite(r["estimate"])),
                         "flags": "" if r["k"] >= 2 else "fewer_than_2_cohorts"})
    return rows


def mixed_model_rows(scores: pd.DataFrame, pairs: list[tuple[str, str]],
                     previous: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> list[dict]:
    """The mixed-model rows of the ``models`` table (they need the scores only).

    Per instrument x scale x wave pair: the random-cohort mixed model (3+
    cohorts) and the cohort fixed-effects form (up to 10 cohorts), both on
    every person observed at either wave. With ``previous`` (the ``scores`` and
    ``models`` tables of an earlier run of the same code), a model whose data are
    those of that run -- the same rows in the same order -- keeps that run's rows.
    """
    stored, where = (None, {}) if previous is None else _stored_model_rows(previous[1])
    rows = []
    for from_wave, to_wave in pairs:
        earlier = ({} if previous is None else
                   _model_inputs(_pair_rows(previous[0], from_wave, to_wave)))
        for (inst, scale), grp in _pair_rows(scores, from_wave, to_wave).groupby(
                ["instrument", "scale"]):
            keys = {"instrument": inst, "scale": scale, "from_wave": from_wave,
                    "to_wave": to_wave}
            kept = where.get((inst, scale, from_wave, to_wave))
            if kept is not None and _same_inputs(grp, earlier.get((inst, scale))):
                rows += _records(stored.iloc[kept])
                continue
            long = grp.assign(post=(grp["wave"] == to_wave).astype(float))[
                ["cohort", "participant", "post", "score"]].reset_index(drop=True)
            fitted = random_cohort_model(long)
            if long["cohort"].nunique() <= FEW_COHORTS:
                fitted += cohort_fixed_model(long)
            rows += [{**keys, "cohort": POOLED, **r} for r in fitted]
    return rows


MODEL_INPUTS = ["cohort", "participant", "wave", "score"]


def _pair_rows(scores: pd.DataFrame, from_wave: str, to_wave: str) -> pd.DataFrame:
    return scores[scores["wave"].isin([from_wave, to_wave]) & scores["score"].notna()]


def _model_inputs(rows: pd.DataFrame) -> dict[tuple, list[np.ndarray]]:
    """The model data (:data:`MODEL_INPUTS`, in row order) per instrument x scale."""
    columns = [rows[c].to_numpy() for c in MODEL_INPUTS]
    return {key: [c[positions] for c in columns]
            for key, positions in rows.groupby(["instrument", "scale"]).indices.items()}


def _same_inputs(group: pd.DataFrame, earlier: list[np.ndarray] | None) -> bool:
    return earlier is not None and len(group) == len(earlier[0]) and all(
        np.array_equal(group[c].to_numpy(), e) for c, e in zip(MODEL_INPUTS, earlier))


def _stored_model_rows(models: pd.DataFrame) -> tuple[pd.DataFrame, dict[tuple, np.ndarray]]:
    """A stored ``models`` table's mixed-model rows, and their positions per instrument,
    scale and wave pair."""
    mixed = models[models["model"].isin(["mixed_random_cohorts", "mixed_cohort_fixed"])]
    mixed = mixed[[c for c in MODEL_COLUMNS if c not in ("tau2", "i2", "q")]]
    return mixed, mixed.groupby(["instrument", "scale", "from_wave", "to_wave"]).indices


def _records(rows: pd.DataFrame) -> list[dict]:
    return [{k: (None if v is pd.NA else v) for k, v in row.items()}
            for row in rows.to_dict("records")]


def models_table(scores: pd.DataFrame, pairs: list[tuple[str, str]],
                 change: pd.DataFrame, mixed: list[dict] | None = None) -> pd.DataFrame:
    """The ``models`` table: mixed models of change and the meta-analysis of d_z.

    :func:`mixed_model_rows` (or ``mixed``, those rows computed already, e.g.
    beside the cohort analysis), then REML and DerSimonian-Laird
    random-effects pooling of the cohorts' d_z (positive = improvement).
    """
    rows = mixed_model_rows(scores, pairs) if mixed is None else list(mixed)
    rows += _meta_rows(change)
    table = pd.DataFrame(rows).reindex(columns=MODEL_COLUMNS)
    table["converged"] = table["converged"].astype("boolean")
    return table


# ---- retention -------------------------------------------------------------------

def retention(participation: pd.DataFrame, scores: pd.DataFrame, quarantine: pd.DataFrame | None,
              waves: list[str]) -> pd.DataFrame:
    """``participation`` with why first-wave people are missing at each later wave.

    For each cohort x instrument with people at the first wave (``waves[0]``)
    and each later wave: ``n_set_aside`` = first-wave people with no valid
    answers at that wave whose form there was set aside (a whole-row
    quarantine record: a data error, not an absence), ``n_absent`` = the other
    first-wave people without valid answers there (did not come). A later wave
    nobody came to gets a row with ``n`` = 0. At the first wave,
    ``n_set_aside`` counts people whose only first-wave forms were set aside
    (they are in no figure) and ``n_absent`` is empty (nobody is expected).

    Examples
    --------
    >>> scores = pd.DataFrame({"cohort": "c", "instrument": "i", "participant": list("abcab"),
    ...                        "wave": ["pre"] * 3 + ["post"] * 2})
    >>> q = pd.DataFrame({"participant": ["c"], "instrument": ["i"], "cohort": ["c"],
    ...                   "wave": ["post"], "scope": ["row"]})
    >>> part = pd.DataFrame({"cohort": "c", "wave": ["pre", "post"], "instrument": "i",
    ...                      "n": [3, 2], "n_matched_first_wave": [3, 2], "n_unmatched": 0})
    >>> retention(part, scores, q, ["pre", "post"])[["wave", "n_set_aside", "n_absent"]]
       wave  n_set_aside  n_absent
    0   pre            0      <NA>
    1  post            1         0
    """
    keys = ["cohort", "instrument", "participant"]
    people = scores[keys + ["wave"]].drop_duplicates()
    first = people[people["wave"] == waves[0]][keys]
    set_aside = pd.DataFrame(columns=keys + ["wave"])
    if quarantine is not None and not quarantine.empty:
        rows = quarantine if "scope" not in quarantine else quarantine[quarantine["scope"] == "row"]
        set_aside = rows[keys + ["wave"]].astype(str).drop_duplicates()
    grid = first[["cohort", "instrument"]].drop_duplicates().merge(
        pd.DataFrame({"wave": waves[1:]}), how="cross")
    out = participation.merge(grid, on=["cohort", "wave", "instrument"], how="outer")
    for column in ("n", "n_matched_first_wave", "n_unmatched"):
        out[column] = out[column].fillna(0).astype("int64")
    counts = []
    for wave in waves[1:]:
        present = people[people["wave"] == wave][keys].assign(present=True)
        aside = set_aside[set_aside["wave"] == wave][["instrument", "participant"]].assign(
            aside=True)
        missing = first.merge(present, on=keys, how="left")
        missing = missing[missing["present"].isna()].merge(
            aside, on=["instrument", "participant"], how="left")
        missing["aside"] = missing["aside"].fillna(False).astype(bool)
        grouped = missing.groupby(["cohort", "instrument"])["aside"]
        counts.append(pd.DataFrame({"n_set_aside": grouped.sum(), "n_absent": grouped.size()
                                    - grouped.sum()}).reset_index().assign(wave=wave))
    at_first = people[people["wave"] == waves[0]][keys].assign(valid=True)
    lost = set_aside[set_aside["wave"] == waves[0]].merge(at_first, on=keys, how="left")
    lost = lost[lost["valid"].isna()].groupby(["cohort", "instrument"]).size()
    counts.append(lost.rename("n_set_aside").reset_index().assign(wave=waves[0]))
    found = pd.concat(counts, ignore_index=True).reindex(
        columns=["cohort", "instrument", "wave", "n_set_aside", "n_absent"])
    out = out.merge(found, on=["cohort", "wave", "instrument"], how="left")
    out["n_set_aside"] = out["n_set_aside"].fillna(0).astype("int64")
    later = out["wave"] != waves[0]
    out["n_absent"] = pd.array(np.where(later, out["n_absent"].fillna(0), np.nan), "Int64")
    order = {w: i for i, w in enumerate(waves)}
    out = out.sort_values(["cohort", "wave", "instrument"],
                          key=lambda c: c.map(order) if c.name == "wave" else c, kind="stable")
    return out.reset_index(drop=True)


# ---- verdicts -----------------------------------------------------------------

VERDICT_COLUMNS = ["verdict_family", "p_verdict", "verdict"]
VERDICT_MODELS = {"meta_reml": "pooled_d_z", "mixed_random_cohorts": "change"}


def verdict_family(rows: pd.DataFrame, primary) -> np.ndarray:
    """``primary`` or ``exploratory`` per row (instrument, scale, from_wave, to_wave), or ``all``
    for every row when no primary outcome is declared."""
    if not primary:
        return np.full(len(rows), "all", dtype=object)
    declared = {(o.instrument, o.scale, *(o.waves or (None, None))) for o in primary}
    keys = zip(rows["instrument"], rows["scale"], rows["from_wave"], rows["to_wave"])
    return np.array(["primary" if (i, s, f, t) in declared or (i, s, None, None) in declared
                     else "exploratory" for i, s, f, t in keys], dtype=object)


def change_verdicts(change: pd.DataFrame, primary=(), alpha: float = VERDICT_ALPHA
                    ) -> pd.DataFrame:
    """``change`` with each row's verdict family, family-adjusted p and verdict.

    The family is one cohort's rows of every scale and wave pair (without
    declared primary outcomes), or one cohort's primary outcomes and,
    separately, its other (exploratory) scales: Holm over the family keeps the
    chance of any false "improved" or "got worse" in a cohort's headlines at
    ``alpha`` (see :func:`pipelines.analysis.change.family_verdicts`).

    Examples
    --------
    >>> change = pd.DataFrame({"cohort": "c", "instrument": "i", "scale": ["a", "b"],
    ...     "from_wave": "pre", "to_wave": "post", "p": [0.01, 0.04], "d_z": [0.8, -0.3],
    ...     "improvement": "higher"})
    >>> change_verdicts(change)[["p_verdict", "verdict"]].values.tolist()
    [[0.02, 'improved'], [0.04, 'worsened']]
    """
    out = change.drop(columns=[c for c in VERDICT_COLUMNS if c in change.columns])
    out["verdict_family"] = verdict_family(out, primary)
    out["p_verdict"], out["verdict"] = family_verdicts(
        out["p"], out["d_z"], out["improvement"], out[["cohort", "verdict_family"]], alpha)
    return out


def model_verdicts(models: pd.DataFrame, improvement: dict[tuple[str, str], str], primary=(),
                   alpha: float = VERDICT_ALPHA) -> pd.DataFrame:
    """``models`` with verdicts on the program-level rows: the pooled d_z (``meta_reml``) and the
    mixed model's average change, each adjusted by Holm over its model's scales and wave pairs
    (the same families as :func:`change_verdicts`, the program in place of a cohort). Other
    rows have no verdict."""
    out = models.drop(columns=[c for c in VERDICT_COLUMNS if c in models.columns])
    rows = np.zeros(len(out), dtype=bool)
    for model, term in VERDICT_MODELS.items():
        rows |= ((out["model"] == model) & (out["term"] == term)).to_numpy()
    picked = out[rows]
    better = pd.Series([improvement.get((i, s), "") for i, s in
                        zip(picked["instrument"], picked["scale"])], index=picked.index)
    # d_z is signed positive = improvement already; the mixed model's change is to - from.
    sign = np.where(picked["model"] == "meta_reml", 1, better.map(improvement_sign))
    family = verdict_family(picked, primary)
    adjusted, verdict = family_verdicts(
        picked["p"], picked["estimate"] * sign, better,
        pd.DataFrame({"model": picked["model"], "family": family}, index=picked.index), alpha)
    out["verdict_family"] = pd.Series(family, index=picked.index).reindex(out.index)
    out["p_verdict"] = adjusted.reindex(out.index)
    out["verdict"] = verdict.reindex(out.index)
    return out


# ---- per-wave means ----------------------------------------------------------

WAVE_MEAN_COLUMNS = ["cohort", "wave", "instrument", "scale", "n", "mean", "sd", "ci_low",
                     "ci_high"]


def mean_intervals(n: pd.Series, mean: pd.Series, sd: pd.Series, level: float = 0.95
                   ) -> tuple[pd.Series, pd.Series]:
    """t-based CI of a mean from n, mean and SD (empty for n < 2)."""
    from scipy import stats

    se = sd / np.sqrt(n)
    crit = stats.t.ppf(1 - (1 - level) / 2, (n - 1).clip(lower=1))
    return (mean - crit * se).where(n > 1), (mean + crit * se).where(n > 1)


def pooled_means(groups: pd.DataFrame, by: list[str], level: float = 0.95) -> pd.DataFrame:
    """Groups' (n, mean, sd) combined into the figures of all their people, per ``by``.

    Exact: the pooled mean is the n-weighted mean and the pooled variance adds
    the within-group sums of squares and the groups' spread around it, so it
    equals the mean and SD computed from the people themselves. ``wave_means``
    pools its cohort rows this way, and reports pool the cohorts they publish.

    Examples
    --------
    >>> groups = pd.DataFrame({"w": "pre", "n": [2, 3], "mean": [1.5, 4.0],
    ...                        "sd": [0.7071067811865476, 1.0]})
    >>> pooled_means(groups, ["w"])[["n", "mean", "sd"]].round(6).values.tolist()
    [[5.0, 3.0, 1.581139]]
    """
    frame = groups[by + ["n", "mean", "sd"]].copy()
    frame["sum"] = frame["n"] * frame["mean"]
    frame["within"] = ((frame["n"] - 1) * frame["sd"] ** 2).where(frame["n"] > 1, 0.0)
    frame["square"] = frame["n"] * frame["mean"] ** 2
    total = frame.groupby(by, sort=True)[["n", "sum", "within", "square"]].sum()
    mean = total["sum"] / total["n"]
    spread = total["square"] - total["n"] * mean**2
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = ((total["within"] + spread) / (total["n"] - 1)).where(total["n"] > 1)
    out = pd.DataFrame({"n": total["n"].astype("int64"), "mean": mean,
                        "sd": np.sqrt(variance.clip(lower=0))})
    out["ci_low"], out["ci_high"] = mean_intervals(out["n"], out["mean"], out["sd"], level)
    return out.reset_index()


def wave_means(scores: pd.DataFrame, level: float = 0.95, scope: str = "all") -> pd.DataFrame:
    """Mean score with a t-based CI per cohort (and ALL) x wave x instrument x scale.

    Everyone with a score at the wave counts (not only people present at both
    waves: that is the ``change`` table's job). The ``ALL`` rows pool the
    cohort rows (:func:`pooled_means`).

    Examples
    --------
    >>> s = pd.DataFrame({"cohort": "c", "wave": "pre", "instrument": "i", "scale": "t",
    ...                   "score": [1.0, 2.0, 3.0]})
    >>> wave_means(s).query("cohort == 'c'")[["n", "mean", "sd"]].values.tolist()
    [[3.0, 2.0, 1.0]]
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, not {scope!r}")
    keys = ["wave", "instrument", "scale"]
    scored = scores[scores["score"].notna()]
    table = scored.groupby(["cohort", *keys])["score"].agg(n="count", mean="mean", sd="std")
    table = table.reset_index()
    table["ci_low"], table["ci_high"] = mean_intervals(table["n"], table["mean"], table["sd"],
                                                       level)
    parts = ([table] if scope != "pooled" else []) + (
        [pooled_means(table, keys, level).assign(cohort=POOLED)] if scope != "cohorts" else [])
    return pd.concat(parts, ignore_index=True)[WAVE_MEAN_COLUMNS]
