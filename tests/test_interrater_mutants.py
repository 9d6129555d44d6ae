"""Every formula of pipelines/analysis/interrater.py, mutated, makes a test fail.

Each mutant replaces one exact piece of the module's source. The fast test checks that every
piece is still in the source once (so the list follows the code). The mutation run itself
takes minutes, so it runs only on request:

    CAPACITAR_MUTANTS=1 python -m pytest -p no:cacheprovider tests/test_interrater_mutants.py

Each mutant runs tests/test_interrater.py and tests/test_interrater_golden.py in a fresh
process against the mutated module and must make them fail.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pipelines.analysis.interrater as module

SOURCE = Path(module.__file__).read_text()
TESTS = [str(Path(__file__).parent / "test_interrater.py"),
         str(Path(__file__).parent / "test_interrater_golden.py")]

MUTANTS = {
    "k0 as mean k": ("k0 = (big_n - d.per_target_to_group(d.m ** 2) / big_n) / (n - 1)",
                     "k0 = big_n / n"),
    "icc1 denominator": ("icc1 = (msb - msw) / (msb + (k0 - 1) * msw)",
                         "icc1 = (msb - msw) / (msb + k0 * msw)"),
    "icc1 lower bound": ('"icc1_ci_low": 1 - k0 / (f_low + k0 - 1)',
                         '"icc1_ci_low": 1 - k0 / (f_low + k0)'),
    "F upper quantile df": ("high = f * stats.f.ppf(q, df2, df1)",
                            "high = f * stats.f.ppf(q, df1, df2)"),
    "within mean square df": ("msb, msw = ssb / (n - 1), ssw / (big_n - n)",
                              "msb, msw = ssb / (n - 1), ssw / (big_n - n - 1)"),
    "icc2 rater term": ("icc2 = (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)",
                        "icc2 = (msb - mse) / (msb + (k - 1) * mse + (msj - mse) / n)"),
    "icc3k": ('"icc3k": (msb - mse) / msb', '"icc3k": (msb - mse) / (msb + mse)'),
    "icc2 CI df": ("vd = (n - 1) * k ** 2 * icc2 ** 2 * fj ** 2",
                   "vd = (n - 1) * k * icc2 ** 2 * fj ** 2"),
    "icc2k bound": ('"icc2k_ci_low": low2 * k / (1 + low2 * (k - 1))',
                    '"icc2k_ci_low": low2 * k / (1 + low2 * k)'),
    "rater sum of squares": ("ss_cols = (col_sum ** 2).sum(axis=1) / n",
                             "ss_cols = (col_sum ** 2).sum(axis=1) / (n - 1)"),
    "raters in pseudonym order": ('order = np.argsort(t * (_size(r) or 1) + r, kind="stable")',
                                  'order = np.argsort(t, kind="stable")'),
    "alpha unit weight": ("within = d.per_target_to_group(2 * (d.m * q_t - s_t ** 2) / (d.m - 1))",
                          "within = d.per_target_to_group(2 * (d.m * q_t - s_t ** 2) / d.m)"),
    "alpha expected": ("        expected = total / (big_n * (big_n - 1))",
                       "        expected = total / big_n ** 2"),
    "ordinal midranks": ("below = np.cumsum(counts, axis=1) - counts",
                         "below = np.cumsum(counts, axis=1)"),
    "nominal unit weight": ("(d.m ** 2 - (unit_counts ** 2).sum(axis=1)) / (d.m - 1)",
                            "(d.m ** 2 - (unit_counts ** 2).sum(axis=1)) / d.m"),
    "kappa chance term": ("expected = var_a + var_b + (mean_a - mean_b) ** 2",
                          "expected = var_a + var_b"),
    "adjacent agreement": ("(gap <= 1 + 1e-9)", "(gap <= 2 + 1e-9)"),
    "exact agreement": ("(gap < 1e-9)", "(gap < 1 + 1e-9)"),
    "others' mean": ("others = (_sums(t, _size(t), x)[t] - x) / (m - 1)",
                     "others = (_sums(t, _size(t), x)[t] - x) / m"),
    "severity se": ("se = sd / np.sqrt(n)", "se = sd / n"),
    "severity t df": ("half = stats.t.ppf(1 - (1 - CI_LEVEL) / 2, n - 1) * se",
                      "half = stats.t.ppf(1 - (1 - CI_LEVEL) / 2, n) * se"),
    "severity flag needs CI": ('out["outside_band"] = (out["severity"].abs() > band) & '
                               'excludes_zero & (n >= min_shared)',
                               'out["outside_band"] = (out["severity"].abs() > band) & '
                               '(n >= min_shared)'),
    "drift sign": ('drift = last["severity"] - first["severity"]',
                   'drift = first["severity"] - last["severity"]'),
    "Welch df": ('df = se ** 4 / (first["se"] ** 4 / (first["n_targets"] - 1)',
                 'df = se ** 4 / (first["se"] ** 4 / first["n_targets"]'),
    "Spearman-Brown": ("return k * r / (1 + (k - 1) * r)", "return k * r / (1 + k * r)"),
    "Koo & Li band edges": ('np.nan_to_num(est, nan=0.0), side="right"',
                            'np.nan_to_num(est, nan=0.0), side="left"'),
    "rater domain score": ("domain_score = _sums(by_domain, n_dom, value) / _sums(by_domain, "
                           "n_dom)",
                           "domain_score = _sums(by_domain, n_dom, value) / np.maximum("
                           "_sums(by_domain, n_dom), 2)"),
    "participant score": ('out["score"] = _sums(t, n_t, scored.value[rows]) / n_raters',
                          'out["score"] = _sums(t, n_t, scored.value[rows]) / n_raters.max()'),
    "harmful share": ("n_level[:, all_levels < harmful_below]",
                      "n_level[:, all_levels <= harmful_below]"),
    "pooled targets kept apart": ("t = t[which] + copy * _size(t)", "t = t[which]"),
    "two-rater targets for kappa": ('two = pairs["m"] == 2', 'two = pairs["m"] >= 2'),
}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutated_piece_is_in_the_source_once(name):
    original, mutated = MUTANTS[name]
    assert SOURCE.count(original) == 1, name
    assert original != mutated


RUN = """
import pathlib, sys, pytest
import pipelines.analysis.interrater as module
source = pathlib.Path(sys.argv[1]).read_text()
exec(compile(source, module.__file__, "exec"), module.__dict__)
sys.exit(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *sys.argv[2:]]))
"""


def run_tests_against(source: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """The interrater tests in a fresh process whose module runs ``source``."""
    path = tmp_path / "interrater_mutant.py"
    path.write_text(source)
    return subprocess.run([sys.executable, "-c", RUN, str(path), *TESTS], capture_output=True,
                          text=True, cwd=Path(__file__).parent.parent)


@pytest.mark.skipif(os.environ.get("CAPACITAR_MUTANTS") != "1",
                    reason="mutation run: set CAPACITAR_MUTANTS=1 (takes minutes)")
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_fails_a_test(name, tmp_path):
    original, mutated = MUTANTS[name]
    run = run_tests_against(SOURCE.replace(original, mutated), tmp_path)
    assert run.returncode == 1, f"{name}: tests still pass\n{run.stdout[-2000:]}"


@pytest.mark.skipif(os.environ.get("CAPACITAR_MUTANTS") != "1",
                    reason="mutation run: set CAPACITAR_MUTANTS=1 (takes minutes)")
def test_unmutated_module_passes_in_the_harness(tmp_path):
    assert run_tests_against(SOURCE, tmp_path).returncode == 0
