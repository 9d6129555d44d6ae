"""The batched reliability table (pipelines.analysis.batched) against the per-group
reference (scale_reliability, itself tested against R psych).

Every figure agrees within 1e-8 (bootstrap bounds included: the batched bootstrap
uses the reference's weights). Omega total: at least 99% of groups within 1e-6 of
the scipy minres reference (the exceptions seen, n close to k, are groups where
the batched Newton solution has a lower minres criterion than where L-BFGS-B
stopped). Omega_h: all but ``OMEGA_H_MAX_SHARE`` of groups within 1e-6 (3-factor
minres/oblimin can land on another solution; documented, not yet resolved).
"""

import numpy as np
import pandas as pd
import pytest

from pipelines import stages
from pipelines.analysis.batched import reliability_many, weight_blocks
from pipelines.analysis.reliability import resampling_weights, scale_reliability
from pipelines.analysis.tables import RELIABILITY_COLUMNS, reliability_table

EXACT = [c for c in RELIABILITY_COLUMNS if c not in ("omega_total", "omega_h")]
OMEGA_H_MAX_SHARE = 0.05  # measured: 9 of 300 OMS-HC groups at 100 national cohorts


def test_weight_blocks_are_the_reference_weights():
    for n in (7, 30):
        blocks = np.vstack(list(weight_blocks(n, 250, seed=3, block=64)))
        np.testing.assert_array_equal(blocks, resampling_weights(n, 250, seed=3))


def test_reliability_many_equals_reference_on_random_scales():
    rng = np.random.default_rng(11)
    mats = []
    for n, k in [(30, 10), (30, 10), (12, 4), (25, 6), (8, 5), (3, 3), (40, 15)]:
        x = np.digitize(rng.normal(size=(n, 1)) + rng.normal(size=(n, k)), [-1, 0, 1]) + 1.0
        x[rng.random(x.shape) < 0.02] = np.nan
        mats.append(x)
    mats.append(rng.integers(0, 2, size=(28, 9)).astype(float))  # KR-20 path
    ref = pd.DataFrame([scale_reliability(m) for m in mats])
    new = pd.DataFrame(reliability_many(mats))
    _assert_same(ref, new)


def _assert_same(ref: pd.DataFrame, new: pd.DataFrame, mats=None):
    assert list(ref.columns) == list(new.columns) and len(ref) == len(new)
    for column in ref.columns:
        if column in ("omega_total", "omega_h"):
            continue
        a, b = ref[column], new[column]
        if a.dtype.kind in "fi":
            np.testing.assert_allclose(b.to_numpy(float), a.to_numpy(float), rtol=0, atol=1e-8,
                                       err_msg=column)
        else:
            assert (a.astype(str) == b.astype(str)).all(), column
    for column in ("omega_total", "omega_h"):
        assert (ref[column].isna() == new[column].isna()).all(), column
    close = (ref["omega_total"] - new["omega_total"]).abs().fillna(0) <= 1e-6
    assert close.mean() >= 0.99, (~close).sum()
    h = (ref["omega_h"] - new["omega_h"]).abs().fillna(0) <= 1e-6
    assert (~h).sum() <= max(1, OMEGA_H_MAX_SHARE * ref["omega_h"].notna().sum())


@pytest.fixture(scope="module")
def demo_valid(tmp_path_factory):
    from pipelines.demo import write_demo

    root = write_demo(tmp_path_factory.mktemp("demo_batched"))
    ctx = stages.load_context(root)
    return stages.validate(ctx, stages.ingest(ctx)).valid, ctx.instruments


@pytest.mark.parametrize("scope", ["cohorts", "pooled"])
def test_demo_table_equals_reference(demo_valid, scope):
    valid, instruments = demo_valid
    ref = reliability_table(valid, instruments, scope=scope, batched=False)
    new = reliability_table(valid, instruments, scope=scope)
    assert (ref[["cohort", "wave", "instrument", "scale", "form"]]
            == new[["cohort", "wave", "instrument", "scale", "form"]]).all().all()
    _assert_same(ref, new)


@pytest.mark.slow
def test_national_table_equals_reference(tmp_path):
    from benchmarks.national_program import write_national

    root = write_national(tmp_path / "nat", n_cohorts=20)
    ctx = stages.load_context(root)
    valid = stages.validate(ctx, stages.ingest(ctx)).valid
    for scope in ("cohorts", "pooled"):
        ref = reliability_table(valid, ctx.instruments, scope=scope, batched=False)
        new = reliability_table(valid, ctx.instruments, scope=scope)
        _assert_same(ref, new)
