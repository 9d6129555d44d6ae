"""Change between two waves on people present at both (paired analysis).

Sign conventions, stated in every output:

- ``mean_diff``, its CI and ``t`` are to-wave minus from-wave on the scale's own
  metric (what a researcher recomputes from the two means);
- every standardized effect (``d_z`` and its CI, ``d_av``, ``g_av``,
  ``rank_biserial``) is signed so that **positive = improvement**, using the
  scale's direction from the instrument (stigma, burnout and secondary
  traumatic stress going down is improvement). A scale with no declared
  direction keeps to-minus-from.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

MIN_PAIRS = 3
WILCOXON_RULE = "zeros dropped (Wilcoxon); exact if n < 50 without ties, else normal with " \
                "continuity and tie correction (as R wilcox.test)"


def improvement_sign(better: str) -> int:
    """-1 when lower scores are better, else +1 (higher is better or no direction)."""
    return -1 if better == "lower" else 1


def wilcoxon_signed_rank(diff: np.ndarray) -> tuple[float, float, float]:
    """R's ``wilcox.test(paired = TRUE)``: (V, two-sided p, matched rank-biserial).

    Zero differences are dropped before ranking. The exact distribution is
    used when fewer than 50 non-zero differences remain and none are tied and
    no zero was dropped; otherwise the normal approximation with continuity
    correction and the tie-corrected variance. The matched rank-biserial
    correlation is (T+ - T-) / (T+ + T-) on the same ranks (Kerby, 2014).

    Examples
    --------
    >>> v, p, r = wilcoxon_signed_rank(np.array([2, 3, 1, 3, -1, 4.]))
    >>> v, round(p, 4), round(r, 4)
    (19.5, 0.0731, 0.8571)
    """
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
    """CI of d_z by inverting the noncentral t (t = d_z sqrt(n), df = n - 1).

    The bounds are the noncentrality parameters that put the observed t at
    the upper and lower tail quantiles, divided by sqrt(n).

    Examples
    --------
    >>> low, high = d_z_interval(0.5, 30)
    >>> round(low, 4), round(high, 4)
    (0.1161, 0.8763)
    """
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


def paired_change(before, after, better: str = "", level: float = 0.95) -> dict:
    """Paired t-test, Wilcoxon signed-rank and paired effect sizes (``after - before``).

    Parameters
    ----------
    before, after : array-like of float
        Scores of the same people at two waves, in the same order; pairs with
        a missing value on either side are dropped.
    better : "higher", "lower" or ""
        Which direction is improvement; standardized effects are signed so
        that positive = improvement.
    level : float
        Confidence level of the intervals.

    Returns
    -------
    dict
        n_pairs, mean_from, sd_from, mean_to, sd_to, mean_diff, sd_diff, ci_low,
        ci_high, t, df, p (two-sided), d_z (+ d_z_ci_low/high, noncentral t),
        d_av = mean_diff / sqrt((sd_from^2 + sd_to^2) / 2),
        g_av = d_av x (1 - 3 / (4 (n - 1) - 1)), wilcoxon_v, wilcoxon_p,
        rank_biserial, flags. Fewer than 3 pairs: NaN tests and a flag.

    References
    ----------
    Lakens, D. (2013). Calculating and reporting effect sizes to facilitate
    cumulative science. Frontiers in Psychology, 4, 863.

    Examples
    --------
    >>> r = paired_change([10, 12, 14, 16], [12, 15, 15, 19])
    >>> r["n_pairs"], r["mean_diff"], round(r["t"], 4), r["df"], round(r["d_av"], 4)
    (4, 2.25, 4.7001, 3, 0.8239)
    >>> round(paired_change([10, 12, 14, 16], [12, 15, 15, 19], better="lower")["d_z"], 4)
    -2.35
    """
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


def matched_pairs(scores: pd.DataFrame, from_wave: str, to_wave: str) -> pd.DataFrame:
    """One row per cohort x instrument x scale x participant with both waves' scores."""
    keys = ["cohort", "instrument", "scale", "participant"]
    wide = scores[scores["wave"].isin([from_wave, to_wave])].pivot_table(
        index=keys, columns="wave", values="score", aggfunc="first", dropna=False
    )
    wide = wide.reindex(columns=[from_wave, to_wave]).dropna()
    return wide.rename(columns={from_wave: "from", to_wave: "to"}).reset_index()


def holm(p: pd.Series) -> pd.Series:
    """Holm (1979) step-down adjusted p-values; NaN stays NaN and is not counted.

    Examples
    --------
    >>> holm(pd.Series([0.01, 0.04, np.nan, 0.03])).round(2).tolist()
    [0.03, 0.06, nan, 0.06]
    """
    valid = p.dropna().sort_values()
    m = len(valid)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * valid.to_numpy())
    return pd.Series(np.minimum(adjusted, 1), index=valid.index).reindex(p.index)


def reliable_change(diff: np.ndarray, sd_baseline: float, r_xx: float, better: str,
                    z: float = 1.96) -> np.ndarray:
    """Jacobson & Truax (1991) category of each person's change.

    RCI = diff / S_diff, S_diff = sqrt(2) x SD_baseline x sqrt(1 - r_xx);
    |RCI| > 1.96 is reliable. Returns "improved", "no_change" or "deteriorated"
    per person (by the scale's direction); "" when the direction or S_diff is
    unknown.

    Examples
    --------
    >>> reliable_change(np.array([-8., -2, 7]), sd_baseline=5, r_xx=0.84, better="lower").tolist()
    ['improved', 'no_change', 'deteriorated']
    """
    s_diff = np.sqrt(2) * sd_baseline * np.sqrt(1 - r_xx) if 0 <= r_xx < 1 else np.nan
    if not better or not np.isfinite(s_diff) or s_diff <= 0:
        return np.full(len(diff), "", dtype=object)
    rci = improvement_sign(better) * np.asarray(diff, dtype=float) / s_diff
    return np.where(rci > z, "improved", np.where(rci < -z, "deteriorated", "no_change"))
