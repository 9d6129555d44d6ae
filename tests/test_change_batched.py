"""The all-groups-at-once change statistics equal the figures computed by hand, group by
group (tests/oracles.py: scipy's brentq on the noncentral t, scipy's Wilcoxon, Holm's
step-down loop), including the edge cases; tolerances as stated in each test.
"""

import numpy as np
import pandas as pd
import pytest

from pipelines.analysis.change import (
    d_z_interval, holm_by_group, improvement_sign, paired_change_by_group,
)
from tests.oracles import d_z_interval as d_z_interval_by_hand
from tests.oracles import holm_by_hand as holm
from tests.oracles import paired_change_by_hand as paired_change
from pipelines.analysis.tables import change_tables

COLUMNS = ["n_pairs", "mean_from", "sd_from", "mean_to", "sd_to", "mean_diff", "sd_diff",
           "ci_low", "ci_high", "t", "df", "p", "d_z", "d_z_ci_low", "d_z_ci_high", "d_av",
           "g_av", "wilcoxon_v", "wilcoxon_p", "rank_biserial"]


def groups_with_edge_cases(rng) -> pd.DataFrame:
    """Many random groups plus: 1 and 2 pairs, constant differences, ties, zeros, n > 50."""
    parts = []
    for g in range(60):
        n = int(rng.integers(3, 40))
        before = rng.normal(50, 10, n).round(int(rng.integers(0, 3)))
        after = before + rng.normal(rng.normal(0, 3), 4, n).round(int(rng.integers(0, 2)))
        parts.append(pd.DataFrame({"g": f"r{g:02d}", "from": before, "to": after}))
    special = {
        "one": ([1.0], [2.0]), "two": ([1.0, 2], [2.0, 4]),
        "constant": ([1.0, 2, 3, 4], [3.0, 4, 5, 6]), "no_change": ([1.0, 2, 3], [1.0, 2, 3]),
        "ties_zeros": ([1.0, 2, 3, 4, 5, 6], [2.0, 3, 3, 5, 4, 8]),
        "large": (np.arange(80.0), np.arange(80.0) + rng.normal(1, 2, 80).round(1)),
        "huge_effect": ([1.0, 2, 3, 4, 5], [101.0, 102.1, 103, 104.2, 105]),
    }
    for name, (before, after) in special.items():
        parts.append(pd.DataFrame({"g": name, "from": before, "to": after}))
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("better", ["higher", "lower", ""])
def test_paired_changes_equal_paired_change_per_group(better):
    pairs = groups_with_edge_cases(np.random.default_rng(5))
    sign = pd.Series(improvement_sign(better), index=pairs.index)
    table = paired_change_by_group(pairs, ["g"], sign).set_index("g")
    for g, grp in pairs.groupby("g"):
        ref = paired_change(grp["from"], grp["to"], better)
        row = table.loc[g]
        for column in COLUMNS:
            assert np.isclose(row[column], ref[column], rtol=1e-9, atol=1e-12, equal_nan=True), (
                g, column, row[column], ref[column])
        assert row["flags"] == ref["flags"]


def test_d_z_intervals_equal_the_scalar_inversion():
    rng = np.random.default_rng(2)
    d = np.r_[rng.normal(0, 1.5, 300), 0.0, 25.0, -40.0, 60.0, np.nan]
    n = np.r_[rng.integers(2, 80, 300), 3, 10, 5, 3, 10]
    low, high = d_z_interval(d, n)
    for i in range(len(d)):
        ref = d_z_interval_by_hand(d[i], int(n[i]))
        assert np.allclose([low[i], high[i]], ref, rtol=1e-11, atol=1e-12, equal_nan=True)


def test_holm_groups_equal_holm_per_group_even_for_tiny_p():
    rng = np.random.default_rng(3)
    p = pd.Series(rng.random(3000) ** 30)  # down to ~1e-90
    p[rng.random(3000) < 0.1] = np.nan
    groups = pd.DataFrame({"a": rng.integers(0, 200, 3000), "b": rng.choice(["x", "y"], 3000)})
    ref = p.groupby([groups["a"], groups["b"]]).transform(holm)
    pd.testing.assert_series_equal(holm_by_group(p, groups), ref, check_names=False, rtol=0)


@pytest.fixture(scope="module")
def demo_scores(tmp_path_factory):
    """The demo program's scores, through the stages as plain functions (no Prefect)."""
    from pipelines import stages
    from pipelines.demo import write_demo

    ctx = stages.load_context(write_demo(tmp_path_factory.mktemp("demo")))
    return stages.score(ctx, stages.validate(ctx, stages.ingest(ctx)))


def test_change_table_rows_equal_paired_change(demo_scores):
    """Every row of the pipeline's change table equals the reference on its group."""
    change, individual, _ = change_tables(demo_scores, [("pre", "post"), ("post", "follow_up")],
                                          {})
    assert len(individual) == change["n_pairs"].sum()
    for row in change.sample(25, random_state=1).itertuples():
        mine = individual[(individual["cohort"] == row.cohort)
                          & (individual["instrument"] == row.instrument)
                          & (individual["scale"] == row.scale)
                          & (individual["from_wave"] == row.from_wave)]
        ref = paired_change(mine["score_from"], mine["score_to"])
        for column in ("mean_diff", "t", "p", "d_z", "d_z_ci_low", "wilcoxon_p"):
            assert np.isclose(getattr(row, column), ref[column], rtol=1e-9, equal_nan=True)
