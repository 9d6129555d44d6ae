"""Paired change against scipy's independent implementation and closed forms."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipelines.analysis.change import holm, paired_change, reliable_change
from pipelines.analysis.gains import hake_gain, individual_gains, normalized_change
from pipelines.analysis.tables import change_tables


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
    assert r["n_pairs"] == 1 and math.isnan(r["t"]) and r["flags"] == "fewer_than_3_pairs"
    assert math.isnan(r["d_z"]) and math.isnan(r["wilcoxon_p"]) and math.isnan(r["d_av"])
    r = paired_change([1, 2, 3], [2, 3, 4])
    assert math.isnan(r["t"]) and r["flags"] == "no_variation_in_differences"


def test_change_table_uses_people_present_at_both_waves():
    scores = pd.DataFrame({
        "cohort": "c", "instrument": "i", "scale": "s",
        "participant": ["a", "b", "c", "d", "a", "b", "c", "e"],
        "wave": ["pre"] * 4 + ["post"] * 4,
        "score": [1.0, 2.0, 3.0, 4.0, 2.0, 4.0, 4.0, 9.0],
    })
    table, _, _ = change_tables(scores, [("pre", "post")], {("i", "s"): "higher"})
    row = table.iloc[0]
    assert row["n_pairs"] == 3 and row["mean_from"] == 2.0 and math.isclose(row["mean_to"], 10 / 3)
    assert row["improvement"] == "higher"


def test_effect_sizes_are_signed_positive_for_improvement():
    before, after = [30, 28, 35, 40, 33], [25, 27, 30, 33, 31]  # burnout going down
    up = paired_change(before, after, better="higher")
    down = paired_change(before, after, better="lower")
    assert down["mean_diff"] == up["mean_diff"] < 0 and down["t"] == up["t"]  # raw metric kept
    for key in ("d_z", "d_av", "g_av", "rank_biserial"):
        assert down[key] == pytest.approx(-up[key]) and down[key] > 0
    assert down["d_z_ci_low"] == pytest.approx(-up["d_z_ci_high"])


def test_tiny_cohorts_get_nan_and_a_flag_in_the_table():
    scores = pd.DataFrame({
        "cohort": ["big"] * 8 + ["tiny"] * 4, "instrument": "i", "scale": "s",
        "participant": ["a", "b", "c", "d"] * 2 + ["e", "f"] * 2,
        "wave": (["pre"] * 4 + ["post"] * 4) + ["pre", "pre", "post", "post"],
        "score": [1.0, 2, 3, 4, 2, 4, 4, 6, 1, 2, 3, 5], "band": None})
    table, people, _ = change_tables(scores, [("pre", "post")], {("i", "s"): "higher"})
    tiny = table.set_index("cohort").loc["tiny"]
    assert tiny["n_pairs"] == 2 and tiny["flags"] == "fewer_than_3_pairs" and np.isnan(tiny["p"])
    assert np.isnan(tiny["p_holm"]) and len(people) == 6


def test_holm_against_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = pd.Series([0.01, 0.2, 0.03, 0.04, 0.5, 0.001])
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])


def test_rci_on_a_hand_example():
    # SD 5, r_xx .84: S_diff = sqrt(2) * 5 * 0.4 = 2.828; 1.96 * S_diff = 5.54 points.
    diff = np.array([-6.0, -5.5, 0.0, 5.6, 6.0])
    assert reliable_change(diff, 5, 0.84, "lower").tolist() == [
        "improved", "no_change", "no_change", "deteriorated", "deteriorated"]
    assert reliable_change(diff, 5, 0.84, "higher").tolist() == [
        "deteriorated", "no_change", "no_change", "improved", "improved"]
    assert reliable_change(diff, 5, 0.84, "").tolist() == [""] * 5  # no direction: no verdict


def test_knowledge_gains_hand_examples_including_pre_at_100():
    pre, post = np.array([40.0, 100, 100, 60, 0]), np.array([70.0, 100, 80, 60, 0])
    assert hake_gain(pre.mean(), post.mean()) == pytest.approx((62 - 60) / 40)
    assert np.isnan(hake_gain(100, 90))  # undefined at 100
    g = individual_gains(pre, post)
    assert g[0] == pytest.approx(0.5) and np.isnan(g[1]) and np.isnan(g[2]) and g[3] == 0
    c = normalized_change(pre, post)
    # 40 -> 70: 30/60; 100 -> 100 dropped; 100 -> 80: -20/100; 60 -> 60: 0; 0 -> 0 dropped.
    assert c[0] == pytest.approx(0.5) and np.isnan(c[1]) and c[2] == pytest.approx(-0.2)
    assert c[3] == 0 and np.isnan(c[4])


def test_tucker_equating_reduces_to_mean_sigma_for_equivalent_groups():
    from pipelines.analysis.equating import tucker_linear

    rng = np.random.default_rng(3)
    v = rng.normal(50, 10, 200)
    x, y = v + rng.normal(10, 5, 200), 0.5 * v + rng.normal(0, 5, 200)
    slope, intercept = tucker_linear(x, v, y, v)  # same anchor scores: equivalent groups
    assert slope == pytest.approx(x.std(ddof=1) / y.std(ddof=1))
    assert intercept == pytest.approx(x.mean() - slope * y.mean())


def test_tucker_equating_recovers_a_known_line_in_nonequivalent_groups():
    from pipelines.analysis.equating import tucker_linear

    rng = np.random.default_rng(4)
    ability_x, ability_y = rng.normal(0, 1, 20000), rng.normal(0.5, 1.2, 20000)  # groups differ
    anchor = lambda a: 10 * a + rng.normal(0, 3, a.size)  # noqa: E731
    x = 50 + 10 * ability_x + rng.normal(0, 3, ability_x.size)
    y = 40 + 5 * ability_y + rng.normal(0, 1.5, ability_y.size)  # form Y: y = 40 + (x - 50)/2
    slope, intercept = tucker_linear(x, anchor(ability_x), y, anchor(ability_y))
    assert slope == pytest.approx(2.0, abs=0.05) and intercept == pytest.approx(-30, abs=2.5)
