"""Group the per-scale statistics into the result tables of DESIGN.md.

These functions only split and stack; every formula lives in the statistics
modules (``reliability``, ``change``), so there is one place per formula.
"""

from __future__ import annotations

import pandas as pd

from instruments.model import Instrument
from pipelines.analysis.reliability import scale_reliability
from pipelines.analysis.scoring import reverse_keyed

POOLED = "ALL"  # the cohort value of program-wide (pooled) rows


def improvement_directions(instruments: dict[str, Instrument]) -> dict[tuple[str, str], str]:
    """(instrument, scale) -> "higher" or "lower" is better, "" when neutral."""
    directions = {}
    for inst in instruments.values():
        if inst.kind == "knowledge":
            directions.update({(inst.id, s): "higher" for s in
                               ("percent_correct", "anchor_percent_correct")})
        for sub in inst.subscales:
            directions[(inst.id, sub.id)] = {"better": "higher", "worse": "lower"}.get(
                sub.higher_is, "")
    return directions


def reliability_table(
    valid: dict[str, pd.DataFrame], instruments: dict[str, Instrument]
) -> pd.DataFrame:
    """Reliability per cohort x wave x instrument x subscale, plus pooled rows.

    Pooled rows (cohort ``ALL``) use every cohort's respondents at that wave:
    small cohorts need them. Items are reverse-keyed first.
    """
    rows = []
    for inst_id, frame in valid.items():
        inst = instruments[inst_id]
        if inst.kind != "scale" or frame.empty:
            continue
        keyed = pd.concat([frame[["cohort", "wave"]], reverse_keyed(frame, inst)], axis=1)
        pooled = keyed.assign(cohort=POOLED)
        for (cohort, wave), grp in pd.concat([keyed, pooled]).groupby(["cohort", "wave"]):
            for sub in inst.subscales:
                stats_ = scale_reliability(grp[sub.items])
                rows.append({"cohort": cohort, "wave": wave, "instrument": inst_id,
                             "scale": sub.id, **stats_})
    return pd.DataFrame(rows)
