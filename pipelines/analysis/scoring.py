"""Score canonical responses: subscale scores of scales, percent correct of tests.

Pure functions over DataFrames. The result follows the ``scores`` table of
pipelines/schema.yaml: cohort, participant, wave, instrument, scale, score,
items_answered, items_total, prorated, band.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from instruments.model import Instrument, Subscale
from pipelines.analysis.equating import form_equating

ID_COLUMNS = ["cohort", "participant", "wave", "instrument"]
SCORE_COLUMNS = [
    *ID_COLUMNS, "scale", "score", "items_answered", "items_total", "prorated", "band",
]


def reverse_keyed(responses: pd.DataFrame, inst: Instrument) -> pd.DataFrame:
    """Item columns with every reverse-keyed item recoded as (min + max) - x.

    An item is reversed when any subscale lists it in ``reverse``; its range
    comes from the item's response options (1-5 gives 6 - x).

    Examples
    --------
    >>> from instruments import load_builtin
    >>> proqol = load_builtin()["proqol"]
    >>> frame = pd.DataFrame({i: [1.0] for i in proqol.item_ids})
    >>> reverse_keyed(frame, proqol)[["proqol_01", "proqol_02"]].iloc[0].tolist()
    [5.0, 1.0]
    """
    items = responses[inst.item_ids].astype(float).copy()
    reversed_ids = {i for sub in inst.subscales for i in sub.reverse}
    for item_id in reversed_ids:
        low, high = inst.code_range(item_id)
        items[item_id] = (low + high) - items[item_id]
    return items


def subscale_scores(keyed: pd.DataFrame, sub: Subscale) -> pd.DataFrame:
    """Score one subscale from reverse-keyed items.

    ``sum``: with every item answered, the plain sum; with some missing but at
    least ``min_items`` answered, mean of answered x number of items
    (prorated); below ``min_items``, NaN. ``mean``: mean of answered items,
    NaN below ``min_items``.

    Examples
    --------
    >>> from instruments.model import Subscale, Text
    >>> sub = Subscale(id="s", label=Text(), items=["a", "b", "c", "d"], min_items=3)
    >>> keyed = pd.DataFrame({"a": [1, 1, 1], "b": [2, 2, None], "c": [3, None, None],
    ...                       "d": [4, 4, 4]}, dtype=float)
    >>> subscale_scores(keyed, sub)["score"].tolist()
    [10.0, 9.333333333333334, nan]
    """
    items = keyed[sub.items]
    answered = items.notna().sum(axis=1)
    enough = answered >= sub.required_items
    mean_answered = items.mean(axis=1)
    k = len(sub.items)
    if sub.scoring == "mean":
        score = mean_answered
    elif sub.proration == "mean_of_answered":
        score = mean_answered * k
    else:
        score = items.sum(axis=1).where(answered == k)
    score = score.where(enough)
    distinct = score.dropna().unique()  # scores repeat: look each one up once
    bands = score.map(dict(zip(distinct, (sub.band_of(s) for s in distinct))))
    return pd.DataFrame({
        "scale": sub.id,
        "score": score.astype(float),
        "items_answered": answered.astype("int64"),
        "items_total": k,
        "prorated": enough & (answered < k) & (sub.scoring == "sum"),
        "band": bands.astype("str"),
    })


def score_scale(responses: pd.DataFrame, inst: Instrument) -> pd.DataFrame:
    """Long scores of every subscale of a scale instrument, one row per person x subscale."""
    keyed = reverse_keyed(responses, inst)
    parts = [
        pd.concat([responses[ID_COLUMNS].reset_index(drop=True),
                   subscale_scores(keyed, sub).reset_index(drop=True)], axis=1)
        for sub in inst.subscales
    ]
    return pd.concat(parts, ignore_index=True)[SCORE_COLUMNS] if parts else empty_scores()


def correct_matrix(responses: pd.DataFrame, inst: Instrument) -> pd.DataFrame:
    """1/0 per item on each row's form (unanswered counts as 0); NaN off the form.

    A multi-select item is correct only when exactly the keyed options are chosen.
    """
    correct = np.full((len(responses), len(inst.item_ids)), np.nan)
    column = {item_id: j for j, item_id in enumerate(inst.item_ids)}
    form_of_row = responses["form"].astype(str).to_numpy()
    coded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for form in inst.forms:
        rows = form_of_row == form.id
        if not rows.any():
            continue
        for item_id in form.items:
            key = form.key[item_id]
            wanted = ";".join(sorted(str(k) for k in key)) if isinstance(key, list) else str(key)
            if item_id not in coded:  # each distinct answer compared once; missing: -1
                coded[item_id] = pd.factorize(responses[item_id])
            codes, distinct = coded[item_id]
            same = np.array([answer == wanted for answer in distinct] + [False], dtype=bool)
            correct[rows, column[item_id]] = same[codes[rows]]
    return pd.DataFrame(correct, index=responses.index, columns=inst.item_ids)


def score_knowledge(responses: pd.DataFrame, inst: Instrument,
                    baseline_wave: str | None = None) -> pd.DataFrame:
    """Percent correct on the row's whole form and on the anchor items.

    With two or more forms sharing anchor items and a ``baseline_wave``, also
    ``equated_percent_correct``: every form put on the first form's scale by
    Tucker linear equating fitted at the baseline wave (not clipped to 0-100).
    """
    correct = correct_matrix(responses, inst)
    answered = responses[inst.item_ids].notna() & correct.notna()
    ids = responses[ID_COLUMNS].reset_index(drop=True)
    parts = {}
    for scale, columns in (("percent_correct", inst.item_ids),
                           ("anchor_percent_correct", inst.anchor_items)):
        if not columns:
            continue
        on_form = correct[columns].notna().sum(axis=1)
        parts[scale] = ids.assign(
            scale=scale,
            score=(100 * correct[columns].sum(axis=1) / on_form).reset_index(drop=True),
            items_answered=answered[columns].sum(axis=1).astype("int64").reset_index(drop=True),
            items_total=on_form.astype("int64").reset_index(drop=True),
            prorated=False,
            band=pd.Series([None] * len(ids), dtype="str"),
        )
    lines, _ = equating_lines(responses, parts, inst, baseline_wave)
    if lines:
        form = responses["form"].astype(str).reset_index(drop=True)
        slope = form.map({f: line[0] for f, line in lines.items()}).astype(float)
        intercept = form.map({f: line[1] for f, line in lines.items()}).astype(float)
        equated = parts["percent_correct"].assign(scale="equated_percent_correct")
        parts["equated"] = equated.assign(score=equated["score"] * slope + intercept)
    return pd.concat(parts.values(), ignore_index=True)[SCORE_COLUMNS]


def equating_lines(responses: pd.DataFrame, parts: dict, inst: Instrument,
                   baseline_wave: str | None) -> tuple[dict, list[str]]:
    """{form: (slope, intercept)} onto the first form, and flags; {} when not applicable."""
    if baseline_wave is None or len(inst.forms) < 2 or "anchor_percent_correct" not in parts:
        return {}, []
    base = pd.DataFrame({
        "form": responses["form"].astype(str).to_numpy(),
        "wave": responses["wave"].to_numpy(),
        "percent_correct": parts["percent_correct"]["score"].to_numpy(),
        "anchor_percent_correct": parts["anchor_percent_correct"]["score"].to_numpy(),
    })
    return form_equating(base[base["wave"] == baseline_wave], inst.forms[0].id)


def score_responses(
    valid: dict[str, pd.DataFrame], instruments: dict[str, Instrument],
    baseline_wave: str | None = None,
) -> pd.DataFrame:
    """The ``scores`` table for every instrument's valid responses.

    ``baseline_wave`` (the program's first wave) enables form equating of
    knowledge tests with several forms.
    """
    parts = []
    for inst_id, frame in valid.items():
        if frame.empty:
            continue
        inst = instruments[inst_id]
        if inst.kind == "knowledge":
            parts.append(score_knowledge(frame, inst, baseline_wave))
        elif inst.kind == "rating":  # the mean over raters (pipelines/competence.py)
            from pipelines.competence import rated_score_rows

            parts.append(rated_score_rows(frame, inst, SCORE_COLUMNS))
        else:
            parts.append(score_scale(frame, inst))
    return pd.concat(parts, ignore_index=True) if parts else empty_scores()


def empty_scores() -> pd.DataFrame:
    """A scores table with no rows."""
    return pd.DataFrame(columns=SCORE_COLUMNS)
