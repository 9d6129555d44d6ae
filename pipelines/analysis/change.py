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
from scipy import stats

MIN_PAIRS = 3
WILCOXON_RULE = "zeros dropped (Wilcoxon); exact if n < 50 without ties, else normal with " \
                "continuity and tie correction (as R wilcox.test)"


def improvement_sign(better: str) -> int:
    """-1 when lower scores are better, else +1 (higher is better or no direction)."""
    return -1 if better == "lower" else 1


def paired_change(before, after, better: str = "", level: float = 0.95) -> dict:
    """Paired t-test, Wilcoxon signed-rank and paired effect sizes (``after - before``).

    One group of :func:`paired_change_by_group` (the same code).

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
        g_av = d_av x (1 - 3 / (4 (n - 1) - 1)), wilcoxon_v, wilcoxon_p (as R's
        ``wilcox.test(paired = TRUE)``), rank_biserial, flags. Fewer than 3
        pairs: NaN tests and a flag.

    References
    ----------
    Lakens, D. (2013). Calculating and reporting effect sizes to facilitate
    cumulative science. Frontiers in Psychology, 4, 863.

    Examples
    --------
    >>> r = paired_change([10, 12, 14, 16], [12, 15, 15, 19])
    >>> r["n_pairs"], r["mean_diff"], round(r["t"], 4), r["df"], round(r["d_av"], 4)
    (4, 2.25, 4.7001, 3.0, 0.8239)
    >>> round(paired_change([10, 12, 14, 16], [12, 15, 15, 19], better="lower")["d_z"], 4)
    -2.35
    """
    pairs = pd.DataFrame({"group": 0, "from": np.asarray(before, dtype=float),
                          "to": np.asarray(after, dtype=float)})
    sign = pd.Series(improvement_sign(better), index=pairs.index)
    table = paired_change_by_group(pairs, ["group"], sign, level).drop(columns="group")
    if table.empty:  # no complete pair
        return {**dict.fromkeys(table.columns, np.nan), "n_pairs": 0,
                "flags": f"fewer_than_{MIN_PAIRS}_pairs"}
    out = {name: getattr(value, "item", lambda v=value: v)()
           for name, value in table.iloc[0].items()}
    out["n_pairs"] = int(out["n_pairs"])
    return out


def matched_pairs(scores: pd.DataFrame, from_wave: str, to_wave: str) -> pd.DataFrame:
    """One row per cohort x instrument x scale x participant with both waves' scores."""
    keys = ["cohort", "instrument", "scale", "participant"]
    scored = scores[scores["score"].notna()].drop_duplicates(keys + ["wave"])
    at = {w: scored.loc[scored["wave"] == w, keys + ["score"]] for w in (from_wave, to_wave)}
    wide = at[from_wave].merge(at[to_wave], on=keys, suffixes=("_from", "_to"))
    wide = wide.rename(columns={"score_from": "from", "score_to": "to"})
    return wide.sort_values(keys, kind="stable").reset_index(drop=True)


def holm(p: pd.Series) -> pd.Series:
    """Holm (1979) step-down adjusted p-values; NaN stays NaN and is not counted.

    One group of :func:`holm_by_group`.

    Examples
    --------
    >>> holm(pd.Series([0.01, 0.04, np.nan, 0.03])).round(2).tolist()
    [0.03, 0.06, nan, 0.06]
    """
    return holm_by_group(p, pd.DataFrame({"all": np.zeros(len(p))}, index=p.index))


def holm_by_group(p: pd.Series, groups: pd.DataFrame) -> pd.Series:
    """:func:`holm` within each group (rows of ``groups`` with equal values), at once.

    Examples
    --------
    >>> p = pd.Series([0.01, 0.04, np.nan, 0.03, 0.2])
    >>> holm_by_group(p, pd.DataFrame({"g": ["a", "a", "a", "a", "b"]})).round(2).tolist()
    [0.03, 0.06, nan, 0.06, 0.2]
    """
    group = groups.groupby(list(groups.columns), sort=False, dropna=False).ngroup().to_numpy()
    values = p.to_numpy(dtype=float)
    ok = np.flatnonzero(~np.isnan(values))
    order = ok[np.lexsort((values[ok], group[ok]))]
    g, v = group[order], values[order]
    starts = np.r_[True, g[1:] != g[:-1]]
    start_pos = np.maximum.accumulate(np.where(starts, np.arange(len(g)), 0))
    size = np.bincount(g, minlength=group.max() + 1 if len(group) else 0)[g]
    scaled = (size - (np.arange(len(g)) - start_pos)) * v
    adjusted = pd.Series(scaled).groupby(g).cummax().to_numpy()  # restarts per group
    out = np.full(len(values), np.nan)
    out[order] = np.minimum(adjusted, 1)
    return pd.Series(out, index=p.index)


VERDICTS = ("improved", "worsened", "no_clear_change", "not_estimable")
VERDICT_ALPHA = 0.05


def family_verdicts(p: pd.Series, effect: pd.Series, improvement: pd.Series,
                    family: pd.DataFrame, alpha: float = VERDICT_ALPHA
                    ) -> tuple[pd.Series, pd.Series]:
    """Holm-adjusted p within each family, and each row's verdict.

    The one rule behind every "improved" or "got worse" a report prints: a row
    is ``improved`` or ``worsened`` when its p, Holm-adjusted over every row of
    its family (rows with equal values in ``family``), is below ``alpha``; the
    direction is the sign of ``effect`` (signed so that positive = improvement,
    as ``d_z``). Holm controls the chance of any false verdict in a family at
    ``alpha`` whatever the dependence between the tests (Holm 1979).
    ``no_clear_change``: adjusted p at or above ``alpha``. ``not_estimable``: no
    p (fewer than 3 pairs, no variation) or no direction of improvement
    (``improvement`` empty); such rows are left out of the adjustment.

    Examples
    --------
    >>> p = pd.Series([0.001, 0.04, 0.03, np.nan])
    >>> effect = pd.Series([0.9, -0.5, 0.4, 0.1])
    >>> better = pd.Series(["higher", "lower", "", "higher"])
    >>> adjusted, verdict = family_verdicts(p, effect, better, pd.DataFrame({"c": ["a"] * 4}))
    >>> adjusted.round(3).tolist(), verdict.tolist()
    ([0.002, 0.04, nan, nan], ['improved', 'worsened', 'not_estimable', 'not_estimable'])
    """
    directed = improvement.fillna("").astype(str).ne("").to_numpy()
    tested = pd.Series(np.where(directed, p.to_numpy(dtype=float), np.nan), index=p.index)
    adjusted = holm_by_group(tested, family)
    values, sign = adjusted.to_numpy(), np.sign(effect.to_numpy(dtype=float))
    with np.errstate(invalid="ignore"):
        clear = values < alpha
    verdict = np.select(
        [np.isnan(values), clear & (sign > 0), clear & (sign < 0)],
        ["not_estimable", "improved", "worsened"], default="no_clear_change")
    return adjusted, pd.Series(verdict, index=p.index)


RCI_MIN_BASELINE_N = 30


def rci_reliability(alpha, n, published: float | None = None,
                    min_n: int = RCI_MIN_BASELINE_N) -> tuple[float, str]:
    """The reliability r_xx of the Reliable Change Index, and where it comes from.

    The n-weighted mean of the baseline alphas given (the program's pooled rows:
    one per knowledge form, or the scale's one row; NaN alphas are left out),
    source ``pooled_baseline_alpha``. With fewer than ``min_n`` people behind
    it (none when there is no alpha), the instrument's ``published`` alpha is
    used when there is one (source ``published_alpha``): a small program's
    alpha is too unstable to fix everyone's RCI.

    Examples
    --------
    >>> rci_reliability([0.8, 0.7], [30, 10])
    (0.775, 'pooled_baseline_alpha')
    >>> rci_reliability([0.8], [20], published=0.85)
    (0.85, 'published_alpha')
    """
    alpha, n = np.asarray(alpha, dtype=float), np.asarray(n, dtype=float)
    kept = ~np.isnan(alpha)
    people = int(n[kept].sum())
    value = float((alpha[kept] * n[kept]).sum() / people) if people else np.nan
    if people < min_n and published:
        return float(published), "published_alpha"
    return value, "pooled_baseline_alpha"


def rci_s_diff(sd_baseline, r_xx):
    """S_diff = sqrt(2) x SD_baseline x sqrt(1 - r_xx) (Jacobson & Truax, 1991), elementwise.

    NaN where r_xx is outside [0, 1) (no reliability, or a perfect one).

    Examples
    --------
    >>> round(float(rci_s_diff(5.0, 0.84)), 4)
    2.8284
    >>> rci_s_diff(np.array([5.0, 5.0]), np.array([1.0, np.nan])).tolist()
    [nan, nan]
    """
    sd, r = np.asarray(sd_baseline, dtype=float), np.asarray(r_xx, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where((r >= 0) & (r < 1), np.sqrt(2) * sd * np.sqrt(1 - r), np.nan)


def reliable_change_index(diff, sd_baseline: float, r_xx: float) -> np.ndarray:
    """Each person's RCI = diff / S_diff (to-wave minus from-wave, not signed by direction).

    Examples
    --------
    >>> reliable_change_index(np.array([-8.0, 2.0]), 5, 0.84).round(3).tolist()
    [-2.828, 0.707]
    """
    return np.asarray(diff, dtype=float) / rci_s_diff(sd_baseline, r_xx)


def reliable_change(diff: np.ndarray, sd_baseline: float, r_xx: float, better: str,
                    z: float = 1.96) -> np.ndarray:
    """Jacobson & Truax (1991) category of each person's change.

    RCI = diff / S_diff (:func:`reliable_change_index`); |RCI| > 1.96 is
    reliable. Returns "improved", "no_change" or "deteriorated" per person (by
    the scale's direction); "" when the direction or S_diff is unknown.

    Examples
    --------
    >>> reliable_change(np.array([-8., -2, 7]), sd_baseline=5, r_xx=0.84, better="lower").tolist()
    ['improved', 'no_change', 'deteriorated']
    """
    s_diff = rci_s_diff(sd_baseline, r_xx)
    if not better or not np.isfinite(s_diff) or s_diff <= 0:
        return np.full(len(diff), "", dtype=object)
    rci = improvement_sign(better) * reliable_change_index(diff, sd_baseline, r_xx)
    return np.where(rci > z, "improved", np.where(rci < -z, "deteriorated", "no_change"))


def attrition_effect(n_lost, mean_lost, var_lost, n_kept, mean_kept, var_kept
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Baseline difference of the people lost at a later wave from those kept, elementwise.

    Returns (lost minus kept mean, Cohen's d on the pooled SD
    sqrt(((n_l - 1) var_l + (n_k - 1) var_k) / (n_l + n_k - 2))). The difference
    is NaN unless both groups have people; d also needs 2+ in each and a
    positive pooled variance. Positive d: the people lost started higher.

    Examples
    --------
    >>> diff, d = attrition_effect(3, 12.0, 4.0, 5, 10.0, 4.0)
    >>> float(diff), float(d)
    (2.0, 1.0)
    """
    n_lost, n_kept = np.asarray(n_lost, dtype=float), np.asarray(n_kept, dtype=float)
    with np.errstate(all="ignore"):
        diff = np.asarray(mean_lost, dtype=float) - np.asarray(mean_kept, dtype=float)
        pooled_var = ((n_lost - 1) * np.asarray(var_lost, dtype=float)
                      + (n_kept - 1) * np.asarray(var_kept, dtype=float)) / (n_lost + n_kept - 2)
        d = diff / np.sqrt(pooled_var)
    diff = np.where((n_lost > 0) & (n_kept > 0), diff, np.nan)
    return diff, np.where((n_lost > 1) & (n_kept > 1) & (pooled_var > 0), d, np.nan)


# ---- every group at once -------------------------------------------------------------

def _nct_cdf(t_obs: np.ndarray, df: np.ndarray, ncp: np.ndarray) -> np.ndarray:
    value = stats.nct.cdf(t_obs, df, ncp)
    return np.where(np.isfinite(value), value, (ncp < t_obs).astype(float))


def _nct_roots(t_obs, df, prob, tol: float = 1e-14) -> np.ndarray:
    """Noncentrality ``ncp`` with ``nct.cdf(t_obs, df, ncp) = prob``, elementwise.

    Illinois (modified regula falsi) on a bracket around the normal
    approximation ``t - z_prob sqrt(1 + t^2 / 2df)``, widened until the sign
    changes (the cdf falls as ``ncp`` grows); each element stops when its
    bracket is within ``tol`` (relative), as brentq's xtol/rtol.
    """
    f = lambda x, i: _nct_cdf(t_obs[i], df[i], x) - prob  # noqa: E731
    spread = np.sqrt(1 + t_obs**2 / (2 * df))
    guess = t_obs - stats.norm.ppf(prob) * spread
    lo, hi = guess - 0.25 * spread, guess + 0.25 * spread
    every = np.arange(len(t_obs))
    f_lo, f_hi = f(lo, every), f(hi, every)
    for step in range(60):  # widen: need f(lo) >= 0 >= f(hi)
        bad_lo, bad_hi = np.flatnonzero(f_lo < 0), np.flatnonzero(f_hi > 0)
        if not (len(bad_lo) or len(bad_hi)):
            break
        lo[bad_lo] -= spread[bad_lo] * 2.0**step
        hi[bad_hi] += spread[bad_hi] * 2.0**step
        f_lo[bad_lo], f_hi[bad_hi] = f(lo[bad_lo], bad_lo), f(hi[bad_hi], bad_hi)
    x, side = (lo + hi) / 2, np.zeros(len(t_obs))
    active = every
    for _ in range(100):
        a, b, fa, fb = lo[active], hi[active], f_lo[active], f_hi[active]
        with np.errstate(all="ignore"):
            xa = np.where(fa == fb, (a + b) / 2, b - fb * (b - a) / (fb - fa))
        xa = np.where((xa > a) & (xa < b), xa, (a + b) / 2)
        fx = f(xa, active)
        below = fx < 0  # the root lies below xa: xa is the new upper end
        s_prev = side[active]
        lo[active], hi[active] = np.where(below, a, xa), np.where(below, xa, b)
        f_lo[active] = np.where(below, np.where(s_prev == 1, fa / 2, fa), fx)
        f_hi[active] = np.where(below, fx, np.where(s_prev == -1, fb / 2, fb))
        side[active] = np.where(below, 1, -1)
        x[active] = xa
        done = (fx == 0) | (hi[active] - lo[active] <= tol * (1 + np.abs(xa)) * 8)
        active = active[~done]
        if not len(active):
            break
    return x


def d_z_interval(d_z, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """CI of d_z by inverting the noncentral t (t = d_z sqrt(n), df = n - 1), elementwise.

    The bounds are the noncentrality parameters that put the observed t at the
    upper and lower tail quantiles, divided by sqrt(n); NaN where d_z is not
    finite or n < 2.

    Examples
    --------
    >>> low, high = d_z_interval(np.array([0.5]), np.array([30]))
    >>> round(float(low[0]), 4), round(float(high[0]), 4)
    (0.1161, 0.8763)
    """
    d_z, n = np.asarray(d_z, dtype=float), np.asarray(n, dtype=float)
    low, high = np.full(len(d_z), np.nan), np.full(len(d_z), np.nan)
    ok = np.isfinite(d_z) & (n >= 2)
    if ok.any():
        t_obs, df, tail = d_z[ok] * np.sqrt(n[ok]), n[ok] - 1, (1 - level) / 2
        for prob, out in ((1 - tail, low), (tail, high)):
            out[ok] = _nct_roots(t_obs, df, prob) / np.sqrt(n[ok])
    return low, high


def _exact_wilcoxon_p(n: int, v: float) -> float:
    """Exact two-sided p of V with ``n`` untied non-zero differences, through scipy.

    The exact null distribution depends only on ``n`` and ``V``: build the
    differences +-1..n whose positive ranks sum to ``V`` (greedy from the top)
    and let scipy compute the exact p of those.
    """
    signs, rest = [], int(round(v))
    for rank in range(n, 0, -1):
        take = rank <= rest
        rest -= rank if take else 0
        signs.append(rank if take else -rank)
    return float(stats.wilcoxon(np.array(signs, dtype=float), method="exact").pvalue)


def wilcoxon_by_group(diff: np.ndarray, group: np.ndarray, n_groups: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R's ``wilcox.test(paired = TRUE)`` of every group: (V, two-sided p, rank-biserial) arrays.

    Zero differences are dropped before ranking. The exact distribution is
    used when fewer than 50 non-zero differences remain, none tied and no zero
    dropped; otherwise the normal approximation with continuity correction and
    the tie-corrected variance. The matched rank-biserial correlation is
    (T+ - T-) / (T+ + T-) on the same ranks (Kerby, 2014).

    ``group`` holds each difference's group number in ``range(n_groups)``.
    """
    v = np.full(n_groups, np.nan)
    p, rb = v.copy(), v.copy()
    nonzero = diff != 0
    d, g = diff[nonzero], group[nonzero]
    n = np.bincount(g, minlength=n_groups)
    n_all = np.bincount(group, minlength=n_groups)
    ranks = pd.Series(np.abs(d)).groupby(g).rank(method="average").to_numpy()
    has = n > 0
    v_all = np.bincount(g, weights=ranks * (d > 0), minlength=n_groups)
    total = n * (n + 1) / 2
    tie_sizes = pd.DataFrame({"g": g, "r": ranks}).groupby(["g", "r"]).size()
    tie_term = ((tie_sizes**3 - tie_sizes).groupby(level="g").sum()
                .reindex(range(n_groups), fill_value=0).to_numpy())
    tied = (tie_sizes.gt(1).groupby(level="g").any()
            .reindex(range(n_groups), fill_value=False).to_numpy())
    exact = has & (n < 50) & ~tied & (n == n_all)
    with np.errstate(all="ignore"):
        sigma = np.sqrt(n * (n + 1) * (2 * n + 1) / 24 - tie_term / 48)
        z = v_all - n * (n + 1) / 4
        z = (z - np.sign(z) * 0.5) / sigma
        p_normal = 2 * np.minimum(stats.norm.cdf(z), stats.norm.sf(z))
        rb[has] = ((2 * v_all - total) / total)[has]
    p[has] = p_normal[has]
    cache: dict[tuple[int, float], float] = {}
    for i in np.flatnonzero(exact):
        key = (int(n[i]), float(v_all[i]))
        if key not in cache:
            cache[key] = _exact_wilcoxon_p(*key)
        p[i] = cache[key]
    v[has] = v_all[has]
    return v, np.minimum(p, 1.0), rb


def paired_change_by_group(pairs: pd.DataFrame, keys: list[str], sign: pd.Series,
                           level: float = 0.95) -> pd.DataFrame:
    """Paired tests and effect sizes of every group of ``pairs`` at once, one row per group.

    The figures of :func:`paired_change` (which calls this with one group).

    Parameters
    ----------
    pairs : DataFrame
        ``keys`` plus ``from`` and ``to`` (one row per person with both scores).
    keys : list of str
        Grouping columns; the result is sorted by them (as ``groupby``).
    sign : Series
        +1 or -1 per row of ``pairs`` (see :func:`improvement_sign`), constant
        within a group.

    Examples
    --------
    >>> pairs = pd.DataFrame({"g": "a", "from": [10., 12, 14, 16], "to": [12., 15, 15, 19]})
    >>> r = paired_change_by_group(pairs, ["g"], pd.Series(1, index=pairs.index))
    >>> int(r["n_pairs"].iloc[0]), float(r["mean_diff"].iloc[0]), round(float(r["t"].iloc[0]), 4)
    (4, 2.25, 4.7001)
    """
    pairs = pairs[pairs["from"].notna() & pairs["to"].notna()]
    grouped = pairs.assign(diff=pairs["to"] - pairs["from"], sign=sign.loc[pairs.index]
                           ).groupby(keys, sort=True)
    out = grouped.agg(n_pairs=("diff", "size"), mean_from=("from", "mean"),
                      sd_from=("from", "std"), mean_to=("to", "mean"), sd_to=("to", "std"),
                      mean_diff=("diff", "mean"), sd_diff=("diff", "std"), sign=("sign", "first"))
    n, sgn = out["n_pairs"].to_numpy(), out["sign"].to_numpy(dtype=float)
    mean, sd = out["mean_diff"].to_numpy(), out["sd_diff"].to_numpy()
    enough = n >= MIN_PAIRS
    with np.errstate(all="ignore"):
        sd_av = np.sqrt((out["sd_from"] ** 2 + out["sd_to"] ** 2) / 2).to_numpy()
        d_av = np.where(enough & (sd_av > 0), sgn * mean / sd_av, np.nan)
        out["d_av"] = d_av
        out["g_av"] = d_av * (1 - 3 / (4 * (n - 1) - 1))
        v, p_w, rb = wilcoxon_by_group(pairs["to"].to_numpy() - pairs["from"].to_numpy(),
                                     grouped.ngroup().to_numpy(), len(out))
        out["wilcoxon_v"] = np.where(enough, v, np.nan)
        out["wilcoxon_p"] = np.where(enough, p_w, np.nan)
        out["rank_biserial"] = np.where(enough, sgn * rb, np.nan)
        tested = enough & (sd != 0)
        se = sd / np.sqrt(n)
        crit = stats.t.ppf(1 - (1 - level) / 2, np.maximum(n - 1, 1))
        t = np.where(tested, mean / se, np.nan)
        out["ci_low"] = np.where(tested, mean - crit * se, np.nan)
        out["ci_high"] = np.where(tested, mean + crit * se, np.nan)
        out["t"], out["df"] = t, np.where(tested, n - 1, np.nan)
        out["p"] = np.where(tested, 2 * stats.t.sf(np.abs(t), np.maximum(n - 1, 1)), np.nan)
        d_z = np.where(tested, mean / sd, np.nan)
        low, high = d_z_interval(d_z, n, level)
    out["d_z"] = sgn * d_z
    out["d_z_ci_low"] = np.where(sgn < 0, -high, low)
    out["d_z_ci_high"] = np.where(sgn < 0, -low, high)
    out["flags"] = np.where(~enough, f"fewer_than_{MIN_PAIRS}_pairs",
                            np.where(sd == 0, "no_variation_in_differences", ""))
    return out.drop(columns="sign").reset_index()
