"""Fuzz: a few hundred damaged copies of the demo's exports through ingest and the contracts.

Each run draws a new seed (printed; replay one with ``CAPACITAR_FUZZ_SEED=<seed>``). For every
file: no traceback (a file that cannot be read is skipped with a one-line message), records in
= valid + quarantined + skipped (and equal to the file's non-blank lines when it holds no
quote), and no identifier of the demo's inbox in anything ingest and the contracts return or
write. The mutations and checks live in ``benchmarks/fuzz.py``, which runs larger campaigns.
"""

import os
import random

from benchmarks.fuzz import TEXT_MUTATIONS, campaign

FILES = 250


def test_damaged_exports_are_read_or_skipped_accounted_and_leak_nothing(tmp_path):
    seed = int(os.environ.get("CAPACITAR_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    print(f"fuzz seed {seed} (replay: CAPACITAR_FUZZ_SEED={seed} pytest tests/test_fuzz.py)")
    report = campaign(seed, FILES, tmp_path, batch=FILES)
    summary = "\n".join(report.lines())
    print(summary)
    assert report.failures == [], summary
    assert report.files == FILES
    outcomes = {outcome for (_, outcome) in report.outcomes}
    assert {"read", "skipped"} <= outcomes, summary  # both kinds of file were exercised
    tried = {mutation for (mutation, _) in report.outcomes}
    assert len(tried & set(TEXT_MUTATIONS)) >= len(TEXT_MUTATIONS) - 2, summary
