"""Internal-consistency reliability of scales (respondents x items matrices).

One implementation per coefficient, vectorised over a leading group axis: the
figures of every scale with the same number of complete rows n and items k are
computed together from a (groups x n x k) stack, and one scale is a stack of
one. :func:`reliability_many` (the table of a national program) buckets its
scales by (n, k); :func:`scale_reliability` and the single coefficients
(:func:`cronbach_alpha`, :func:`kr20`, ...) call the same code on one scale.

Conventions (the figures of the scale as declared and scored), checked against
R psych with the script and values in ``tests/golden/``:

- alpha, standardized alpha, G6 and the item statistics follow
  ``psych::alpha``, except that a constant item is kept (psych drops it with a
  warning): the alpha is that of the scale as scored, and the item is flagged
  (``constant_item``);
- omega total is ``psych::omega(nfactors = 1, flip = FALSE)``: psych's default
  ``flip = TRUE`` reverses items that load negatively, which would describe
  another scale than the one scored; omega hierarchical is
  ``psych::omega(nfactors = <subscales>, flip = FALSE)``.

Missing-data rule: listwise within a scale (a respondent enters only with every
item of the scale answered), stated in the output as ``missing_rule``. An item
nobody answered is left out of the scale first (and flagged), so one empty
column does not empty the whole scale.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
from scipy import stats
from threadpoolctl import threadpool_limits

from pipelines.analysis.batched import omega_h_many, omega_total_many
from pipelines.analysis.factor import squared_multiple_correlations

MISSING_RULE = "listwise within scale"
ALPHA_FLOOR = 0.70
MIN_N = 10
DEFAULT_BOOT = 2000
DEFAULT_SEED = 20261122
BLOCK = 64  # resamples per block of weights (one matrix product per block)
COUNT_CELLS = 1 << 17  # resamples x n counted at once: the bincount target stays in cache
SUM_COLUMNS = 4096  # groups x (k + 3) columns per product: its block of sums stays in cache
ROUNDING = 1e-12  # relative size below which a variance or covariance is rounding noise


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


def _one_scale(items, name: str) -> float:
    """Figure ``name`` of :func:`closed_forms` for one scale (NaN below 2 rows or 2 items)."""
    x = complete_matrix(items)
    n, k = x.shape
    if n < 2 or k < 2:
        return float("nan")
    return float(closed_forms(x[None])[name][0])


def cronbach_alpha(items: pd.DataFrame | np.ndarray) -> float:
    """Cronbach's (raw) alpha, as psych::alpha's ``raw_alpha`` (a constant item is kept).

    k/(k-1) * (1 - sum of item variances / variance of the total); NaN when
    fewer than 2 complete rows, fewer than 2 items, or a zero-variance total.

    References
    ----------
    Cronbach, L. J. (1951). Coefficient alpha and the internal structure of tests.
    Psychometrika, 16, 297-334.

    Examples
    --------
    >>> round(cronbach_alpha(pd.DataFrame({"a": [1, 2, 3, 4], "b": [2, 3, 3, 5]})), 4)
    0.96
    """
    return _one_scale(items, "alpha")


def standardized_alpha(items: pd.DataFrame | np.ndarray) -> float:
    """Standardized alpha (psych's ``std.alpha``): alpha of the z-scored items.

    k/(k-1) * (1 - k / sum(R)); NaN when an item is constant.

    Examples
    --------
    >>> round(standardized_alpha([[1, 2], [2, 3], [3, 3], [4, 5]]), 4)
    0.9602
    """
    return _one_scale(items, "std_alpha")


def guttman_lambda6(items: pd.DataFrame | np.ndarray) -> float:
    """Guttman's lambda-6 from the correlation matrix (psych's ``G6(smc)``).

    1 - sum(1 - smc_j) / sum(R).

    Examples
    --------
    >>> round(guttman_lambda6([[1, 2, 1], [2, 3, 3], [3, 3, 2], [4, 5, 4], [2, 2, 3]]), 4)
    0.8934
    """
    return _one_scale(items, "lambda6")


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
    return _one_scale(items, "kr20")


def kr21(items: pd.DataFrame | np.ndarray) -> float:
    """Kuder-Richardson 21 (items assumed equally difficult): a lower bound of KR-20.

    k/(k-1) * (1 - M (k - M) / (k var(total))), M the mean total, population variance.

    Examples
    --------
    >>> round(kr21([[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 0], [1, 1, 0]]), 4)
    0.4231
    """
    return _one_scale(items, "kr21")


def standard_error_of_measurement(total_sd, reliability):
    """SEM = sd * sqrt(1 - reliability), in the units of ``total_sd`` (elementwise).

    NaN for a reliability outside [0, 1] (the square root would be undefined
    or claim more than perfect precision). Rounded to 12 decimals, so a
    reliability of 1 gives exactly 0.

    Examples
    --------
    >>> standard_error_of_measurement(10.0, 0.91)
    3.0
    """
    sd, r = np.asarray(total_sd, dtype=float), np.asarray(reliability, dtype=float)
    valid = np.isfinite(r) & (r >= 0) & (r <= 1)
    sem = np.where(valid, np.round(sd * np.sqrt(np.where(valid, 1 - r, 0)), 12), np.nan)
    return float(sem) if sem.ndim == 0 else sem


def feldt_ci(alpha, n: int, k: int, level: float = 0.95):
    """Feldt (1965) confidence interval for alpha, df1 = n-1, df2 = (n-1)(k-1), elementwise.

    The interval psych::alpha prints as "Feldt" and pingouin.cronbach_alpha returns.

    Examples
    --------
    >>> low, high = feldt_ci(0.8, n=30, k=10)
    >>> round(low, 3), round(high, 3)
    (0.673, 0.892)
    """
    a = np.asarray(alpha, dtype=float)
    if n < 2 or k < 2:
        a = np.full(a.shape, np.nan)
    df1, df2 = max(n - 1, 1), max((n - 1) * (k - 1), 1)
    tail = (1 - level) / 2
    finite = np.isfinite(a)
    low = np.where(finite, 1 - (1 - a) * stats.f.ppf(1 - tail, df1, df2), np.nan)
    high = np.where(finite, 1 - (1 - a) * stats.f.ppf(tail, df1, df2), np.nan)
    return (float(low), float(high)) if a.ndim == 0 else (low, high)


def _correlations(xs: np.ndarray, sd: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Item correlations of stacked groups from their covariances (diagonal exactly 1)."""
    k = xs.shape[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / (sd[:, :, None] * sd[:, None, :])
    r[:, np.arange(k), np.arange(k)] = 1.0
    return r


def _standardized(r: np.ndarray, usable: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardized alpha and Guttman's lambda-6 of stacked correlation matrices."""
    rsum = r.sum(axis=(1, 2))
    std_alpha = np.where(usable, k / (k - 1) * (1 - k / np.where(usable, rsum, 1)), np.nan)
    lambda6 = np.full(len(r), np.nan)
    lambda6[usable] = 1 - (k - squared_multiple_correlations(r[usable]).sum(axis=1)) / rsum[usable]
    return std_alpha, lambda6


def _kuder_richardson(xs: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """KR-20 and KR-21 of stacked groups (NaN where an item is not scored 0/1)."""
    k = xs.shape[2]
    dichotomous = ((xs == 0) | (xs == 1)).all(axis=(1, 2))
    p = xs.mean(axis=1)
    pop_var = total.var(axis=1, ddof=0)
    mean = total.mean(axis=1)
    kr_20 = _alpha_from_moments((p * (1 - p)).sum(axis=1), pop_var, k)
    kr_21 = _alpha_from_moments(mean * (k - mean) / k, pop_var, k)
    return np.where(dichotomous, kr_20, np.nan), np.where(dichotomous, kr_21, np.nan)


def closed_forms(xs: np.ndarray, level: float = 0.95) -> dict[str, np.ndarray]:
    """Every closed-form figure of stacked groups (groups x n x k, n >= 2, k >= 2).

    Returns arrays (one value per group): alpha, low/high (Feldt), std_alpha,
    lambda6, kr20, kr21, sem, mean_total, sd_total, the flags' conditions
    (constant, negative_cov, zero_total) and "corr": each group's item
    correlations for the factor models (None where omega is not estimable:
    n <= k, k < 3 or a constant item).

    Examples
    --------
    >>> xs = np.array([[[1, 2], [2, 3], [3, 3], [4, 5.]]])
    >>> closed_forms(xs)["alpha"].round(4).tolist()
    [0.96]
    """
    _, n, k = xs.shape
    total = xs.sum(axis=2)
    total_var = total.var(axis=1, ddof=1)
    alpha = _alpha_from_moments(xs.var(axis=1, ddof=1).sum(axis=1), total_var, k)
    sd = xs.std(axis=1, ddof=1)
    constant = (sd == 0).any(axis=1)
    centred = xs - xs.mean(axis=1, keepdims=True)
    cov = centred.transpose(0, 2, 1) @ centred / (n - 1)
    r = _correlations(xs, sd, cov)
    std_alpha, lambda6 = _standardized(r, ~constant & (r.sum(axis=(1, 2)) > 0), k)
    kr_20, kr_21 = _kuder_richardson(xs, total)
    sd_total = total.std(axis=1, ddof=1)
    low, high = feldt_ci(alpha, n, k, level)
    avg_cov = (cov.sum(axis=(1, 2)) - np.trace(cov, axis1=1, axis2=2)) / (k * (k - 1))
    # An average covariance that is zero up to rounding is not negative.
    noise = ROUNDING * np.maximum(1.0, np.abs(cov).max(axis=(1, 2)))
    estimable = ~constant & (n > k) & (k >= 3)
    corr = [rj if e else None for rj, e in zip(np.clip(r, -1, 1), estimable)]
    return {"alpha": alpha, "low": low, "high": high, "std_alpha": std_alpha,
            "lambda6": lambda6, "kr20": kr_20, "kr21": kr_21,
            "sem": standard_error_of_measurement(sd_total, alpha),
            "mean_total": total.mean(axis=1), "sd_total": sd_total, "constant": constant,
            "negative_cov": avg_cov < -noise, "zero_total": total_var == 0, "corr": corr}


# ---- bootstrap ---------------------------------------------------------------

def weight_blocks(n: int, n_boot: int, seed: int = DEFAULT_SEED, block: int = BLOCK):
    """How often each of n rows is drawn in each bootstrap resample, ``block`` resamples at a time.

    Each block is a (resamples x n) matrix, so a resample's sums are one matrix
    product with the data. Same seed, same weights; they depend only on (n,
    n_boot, seed), so every scale with n complete rows is resampled alike. The
    draws of a block are counted a few resamples at a time (COUNT_CELLS) so the
    counts stay in cache.

    Examples
    --------
    >>> [w.shape for w in weight_blocks(5, 100, seed=1)]
    [(64, 5), (36, 5)]
    >>> float(next(weight_blocks(5, 3, seed=1)).sum(axis=1).max())
    5.0
    """
    rng = np.random.default_rng(seed)
    rows = max(1, min(block, COUNT_CELLS // n))
    offsets = (np.arange(rows, dtype=np.int64) * n)[:, None]
    for start in range(0, n_boot, block):
        m = min(block, n_boot - start)
        drawn = rng.integers(0, n, size=(m, n), dtype=np.int64)
        weights = np.empty((m, n))
        for r in range(0, m, rows):
            part = drawn[r:r + rows]
            part += offsets[:len(part)]
            weights[r:r + len(part)] = np.bincount(part.ravel(), minlength=part.size
                                                   ).reshape(part.shape)
        yield weights


def _moment_columns(xs: np.ndarray) -> list[tuple[slice, np.ndarray, np.ndarray]]:
    """[X | sum_j X^2 | T | T^2] of stacked groups (g x n x k) as n-row matrices.

    One (slice of groups, matrix, variance scale) per chunk of groups of at most
    SUM_COLUMNS columns; the items of all groups come first (contiguous), then
    one column of each moment per group.
    """
    g, n, k = xs.shape
    chunk = max(1, SUM_COLUMNS // (k + 3))
    out = []
    for start in range(0, g, chunk):
        x = xs[start:start + chunk]
        total = x.sum(axis=2)
        flat = np.concatenate([x.transpose(1, 0, 2).reshape(n, -1), (x**2).sum(axis=2).T,
                               total.T, (total**2).T], axis=1)
        scale = 1e-12 * np.maximum(1.0, np.abs(total).max(axis=1) ** 2)
        out.append((slice(start, start + len(x)), flat, scale))
    return out


def bootstrap_alphas(parts: list[np.ndarray], n_boot: int, seed: int) -> list[np.ndarray]:
    """(groups x n_boot) bootstrap alphas of each stack of groups (groups x n x k).

    All stacks share n, hence the weights, drawn once; each block of weights
    multiplies every group's [X, sum_j X^2, T, T^2] (a chunk of groups at a
    time, so the sums stay in cache): alpha needs only the items' and the
    total's first and second moments.

    Examples
    --------
    >>> xs = np.array([[[1, 2], [2, 3], [3, 3], [4, 5.]]])
    >>> bootstrap_alphas([xs], n_boot=200, seed=1)[0].shape
    (1, 200)
    """
    n = parts[0].shape[1]
    chunks = [_moment_columns(xs) for xs in parts]
    outs = [np.empty((n_boot, len(xs))) for xs in parts]
    start = 0
    for weights in weight_blocks(n, n_boot, seed):
        m = len(weights)
        for xs, parts_chunks, out in zip(parts, chunks, outs):
            k = xs.shape[2]
            for groups, flat, scale in parts_chunks:
                g = flat.shape[1] // (k + 3)
                sums = weights @ flat
                first = sums[:, :g * k].reshape(m, g, k)
                squares = np.einsum("mgk,mgk->mg", first, first)  # no m x g x k temporary
                second, total, total2 = (sums[:, g * (k + i):g * (k + i + 1)] for i in range(3))
                item_var = (second - squares / n) / (n - 1)
                total_var = (total2 - total**2 / n) / (n - 1)
                total_var = np.where(total_var > scale, total_var, 0.0)
                out[start:start + m, groups] = _alpha_from_moments(item_var, total_var, k)
        start += m
    return [out.T for out in outs]


def _percentile_ci(alphas: np.ndarray, n_boot: int, level: float) -> tuple[np.ndarray, ...]:
    """Percentile bounds of each group's bootstrap alphas (groups x n_boot).

    NaN for a group where more than 10% of the resamples have no alpha.
    """
    tail = 100 * (1 - level) / 2
    low, high = np.full(len(alphas), np.nan), np.full(len(alphas), np.nan)
    finite = np.isfinite(alphas)
    whole = finite.all(axis=1)
    if whole.any():
        low[whole], high[whole] = np.percentile(alphas[whole], [tail, 100 - tail], axis=1)
    for i in np.flatnonzero(~whole):  # a resample with a constant total has no alpha
        kept = alphas[i][finite[i]]
        if kept.size >= 0.9 * n_boot:
            low[i], high[i] = np.percentile(kept, [tail, 100 - tail])
    return low, high


def bootstrap_alpha_ci(
    items: pd.DataFrame | np.ndarray,
    n_boot: int = DEFAULT_BOOT,
    level: float = 0.95,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval for alpha (seeded, reproducible).

    NaN when fewer than 10 complete rows: with so few people a resample often
    repeats one person and the percentiles mean little. The resamples are
    those of :func:`weight_blocks`: every scale with n complete rows is
    resampled the same way, so a table's intervals equal this function's.

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
    [alphas] = bootstrap_alphas([x[None]], n_boot, seed)
    low, high = _percentile_ci(alphas, n_boot, level)
    return float(low[0]), float(high[0])


# ---- every figure of many scales ------------------------------------------------

def reliability_flags(dropped: int, n: int, k: int, alpha: float, constant: bool = False,
                      negative_cov: bool = False, zero_total: bool = False) -> list[str]:
    """Codes of everything a reader should know before trusting a scale's figures.

    Examples
    --------
    >>> reliability_flags(0, n=8, k=10, alpha=0.65)
    ['n_below_k', 'n_below_10', 'alpha_below_0.70']
    """
    conditions = [("item_never_answered", dropped > 0), ("n_below_k", n < k),
                  ("n_below_10", n < MIN_N), ("constant_item", constant),
                  ("negative_average_covariance", negative_cov),
                  ("zero_total_variance", zero_total),
                  ("alpha_below_0.70", bool(np.isfinite(alpha) and alpha < ALPHA_FLOOR))]
    return [code for code, hit in conditions if hit]


def _degenerate_figures(x: np.ndarray) -> dict:
    """The figures of a scale with fewer than 2 complete rows or 2 items (mostly NaN)."""
    n, k = x.shape
    total = x.sum(axis=1)
    nan = float("nan")
    return {**{name: nan for name in ("alpha", "low", "high", "std_alpha", "lambda6", "kr20",
                                      "kr21", "sem")},
            "mean_total": float(total.mean()) if n else nan,
            "sd_total": float(total.std(ddof=1)) if n >= 2 else nan,
            "constant": bool(n >= 2 and np.any(x.std(axis=0, ddof=1) == 0)),
            "negative_cov": False, "zero_total": False, "corr": None}


def _row(x: np.ndarray, dropped: int, fig: dict, boot: tuple[float, float], n_boot: int,
         omega_t: tuple[float, list], omega_h: tuple[float, list] | None) -> dict:
    """One scale's figures as the flat dict of :func:`scale_reliability`."""
    n, k = x.shape
    alpha = float(fig["alpha"])
    flags = reliability_flags(dropped, n, k, alpha, bool(fig["constant"]),
                              bool(fig["negative_cov"]), bool(fig["zero_total"]))
    flags += omega_t[1] + (omega_h[1] if omega_h else [])
    return {
        "n": n, "k": k, "alpha": alpha,
        "alpha_ci_low": float(fig["low"]), "alpha_ci_high": float(fig["high"]),
        "alpha_ci_method": "feldt", "alpha_boot_low": boot[0], "alpha_boot_high": boot[1],
        "n_boot": n_boot if np.isfinite(boot[0]) else 0,
        "std_alpha": float(fig["std_alpha"]), "lambda6": float(fig["lambda6"]),
        "kr20": float(fig["kr20"]), "kr21": float(fig["kr21"]),
        "omega_total": omega_t[0], "omega_h": omega_h[0] if omega_h else float("nan"),
        "sem": float(fig["sem"]), "mean_total": float(fig["mean_total"]),
        "sd_total": float(fig["sd_total"]), "missing_rule": MISSING_RULE,
        "flags": ";".join(dict.fromkeys(flags)),
    }


def _closed_forms_and_bootstrap(xs: dict, level: float, n_boot: int, seed: int
                                ) -> tuple[dict, dict]:
    """Per matrix: :func:`closed_forms` by (n, k) bucket, and the bootstrap bounds by n."""
    buckets = defaultdict(list)
    for i, x in xs.items():
        if min(x.shape) >= 2:
            buckets[x.shape].append(i)
    figures, boot = {}, {}
    by_n = defaultdict(list)
    for (n, _), members in buckets.items():
        stacked = np.stack([xs[i] for i in members])
        figs = closed_forms(stacked, level)
        for j, i in enumerate(members):
            figures[i] = {key: value[j] for key, value in figs.items()}
        if n >= MIN_N:
            by_n[n].append((members, stacked))
    for parts in by_n.values():
        alphas = bootstrap_alphas([stacked for _, stacked in parts], n_boot, seed)
        for (members, _), boot_alphas in zip(parts, alphas):
            low, high = _percentile_ci(boot_alphas, n_boot, level)
            boot.update({i: (float(low[j]), float(high[j])) for j, i in enumerate(members)})
    return figures, boot


def _answered_matrix(items) -> tuple[np.ndarray, int, bool]:
    """(complete rows of the items somebody answered, items nobody answered, all answered)."""
    frame = np.asarray(items, dtype=float)
    answered = (~np.isnan(frame).all(axis=0) if frame.shape[0]
                else np.ones(frame.shape[1], bool))
    return complete_matrix(frame[:, answered]), int((~answered).sum()), bool(answered.all())


def reliability_many(
    matrices: list, groups: list[list[list[int]] | None] | None = None, *,
    level: float = 0.95, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED,
) -> list[dict]:
    """Every reliability figure of many scales at once: one :func:`scale_reliability` dict each.

    Parameters
    ----------
    matrices : list of respondents x items arrays (already reverse-keyed), NaN
        for unanswered.
    groups : per matrix, the column positions of each subscale for omega
        hierarchical (None skips it).
    level, n_boot, seed : confidence level, bootstrap resamples and seed.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scales = [rng.normal(size=(30, 1)) + rng.normal(size=(30, 4)) for _ in range(3)]
    >>> [round(r["alpha"], 2) for r in reliability_many(scales, n_boot=200)]
    [0.61, 0.8, 0.7]
    """
    groups = list(groups) if groups is not None else [None] * len(matrices)
    prepared = [_answered_matrix(m) for m in matrices]
    xs = {i: x for i, (x, _, _) in enumerate(prepared)}
    wants_h = [i for i, (_, _, whole) in enumerate(prepared) if groups[i] is not None and whole]
    # One BLAS thread: the bootstrap's products have few inner rows and the omega
    # fallbacks' L-BFGS-B works on short vectors, so extra threads only spin.
    with threadpool_limits(limits=1, user_api="blas"):
        figures, boot = _closed_forms_and_bootstrap(xs, level, n_boot, seed)
        figures.update({i: _degenerate_figures(x) for i, x in xs.items() if i not in figures})
        order = list(xs)
        omega_t = omega_total_many([xs[i] for i in order], [figures[i]["corr"] for i in order])
        omega_h = dict(zip(wants_h, omega_h_many([xs[i] for i in wants_h],
                                                 [groups[i] for i in wants_h],
                                                 [figures[i]["corr"] for i in wants_h])))
    nan = (float("nan"), float("nan"))
    return [_row(x, dropped, figures[i], boot.get(i, nan), n_boot, omega_t[i], omega_h.get(i))
            for i, (x, dropped, _) in enumerate(prepared)]


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
    >>> r = scale_reliability(pd.DataFrame({"a": [1, 2, 3, 4], "b": [2, 3, 3, 5]}), n_boot=100)
    >>> r["n"], r["k"], round(r["alpha"], 4), r["flags"]
    (4, 2, 0.96, 'n_below_10;omega_not_estimable')
    """
    return reliability_many([items], [groups], level=level, n_boot=n_boot, seed=seed)[0]
