"""Reliability and item analysis: closed-form cases, edge cases, bootstrap behaviour."""

import numpy as np
import pandas as pd
import pytest

from pipelines.analysis.items import knowledge_item_statistics, upper_lower_index
from pipelines.analysis.reliability import (
    bootstrap_alpha_ci, bootstrap_alphas, cronbach_alpha, scale_reliability, weight_blocks,
)


def compound_symmetry(n: int, k: int, rho: float, rng) -> np.ndarray:
    cov = np.full((k, k), rho)
    np.fill_diagonal(cov, 1)
    return rng.multivariate_normal(np.zeros(k), cov, size=n)


def test_vectorised_bootstrap_equals_alpha_of_each_resample():
    rng = np.random.default_rng(3)
    x = compound_symmetry(40, 5, 0.3, rng)
    weights = np.vstack(list(weight_blocks(40, 25, seed=9)))
    looped = [cronbach_alpha(np.repeat(x, w.astype(int), axis=0)) for w in weights]
    np.testing.assert_allclose(bootstrap_alphas([x[None]], 25, seed=9)[0][0], looped, atol=1e-12)


def test_bootstrap_is_reproducible_and_seed_dependent():
    x = compound_symmetry(50, 4, 0.4, np.random.default_rng(1))
    assert bootstrap_alpha_ci(x, seed=5) == bootstrap_alpha_ci(x, seed=5)
    assert bootstrap_alpha_ci(x, seed=5) != bootstrap_alpha_ci(x, seed=6)


def test_bootstrap_ci_covers_population_alpha_about_95_percent():
    # Equal variances and covariances: population alpha = k rho / (1 + (k-1) rho) = 0.8.
    rng = np.random.default_rng(7)
    replicates = 400
    hits = 0
    for i in range(replicates):
        low, high = bootstrap_alpha_ci(compound_symmetry(150, 6, 0.4, rng), n_boot=1000, seed=i)
        hits += low <= 0.8 <= high
    # Binomial SE of the coverage is about 0.011 here; percentile intervals run slightly short.
    assert 0.91 <= hits / replicates <= 0.98


@pytest.mark.parametrize("n", [2, 3])
def test_tiny_samples_give_numbers_or_nan_with_flags(n):
    x = np.array([[1, 2, 2], [3, 3, 4], [2, 4, 3]], dtype=float)[:n]
    r = scale_reliability(x, n_boot=200)
    assert r["n"] == n and np.isfinite(r["alpha"])
    assert np.isnan(r["alpha_boot_low"]) and r["n_boot"] == 0
    assert {"n_below_10"} | ({"n_below_k"} if n < 3 else set()) <= set(r["flags"].split(";"))
    assert np.isnan(r["omega_total"]) and "omega_not_estimable" in r["flags"]


def test_constant_item_keeps_raw_alpha_but_not_correlation_based_figures():
    rng = np.random.default_rng(2)
    x = compound_symmetry(60, 4, 0.5, rng)
    x[:, 2] = 3.0
    r = scale_reliability(x, n_boot=200)
    assert r["alpha"] == pytest.approx(cronbach_alpha(x))
    assert np.isnan(r["std_alpha"]) and np.isnan(r["lambda6"]) and np.isnan(r["omega_total"])
    assert "constant_item" in r["flags"]


def test_identical_items_are_perfectly_reliable():
    col = np.array([1, 2, 3, 4, 5, 2, 3, 4, 1, 5, 2, 3], dtype=float)
    r = scale_reliability(np.column_stack([col, col, col]), n_boot=200)
    for column in ["alpha", "std_alpha", "lambda6", "alpha_boot_low", "alpha_boot_high"]:
        assert r[column] == pytest.approx(1.0), column
    assert r["sem"] == 0.0


def test_item_never_answered_is_left_out_and_flagged():
    rng = np.random.default_rng(4)
    x = compound_symmetry(30, 4, 0.5, rng)
    with_empty = np.column_stack([x, np.full(30, np.nan)])
    r = scale_reliability(with_empty, n_boot=200)
    assert r["k"] == 4 and r["n"] == 30
    assert r["alpha"] == pytest.approx(cronbach_alpha(x))
    assert "item_never_answered" in r["flags"]


def test_negative_alpha_is_reported_and_flagged():
    x = np.array([[1, 5], [2, 4], [3, 3], [4, 2], [5, 2], [1, 4]], dtype=float)
    r = scale_reliability(x, n_boot=200)
    assert r["alpha"] < 0
    assert "negative_average_covariance" in r["flags"] and "alpha_below_0.70" in r["flags"]
    assert np.isnan(r["sem"])  # sqrt(1 - alpha) would exceed the total's sd


def test_zero_total_variance_gives_nan_alpha():
    x = np.array([[1, 3], [2, 2], [3, 1]], dtype=float)
    r = scale_reliability(x, n_boot=200)
    assert np.isnan(r["alpha"]) and "zero_total_variance" in r["flags"]


def test_sem_closed_form():
    x = compound_symmetry(200, 5, 0.5, np.random.default_rng(8))
    r = scale_reliability(x, n_boot=200)
    assert r["sem"] == pytest.approx(x.sum(axis=1).std(ddof=1) * np.sqrt(1 - r["alpha"]))


def test_upper_lower_index_closed_form():
    # 10 people: the top 3 (27% of 10) all correct on q1, the bottom 3 all wrong.
    correct = np.array([[1, 1, 1]] * 3 + [[1, 0, 1]] * 4 + [[0, 0, 0]] * 3, dtype=float)
    assert upper_lower_index(correct).tolist() == [1.0, 1.0, 1.0]


def test_distractor_chosen_by_strong_people_flags_possible_wrong_key():
    # People in order of ability. q3's "key" c is chosen by the weakest, while the
    # strongest chose b: the key is likely wrong.
    answers = pd.DataFrame({"q1": list("aaaaaabbcb"), "q2": list("aaaaabacbb"),
                            "q4": list("aaaaaaabbc"), "q3": list("bbbbcccccc")})
    key = {"q1": ["a"], "q2": ["a"], "q3": ["c"], "q4": ["a"]}
    correct = pd.DataFrame({q: answers[q].eq(k[0]).astype(float) for q, k in key.items()})
    options = {q: ["a", "b", "c"] for q in key}
    items, table = knowledge_item_statistics(answers, correct, options, key)
    q3b = table[(table["item"] == "q3") & (table["option"] == "b")].iloc[0]
    assert q3b["share"] == 0.4 and q3b["point_biserial"] > 0
    keyed = table[table["is_key"]].set_index("item")["point_biserial"]
    items = items.set_index("item")
    np.testing.assert_allclose(items["r_drop"], keyed[items.index])  # key's r_pb == r_drop
    assert "possible_wrong_key" in items.loc["q3", "flags"]
    assert "possible_wrong_key" not in items.loc["q1", "flags"]
    assert items.loc["q1", "difficulty"] == 0.6


def test_knowledge_flags_for_hard_and_easy_items():
    rng = np.random.default_rng(0)
    ability = rng.normal(size=200)
    correct = pd.DataFrame({
        "easy": (ability > -2.5).astype(float), "hard": (ability > 1.6).astype(float),
        "mid1": (ability + rng.normal(size=200) > 0).astype(float),
        "mid2": (ability + rng.normal(size=200) > 0.2).astype(float)})
    answers = correct.replace({1.0: "a", 0.0: "b"})
    options, key = {i: ["a", "b"] for i in correct}, {i: ["a"] for i in correct}
    flags = knowledge_item_statistics(answers, correct, options, key)[0].set_index("item")["flags"]
    assert "too_easy" in flags["easy"] and "too_hard" in flags["hard"]
    assert flags["mid1"] == ""


def test_a_distractor_tied_with_the_key_is_no_wrong_key():
    """q1: b's and the key's point-biserials are both 0 in exact arithmetic (the people
    choosing b have everyone's mean rest score); rounding leaves b ~1e-17 above the key,
    which must not flag a wrong key (a real one: the test above)."""
    answers = pd.DataFrame({
        "q0": list("aaacbaaacacc"), "q1": list("aaabaaabaaaa"), "q2": list("accbacabbaca"),
        "q3": list("babaabaaccab")})
    key = {q: ["a"] for q in answers}
    correct = pd.DataFrame({q: answers[q].eq("a").astype(float) for q in answers})
    items, table = knowledge_item_statistics(answers, correct,
                                             {q: ["a", "b", "c"] for q in key}, key)
    pb = table.set_index(["item", "option"])["point_biserial"]
    assert abs(pb["q1", "a"]) < 1e-12 and abs(pb["q1", "b"]) < 1e-12
    assert "possible_wrong_key" not in items.set_index("item")["flags"]["q1"]
