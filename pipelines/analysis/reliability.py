"""Internal-consistency reliability of one scale (a respondents x items matrix).

Every coefficient is a pure function of the matrix and follows R psych's
definitions (``psych::alpha``, ``psych::omega``) so the numbers can be checked
against it; ``tests/golden/`` holds the R script and the values it printed.

Missing-data rule: listwise within a scale (a respondent enters only with every
item of the scale answered), stated in the output as ``missing_rule``. An item
nobody answered is left out of the scale first (and flagged), so one empty
column does not empty the whole scale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from pipelines.analysis.factor import omega_hierarchical, omega_total

MISSING_RULE = "listwise within scale"
ALPHA_FLOOR = 0.70
MIN_N = 10
DEFAULT_BOOT = 2000
DEFAULT_SEED = 20261122


def complete_matrix(items: pd.DataFrame | np.ndarray) -> np.ndarray:
    """The rows with every item answered, as a float array (listwise deletion)."""
    x = np.asarray(items, dtype=float)
    if x.ndim != 2:
        raise ValueError("items must be a 2-D respondents x items matrix")
    return x[~np.isnan(x).any(axis=1)]


def _alpha_from_moments(item_var_sum, total_var, k):
    """alpha = k/(k-1) * (1 - sum of item variances / total variance), NaN-safe."""
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = k / (k - 1) * (1 - item_var_sum / total_var)
    return np.where(total_var > 0, alpha, np.nan)


def cronbach_alpha(items: pd.DataFrame | np.ndarray) -> float:
    """Cronbach's (raw) alpha, as psych::alpha's ``raw_alpha``.

    NaN when fewer than 2 complete rows, fewer than 2 items, or a zero-variance total.

    References
    ----------
    Cronbach, L. J. (1951). Coefficient alpha and the internal structure of tests.
    Psychometrika, 16, 297-334.

    Examples
    --------
    >>> round(cronbach_alpha([[1, 2], [2, 3], [3, 3], [4, 5]]), 4)
    0.96
    """
    x = complete_matrix(items)
    n, k = x.shape
    if n < 2 or k < 2:
        return float("nan")
    return float(_alpha_from_moments(x.var(axis=0, ddof=1).sum(), x.sum(axis=1).var(ddof=1), k))


def _correlations(x: np.ndarray) -> np.ndarray | None:
    """Item correlation matrix, or None when an item is constant (r undefined)."""
    if x.shape[0] < 2 or np.any(x.std(axis=0, ddof=1) == 0):
        return None
    return np.corrcoef(x, rowvar=False)


def standardized_alpha(items: pd.DataFrame | np.ndarray) -> float:
    """Standardized alpha (psych's ``std.alpha``): alpha of the z-scored items.

    k/(k-1) * (1 - k / sum(R)); NaN when an item is constant.

    Examples
    --------
    >>> round(standardized_alpha([[1, 2], [2, 3], [3, 3], [4, 5]]), 4)
    0.9602
    """
    x = complete_matrix(items)
    k = x.shape[1]
    r = _correlations(x)
    if r is None or k < 2 or r.sum() <= 0:  # sum(R) = 0: the z-scored total is constant
        return float("nan")
    return float(k / (k - 1) * (1 - k / r.sum()))


def squared_multiple_correlations(r: np.ndarray) -> np.ndarray:
    """Each item's R^2 on all other items (psych::smc), from a correlation matrix.

    Uses 1 - 1/diag(R^-1); when R is singular (e.g. two identical items) each
    R^2 comes from a least-squares regression instead, which stays defined.

    Examples
    --------
    >>> squared_multiple_correlations(np.array([[1, .5], [.5, 1]])).round(2)
    array([0.25, 0.25])
    """
    k = r.shape[0]
    if np.linalg.cond(r) < 1e12:
        return 1 - 1 / np.diag(np.linalg.inv(r))
    smc = np.empty(k)
    for j in range(k):
        others = np.delete(np.arange(k), j)
        r_jo = r[others, j]
        smc[j] = r_jo @ np.linalg.pinv(r[np.ix_(others, others)]) @ r_jo
    return np.clip(smc, 0, 1)


def guttman_lambda6(items: pd.DataFrame | np.ndarray) -> float:
    """Guttman's lambda-6 from the correlation matrix (psych's ``G6(smc)``).

    1 - sum(1 - smc_j) / sum(R).

    Examples
    --------
    >>> round(guttman_lambda6([[1, 2, 1], [2, 3, 3], [3, 3, 2], [4, 5, 4], [2, 2, 3]]), 4)
    0.8934
    """
    x = complete_matrix(items)
    r = _correlations(x)
    if r is None or x.shape[1] < 2 or r.sum() <= 0:
        return float("nan")
    return float(1 - (x.shape[1] - squared_multiple_correlations(r).sum()) / r.sum())


def _dichotomous(x: np.ndarray) -> bool:
    return x.size > 0 and bool(np.isin(x, (0.0, 1.0)).all())


def kr20(items: pd.DataFrame | np.ndarray) -> float:
    """Kuder-Richardson 20 for 0/1 items: k/(k-1) * (1 - sum(p q) / var(total)).

    Population (divide-by-n) variances throughout, so KR-20 equals alpha on the
    same 0/1 data. NaN when an item is not scored 0/1.

    References
    ----------
    Kuder, G. F., & Richardson, M. W. (1937). The theory of the estimation of test
    reliability. Psychometrika, 2, 151-160.

    Examples
    --------
    >>> round(kr20([[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 0], [1, 1, 0]]), 4)
    0.4615
    """
    x = complete_matrix(items)
    n, k = x.shape
    if n < 2 or k < 2 or not _dichotomous(x):
        return float("nan")
    p = x.mean(axis=0)
    return float(_alpha_from_moments((p * (1 - p)).sum(), x.sum(axis=1).var(ddof=0), k))


def kr21(items: pd.DataFrame | np.ndarray) -> float:
    """Kuder-Richardson 21 (items assumed equally difficult): a lower bound of KR-20.

    k/(k-1) * (1 - M (k - M) / (k var(total))), M the mean total, population variance.

    Examples
    --------
    >>> round(kr21([[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 0], [1, 1, 0]]), 4)
    0.4231
    """
    x = complete_matrix(items)
    n, k = x.shape
    if n < 2 or k < 2 or not _dichotomous(x):
        return float("nan")
    total = x.sum(axis=1)
    mean = total.mean()
    return float(_alpha_from_moments(mean * (k - mean) / k, total.var(ddof=0), k))


def standard_error_of_measurement(total_sd: float, reliability: float) -> float:
    """SEM = sd * sqrt(1 - reliability), in the units of ``total_sd``.

    NaN for a reliability outside [0, 1] (the square root would be undefined
    or claim more than perfect precision).

    Examples
    --------
    >>> standard_error_of_measurement(10.0, 0.91)
    3.0
    """
    if not np.isfinite(reliability) or not 0 <= reliability <= 1:
        return float("nan")
    return float(round(total_sd * np.sqrt(1 - reliability), 12))


def feldt_ci(alpha: float, n: int, k: int, level: float = 0.95) -> tuple[float, float]:
    """Feldt (1965) confidence interval for alpha, df1 = n-1, df2 = (n-1)(k-1).

    The interval psych::alpha prints as "Feldt" and pingouin.cronbach_alpha returns.

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


def resampling_weights(n: int, n_boot: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """n_boot x n matrix: how often each row is drawn in each bootstrap resample.

    A resample's sums are then one matrix product with the data, so no Python
    loop runs over resamples. Same seed, same weights.

    Examples
    --------
    >>> w = resampling_weights(5, 3, seed=1)
    >>> w.shape, w.sum(axis=1).tolist()
    ((3, 5), [5.0, 5.0, 5.0])
    """
    rng = np.random.default_rng(seed)
    # Draw row indices and count them with one bincount over all resamples:
    # several times faster than rng.multinomial row by row.
    drawn = rng.integers(0, n, size=(n_boot, n), dtype=np.int64)
    drawn += (np.arange(n_boot, dtype=np.int64) * n)[:, None]
    return np.bincount(drawn.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def bootstrap_alphas(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Alpha in every resample given by ``weights`` (one row per resample).

    Alpha needs only each item's and the total's first and second moments, so
    all resamples come from one product ``weights @ [X, X^2, T, T^2]``.

    Examples
    --------
    >>> x = np.array([[1, 2], [2, 3], [3, 3], [4, 5.]])
    >>> bootstrap_alphas(x, np.ones((1, 4))).round(4)
    array([0.96])
    """
    n, k = x.shape
    total = x.sum(axis=1, keepdims=True)
    sums = weights @ np.hstack([x, x**2, total, total**2])
    first, second = sums[:, :k], sums[:, k:2 * k]
    item_var = (second - first**2 / n).sum(axis=1) / (n - 1)
    total_var = (sums[:, 2 * k + 1] - sums[:, 2 * k] ** 2 / n) / (n - 1)
    # Rounding noise can leave a tiny positive variance for a constant resample.
    total_var = np.where(total_var > 1e-12 * max(1.0, float(np.abs(total).max()) ** 2),
                         total_var, 0.0)
    return _alpha_from_moments(item_var, total_var, k)


def bootstrap_alpha_ci(
    items: pd.DataFrame | np.ndarray,
    n_boot: int = DEFAULT_BOOT,
    level: float = 0.95,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval for alpha (seeded, reproducible).

    NaN when fewer than 10 complete rows: with so few people a resample often
    repeats one person and the percentiles mean little.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(50, 1)) + rng.normal(size=(50, 4))
    >>> low, high = bootstrap_alpha_ci(x, n_boot=500)
    >>> bool(low < cronbach_alpha(x) < high)
    True
    """
    x = complete_matrix(items)
    n, k = x.shape
    if n < MIN_N or k < 2:
        return float("nan"), float("nan")
    alphas = bootstrap_alphas(x, resampling_weights(n, n_boot, seed))
    alphas = alphas[np.isfinite(alphas)]
    if alphas.size < 0.9 * n_boot:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(alphas, [tail, 100 - tail])
    return float(low), float(high)


def reliability_flags(x: np.ndarray, alpha: float, dropped_items: int) -> list[str]:
    """Codes of everything a reader should know before trusting the figures."""
    n, k = x.shape
    flags = []
    if dropped_items:
        flags.append("item_never_answered")
    if n < k:
        flags.append("n_below_k")
    if n < MIN_N:
        flags.append("n_below_10")
    if n >= 2 and np.any(x.std(axis=0, ddof=1) == 0):
        flags.append("constant_item")
    if n >= 2 and k >= 2:
        cov = np.cov(x, rowvar=False)
        if (cov.sum() - np.trace(cov)) / (k * (k - 1)) < 0:
            flags.append("negative_average_covariance")
        if x.sum(axis=1).var(ddof=1) == 0:
            flags.append("zero_total_variance")
    if np.isfinite(alpha) and alpha < ALPHA_FLOOR:
        flags.append("alpha_below_0.70")
    return flags


def scale_reliability(
    items: pd.DataFrame | np.ndarray,
    *,
    groups: list[list[int]] | None = None,
    level: float = 0.95,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
) -> dict:
    """Every reliability figure of one scale, as a flat dict with stable keys.

    Parameters
    ----------
    items : respondents x items (already reverse-keyed), NaN for unanswered.
    groups : column positions of each subscale, for omega hierarchical
        (Schmid-Leiman with one group factor per subscale); None skips it.
    level, n_boot, seed : confidence level, bootstrap resamples and seed.

    Returns
    -------
    dict with n, k, alpha, alpha_ci_low/high (Feldt), alpha_boot_low/high
    (percentile bootstrap), std_alpha, lambda6, kr20, kr21 (0/1 items only),
    omega_total, omega_h, sem (units of the item sum), mean_total, sd_total,
    missing_rule and flags (``;``-separated codes, "" when none).

    Examples
    --------
    >>> r = scale_reliability([[1, 2], [2, 3], [3, 3], [4, 5]], n_boot=100)
    >>> r["n"], r["k"], round(r["alpha"], 4), r["flags"]
    (4, 2, 0.96, 'n_below_10;omega_not_estimable')
    """
    frame = np.asarray(items, dtype=float)
    answered = ~np.isnan(frame).all(axis=0) if frame.shape[0] else np.ones(frame.shape[1], bool)
    x = complete_matrix(frame[:, answered])
    n, k = x.shape
    alpha = cronbach_alpha(x)
    low, high = feldt_ci(alpha, n, k, level)
    boot_low, boot_high = bootstrap_alpha_ci(x, n_boot, level, seed)
    total = x.sum(axis=1)
    sd_total = float(total.std(ddof=1)) if n >= 2 else float("nan")
    flags = reliability_flags(x, alpha, int((~answered).sum()))
    omega_t, omega_flags = omega_total(x)
    omega_h = float("nan")
    if groups is not None and answered.all():
        omega_h, more = omega_hierarchical(x, groups)
        omega_flags += more
    return {
        "n": n,
        "k": k,
        "alpha": alpha,
        "alpha_ci_low": low,
        "alpha_ci_high": high,
        "alpha_ci_method": "feldt",
        "alpha_boot_low": boot_low,
        "alpha_boot_high": boot_high,
        "n_boot": n_boot if np.isfinite(boot_low) else 0,
        "std_alpha": standardized_alpha(x),
        "lambda6": guttman_lambda6(x),
        "kr20": kr20(x),
        "kr21": kr21(x),
        "omega_total": omega_t,
        "omega_h": omega_h,
        "sem": standard_error_of_measurement(sd_total, alpha),
        "mean_total": float(total.mean()) if n else float("nan"),
        "sd_total": sd_total,
        "missing_rule": MISSING_RULE,
        "flags": ";".join(dict.fromkeys(flags + omega_flags)),
    }
