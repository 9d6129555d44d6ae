"""Item analysis: how each item of a scale or a knowledge test behaved.

Likert items follow ``psych::alpha``'s item statistics (mean, sd, r.drop,
alpha if the item is dropped) on the rows with the whole scale answered.
Knowledge items add classical test theory's difficulty, upper-lower
discrimination and a distractor analysis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


UPPER_LOWER_SHARE = 0.27  # Kelley (1939): top and bottom 27% by total score
HARD, EASY, LOW_R = 0.20, 0.90, 0.20


def _join_flags(*conditions: tuple[str, np.ndarray]) -> list[str]:
    """Per row, the codes whose condition holds, joined by ``;`` (in argument order)."""
    flags = np.full(len(conditions[0][1]), "", dtype=object)
    for code, hit in conditions:
        hit = np.asarray(hit, dtype=bool)
        if hit.any():
            before = flags[hit]
            flags[hit] = np.where(before == "", code, before + ";" + code)
    return flags.tolist()


# ---- every group at once ---------------------------------------------------------
# Segmented sums (np.add.reduceat, np.bincount) over the groups' rows; one group is a
# single scale or form.

ROUNDING = 1e-12  # relative size below which a variance or a correlation gap is rounding


def _repeated_labels(labels: list, times: int) -> pd.Index:
    """``labels`` repeated ``times`` over, as a column (each label converted once)."""
    return pd.Index(labels).take(np.tile(np.arange(len(labels)), times))


def _as_text(values: np.ndarray) -> pd.Index:
    """A column of strings (flags) with each distinct value converted once."""
    codes, distinct = pd.factorize(np.asarray(values, dtype=object))
    return pd.Index(list(distinct), dtype="str").take(codes)


def group_moments(x: np.ndarray, group: np.ndarray, n_groups: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, column means and centred cross-product sums of ``x`` per group.

    ``group`` numbers each row's group 0..n_groups-1. Returns counts (G,),
    means (G, k) (NaN for an empty group) and S (G, k, k) with
    S[g] = (X_g - mean_g)' (X_g - mean_g), so S[g] / (n_g - 1) is ``np.cov``.

    Examples
    --------
    >>> n, m, s = group_moments(np.array([[1., 2], [3, 2], [5, 7]]), np.array([0, 0, 1]), 2)
    >>> n.tolist(), m.tolist(), s[0].tolist()
    ([2, 1], [[2.0, 2.0], [5.0, 7.0]], [[2.0, 0.0], [0.0, 0.0]])
    """
    k = x.shape[1]
    counts = np.bincount(group, minlength=n_groups)
    sums, cross = np.zeros((n_groups, k)), np.zeros((n_groups, k, k))
    filled = counts > 0
    if not filled.any():
        return counts, np.full((n_groups, k), np.nan), cross
    order = np.argsort(group, kind="stable")
    starts = (np.cumsum(counts) - counts)[filled]  # rows sorted by group: one segment each
    x = x[order]
    sums[filled] = np.add.reduceat(x, starts, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = sums / counts[:, None]
    centred = x - means[group[order]]
    for i in range(k):  # item i with items i.. in one product and one segmented sum
        summed = np.add.reduceat(centred[:, i:i + 1] * centred[:, i:], starts, axis=0)
        cross[filled, i, i:] = summed
        cross[filled, i:, i] = summed
    return counts, means, cross


def _drop_statistics_by_group(cross: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Corrected item-total r (r_drop) and alpha if dropped of every item of every group.

    From each group's covariance matrix C: r_drop_i = corr(item_i, total - item_i) and
    alpha without item i, in closed form. Also each item's variance and rest-score
    variance. A rest-score variance within rounding of zero is zero (r_drop and
    alpha if dropped are then undefined).
    """
    n_groups, k, _ = cross.shape
    out = {name: np.full((n_groups, k), np.nan)
           for name in ("r_drop", "alpha_drop", "item_var", "rest_var")}
    ok = counts >= 2
    if not ok.any():
        return out
    c = cross[ok] / (counts[ok] - 1)[:, None, None]
    item_var = np.diagonal(c, axis1=1, axis2=2)
    col_sum = c.sum(axis=1)
    rest_var = col_sum.sum(axis=1)[:, None] - 2 * col_sum + item_var
    # A rest score that is constant in exact arithmetic can keep a rounding residue.
    noise = ROUNDING * (item_var.max(axis=1, keepdims=True) + 1.0)
    rest_var = np.where(np.abs(rest_var) < noise, 0.0, rest_var)
    out["item_var"][ok], out["rest_var"][ok] = item_var, rest_var
    if k < 2:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        r_drop = (col_sum - item_var) / np.sqrt(item_var * rest_var)
        alpha_drop = (k - 1) / (k - 2) * (1 - (item_var.sum(axis=1)[:, None] - item_var)
                                          / rest_var) if k > 2 else np.full(item_var.shape,
                                                                            np.nan)
    out["r_drop"][ok] = np.where((item_var > 0) & (rest_var > 0), r_drop, np.nan)
    out["alpha_drop"][ok] = np.where(rest_var > 0, alpha_drop, np.nan)
    return out


def likert_item_statistics(items: pd.DataFrame) -> pd.DataFrame:
    """Item statistics of one (reverse-keyed) scale, listwise within the scale (as psych::alpha).

    Columns: item, n, mean, sd, r_drop, alpha_if_dropped, flags
    (``possibly_miskeyed`` when r_drop < 0, ``constant_item``). One group of
    :func:`likert_item_statistics_by_group`.

    Examples
    --------
    >>> t = likert_item_statistics(pd.DataFrame({"a": [1, 2, 3, 4], "b": [2, 3, 3, 5],
    ...                                          "c": [4, 3, 2, 2]}))
    >>> t[["item", "r_drop", "flags"]].round(2).values.tolist()
    [['a', 0.32, ''], ['b', 0.93, ''], ['c', -0.87, 'possibly_miskeyed']]
    """
    table = likert_item_statistics_by_group(items, np.zeros(len(items), dtype=np.int64), 1)
    return table.drop(columns="group")


def likert_item_statistics_by_group(items: pd.DataFrame, group: np.ndarray, n_groups: int
                          ) -> pd.DataFrame:
    """Item statistics of a (reverse-keyed) scale in every group, listwise within the scale.

    psych::alpha's item statistics: n, mean, sd, r_drop (corrected item-total r),
    alpha_if_dropped, and flags (``possibly_miskeyed`` when r_drop < 0,
    ``constant_item``). ``group`` numbers each row's group 0..n_groups-1; every
    group gets its rows (``n`` = 0 when it has no complete row). Rows are
    group-major, then item, with a ``group`` column first.

    Examples
    --------
    >>> frame = pd.DataFrame({"a": [1, 2, 3, 4, 1, 2], "b": [2, 3, 3, 5, 1, 1],
    ...                       "c": [4, 3, 2, 2, 5, 4]})
    >>> t = likert_item_statistics_by_group(frame, np.array([0, 0, 0, 0, 1, 1]), 2)
    >>> t["n"].tolist()
    [4, 4, 4, 2, 2, 2]
    >>> t["r_drop"][:3].round(2).tolist()
    [0.32, 0.93, -0.87]
    """
    x = items.to_numpy(dtype=float)
    group = np.asarray(group, dtype=np.int64)
    n_items = x.shape[1]
    complete = ~np.isnan(x).any(axis=1)
    counts, means, cross = group_moments(x[complete], group[complete], n_groups)
    drop = _drop_statistics_by_group(cross, counts)
    with np.errstate(invalid="ignore"):
        sd = np.sqrt(drop["item_var"])  # NaN below 2 rows
    columns = {"n": np.repeat(counts, n_items).astype(np.int64), "mean": means,
               "sd": sd, "r_drop": drop["r_drop"], "alpha_if_dropped": drop["alpha_drop"]}
    columns = {name: np.array(v, dtype=float if name != "n" else np.int64).reshape(-1)
               for name, v in columns.items()}
    flags = np.array(_join_flags(("possibly_miskeyed", columns["r_drop"] < -1e-10),
                                 ("constant_item", columns["sd"] == 0)), dtype=object)
    return pd.DataFrame({"group": np.repeat(np.arange(n_groups), n_items),
                         "item": _repeated_labels(list(items.columns), n_groups),
                         **columns, "flags": _as_text(flags)})


def chosen_options(answers: pd.Series, options: list[str]) -> np.ndarray:
    """Which options each answer chose: rows x options, 1.0 when chosen (multi-select ``a;c``).

    Each distinct answer text is split once (a test has a handful).

    Examples
    --------
    >>> chosen_options(pd.Series(["a", "a;c", None]), ["a", "b", "c"]).tolist()
    [[1.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    """
    text = answers.astype("string").fillna("")
    codes, distinct = pd.factorize(text)
    member = np.array([[option in str(answer).split(";") for option in options]
                       for answer in distinct], dtype=float).reshape(len(distinct), len(options))
    return member[codes] if len(codes) else np.zeros((0, len(options)))


def _upper_lower_by_group(x: np.ndarray, group: np.ndarray, counts: np.ndarray,
                          share: float = UPPER_LOWER_SHARE) -> np.ndarray:
    """Upper-lower D of every group (ties at a boundary broken by row order)."""
    n_groups = len(counts)
    total = x.sum(axis=1)
    order = np.lexsort((np.arange(len(x)), -total, group))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ranked = group[order]
    rank = np.arange(len(x)) - starts[ranked]
    size = np.maximum(1, np.rint(share * counts)).astype(np.int64)
    upper = rank < size[ranked]
    lower = rank >= (counts - size)[ranked]
    d = np.full((n_groups, x.shape[1]), np.nan)
    ok = counts >= 2
    for j in range(x.shape[1]):
        column = x[order, j]
        hi = np.bincount(ranked[upper], weights=column[upper], minlength=n_groups)
        lo = np.bincount(ranked[lower], weights=column[lower], minlength=n_groups)
        d[ok, j] = hi[ok] / size[ok] - lo[ok] / size[ok]
    return d


def knowledge_item_statistics(answers: pd.DataFrame, correct: pd.DataFrame,
                               options: dict[str, list[str]], key: dict[str, list[str]]
                               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Item and distractor analysis of one knowledge-test form: one group of
    :func:`knowledge_items_by_group` (items table, options table).

    Examples
    --------
    >>> answers = pd.DataFrame({"q1": ["a", "a", "b", "c"], "q2": ["b", "b", "b", "a"]})
    >>> correct = pd.DataFrame({"q1": [1, 1, 0, 0], "q2": [1, 1, 1, 0]})
    >>> items, choices = knowledge_item_statistics(
    ...     answers, correct, {"q1": ["a", "b", "c"], "q2": ["a", "b"]}, {"q1": ["a"], "q2": ["b"]})
    >>> items["difficulty"].tolist(), choices["share"].tolist()[:3]
    ([0.5, 0.75], [0.5, 0.25, 0.25])
    """
    aligned = correct[list(answers.columns)].to_numpy(dtype=float)
    items, choices = knowledge_items_by_group(answers, aligned,
                                              np.zeros(len(answers), dtype=np.int64), options, key)
    return items.drop(columns="group"), choices.drop(columns="group")


def upper_lower_index(correct, share: float = UPPER_LOWER_SHARE) -> np.ndarray:
    """Discrimination index D = p(upper group) - p(lower group) per item (0/1 matrix).

    Groups are the top and bottom ``share`` of respondents by total score
    (at least one person each); ties at a boundary are broken by row order.

    Examples
    --------
    >>> upper_lower_index(np.array([[1, 1], [1, 0], [0, 1], [0, 0.]]), share=0.5).tolist()
    [1.0, 0.0]
    """
    x = np.asarray(correct, dtype=float)
    return _upper_lower_by_group(x, np.zeros(len(x), dtype=np.int64), np.array([len(x)]),
                                 share)[0]


def knowledge_items_by_group(
    answers: pd.DataFrame, correct: np.ndarray, group: np.ndarray,
    options: dict[str, list[str]], key: dict[str, list[str]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Classical item analysis and distractor analysis of one test form, every group at once.

    Items: n, difficulty (share correct), sd, r_drop (corrected point-biserial),
    alpha_if_dropped, discrimination (upper-lower D, top and bottom 27% by total),
    flags: ``too_hard`` (p < .20), ``too_easy`` (p > .90), ``low_discrimination``
    (r_drop < .20), ``possible_wrong_key`` (a distractor's point-biserial with the
    rest score is positive and above the key's: stronger people chose it).
    Options: share choosing each option and its point-biserial with the rest score
    (the number correct on the other items; the key's equals the item's r_drop).

    Parameters
    ----------
    answers : raw answers of the rows on the form (option codes; multi-select as
        ``a;c``), the form's items as columns.
    correct : their 0/1 matrix (rows x the same items).
    group : group number of each row; every group present gets its rows.
    options : item -> its option codes.
    key : item -> the keyed option codes.

    Returns the items table and the options table (with ``n_answered``), each
    with a ``group`` column, group-major in increasing group number, then item
    (then option) in the order given.
    """
    x = np.asarray(correct, dtype=float)
    group = np.asarray(group, dtype=np.int64)
    items = list(answers.columns)
    n_items = len(items)
    present, unit = np.unique(group, return_inverse=True)
    n_units = len(present)
    counts, means, cross = group_moments(x, unit, n_units)
    drop = _drop_statistics_by_group(cross, counts)
    with np.errstate(invalid="ignore"):
        sd = np.sqrt(drop["item_var"])
    discrimination = _upper_lower_by_group(x, unit, counts)

    total = x.sum(axis=1)
    option_rows, pb_parts = [], []
    for j, item in enumerate(items):
        rest = total - x[:, j]
        rest_mean = np.bincount(unit, weights=rest, minlength=n_units) / counts
        rest_c = rest - rest_mean[unit]
        rest_ss = np.bincount(unit, weights=rest_c * rest_c, minlength=n_units)
        codes = [str(o) for o in options[item]]
        chose = chosen_options(answers[item], codes)
        for o, option in enumerate(codes):
            n_choosing = np.bincount(unit, weights=chose[:, o], minlength=n_units)
            chose_c = chose[:, o] - (n_choosing / counts)[unit]
            ss = np.bincount(unit, weights=chose_c * chose_c, minlength=n_units)
            sp = np.bincount(unit, weights=chose_c * rest_c, minlength=n_units)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.clip(sp / np.sqrt(ss * rest_ss), -1.0, 1.0)
            r = np.where((counts >= 2) & (n_choosing > 0) & (n_choosing < counts)
                         & (rest_ss > 0), r, np.nan)
            option_rows.append((j, item, option, option in key[item], n_choosing))
            pb_parts.append(r)
    is_key = np.array([row[3] for row in option_rows], dtype=bool)
    item_of = np.array([row[0] for row in option_rows], dtype=np.int64)
    pb = np.column_stack(pb_parts) if pb_parts else np.zeros((n_units, 0))  # units x options

    best = np.full((n_units, n_items), -np.inf)  # units x items: the best keyed point-biserial
    for o in np.flatnonzero(is_key):
        best[:, item_of[o]] = np.maximum(best[:, item_of[o]],
                                         np.where(np.isnan(pb[:, o]), -np.inf, pb[:, o]))
    # A distractor beats the key when its point-biserial is positive and above the key's,
    # both by more than rounding (a tie is no evidence of a wrong key).
    distractor = ~is_key
    with np.errstate(invalid="ignore"):
        beats = distractor[None, :] & (pb > ROUNDING) & (pb > best[:, item_of] + ROUNDING)
    wrong_key = np.zeros((n_units, n_items), dtype=bool)
    for o in np.flatnonzero(distractor):
        wrong_key[:, item_of[o]] |= beats[:, o]

    n_choosing = np.column_stack([row[4] for row in option_rows]) if option_rows else \
        np.zeros((n_units, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = n_choosing / counts[:, None]
    n_options = len(option_rows)
    options_table = pd.DataFrame({
        "group": np.repeat(present, n_options),
        "item": _repeated_labels([row[1] for row in option_rows], n_units),
        "option": _repeated_labels([row[2] for row in option_rows], n_units),
        "is_key": np.tile(is_key, n_units),
        "n_choosing": n_choosing.reshape(-1).astype(np.int64),
        "share": share.reshape(-1),
        "point_biserial": pb.reshape(-1),
        "n_answered": np.repeat(counts, n_options).astype(np.int64),
    })

    columns = {"n": np.repeat(counts, n_items).astype(np.int64), "difficulty": means.reshape(-1),
               "sd": sd.reshape(-1), "r_drop": drop["r_drop"].reshape(-1),
               "alpha_if_dropped": drop["alpha_drop"].reshape(-1),
               "discrimination": discrimination.reshape(-1)}
    flags = np.array(_join_flags(
        ("too_hard", columns["difficulty"] < HARD), ("too_easy", columns["difficulty"] > EASY),
        ("low_discrimination", columns["r_drop"] < LOW_R - ROUNDING),
        ("possible_wrong_key", wrong_key.reshape(-1))), dtype=object)
    items_table = pd.DataFrame({"group": np.repeat(present, n_items),
                                "item": _repeated_labels(items, n_units),
                                **columns, "flags": _as_text(flags)})
    return items_table, options_table
