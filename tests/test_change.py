"""Paired change against scipy's independent implementation and closed forms."""

import math

import numpy as np
import pandas as pd
from scipy import stats

from pipelines.analysis.change import change_table, paired_change


def test_paired_t_matches_scipy():
    rng = np.random.default_rng(1)
    before = rng.normal(50, 10, 25)
    after = before + rng.normal(3, 5, 25)
    r = paired_change(before, after)
    ref = stats.ttest_rel(after, before)
    ci = ref.confidence_interval(0.95)
    assert math.isclose(r["t"], ref.statistic, rel_tol=1e-12)
    assert math.isclose(r["p"], ref.pvalue, rel_tol=1e-10)
    assert r["df"] == 24
    assert math.isclose(r["ci_low"], ci.low, rel_tol=1e-12)
    assert math.isclose(r["ci_high"], ci.high, rel_tol=1e-12)
    diff = after - before
    assert math.isclose(r["d_z"], diff.mean() / diff.std(ddof=1), rel_tol=1e-12)


def test_hand_example():
    # differences 2, 3, 1, 3: mean 2.25, sd sqrt(0.9167), t = 2.25 / (sd / 2)
    r = paired_change([10, 12, 14, 16], [12, 15, 15, 19])
    sd = math.sqrt(((2 - 2.25) ** 2 + 0.75**2 + 1.25**2 + 0.75**2) / 3)
    assert math.isclose(r["t"], 2.25 / (sd / 2))
    assert math.isclose(r["d_z"], 2.25 / sd)


def test_too_few_pairs_is_nan_with_a_flag():
    r = paired_change([1, 2, np.nan], [2, np.nan, 3])
    assert r["n_pairs"] == 1 and math.isnan(r["t"]) and "fewer than 3" in r["flags"]
    r = paired_change([1, 2, 3], [2, 3, 4])
    assert math.isnan(r["t"]) and "no variation" in r["flags"]


def test_change_table_uses_people_present_at_both_waves():
    scores = pd.DataFrame({
        "cohort": "c", "instrument": "i", "scale": "s",
        "participant": ["a", "b", "c", "d", "a", "b", "c", "e"],
        "wave": ["pre"] * 4 + ["post"] * 4,
        "score": [1.0, 2.0, 3.0, 4.0, 2.0, 4.0, 4.0, 9.0],
    })
    table = change_table(scores, [("pre", "post")], {("i", "s"): "higher"})
    row = table.iloc[0]
    assert row["n_pairs"] == 3 and row["mean_from"] == 2.0 and math.isclose(row["mean_to"], 10 / 3)
    assert row["improvement"] == "higher"
