"""Group-by-group versions of the batched statistics: test oracles only.

Production computes every cohort x wave x scale at once (``pipelines.analysis``);
these loop over the groups one at a time, the obvious way, so the tests can check
that the batched tables hold the same rows in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy import optimize, stats

from pipelines.analysis.factor import (
    omega_hierarchical, omega_total, squared_multiple_correlations,
)
from pipelines.analysis.reliability import (
    ALPHA_FLOOR, DEFAULT_BOOT, DEFAULT_SEED, MIN_N, MISSING_RULE, complete_matrix,
)
from pipelines.analysis.change import MIN_PAIRS, improvement_sign
from pipelines.analysis.items import (
    EASY, HARD, LOW_R, UPPER_LOWER_SHARE, _join_flags,
)
from pipelines.analysis.tables import at_levels


def with_pooled(frame: pd.DataFrame, scope: str = "all"
                ) -> Iterator[tuple[tuple[str, str], pd.DataFrame]]:
    """(cohort, wave) groups, then the same waves pooled over cohorts (cohort ALL)."""
    yield from at_levels(frame, scope).groupby(["cohort", "wave"], sort=True)


def reliability_by_hand(matrices, groups=None, **options) -> list[dict]:
    """:func:`pipelines.analysis.reliability.reliability_many`, one scale after another."""
    groups = groups if groups is not None else [None] * len(matrices)
    return [scale_reliability_by_hand(m, groups=g, **options) for m, g in zip(matrices, groups)]


# ---- one scale, the obvious way (np.cov, np.corrcoef, one bootstrap matrix) ----------

def _alpha_from_moments(item_var_sum, total_var, k):
    """k/(k-1) (1 - sum var_j / var_T), NaN where the total does not vary."""
    total_var = np.asarray(total_var, dtype=float)
    ratio = np.divide(item_var_sum, total_var, out=np.full(total_var.shape, np.nan),
                      where=total_var > 0)
    return k / (k - 1) * (1 - ratio)


def cronbach_alpha(items: pd.DataFrame | np.ndarray) -> float:
    """Cronbach's alpha of one scale (NaN below 2 rows or 2 items)."""
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
    """Standardized alpha (psych's ``std.alpha``): alpha of the z-scored items."""
    x = complete_matrix(items)
    k = x.shape[1]
    r = _correlations(x)
    if r is None or k < 2 or r.sum() <= 0:  # sum(R) = 0: the z-scored total is constant
        return float("nan")
    return float(k / (k - 1) * (1 - k / r.sum()))


def guttman_lambda6(items: pd.DataFrame | np.ndarray) -> float:
    """Guttman's lambda-6 from the correlation matrix (psych's ``G6(smc)``)."""
    x = complete_matrix(items)
    r = _correlations(x)
    if r is None or x.shape[1] < 2 or r.sum() <= 0:
        return float("nan")
    return float(1 - (x.shape[1] - squared_multiple_correlations(r).sum()) / r.sum())


def _dichotomous(x: np.ndarray) -> bool:
    return x.size > 0 and bool(np.isin(x, (0.0, 1.0)).all())


def kr20(items: pd.DataFrame | np.ndarray) -> float:
    """Kuder-Richardson 20 for 0/1 items: k/(k-1) * (1 - sum(p q) / var(total))."""
    x = complete_matrix(items)
    n, k = x.shape
    if n < 2 or k < 2 or not _dichotomous(x):
        return float("nan")
    p = x.mean(axis=0)
    return float(_alpha_from_moments((p * (1 - p)).sum(), x.sum(axis=1).var(ddof=0), k))


def kr21(items: pd.DataFrame | np.ndarray) -> float:
    """Kuder-Richardson 21 (items assumed equally difficult): a lower bound of KR-20."""
    x = complete_matrix(items)
    n, k = x.shape
    if n < 2 or k < 2 or not _dichotomous(x):
        return float("nan")
    total = x.sum(axis=1)
    mean = total.mean()
    return float(_alpha_from_moments(mean * (k - mean) / k, total.var(ddof=0), k))


def standard_error_of_measurement(total_sd: float, reliability: float) -> float:
    """SEM = sd * sqrt(1 - reliability), in the units of ``total_sd``."""
    if not np.isfinite(reliability) or not 0 <= reliability <= 1:
        return float("nan")
    return float(round(total_sd * np.sqrt(1 - reliability), 12))


def feldt_ci(alpha: float, n: int, k: int, level: float = 0.95) -> tuple[float, float]:
    """Feldt (1965) confidence interval for alpha, df1 = n-1, df2 = (n-1)(k-1)."""
    if not np.isfinite(alpha) or n < 2 or k < 2:
        return float("nan"), float("nan")
    df1, df2 = n - 1, (n - 1) * (k - 1)
    tail = (1 - level) / 2
    low = 1 - (1 - alpha) * stats.f.ppf(1 - tail, df1, df2)
    high = 1 - (1 - alpha) * stats.f.ppf(tail, df1, df2)
    return float(low), float(high)


def resampling_weights(n: int, n_boot: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """n_boot x n matrix: how often each row is drawn in each bootstrap resample."""
    rng = np.random.default_rng(seed)
    # Draw row indices and count them with one bincount over all resamples:
    # several times faster than rng.multinomial row by row.
    drawn = rng.integers(0, n, size=(n_boot, n), dtype=np.int64)
    drawn += (np.arange(n_boot, dtype=np.int64) * n)[:, None]
    return np.bincount(drawn.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def bootstrap_alphas(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Alpha in every resample given by ``weights`` (one row per resample)."""
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
    """Percentile bootstrap confidence interval for alpha (seeded, reproducible)."""
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


def scale_reliability_by_hand(
    items: pd.DataFrame | np.ndarray,
    *,
    groups: list[list[int]] | None = None,
    level: float = 0.95,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
) -> dict:
    """:func:`pipelines.analysis.reliability.scale_reliability`, one scale the obvious way."""
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


# ---- one group's paired change, with scipy's root finder and Wilcoxon ---------------

def wilcoxon_signed_rank(diff: np.ndarray) -> tuple[float, float, float]:
    """R's ``wilcox.test(paired = TRUE)``: (V, two-sided p, matched rank-biserial)."""
    d = diff[diff != 0]
    n = len(d)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    ranks = stats.rankdata(np.abs(d))
    v = float(ranks[d > 0].sum())
    rank_biserial = (2 * v - ranks.sum()) / ranks.sum()
    ties = len(np.unique(ranks)) != n
    if n < 50 and not ties and len(d) == len(diff):
        p = stats.wilcoxon(d, method="exact").pvalue
    else:
        _, counts = np.unique(ranks, return_counts=True)
        sigma = np.sqrt(n * (n + 1) * (2 * n + 1) / 24 - (counts**3 - counts).sum() / 48)
        z = v - n * (n + 1) / 4
        z = (z - np.sign(z) * 0.5) / sigma
        p = 2 * min(stats.norm.cdf(z), stats.norm.sf(z))
    return v, float(min(p, 1.0)), float(rank_biserial)


def d_z_interval(d_z: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """CI of d_z by inverting the noncentral t (t = d_z sqrt(n), df = n - 1)."""
    if not np.isfinite(d_z) or n < 2:
        return float("nan"), float("nan")
    t_obs, df, tail = d_z * np.sqrt(n), n - 1, (1 - level) / 2

    def cdf(ncp: float) -> float:
        value = stats.nct.cdf(t_obs, df, ncp)
        # scipy's nct can return NaN far in a tail, where the cdf is 0 or 1.
        return value if np.isfinite(value) else float(ncp < t_obs)

    def bound(prob: float) -> float:
        f = lambda ncp: cdf(ncp) - prob  # noqa: E731
        width = 10 + abs(t_obs)
        return optimize.brentq(f, t_obs - width, t_obs + width, xtol=1e-13, rtol=1e-14)

    return float(bound(1 - tail) / np.sqrt(n)), float(bound(tail) / np.sqrt(n))


def _nan_result(x: np.ndarray, y: np.ndarray, diff: np.ndarray, flag: str) -> dict:
    n = len(diff)
    return {
        "n_pairs": n,
        "mean_from": float(x.mean()) if n else np.nan,
        "sd_from": float(x.std(ddof=1)) if n > 1 else np.nan,
        "mean_to": float(y.mean()) if n else np.nan,
        "sd_to": float(y.std(ddof=1)) if n > 1 else np.nan,
        "mean_diff": float(diff.mean()) if n else np.nan,
        "sd_diff": float(diff.std(ddof=1)) if n > 1 else np.nan,
        "ci_low": np.nan, "ci_high": np.nan, "t": np.nan, "df": np.nan, "p": np.nan,
        "d_z": np.nan, "d_z_ci_low": np.nan, "d_z_ci_high": np.nan, "d_av": np.nan,
        "g_av": np.nan, "wilcoxon_v": np.nan, "wilcoxon_p": np.nan, "rank_biserial": np.nan,
        "flags": flag,
    }


def paired_change_by_hand(before, after, better: str = "", level: float = 0.95) -> dict:
    """:func:`pipelines.analysis.change.paired_change` with scipy's root finder and Wilcoxon."""
    x = np.asarray(before, dtype=float)
    y = np.asarray(after, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    diff = y - x
    n = len(diff)
    if n < MIN_PAIRS:
        return _nan_result(x, y, diff, f"fewer_than_{MIN_PAIRS}_pairs")
    out = _nan_result(x, y, diff, "")
    sign = improvement_sign(better)
    mean, sd = out["mean_diff"], out["sd_diff"]
    sd_av = np.sqrt((out["sd_from"] ** 2 + out["sd_to"] ** 2) / 2)
    if sd_av > 0:
        out["d_av"] = float(sign * mean / sd_av)
        out["g_av"] = float(out["d_av"] * (1 - 3 / (4 * (n - 1) - 1)))
    out["wilcoxon_v"], out["wilcoxon_p"], rb = wilcoxon_signed_rank(diff)
    out["rank_biserial"] = sign * rb
    if sd == 0:
        out["flags"] = "no_variation_in_differences"
        return out
    se = sd / np.sqrt(n)
    crit = stats.t.ppf(1 - (1 - level) / 2, n - 1)
    d_low, d_high = d_z_interval(mean / sd, n, level)
    if sign < 0:
        d_low, d_high = -d_high, -d_low
    out.update(
        ci_low=float(mean - crit * se), ci_high=float(mean + crit * se),
        t=float(mean / se), df=n - 1, p=float(2 * stats.t.sf(abs(mean / se), n - 1)),
        d_z=float(sign * mean / sd), d_z_ci_low=d_low, d_z_ci_high=d_high,
    )
    return out


def holm_by_hand(p: pd.Series) -> pd.Series:
    """Holm (1979) step-down adjusted p-values; NaN stays NaN and is not counted."""
    valid = p.dropna().sort_values()
    m = len(valid)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * valid.to_numpy())
    return pd.Series(np.minimum(adjusted, 1), index=valid.index).reindex(p.index)


# ---- item analysis of one group: np.cov, np.corrcoef, a loop over options -----------

def drop_item_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corrected item-total r (r_drop) and alpha if dropped, for every item at once."""
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


def likert_item_statistics_by_hand(items: pd.DataFrame) -> pd.DataFrame:
    """Item statistics of one (reverse-keyed) scale, listwise within the scale."""
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


def upper_lower_index_by_hand(correct: np.ndarray, share: float = UPPER_LOWER_SHARE) -> np.ndarray:
    """Discrimination index D = p(upper group) - p(lower group) per item."""
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
    """Share choosing each option and that choice's point-biserial with the rest score."""
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
    """Items where a distractor has a positive point-biserial above the key's."""
    if options_table.empty:
        return set()
    is_key = options_table["is_key"].astype(bool)
    key_r = options_table[is_key].groupby("item")["point_biserial"].max()
    distractor = options_table[~is_key]
    beats = (distractor["point_biserial"] > 0) & (
        distractor["point_biserial"] > distractor["item"].map(key_r).fillna(-np.inf))
    return set(distractor.loc[beats, "item"])


def knowledge_items(correct: pd.DataFrame, options_table: pd.DataFrame) -> pd.DataFrame:
    """Classical item analysis of one test form (0/1 matrix, every item on the form)."""
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
        "discrimination": upper_lower_index_by_hand(x),
        "flags": _join_flags(("too_hard", p < HARD), ("too_easy", p > EASY),
                             ("low_discrimination", r_drop < LOW_R),
                             ("possible_wrong_key", np.isin(correct.columns, sorted(wrong_key)))),
    })


# ---- the mixed models in statsmodels (the former implementation) -------------------

def random_cohort_spec(long: pd.DataFrame, re_formula: str):
    """models.random_cohort_model in statsmodels (``re_formula`` "~post" or "1")."""
    import statsmodels.formula.api as smf

    return smf.mixedlm("score ~ post", long, groups="cohort", re_formula=re_formula,
                       vc_formula={"participant": "0 + C(participant)"})


def cohort_fixed_spec(long: pd.DataFrame):
    """models.cohort_fixed_model in statsmodels (terms ``C(cohort)[c]``, ``C(cohort)[c]:post``)."""
    import statsmodels.formula.api as smf

    return smf.mixedlm("score ~ 0 + C(cohort) + C(cohort):post", long, groups="participant")


def statsmodels_fit(model, tight: bool = True):
    """REML fit: ``tight``, BFGS to a gradient of 1e-9 (a 1e-8 reference, its score checked);
    else as the former production code (lbfgs, bfgs, cg at statsmodels' defaults)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not tight:
            return model.fit(reml=True, method=["lbfgs", "bfgs", "cg"])
        fit = model.fit(reml=True, method="bfgs", gtol=1e-9, maxiter=5000)
        # BFGS may report a precision loss this close to the optimum: check the score.
        assert np.abs(model.score(fit.params_object, profile_fe=True)).max() < 1e-4
    return fit


def statsmodels_rows(fit, names: dict[str, tuple[str, str]]) -> list[dict]:
    """estimate, se, Wald interval and p per statsmodels term name -> (term, cohort)."""
    ci = fit.conf_int()
    return [{"term": term, "cohort": cohort, "estimate": float(fit.fe_params[name]),
             "se": float(fit.bse_fe[name]), "ci_low": float(ci.loc[name, 0]),
             "ci_high": float(ci.loc[name, 1]), "p": float(fit.pvalues[name])}
            for name, (term, cohort) in names.items()]
