"""Item analysis: how each item of a scale or a knowledge test behaved.

Likert items follow ``psych::alpha``'s item statistics (mean, sd, r.drop,
alpha if the item is dropped) on the rows with the whole scale answered.
Knowledge items add classical test theory's difficulty, upper-lower
discrimination and a distractor analysis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.analysis.reliability import complete_matrix

UPPER_LOWER_SHARE = 0.27  # Kelley (1939): top and bottom 27% by total score
HARD, EASY, LOW_R = 0.20, 0.90, 0.20


def drop_item_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corrected item-total r (r_drop) and alpha if dropped, for every item at once.

    From the covariance matrix C: r_drop_i = corr(item_i, total - item_i) and
    alpha without item i, both in closed form (no loop over items).

    Examples
    --------
    >>> r_drop, alpha_drop = drop_item_statistics(np.array([[1, 2, 1], [2, 3, 3],
    ...     [3, 3, 2], [4, 5, 4], [2, 2, 3.]]))
    >>> r_drop.round(3).tolist(), alpha_drop.round(3).tolist()
    ([0.881, 0.866, 0.743], [0.833, 0.844, 0.943])
    """
    n, k = x.shape
    if n < 2 or k < 2:
        return np.full(k, np.nan), np.full(k, np.nan)
    c = np.atleast_2d(np.cov(x, rowvar=False))
    item_var, col_sum, total_var = np.diag(c), c.sum(axis=0), c.sum()
    rest_var = total_var - 2 * col_sum + item_var
    with np.errstate(divide="ignore", invalid="ignore"):
        r_drop = (col_sum - item_var) / np.sqrt(item_var * rest_var)
        alpha_drop = (k - 1) / (k - 2) * (1 - (np.trace(c) - item_var) / rest_var) \
            if k > 2 else np.full(k, np.nan)
    r_drop = np.where((item_var > 0) & (rest_var > 0), r_drop, np.nan)
    alpha_drop = np.where(rest_var > 0, alpha_drop, np.nan)
    return r_drop, alpha_drop


def _join_flags(*conditions: tuple[str, np.ndarray]) -> list[str]:
    """Per row, the codes whose condition holds, joined by ``;`` (in argument order)."""
    flags = np.full(len(conditions[0][1]), "", dtype=object)
    for code, hit in conditions:
        hit = np.asarray(hit, dtype=bool)
        if hit.any():
            before = flags[hit]
            flags[hit] = np.where(before == "", code, before + ";" + code)
    return flags.tolist()


def likert_item_statistics(items: pd.DataFrame) -> pd.DataFrame:
    """Item statistics of one (reverse-keyed) scale, listwise within the scale.

    Columns: item, n, mean, sd, r_drop, alpha_if_dropped, flags
    (``possibly_miskeyed`` when r_drop < 0, ``constant_item``).

    Examples
    --------
    >>> t = likert_item_statistics(pd.DataFrame({"a": [1, 2, 3, 4], "b": [2, 3, 3, 5],
    ...                                "c": [4, 3, 2, 2]}))
    >>> t[["item", "r_drop", "flags"]].round(2).values.tolist()
    [['a', 0.32, ''], ['b', 0.93, ''], ['c', -0.87, 'possibly_miskeyed']]
    """
    x = complete_matrix(items)
    r_drop, alpha_drop = drop_item_statistics(x)
    sd = x.std(axis=0, ddof=1) if len(x) > 1 else np.full(x.shape[1], np.nan)
    return pd.DataFrame({
        "item": list(items.columns),
        "n": len(x),
        "mean": x.mean(axis=0) if len(x) else np.nan,
        "sd": sd,
        "r_drop": r_drop,
        "alpha_if_dropped": alpha_drop,
        "flags": _join_flags(("possibly_miskeyed", r_drop < -1e-10), ("constant_item", sd == 0)),
    })


def upper_lower_index(correct: np.ndarray, share: float = UPPER_LOWER_SHARE) -> np.ndarray:
    """Discrimination index D = p(upper group) - p(lower group) per item.

    Groups are the top and bottom ``share`` of respondents by total score
    (at least one person each); ties at a boundary are broken by row order.

    Examples
    --------
    >>> upper_lower_index(np.array([[1, 1], [1, 0], [0, 1], [0, 0.]]), share=0.5).tolist()
    [1.0, 0.0]
    """
    n = len(correct)
    if n < 2:
        return np.full(correct.shape[1], np.nan)
    size = max(1, int(round(share * n)))
    order = np.argsort(-correct.sum(axis=1), kind="stable")
    return correct[order[:size]].mean(axis=0) - correct[order[-size:]].mean(axis=0)


def _chose(answers: pd.Series, option: str) -> np.ndarray:
    """1 when ``option`` is the answer (or one of a multi-select's ``;`` answers)."""
    text = answers.astype("string").fillna("")
    return text.str.split(";").map(lambda chosen: option in chosen).to_numpy(dtype=float)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def distractors(
    answers: pd.DataFrame, correct: pd.DataFrame, options: dict[str, list[str]],
    key: dict[str, list[str]],
) -> pd.DataFrame:
    """Share choosing each option and that choice's point-biserial with the rest score.

    The rest score is the number correct on the other items of the form, so the
    keyed option's point-biserial equals the item's r_drop. A distractor with a
    positive point-biserial above the key's (stronger people chose it) suggests
    a wrong key.

    Parameters
    ----------
    answers : the raw answers (option codes; multi-select as ``a;c``), rows = people.
    correct : 1/0 per item for the same rows, every item on the form.
    options : item -> its option codes.
    key : item -> the keyed option codes.

    Examples
    --------
    >>> answers = pd.DataFrame({"q1": ["a", "a", "b", "c"], "q2": ["b", "b", "b", "a"]})
    >>> correct = pd.DataFrame({"q1": [1, 1, 0, 0], "q2": [1, 1, 1, 0]})
    >>> t = distractors(answers, correct, {"q1": ["a", "b", "c"], "q2": ["a", "b"]},
    ...                 {"q1": ["a"], "q2": ["b"]})
    >>> t[["item", "option", "is_key", "share"]].values.tolist()[:3]
    [['q1', 'a', True, 0.5], ['q1', 'b', False, 0.25], ['q1', 'c', False, 0.25]]
    """
    total = correct.to_numpy(dtype=float).sum(axis=1)
    rows = []
    for item in correct.columns:
        rest = total - correct[item].to_numpy(dtype=float)
        for option in options[item]:
            chose = _chose(answers[item], str(option))
            rows.append({"item": item, "option": str(option),
                         "is_key": str(option) in key[item], "n_choosing": int(chose.sum()),
                         "share": float(chose.mean()) if len(chose) else np.nan,
                         "point_biserial": _correlation(chose, rest)})
    return pd.DataFrame(rows, columns=["item", "option", "is_key", "n_choosing", "share",
                                       "point_biserial"])


def _distractors_beating_key(options_table: pd.DataFrame) -> set[str]:
    """Items where a distractor has a positive point-biserial above the key's.

    Requiring it to beat the key keeps a rarely chosen distractor's noise (one
    strong person choosing it) from flagging sound items in small cohorts,
    while a real miskey, whose true answer is the best-discriminating option,
    is still caught.
    """
    if options_table.empty:
        return set()
    is_key = options_table["is_key"].astype(bool)
    key_r = options_table[is_key].groupby("item")["point_biserial"].max()
    distractor = options_table[~is_key]
    beats = (distractor["point_biserial"] > 0) & (
        distractor["point_biserial"] > distractor["item"].map(key_r).fillna(-np.inf))
    return set(distractor.loc[beats, "item"])


def knowledge_items(correct: pd.DataFrame, options_table: pd.DataFrame) -> pd.DataFrame:
    """Classical item analysis of one test form (0/1 matrix, every item on the form).

    Columns: item, n, difficulty (share correct), sd, r_drop (corrected
    point-biserial), alpha_if_dropped, discrimination (upper-lower D), flags:
    ``too_hard`` (p < .20), ``too_easy`` (p > .90), ``low_discrimination``
    (r_drop < .20), ``possible_wrong_key`` (a distractor's point-biserial is
    positive and higher than the key's).

    Examples
    --------
    >>> correct = pd.DataFrame({"q1": [1, 1, 0, 0, 1], "q2": [1, 1, 1, 0, 1],
    ...                         "q3": [1, 0, 0, 0, 1]})
    >>> t = knowledge_items(correct, pd.DataFrame(columns=["item", "is_key", "point_biserial"]))
    >>> t[["item", "difficulty", "flags"]].values.tolist()
    [['q1', 0.6, ''], ['q2', 0.8, ''], ['q3', 0.4, '']]
    """
    x = correct.to_numpy(dtype=float)
    r_drop, alpha_drop = drop_item_statistics(x)
    p = x.mean(axis=0) if len(x) else np.full(x.shape[1], np.nan)
    wrong_key = _distractors_beating_key(options_table)
    return pd.DataFrame({
        "item": list(correct.columns),
        "n": len(x),
        "difficulty": p,
        "sd": x.std(axis=0, ddof=1) if len(x) > 1 else np.nan,
        "r_drop": r_drop,
        "alpha_if_dropped": alpha_drop,
        "discrimination": upper_lower_index(x),
        "flags": _join_flags(("too_hard", p < HARD), ("too_easy", p > EASY),
                             ("low_discrimination", r_drop < LOW_R),
                             ("possible_wrong_key", np.isin(correct.columns, sorted(wrong_key)))),
    })


# ---- every group at once --------------------------------------------------------
# The functions above analyse one group (cohort x wave, form) and are the reference
# implementation (golden tests against R psych). The ones below give the same tables
# for many groups in one pass: segmented sums (np.add.reduceat, np.bincount) instead
# of a Python loop over groups. They agree with the reference to rounding (~1e-15); where a
# flag or a NaN could turn on that rounding (a zero variance reached by
# cancellation, a statistic on a flag's threshold, a distractor tied with the key
# or with zero) the figures come from the reference functions themselves, so
# flags, NaNs and counts are the reference's.

EDGE = 1e-9  # closer than this to a threshold: decided by the reference function


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
    """:func:`drop_item_statistics` of every group from its cross-product sums.

    Also returns each item's variance and rest-score variance (the latter from the
    covariance sums, as the reference computes it) for the edge checks.
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


def _on_edge(drop: dict[str, np.ndarray]) -> np.ndarray:
    """Groups whose "variance > 0" tests could go either way by rounding.

    A rest-score variance within EDGE of zero, unless every other item is
    constant (then every term is an exact zero, here and in the reference), or
    an item variance within EDGE of zero but not zero.
    """
    item_var, rest_var = drop["item_var"], drop["rest_var"]
    scale = np.nanmax(np.abs(item_var), axis=1, initial=0.0)[:, None] + 1.0
    constant = np.nan_to_num(item_var, nan=1.0) == 0
    others_constant = constant.sum(axis=1)[:, None] - constant >= item_var.shape[1] - 1
    tiny_rest = (np.abs(rest_var) < EDGE * scale) & ~others_constant
    tiny_item = (np.abs(item_var) < EDGE * scale) & ~constant
    return (tiny_rest | tiny_item).any(axis=1)


def likert_item_statistics_by_group(items: pd.DataFrame, group: np.ndarray, n_groups: int
                          ) -> pd.DataFrame:
    """:func:`likert_item_statistics` of every group at once.

    ``group`` numbers each row's group 0..n_groups-1; every group gets its rows
    (``n`` = 0 when it has no complete row). Rows are group-major, then item, with
    a ``group`` column first. Groups with fewer than 3 complete rows or a variance
    on the edge of zero are computed by :func:`likert_item_statistics`.

    Examples
    --------
    >>> frame = pd.DataFrame({"a": [1, 2, 3, 4, 1, 2], "b": [2, 3, 3, 5, 1, 1],
    ...                       "c": [4, 3, 2, 2, 5, 4]})
    >>> t = likert_item_statistics_by_group(frame, np.array([0, 0, 0, 0, 1, 1]), 2)
    >>> t["n"].tolist()
    [4, 4, 4, 2, 2, 2]
    >>> bool(np.allclose(t["r_drop"][:3], likert_item_statistics(frame.iloc[:4])["r_drop"]))
    True
    """
    x = items.to_numpy(dtype=float)
    group = np.asarray(group, dtype=np.int64)
    n_items = x.shape[1]
    complete = ~np.isnan(x).any(axis=1)
    counts, means, cross = group_moments(x[complete], group[complete], n_groups)
    drop = _drop_statistics_by_group(cross, counts)
    with np.errstate(invalid="ignore"):
        sd = np.sqrt(drop["item_var"])  # NaN below 2 rows, as the reference
    columns = {"n": np.repeat(counts, n_items).astype(np.int64), "mean": means,
               "sd": sd, "r_drop": drop["r_drop"], "alpha_if_dropped": drop["alpha_drop"]}
    columns = {name: np.array(v, dtype=float if name != "n" else np.int64).reshape(-1)
               for name, v in columns.items()}
    flags = np.array(_join_flags(("possibly_miskeyed", columns["r_drop"] < -1e-10),
                                 ("constant_item", columns["sd"] == 0)), dtype=object)
    for g in np.flatnonzero((counts < 3) | _on_edge(drop)):
        ref = likert_item_statistics(items[group == g])
        at = slice(g * n_items, (g + 1) * n_items)
        for name in columns:
            columns[name][at] = ref[name].to_numpy()
        flags[at] = ref["flags"].to_numpy(dtype=object)
    return pd.DataFrame({"group": np.repeat(np.arange(n_groups), n_items),
                         "item": _repeated_labels(list(items.columns), n_groups),
                         **columns, "flags": _as_text(flags)})


def chosen_options(answers: pd.Series, options: list[str]) -> np.ndarray:
    """:func:`_chose` for every option at once: rows x options, 1.0 when chosen.

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
    """:func:`upper_lower_index` of every group (ties broken by row order, as there)."""
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


def knowledge_items_by_group(
    answers: pd.DataFrame, correct: np.ndarray, group: np.ndarray,
    options: dict[str, list[str]], key: dict[str, list[str]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`knowledge_items` and :func:`distractors` of one form, every group at once.

    Parameters
    ----------
    answers : raw answers of the rows on the form, the form's items as columns.
    correct : their 0/1 matrix (rows x the same items).
    group : group number of each row; every group present gets its rows.
    options, key : as for :func:`distractors`.

    Returns the items table and the options table (with ``n_answered``), each
    with a ``group`` column, group-major in increasing group number, then item
    (then option) in the reference's order.
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
    rows_of = np.split(np.argsort(unit, kind="stable"), np.cumsum(counts)[:-1])

    total = x.sum(axis=1)
    option_rows, pb_parts, chose_parts = [], [], []
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
            chose_parts.append(chose[:, o])
    is_key = np.array([row[3] for row in option_rows], dtype=bool)
    item_of = np.array([row[0] for row in option_rows], dtype=np.int64)
    pb = np.column_stack(pb_parts) if pb_parts else np.zeros((n_units, 0))  # units x options

    def reference_pb(u: int, o: int) -> float:  # as distractors() computes it
        rows = rows_of[u]
        return _correlation(chose_parts[o][rows], total[rows] - x[rows, option_rows[o][0]])

    def key_r() -> np.ndarray:  # units x items: the best keyed point-biserial, -inf if none
        best = np.full((n_units, n_items), -np.inf)
        for o in np.flatnonzero(is_key):
            current = best[:, item_of[o]]
            value = np.where(np.isnan(pb[:, o]), -np.inf, pb[:, o])
            best[:, item_of[o]] = np.maximum(current, value)
        return best

    # "pb > 0 and pb > key's" where a distractor is tied with zero (and the key is
    # not clearly positive) or with a key that is not clearly negative: the
    # reference's rounding decides, so its point-biserials are taken.
    best = key_r()
    distractor = ~is_key
    with np.errstate(invalid="ignore"):
        tied = distractor[None, :] & np.isfinite(pb) & (
            ((np.abs(pb) < EDGE) & (best[:, item_of] < EDGE))
            | ((np.abs(pb - best[:, item_of]) < EDGE) & (pb > -EDGE)))
    for u, o in zip(*np.nonzero(tied)):
        for other in np.flatnonzero(item_of == item_of[o]):
            if other == o or is_key[other]:
                pb[u, other] = reference_pb(u, other)
    if tied.any():
        best = key_r()
    beats = distractor[None, :] & (pb > 0) & (pb > best[:, item_of])
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
        ("low_discrimination", columns["r_drop"] < LOW_R),
        ("possible_wrong_key", wrong_key.reshape(-1))), dtype=object)
    with np.errstate(invalid="ignore"):
        near_low_r = (np.abs(drop["r_drop"] - LOW_R) < EDGE).any(axis=1)
    for u in np.flatnonzero((counts < 3) | _on_edge(drop) | near_low_r):
        rows = rows_of[u]
        mine = options_table.iloc[u * n_options:(u + 1) * n_options]
        ref = knowledge_items(pd.DataFrame(x[rows], columns=items), mine)
        at = slice(u * n_items, (u + 1) * n_items)
        for name in columns:
            columns[name][at] = ref[name].to_numpy()
        flags[at] = ref["flags"].to_numpy(dtype=object)
    items_table = pd.DataFrame({"group": np.repeat(present, n_items),
                                "item": _repeated_labels(items, n_units),
                                **columns, "flags": _as_text(flags)})
    return items_table, options_table
