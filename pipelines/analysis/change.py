"""Change between two waves on people present at both (paired analysis).

Sign convention: ``mean_diff`` is to-wave minus from-wave on the scale's own
metric; ``improvement`` states which direction is better for the scale
(higher for knowledge and compassion satisfaction, lower for burnout, stigma
and secondary traumatic stress) so readers need not guess.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

MIN_PAIRS = 3
CHANGE_COLUMNS = [
    "cohort", "instrument", "scale", "from_wave", "to_wave", "n_pairs",
    "mean_from", "sd_from", "mean_to", "sd_to", "mean_diff", "sd_diff", "ci_low", "ci_high",
    "t", "df", "p", "d_z", "improvement", "flags",
]


def paired_change(before: np.ndarray, after: np.ndarray, level: float = 0.95) -> dict:
    """Paired t-test and d_z for matched scores (``after - before``).

    Parameters
    ----------
    before, after : array-like of float
        Scores of the same people at two waves, in the same order; pairs with
        a missing value on either side are dropped.
    level : float
        Confidence level of the interval for the mean difference.

    Returns
    -------
    dict
        n_pairs, mean_from, sd_from, mean_to, sd_to, mean_diff, sd_diff,
        ci_low, ci_high, t, df, p (two-sided), d_z = mean_diff / sd_diff, flags.
        With fewer than 3 pairs or no variation in the differences the test
        figures are NaN and ``flags`` says why.

    Examples
    --------
    >>> r = paired_change([10, 12, 14, 16], [12, 15, 15, 19])
    >>> r["n_pairs"], r["mean_diff"], round(r["t"], 4), r["df"]
    (4, 2.25, 4.7001, 3)
    """
    x = np.asarray(before, dtype=float)
    y = np.asarray(after, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    diff = y - x
    n = len(diff)
    out = {
        "n_pairs": n,
        "mean_from": x.mean() if n else np.nan,
        "sd_from": x.std(ddof=1) if n > 1 else np.nan,
        "mean_to": y.mean() if n else np.nan,
        "sd_to": y.std(ddof=1) if n > 1 else np.nan,
        "mean_diff": diff.mean() if n else np.nan,
        "sd_diff": diff.std(ddof=1) if n > 1 else np.nan,
        "ci_low": np.nan, "ci_high": np.nan, "t": np.nan, "df": np.nan, "p": np.nan,
        "d_z": np.nan, "flags": "",
    }
    if n < MIN_PAIRS:
        out["flags"] = f"fewer than {MIN_PAIRS} pairs"
        return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in out.items()}
    if out["sd_diff"] == 0:
        out["flags"] = "no variation in the differences"
        return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in out.items()}
    se = out["sd_diff"] / np.sqrt(n)
    crit = stats.t.ppf(1 - (1 - level) / 2, n - 1)
    out.update(
        ci_low=out["mean_diff"] - crit * se,
        ci_high=out["mean_diff"] + crit * se,
        t=out["mean_diff"] / se,
        df=n - 1,
        p=2 * stats.t.sf(abs(out["mean_diff"] / se), n - 1),
        d_z=out["mean_diff"] / out["sd_diff"],
    )
    return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in out.items()}


def matched_pairs(scores: pd.DataFrame, from_wave: str, to_wave: str) -> pd.DataFrame:
    """One row per cohort x instrument x scale x participant with both waves' scores."""
    keys = ["cohort", "instrument", "scale", "participant"]
    wide = scores[scores["wave"].isin([from_wave, to_wave])].pivot_table(
        index=keys, columns="wave", values="score", aggfunc="first", dropna=False
    )
    wide = wide.reindex(columns=[from_wave, to_wave]).dropna()
    return wide.rename(columns={from_wave: "from", to_wave: "to"}).reset_index()


def change_table(
    scores: pd.DataFrame, pairs: list[tuple[str, str]], improvement: dict[tuple[str, str], str]
) -> pd.DataFrame:
    """The ``change`` table: every cohort x instrument x scale x wave pair.

    ``improvement`` maps (instrument, scale) to "higher", "lower" or "" (unknown).
    """
    rows = []
    for from_wave, to_wave in pairs:
        matched = matched_pairs(scores, from_wave, to_wave)
        for (cohort, inst, scale), grp in matched.groupby(["cohort", "instrument", "scale"]):
            stats_ = paired_change(grp["from"].to_numpy(), grp["to"].to_numpy())
            rows.append({
                "cohort": cohort, "instrument": inst, "scale": scale,
                "from_wave": from_wave, "to_wave": to_wave, **stats_,
                "improvement": improvement.get((inst, scale), ""),
            })
    return pd.DataFrame(rows, columns=CHANGE_COLUMNS)
