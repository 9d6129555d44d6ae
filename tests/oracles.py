"""Group-by-group versions of the batched statistics: test oracles only.

Production computes every cohort x wave x scale at once (``pipelines.analysis``);
these loop over the groups one at a time, the obvious way, so the tests can check
that the batched tables hold the same rows in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from pipelines.analysis.tables import at_levels


def with_pooled(frame: pd.DataFrame, scope: str = "all"
                ) -> Iterator[tuple[tuple[str, str], pd.DataFrame]]:
    """(cohort, wave) groups, then the same waves pooled over cohorts (cohort ALL)."""
    yield from at_levels(frame, scope).groupby(["cohort", "wave"], sort=True)
