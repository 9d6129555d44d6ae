"""Inter-rater statistics against R and published values.

ICC forms and weighted kappa: tests/golden/golden_interrater.csv, made by
tests/golden/make_golden_interrater.R (psych version in VERSIONS_interrater.txt).
Krippendorff's alpha: the worked example of Krippendorff (2011) and the
``krippendorff`` package (the test oracle) on random unbalanced data.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pingouin
import pytest

from pipelines.analysis.interrater import (
    icc_forms,
    interrater_table,
    krippendorff_alpha,
)

krippendorff = pytest.importorskip("krippendorff")

GOLDEN = Path(__file__).parent / "golden"
R = pd.read_csv(GOLDEN / "golden_interrater.csv")
TOL = 1e-9
FORMS = ["icc1", "icc2", "icc3", "icc1k", "icc2k", "icc3k"]
SHROUT_FLEISS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9],
                 [6, 2, 4, 7]]
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: 4 observers x
# 12 units, missing values; published alphas nominal .743, ordinal .815, interval .849.
KRIPPENDORFF_2011 = [[1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
                     [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
                     [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
                     [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan]]


def golden(case: str, statistic: str) -> pd.Series:
    row = R[(R["case"] == case) & (R["statistic"] == statistic)]
    assert len(row) == 1, (case, statistic)
    return row.iloc[0]


def shrout_fleiss_long() -> pd.DataFrame:
    return pd.DataFrame([(t, f"j{j}", v) for t, row in enumerate(SHROUT_FLEISS)
                         for j, v in enumerate(row)], columns=["target", "rater", "value"])


def unbalanced_ratings() -> pd.DataFrame:
    data = pd.read_csv(GOLDEN / "interrater_unbalanced.csv")
    return pd.DataFrame({"cohort": data["group"], "wave": "pre", "participant": data["target"],
                         "rater": data["rater"], "instrument": "inst", "item": "i1",
                         "domain": "d1", "value": data["value"].astype(float)})


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return interrater_table(unbalanced_ratings()).set_index(["cohort", "measure_kind"])


def test_shrout_fleiss_published_values():
    ours = icc_forms(shrout_fleiss_long()).set_index("form")["estimate"]
    published = [0.17, 0.29, 0.71, 0.44, 0.62, 0.91]
    assert ours[FORMS].round(2).tolist() == published


@pytest.mark.parametrize("form", FORMS)
def test_shrout_fleiss_equals_psych(form):
    ours = icc_forms(shrout_fleiss_long()).set_index("form").loc[form]
    ref = golden("shrout_fleiss", form)
    assert ours["estimate"] == pytest.approx(ref["estimate"], abs=TOL)
    assert ours["ci_low"] == pytest.approx(ref["ci_low"], abs=TOL)
    assert ours["ci_high"] == pytest.approx(ref["ci_high"], abs=TOL)


def test_shrout_fleiss_equals_pingouin():
    ref = pingouin.intraclass_corr(shrout_fleiss_long(), targets="target", raters="rater",
                                   ratings="value")
    # pingouin labels: ICC1 ICC2 ICC3 ICC1k ICC2k ICC3k in this order; CI rounded to 2 dp.
    ours = icc_forms(shrout_fleiss_long())
    assert ours["estimate"].to_numpy() == pytest.approx(ref["ICC"].to_numpy(), abs=TOL)
    ci = np.stack(ref["CI95"].to_numpy())
    assert ours["ci_low"].to_numpy() == pytest.approx(ci[:, 0], abs=0.006)
    assert ours["ci_high"].to_numpy() == pytest.approx(ci[:, 1], abs=0.006)


@pytest.mark.parametrize("case", ["g1", "g2", "ALL"])
@pytest.mark.parametrize("form", FORMS)
def test_unbalanced_icc_equals_r(table, case, form):
    ours = table.loc[(case, "item")]
    ref = golden(case, form)
    assert ours[form] == pytest.approx(ref["estimate"], abs=TOL)
    assert ours[f"{form}_ci_low"] == pytest.approx(ref["ci_low"], abs=TOL)
    assert ours[f"{form}_ci_high"] == pytest.approx(ref["ci_high"], abs=TOL)


@pytest.mark.parametrize("case", ["g1", "g2", "ALL"])
@pytest.mark.parametrize("column", ["k0", "n_targets", "n_targets_twoway", "k_twoway",
                                    "kappa_quadratic", "n_targets_kappa"])
def test_unbalanced_design_and_kappa_equal_r(table, case, column):
    assert table.loc[(case, "item"), column] == pytest.approx(
        golden(case, column)["estimate"], abs=TOL)


@pytest.mark.parametrize("kind", ["domain", "total"])
def test_scales_of_one_item_have_the_item_icc(table, kind):
    for case in ("g1", "g2", "ALL"):
        assert table.loc[(case, kind), "icc1"] == pytest.approx(golden(case, "icc1")["estimate"],
                                                                abs=TOL)


def test_kappa_weights_are_on_level_codes_not_used_levels():
    pairs = pd.read_csv(GOLDEN / "interrater_kappa.csv")
    long = pd.DataFrame({"cohort": "c", "wave": "pre", "participant": np.repeat(
        [f"p{i}" for i in range(len(pairs))], 2), "rater": ["a", "b"] * len(pairs),
        "instrument": "inst", "item": "i1", "domain": "d1",
        "value": pairs[["a", "b"]].to_numpy(dtype=float).ravel()})
    ours = interrater_table(long, pooled=None).query("measure_kind == 'item'")
    ref = golden("kappa_unused_level", "kappa_quadratic")["estimate"]
    assert ours["kappa_quadratic"].iloc[0] == pytest.approx(ref, abs=TOL)


@pytest.mark.parametrize("level, published", [("nominal", 0.743), ("ordinal", 0.815),
                                              ("interval", 0.849)])
def test_krippendorff_published_example(level, published):
    ours = krippendorff_alpha(KRIPPENDORFF_2011, level)
    assert round(ours, 3) == published
    oracle = krippendorff.alpha(KRIPPENDORFF_2011, level_of_measurement=level)
    assert ours == pytest.approx(oracle, abs=TOL)


def random_unbalanced(seed: int, raters: int = 6, units: int = 40) -> np.ndarray:
    """Raters x units with levels 1-4, 2-4 ratings per unit, some units rated once."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(2.5, 0.8, units)
    data = np.clip(np.rint(truth + rng.normal(0, 0.7, (raters, units))), 1, 4)
    keep = rng.random((raters, units)) < rng.uniform(0.25, 0.6)
    return np.where(keep, data, np.nan)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_krippendorff_equals_package_on_unbalanced_data(seed, level):
    data = random_unbalanced(seed)
    assert krippendorff_alpha(data, level) == pytest.approx(
        krippendorff.alpha(data, level_of_measurement=level), abs=1e-9)


def test_table_alpha_is_ordinal_for_items_and_interval_for_scales(table):
    data = pd.read_csv(GOLDEN / "interrater_unbalanced.csv")
    for case in ("g1", "g2"):
        one = data[data["group"] == case]
        matrix = one.pivot(index="rater", columns="target", values="value").to_numpy()
        assert table.loc[(case, "item"), "alpha"] == pytest.approx(
            krippendorff.alpha(matrix, level_of_measurement="ordinal"), abs=TOL)
        assert table.loc[(case, "total"), "alpha"] == pytest.approx(
            krippendorff.alpha(matrix, level_of_measurement="interval"), abs=TOL)
