"""Reliability and item statistics against R psych (values in tests/golden/, made by
tests/golden/make_golden.R with the psych version in tests/golden/VERSIONS.txt)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pingouin
import pytest

from pipelines.analysis.factor import omega_hierarchical
from pipelines.analysis.items import likert_item_statistics
from pipelines.analysis.reliability import kr20, scale_reliability

GOLDEN = Path(__file__).parent / "golden"
BFI_KEYS = {"A": ["-A1", "A2", "A3", "A4", "A5"], "C": ["C1", "C2", "C3", "-C4", "-C5"],
            "E": ["-E1", "-E2", "E3", "E4", "E5"], "N": ["N1", "N2", "N3", "N4", "N5"],
            "O": ["O1", "-O2", "O3", "O4", "-O5"]}
SCALES = pd.read_csv(GOLDEN / "golden_scales.csv").set_index("scale")
ITEMS = pd.read_csv(GOLDEN / "golden_items.csv")


def _keyed_bfi(key: list[str]) -> pd.DataFrame:
    bfi = pd.read_csv(GOLDEN / "bfi.csv")
    cols = {k.lstrip("-"): k.startswith("-") for k in key}
    return pd.DataFrame({c: (7 - bfi[c]) if rev else bfi[c] for c, rev in cols.items()})


def dataset(name: str) -> pd.DataFrame:
    if name in BFI_KEYS:
        return _keyed_bfi(BFI_KEYS[name])
    return pd.read_csv(GOLDEN / f"{name}.csv")


@pytest.fixture(scope="module")
def ours() -> dict:
    return {name: scale_reliability(dataset(name), n_boot=200) for name in SCALES.index}


@pytest.mark.parametrize("name", list(SCALES.index))
@pytest.mark.parametrize("column", ["n", "k", "alpha", "std_alpha", "lambda6"])
def test_coefficients_equal_psych(ours, name, column):
    assert ours[name][column] == pytest.approx(SCALES.loc[name, column], abs=1e-9)


@pytest.mark.parametrize("name", list(SCALES.index))
def test_feldt_ci_equals_psych(ours, name):
    assert ours[name]["alpha_ci_low"] == pytest.approx(SCALES.loc[name, "feldt_low"], abs=1e-9)
    assert ours[name]["alpha_ci_high"] == pytest.approx(SCALES.loc[name, "feldt_high"], abs=1e-9)


@pytest.mark.parametrize("name", list(SCALES.index))
def test_feldt_ci_equals_pingouin(ours, name):
    alpha, (low, high) = pingouin.cronbach_alpha(dataset(name).dropna())
    assert ours[name]["alpha"] == pytest.approx(alpha, abs=1e-9)
    # pingouin rounds its interval to 3 decimals.
    assert ours[name]["alpha_ci_low"] == pytest.approx(low, abs=6e-4)
    assert ours[name]["alpha_ci_high"] == pytest.approx(high, abs=6e-4)


@pytest.mark.parametrize("name", list(SCALES.index))
def test_omega_total_within_5e3_of_psych(ours, name):
    assert ours[name]["omega_total"] == pytest.approx(SCALES.loc[name, "omega_total"], abs=5e-3)


def test_kr20_and_kr21_on_binary_test(ours):
    # KR-20 is alpha on 0/1 items; KR-21 from the R script's closed form.
    assert ours["sim_binary"]["kr20"] == pytest.approx(SCALES.loc["sim_binary", "alpha"], abs=1e-9)
    assert ours["sim_binary"]["kr21"] == pytest.approx(SCALES.loc["sim_binary", "kr21"], abs=1e-9)
    assert np.isnan(ours["sim_likert"]["kr20"]) and np.isnan(ours["A"]["kr21"])
    assert kr20(dataset("sim_binary")) == pytest.approx(SCALES.loc["sim_binary", "alpha"])


@pytest.mark.parametrize("name", list(SCALES.index))
def test_item_statistics_equal_psych(name):
    ours = likert_item_statistics(dataset(name)).set_index("item")
    theirs = ITEMS[ITEMS["scale"] == name].set_index("item")
    for column in ["mean", "sd", "r_drop", "alpha_if_dropped"]:
        np.testing.assert_allclose(ours.loc[theirs.index, column], theirs[column], atol=1e-9,
                                   err_msg=f"{name}: {column}")


OMEGA_H = pd.read_csv(GOLDEN / "golden_omega_h.csv").set_index("set")


@pytest.mark.parametrize("name,data,groups", [
    ("sim_bifactor", lambda: dataset("sim_bifactor"), [list(range(i, i + 4)) for i in (0, 4, 8)]),
    ("bfi_25", lambda: pd.concat([dataset(s) for s in BFI_KEYS], axis=1).dropna(),
     [list(range(i, i + 5)) for i in range(0, 25, 5)]),
])
def test_omega_hierarchical_close_to_psych(name, data, groups):
    x = data().to_numpy(dtype=float)
    assert len(x) == OMEGA_H.loc[name, "n"]
    value, flags = omega_hierarchical(x, groups)
    assert value == pytest.approx(OMEGA_H.loc[name, "omega_h"], abs=1e-3), flags


# ---- conventions (tests/golden/make_golden_conventions.R) ----------------------------

CONVENTIONS = pd.read_csv(GOLDEN / "golden_conventions.csv").set_index("figure")["value"]


def test_omega_total_is_psych_omega_flip_false():
    """A1 answered as is loads negatively: omega total is psych's flip = FALSE value,
    not the default's (which silently reverses A1 and describes another scale)."""
    unkeyed = pd.read_csv(GOLDEN / "bfi.csv")[["A1", "A2", "A3", "A4", "A5"]].dropna()
    assert len(unkeyed) == CONVENTIONS["n_unkeyed"]
    ours = scale_reliability(unkeyed, n_boot=20)["omega_total"]
    assert ours == pytest.approx(CONVENTIONS["omega_total_flip_false"], abs=5e-3)
    assert abs(ours - CONVENTIONS["omega_total_flip_true"]) > 0.1


def test_alpha_keeps_a_constant_item_that_psych_drops():
    x = pd.read_csv(GOLDEN / "sim_likert.csv").assign(s9=3)
    result = scale_reliability(x, n_boot=20)
    assert result["alpha"] == pytest.approx(CONVENTIONS["alpha_keeps_constant"], abs=1e-9)
    assert abs(result["alpha"] - CONVENTIONS["alpha_psych_drops_constant"]) > 0.01
    assert "constant_item" in result["flags"]
