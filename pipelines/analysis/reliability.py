"""Internal-consistency reliability of one scale (a respondents x items matrix).

Missing data rule: listwise within a scale (a respondent enters only with every
item of the scale answered), stated in the output as ``missing_rule``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

MISSING_RULE = "listwise within scale"


def _complete_matrix(items: pd.DataFrame | np.ndarray) -> np.ndarray:
    x = np.asarray(items, dtype=float)
    if x.ndim != 2:
        raise ValueError("items must be a 2-D respondents x items matrix")
    return x[~np.isnan(x).any(axis=1)]


def cronbach_alpha(items: pd.DataFrame | np.ndarray) -> float:
    """Cronbach's (raw) alpha, as psych::alpha's ``raw_alpha``.

    alpha = k/(k-1) * (1 - sum(item variances) / variance(total)), on complete rows.
    NaN when fewer than 2 complete rows, fewer than 2 items, or a zero-variance total.

    Examples
    --------
    >>> round(cronbach_alpha([[1, 2], [2, 3], [3, 3], [4, 5]]), 4)
    0.96
    """
    x = _complete_matrix(items)
    n, k = x.shape
    if n < 2 or k < 2:
        return float("nan")
    total_var = x.sum(axis=1).var(ddof=1)
    if total_var == 0:
        return float("nan")
    return float(k / (k - 1) * (1 - x.var(axis=0, ddof=1).sum() / total_var))


def feldt_ci(alpha: float, n: int, k: int, level: float = 0.95) -> tuple[float, float]:
    """Feldt (1965) confidence interval for alpha, df1 = n-1, df2 = (n-1)(k-1).

    Examples
    --------
    >>> low, high = feldt_ci(0.8, n=30, k=10)
    >>> round(low, 3), round(high, 3)
    (0.673, 0.892)
    """
    if not np.isfinite(alpha) or n < 2 or k < 2:
        return float("nan"), float("nan")
    df1, df2 = n - 1, (n - 1) * (k - 1)
    tail = (1 - level) / 2
    low = 1 - (1 - alpha) * stats.f.ppf(1 - tail, df1, df2)
    high = 1 - (1 - alpha) * stats.f.ppf(tail, df1, df2)
    return float(low), float(high)


def scale_reliability(items: pd.DataFrame | np.ndarray, level: float = 0.95) -> dict:
    """All reliability figures of one scale, as a flat dict with stable keys.

    Examples
    --------
    >>> r = scale_reliability([[1, 2], [2, 3], [3, 3], [4, 5]])
    >>> r["n"], r["k"], round(r["alpha"], 4)
    (4, 2, 0.96)
    """
    x = _complete_matrix(items)
    n, k = x.shape
    alpha = cronbach_alpha(x)
    low, high = feldt_ci(alpha, n, k, level)
    return {
        "n": n,
        "k": k,
        "alpha": alpha,
        "alpha_ci_low": low,
        "alpha_ci_high": high,
        "alpha_ci_method": "feldt",
        "missing_rule": MISSING_RULE,
    }
