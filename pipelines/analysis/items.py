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
    size = len(conditions[0][1])
    return [";".join(code for code, hit in conditions if hit[i]) for i in range(size)]


def likert_items(items: pd.DataFrame) -> pd.DataFrame:
    """Item statistics of one (reverse-keyed) scale, listwise within the scale.

    Columns: item, n, mean, sd, r_drop, alpha_if_dropped, flags
    (``possibly_miskeyed`` when r_drop < 0, ``constant_item``).

    Examples
    --------
    >>> t = likert_items(pd.DataFrame({"a": [1, 2, 3, 4], "b": [2, 3, 3, 5],
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
