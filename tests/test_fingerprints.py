"""Cohort fingerprints: a cohort is reused only while everything its figures depend on is equal."""

import numpy as np
import pandas as pd
import pytest

from pipelines import cohort_analysis, stages
from pipelines.incremental import cohort_fingerprints
from tests.helpers import small_program


@pytest.fixture
def ctx(tmp_path):
    return stages.load_context(small_program(tmp_path, {}))


def knowledge_answers(seed: int) -> pd.DataFrame:
    """Two cohorts answering the two forms of the built-in knowledge test, before and after."""
    rng = np.random.default_rng(seed)
    rows = []
    for cohort in ("c1", "c2"):
        for wave in ("pre", "post"):
            for i in range(12):
                answers = {f"k{j:02d}": str(rng.choice(list("abcd"))) for j in range(1, 21)}
                rows.append({"cohort": cohort, "wave": wave, "participant": f"{cohort}{i}",
                             "form": "AB"[i % 2], **answers})
    return pd.DataFrame(rows)


def fingerprints(ctx, frame: pd.DataFrame) -> dict[str, str]:
    valid = {"tic_knowledge": frame}
    return cohort_fingerprints(valid, cohort_analysis.analysis_context(ctx, valid))


def answer_changed(frame: pd.DataFrame, cohort: str, wave: str) -> pd.DataFrame:
    out = frame.copy()
    row = out.index[(out["cohort"] == cohort) & (out["wave"] == wave)][0]
    out.loc[row, "k01"] = "d" if out.loc[row, "k01"] != "d" else "a"
    return out


def test_another_cohorts_baseline_moves_every_cohorts_fingerprint(ctx):
    """The equating lines are fitted on all cohorts' baseline answers: c1's equated scores
    change when c2's baseline does, so c1 must not be reused."""
    before = knowledge_answers(1)
    after = fingerprints(ctx, answer_changed(before, "c2", "pre"))
    assert after["c1"] != fingerprints(ctx, before)["c1"]


def test_another_cohorts_later_wave_leaves_a_cohort_reused(ctx):
    before = knowledge_answers(1)
    after = fingerprints(ctx, answer_changed(before, "c2", "post"))
    assert after["c1"] == fingerprints(ctx, before)["c1"]
    assert after["c2"] != fingerprints(ctx, before)["c2"]
