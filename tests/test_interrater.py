"""Observer ratings: scores, table shapes, closed-form severity and drift, planted raters."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipelines.analysis.interrater import (
    INTERRATER_COLUMNS,
    LEVEL_COLUMNS,
    RATERS_COLUMNS,
    agreement_level,
    check_ratings,
    icc_forms,
    interrater_table,
    krippendorff_alpha,
    level_distribution,
    rated_scores,
    rater_scores,
    raters_table,
    score_reliability,
    simulate_ratings,
    spearman_brown,
)
from pipelines.schema import POOLED


def ratings(rows, cohort="c1", instrument="role") -> pd.DataFrame:
    """rows: (participant, wave, rater, item, domain, value)."""
    frame = pd.DataFrame(rows, columns=["participant", "wave", "rater", "item", "domain",
                                        "value"])
    frame.insert(0, "cohort", cohort)
    frame["instrument"] = instrument
    frame["value"] = frame["value"].astype(float)
    return frame


# ---- scores ---------------------------------------------------------------------------


def test_rater_scale_score_is_mean_of_rated_items_and_score_is_mean_over_raters():
    frame = ratings([("p", "pre", "a", "i1", "d1", 1), ("p", "pre", "a", "i2", "d1", 2),
                     ("p", "pre", "a", "i3", "d2", 4),
                     ("p", "pre", "b", "i1", "d1", 3), ("p", "pre", "b", "i2", "d1", np.nan),
                     ("p", "pre", "b", "i3", "d2", 2)])
    per_rater = rater_scores(frame).set_index(["rater", "measure"])["value"]
    assert per_rater[("a", "d1")] == 1.5
    assert per_rater[("b", "d1")] == 3.0            # the unrated item does not count
    assert per_rater[("a", "total")] == pytest.approx(7 / 3)
    assert per_rater[("b", "total")] == 2.5
    scores = rated_scores(frame).set_index("scale")
    assert scores.loc["d1", "score"] == 2.25         # (1.5 + 3) / 2, not (1 + 2 + 3) / 3
    assert scores.loc["total", "score"] == pytest.approx((7 / 3 + 2.5) / 2)
    assert scores.loc["d2", "score"] == 3.0
    assert scores["n_raters"].tolist() == [2, 2, 2]
    assert list(rated_scores(frame).columns) == ["cohort", "instrument", "participant", "wave",
                                                 "scale", "score", "n_raters"]


def test_rated_scores_one_row_per_participant_wave_scale():
    frame = simulate_ratings(seed=4, cohorts=2, participants=10, raters=4, items=4,
                             double_share=0.5, triple_share=0.2)
    scores = rated_scores(frame)
    counted = frame.groupby(["cohort", "participant", "wave"])["rater"].nunique()
    per_target = scores[scores["scale"] == "total"].set_index(
        ["cohort", "participant", "wave"])["n_raters"]
    assert per_target.sort_index().tolist() == counted.sort_index().tolist()
    assert len(scores) == len(counted) * 3


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns="rater"), "missing columns rater"),
    (lambda f: f.assign(rater=[None] + ["a"] * (len(f) - 1)), "1 rating(s) with no rater"),
    (lambda f: pd.concat([f, f.iloc[[0]]]), "1 item rating(s) given twice"),
])
def test_bad_ratings_give_one_clear_error(change, message):
    frame = ratings([("p", "pre", "a", "i1", "d1", 1), ("p", "pre", "b", "i1", "d1", 2)])
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_ratings(change(frame))


# ---- interrater table -----------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return simulate_ratings(seed=11, cohorts=3, participants=40, raters=5, items=6, domains=2,
                            double_share=0.4, triple_share=0.1)


def test_interrater_table_rows_and_columns(simulated):
    table = interrater_table(simulated)
    assert list(table.columns) == INTERRATER_COLUMNS
    assert set(table["cohort"]) == {"c1", "c2", "c3", POOLED}
    per_cohort = table.groupby("cohort")["measure"].apply(sorted)
    assert all(m == ["d1", "d2", "i1", "i2", "i3", "i4", "i5", "i6", "total"]
               for m in per_cohort)
    assert (table["headline"] == table["icc1"]).all()
    assert (table["headline_form"] == "icc1").all()
    assert set(table.loc[table["measure_kind"] == "item", "alpha_metric"]) == {"ordinal"}
    assert set(table.loc[table["measure_kind"] != "item", "alpha_metric"]) == {"interval"}
    assert table.loc[table["measure_kind"] != "item", "kappa_quadratic"].isna().all()
    assert table.loc[table["measure_kind"] == "item", "kappa_quadratic"].notna().all()


def test_only_targets_with_two_or_more_ratings_count(simulated):
    table = interrater_table(simulated).set_index(["cohort", "measure"])
    for cohort, one in simulated.groupby("cohort"):
        raters = one[one["item"] == "i1"].groupby(["participant", "wave"])["rater"].nunique()
        assert table.loc[(cohort, "i1"), "n_targets"] == (raters >= 2).sum()
        assert table.loc[(cohort, "i1"), "n_ratings"] == raters[raters >= 2].sum()
        assert table.loc[(cohort, "i1"), "n_pairs"] == (raters * (raters - 1) // 2).sum()
        assert table.loc[(cohort, "i1"), "n_targets_kappa"] == (raters == 2).sum()
    pooled = table.xs(POOLED, level="cohort")
    cohorts = table.drop(index=POOLED, level="cohort")
    assert pooled["n_targets"].sum() == cohorts["n_targets"].sum()


def test_pooled_rows_equal_a_single_cohort_program(simulated):
    whole = interrater_table(simulated.assign(cohort="one") .assign(
        participant=simulated["cohort"] + simulated["participant"],
        rater=simulated["rater"]), pooled=None).set_index("measure")
    pooled = interrater_table(simulated).query("cohort == @POOLED").set_index("measure")
    for column in ["icc1", "icc1_ci_low", "icc2", "icc3k", "alpha", "kappa_quadratic",
                   "exact_agreement", "n_targets", "n_raters"]:
        assert pooled[column].to_numpy() == pytest.approx(whole[column].to_numpy(), nan_ok=True)


def test_table_equals_icc_forms_per_group(simulated):
    table = interrater_table(simulated).set_index(["cohort", "measure"])
    one = simulated[(simulated["cohort"] == "c2") & (simulated["item"] == "i3")]
    forms = icc_forms(one.assign(target=one["participant"] + one["wave"])).set_index("form")
    for form in forms.index:
        assert table.loc[("c2", "i3"), form] == pytest.approx(forms.loc[form, "estimate"])
        assert table.loc[("c2", "i3"), f"{form}_ci_low"] == pytest.approx(
            forms.loc[form, "ci_low"])


def test_alpha_in_table_equals_krippendorff_per_group(simulated):
    krippendorff = pytest.importorskip("krippendorff")
    table = interrater_table(simulated).set_index(["cohort", "measure"])
    scores = rater_scores(simulated)
    for cohort in ("c1", "c3"):
        for measure, level in (("i2", "ordinal"), ("d1", "interval"), ("total", "interval")):
            one = scores[(scores["cohort"] == cohort) & (scores["measure"] == measure)]
            matrix = one.pivot_table(index="rater", columns=["participant", "wave"],
                                     values="value").to_numpy()
            assert table.loc[(cohort, measure), "alpha"] == pytest.approx(
                krippendorff.alpha(matrix, level_of_measurement=level), abs=1e-9)
            assert table.loc[(cohort, measure), "alpha"] == pytest.approx(
                krippendorff_alpha(matrix, level), abs=1e-9)


def test_agreement_closed_form():
    # Target p: three raters 1, 2, 4 -> pairs gaps 1, 3, 2; target q: 3, 3 -> gap 0.
    frame = ratings([("p", "pre", "a", "i1", "d", 1), ("p", "pre", "b", "i1", "d", 2),
                     ("p", "pre", "c", "i1", "d", 4), ("q", "pre", "a", "i1", "d", 3),
                     ("q", "pre", "b", "i1", "d", 3)])
    row = interrater_table(frame, pooled=None).query("measure_kind == 'item'").iloc[0]
    assert row["n_pairs"] == 4
    assert row["exact_agreement"] == 0.25
    assert row["adjacent_agreement"] == 0.5
    assert row["n_targets_kappa"] == 1
    assert np.isnan(row["kappa_quadratic"])            # one two-rater target: undefined


def test_kappa_orders_each_pair_by_rater_pseudonym():
    # Same pairs as psych::cohen.kappa(cbind(a, b)); rows listed in mixed rater order.
    a = [1, 2, 3, 4, 2, 3, 1, 4]
    b = [1, 3, 3, 4, 1, 3, 2, 3]
    rows = []
    for i, (x, y) in enumerate(zip(a, b)):
        pair = [(f"p{i}", "pre", "r1", "i1", "d", x), (f"p{i}", "pre", "r2", "i1", "d", y)]
        rows += pair[::-1] if i % 2 else pair
    ours = interrater_table(ratings(rows), pooled=None).query("measure_kind == 'item'")
    x, y = np.array(a, float), np.array(b, float)
    expected = 1 - np.mean((x - y) ** 2) / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)
    assert ours["kappa_quadratic"].iloc[0] == pytest.approx(expected)


def test_perfect_agreement_is_one_with_bounds_one():
    frame = ratings([(f"p{i}", "pre", r, "i1", "d", 1 + i % 4) for i in range(12)
                     for r in ("a", "b")])
    row = interrater_table(frame, pooled=None).query("measure_kind == 'total'").iloc[0]
    assert row["icc1"] == 1 and row["icc1_ci_low"] == 1 and row["icc1_ci_high"] == 1
    assert row["alpha"] == 1
    assert row["agreement_level"] == "excellent"


def test_raters_crossed_only_when_the_same_raters_rate_every_target():
    crossed = ratings([(f"p{i}", "pre", r, "i1", "d", (i + j) % 4 + 1) for i in range(10)
                       for j, r in enumerate(("a", "b"))])
    nested = ratings([(f"p{i}", "pre", r, "i1", "d", (i + j) % 4 + 1) for i in range(10)
                      for j, r in enumerate((f"a{i % 3}", "b"))])
    assert interrater_table(crossed, pooled=None)["raters_crossed"].all()
    assert not interrater_table(nested, pooled=None)["raters_crossed"].any()


def test_agreement_level_bands_of_koo_and_li():
    levels = agreement_level([-0.2, 0.49, 0.5, 0.74, 0.75, 0.89, 0.9, 1.0, np.nan],
                             n_targets=[30] * 9)
    assert levels.tolist() == ["poor", "poor", "moderate", "moderate", "good", "good",
                               "excellent", "excellent", "not_estimable"]
    assert agreement_level([0.95], n_targets=[9], min_targets=10).tolist() == ["not_estimable"]


def test_agreement_level_not_estimable_with_few_targets():
    frame = simulate_ratings(seed=2, cohorts=1, participants=8, raters=3, items=2,
                             double_share=0.5)
    table = interrater_table(frame, pooled=None)
    assert (table["n_targets"] < 10).all()
    assert (table["agreement_level"] == "not_estimable").all()
    assert table["icc1"].notna().any()


def test_score_reliability_is_spearman_brown_of_icc1_at_typical_k(simulated):
    table = interrater_table(simulated)
    rel = score_reliability(simulated, table).set_index(["cohort", "scale"])
    icc = table.set_index(["cohort", "measure"])["icc1"]
    assert (rel["k_typical"] == 1).all()                  # most participants rated once
    assert rel.loc[("c1", "total"), "reliability"] == pytest.approx(icc[("c1", "total")])
    assert rel.loc[("c1", "total"), "icc_source"] == "cohort"
    all_double = simulate_ratings(seed=5, cohorts=1, participants=30, raters=4, items=4,
                                  double_share=1.0)
    rel2 = score_reliability(all_double, pooled=None).set_index("scale")
    icc2 = interrater_table(all_double, pooled=None).set_index("measure")["icc1"]
    assert rel2.loc["total", "k_typical"] == 2
    assert rel2.loc["total", "reliability"] == pytest.approx(
        2 * icc2["total"] / (1 + icc2["total"]))


def test_score_reliability_falls_back_to_the_program_icc():
    big = simulate_ratings(seed=6, cohorts=1, participants=60, raters=5, items=4,
                           double_share=0.5)
    small = simulate_ratings(seed=7, cohorts=1, participants=6, raters=3, items=4,
                             double_share=0.3)
    small = small.assign(cohort="c2", participant="s" + small["participant"],
                         rater="s" + small["rater"])
    both = pd.concat([big, small], ignore_index=True)
    rel = score_reliability(both).set_index(["cohort", "scale"])
    pooled_icc = interrater_table(both).query("cohort == @POOLED").set_index("measure")["icc1"]
    assert rel.loc[("c2", "total"), "icc_source"] == "pooled"
    assert rel.loc[("c2", "total"), "icc1"] == pytest.approx(pooled_icc["total"])


def test_spearman_brown():
    assert spearman_brown(0.5, 1) == 0.5
    assert spearman_brown(0.5, 3) == pytest.approx(0.75)
    assert spearman_brown(0.6, 2) == pytest.approx(0.75)


# ---- raters ---------------------------------------------------------------------------


def severity_case() -> pd.DataFrame:
    # t1: a=1 b=2 c=3; t2: a=2 b=2; t3: a=1 c=3; t4: b=4 c=2 (one item, so item = total).
    values = {("t1", "a"): 1, ("t1", "b"): 2, ("t1", "c"): 3, ("t2", "a"): 2, ("t2", "b"): 2,
              ("t3", "a"): 1, ("t3", "c"): 3, ("t4", "b"): 4, ("t4", "c"): 2, ("t5", "a"): 4}
    return ratings([(t, "pre", r, "i1", "d", v) for (t, r), v in values.items()])


def test_severity_closed_form():
    table = raters_table(severity_case(), pooled=None, min_shared=2)
    overall = table.query("measure == 'total' and wave == @POOLED").set_index("rater")
    # a: t1 1 - 2.5 = -1.5; t2 2 - 2 = 0; t3 1 - 3 = -2 (t5 rated alone: not shared)
    deviations = {"a": [-1.5, 0.0, -2.0], "b": [2 - 2, 0.0, 4 - 2], "c": [3 - 1.5, 3 - 1, 2 - 4]}
    for rater, dev in deviations.items():
        dev = np.array(dev)
        row = overall.loc[rater]
        assert row["n_targets"] == 3
        assert row["severity"] == pytest.approx(dev.mean())
        assert row["sd"] == pytest.approx(dev.std(ddof=1))
        assert row["se"] == pytest.approx(dev.std(ddof=1) / np.sqrt(3))
        ci = stats.ttest_1samp(dev, 0).confidence_interval(0.95)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert list(table.columns) == RATERS_COLUMNS


def test_drift_is_last_minus_first_wave_with_welch_ci():
    rng = np.random.default_rng(3)
    rows = []
    for wave, shift, n in (("pre", 0.0, 7), ("mid", 0.2, 5), ("post", -0.8, 9)):
        for i in range(n):
            other = rng.integers(1, 4)
            rows += [(f"{wave}{i}", wave, "a", "i1", "d",
                      np.clip(other + shift + rng.choice([-1, 0, 0, 1]), 1, 4)),
                     (f"{wave}{i}", wave, "b", "i1", "d", other)]
    frame = ratings(rows)
    table = raters_table(frame, pooled=None, waves=["pre", "mid", "post"], min_shared=3)
    table = table.query("measure == 'total' and rater == 'a'").set_index("wave")
    dev = {w: (frame[(frame["wave"] == w) & (frame["rater"] == "a")]["value"].to_numpy()
               - frame[(frame["wave"] == w) & (frame["rater"] == "b")]["value"].to_numpy())
           for w in ("pre", "post")}
    overall = table.loc[POOLED]
    assert overall["drift_from"] == "pre" and overall["drift_to"] == "post"
    assert overall["drift"] == pytest.approx(dev["post"].mean() - dev["pre"].mean())
    welch = stats.ttest_ind(dev["post"], dev["pre"], equal_var=False)
    ci = welch.confidence_interval(0.95)
    assert (overall["drift_ci_low"], overall["drift_ci_high"]) == pytest.approx((ci.low, ci.high))
    assert table.loc["pre", "severity"] == pytest.approx(dev["pre"].mean())
    assert list(table.index) == [POOLED, "pre", "mid", "post"]
    assert np.isnan(table.loc["pre", "drift"])


def planted(seed: int, **kwargs) -> pd.DataFrame:
    """One cohort, 6 raters, rater 0 harsh by a level, rater 1 a level harsher at post."""
    return simulate_ratings(seed=seed, cohorts=1, participants=80, raters=6, items=8,
                            domains=2, double_share=0.4, severity={0: -1.0}, drift={1: -1.0},
                            **kwargs)


def flags(table: pd.DataFrame) -> pd.DataFrame:
    return table.query("measure == 'total' and wave == @POOLED").set_index("rater")


def test_planted_harsh_and_drifting_raters_are_flagged():
    table = flags(raters_table(planted(seed=1), waves=["pre", "post"]).query(
        "cohort == 'c1'"))
    assert table.loc["c1-r0", "direction"] == "harsh"
    assert table.loc["c1-r0", "outside_band"]
    assert table.loc["c1-r1", "drifting"]
    assert table.loc["c1-r1", "drift"] < 0
    assert not table.loc["c1-r0", "drifting"]
    others = table.drop(index=["c1-r0", "c1-r1"])
    assert (others["direction"] == "within_band").all()
    assert not others["drifting"].any()


def test_planted_raters_recovered_and_false_flags_rare_over_seeds():
    seeds = range(30)
    harsh_found = drift_found = false_flags = checked = 0
    for seed in seeds:
        table = flags(raters_table(planted(seed=100 + seed), pooled=None,
                                   waves=["pre", "post"]))
        harsh_found += table.loc["c1-r0", "direction"] == "harsh"
        drift_found += bool(table.loc["c1-r1", "drifting"])
        others = table.drop(index=["c1-r0", "c1-r1"])
        false_flags += int(others["outside_band"].sum() + others["drifting"].sum())
        checked += 2 * len(others)
    assert harsh_found >= 0.95 * len(seeds)
    assert drift_found >= 0.8 * len(seeds)
    # Raters who share targets with the planted ones look more lenient by about a fifth of a
    # level (the mean of the others includes the harsh rater): 3.5% false flags over 60 seeds.
    assert false_flags / checked <= 0.05


def test_no_rater_flagged_without_planted_effects_over_seeds():
    false_flags = checked = 0
    for seed in range(30):
        frame = simulate_ratings(seed=200 + seed, cohorts=1, participants=80, raters=6,
                                 items=8, domains=2, double_share=0.4)
        table = flags(raters_table(frame, pooled=None, waves=["pre", "post"]))
        false_flags += int(table["outside_band"].sum() + table["drifting"].sum())
        checked += 2 * len(table)
    assert false_flags / checked <= 0.02


def test_severity_only_from_shared_targets():
    frame = severity_case()
    single = frame[frame["participant"] == "t5"]
    assert len(single) == 1
    table = raters_table(frame, pooled=None, min_shared=2)
    assert table.query("rater == 'a' and measure == 'total'")["n_targets"].max() == 3


def test_pooled_rater_rows_combine_cohorts():
    frame = severity_case()
    both = pd.concat([frame, frame.assign(cohort="c2", participant="x" + frame["participant"])])
    table = raters_table(both, min_shared=2).query("measure == 'total' and wave == @POOLED")
    pooled = table[table["cohort"] == POOLED].set_index("rater")
    one = table[table["cohort"] == "c1"].set_index("rater")
    assert (pooled["n_targets"] == 2 * one["n_targets"]).all()
    assert pooled["severity"].to_numpy() == pytest.approx(one["severity"].to_numpy())


# ---- level distribution ---------------------------------------------------------------


def test_level_distribution_counts_and_shares():
    frame = ratings([("p1", "pre", "a", "i1", "d1", 1), ("p1", "pre", "b", "i1", "d1", 2),
                     ("p2", "pre", "a", "i1", "d1", 3), ("p2", "pre", "a", "i2", "d1", 4),
                     ("p2", "post", "a", "i2", "d1", 4), ("p3", "pre", "a", "i2", "d1", np.nan)])
    out = level_distribution(frame, harmful_below=2, helpful_from=3, levels=[1, 2, 3, 4])
    assert list(out.columns) == LEVEL_COLUMNS
    item = out.query("cohort == 'c1' and wave == 'pre' and measure == 'i1'").set_index("level")
    assert item["n_level"].tolist() == [1, 1, 1, 0]
    assert (item["n_ratings"] == 3).all()
    assert item["share"].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0])
    assert item["share_harmful"].iloc[0] == pytest.approx(1 / 3)
    assert item["share_helpful_or_above"].iloc[0] == pytest.approx(1 / 3)
    domain = out.query("cohort == 'c1' and wave == 'pre' and measure == 'd1'").set_index("level")
    assert domain["n_level"].tolist() == [1, 1, 1, 1]
    assert domain["share_helpful_or_above"].iloc[0] == 0.5
    post = out.query("wave == 'post' and measure == 'total'")
    assert set(post["cohort"]) == {"c1", POOLED}
    assert post.set_index(["cohort", "level"])["share"].loc[("c1", 4.0)] == 1.0


def test_level_distribution_pooled_sums_cohorts(simulated):
    out = level_distribution(simulated, harmful_below=2, helpful_from=3)
    cohorts = out[out["cohort"] != POOLED].groupby(["wave", "measure", "level"])["n_level"].sum()
    pooled = out[out["cohort"] == POOLED].set_index(["wave", "measure", "level"])["n_level"]
    assert pooled.sort_index().tolist() == cohorts.sort_index().tolist()
    shares = out.groupby(["cohort", "wave", "measure"])["share"].sum()
    assert shares.to_numpy() == pytest.approx(1.0)


def test_flag_needs_band_and_ci_excluding_zero():
    # a vs b on 6 targets: a is 1 level lower every time (narrow CI): outside the band.
    # c vs d on 6 targets: c lower by 0.75 on average but noisy (CI includes 0): not flagged.
    rows = []
    for i, (gap_ab, gap_cd) in enumerate(zip([1, 1, 1, 1, 1, 1], [3, -1, 2, -2, 2, 0.5])):
        rows += [(f"p{i}", "pre", "a", "i1", "d", 2), (f"p{i}", "pre", "b", "i1", "d", 2 + gap_ab),
                 (f"q{i}", "pre", "c", "i1", "d", 1), (f"q{i}", "pre", "d", "i1", "d", 1 + gap_cd)]
    table = flags(raters_table(ratings(rows), pooled=None))
    assert table.loc["a", "severity"] == -1 and table.loc["a", "direction"] == "harsh"
    assert table.loc["c", "severity"] == pytest.approx(-0.75)
    assert table.loc["c", "ci_low"] < 0 < table.loc["c", "ci_high"]
    assert table.loc["c", "direction"] == "within_band" and not table.loc["c", "outside_band"]
    small = flags(raters_table(ratings(rows), pooled=None, band=1.5))
    assert small.loc["a", "direction"] == "within_band"
    few = flags(raters_table(ratings(rows), pooled=None, min_shared=7))
    assert (few["direction"] == "not_estimable").all() and not few["outside_band"].any()


def test_no_multi_rated_targets_or_no_ratings_give_empty_tables():
    single = simulate_ratings(seed=1, cohorts=1, participants=5, raters=3, items=2,
                              double_share=0)
    assert interrater_table(single).empty
    assert raters_table(single).empty
    assert (score_reliability(single)["icc_source"] == "not_estimable").all()
    nothing = single.assign(value=np.nan)
    assert rated_scores(nothing).empty
    assert list(level_distribution(nothing, 2, 3).columns) == LEVEL_COLUMNS
