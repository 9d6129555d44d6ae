"""Row-level contracts built from the instrument definitions and the program config.

Each rule marks offending rows; a row failing any rule goes to quarantine with
the first failing rule as its reason, so every ingested row ends up exactly
once in either the valid data or the quarantine.

Rules, in order:
- ``unknown_cohort`` / ``unknown_wave``: the key is not declared in program.yaml;
- ``code_out_of_range``: an answer that is not one of the item's response codes
  (missing answers are not errors: the scoring's missing-item rule handles them);
- ``duplicate_submission``: one person, wave and instrument submitted more than
  once; the latest submission (by timestamp, else by file and row order) wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from instruments.model import Instrument
from pipelines.config import ProgramConfig
from pipelines.ingest.core import quarantine_frame, record


@dataclass
class ContractResult:
    """Valid rows per instrument, the quarantine, and a per-rule summary."""

    valid: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    summary: pd.DataFrame  # instrument, rule, checked, failed


def out_of_range(frame: pd.DataFrame, inst: Instrument) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Rows with an answer outside the item's codes: (mask, first bad column, its value)."""
    mask = pd.Series(False, index=frame.index)
    column = pd.Series("", index=frame.index, dtype=str)
    value = pd.Series("", index=frame.index, dtype=str)
    for item_id in inst.item_ids:
        answers = frame[item_id]
        allowed = allowed_codes(inst, item_id, numeric=inst.kind == "scale")
        if inst.kind == "knowledge":
            bad = answers.notna() & ~answers.map(lambda a: set(str(a).split(";")) <= allowed)
        else:
            bad = answers.notna() & ~answers.isin(allowed)
        first = bad & ~mask
        column[first] = item_id
        value[first] = answers[first].astype(str)
        mask |= bad
    return mask, column, value


def allowed_codes(inst: Instrument, item_id: str, numeric: bool) -> set:
    """Codes an item accepts (floats for scales, text for knowledge items)."""
    codes = [o.code for o in inst.options_for(item_id)]
    return {float(c) for c in codes} if numeric else {str(c) for c in codes}


def duplicates(frame: pd.DataFrame) -> pd.Series:
    """Rows superseded by a later submission of the same person, wave and instrument."""
    order = frame.assign(_stamp=frame["submitted_at"]).sort_values(
        ["_stamp", "source_file", "source_row"], na_position="first", kind="stable"
    )
    latest = ~order.duplicated(["participant", "wave", "instrument"], keep="last")
    return ~latest.reindex(frame.index)


def apply_contracts(
    responses: dict[str, pd.DataFrame], instruments: dict[str, Instrument], config: ProgramConfig
) -> ContractResult:
    """Split canonical responses into valid rows and quarantine records.

    Examples
    --------
    >>> result = apply_contracts(ingested.responses, instruments, config)  # doctest: +SKIP
    >>> result.quarantine["rule"].value_counts()  # doctest: +SKIP
    """
    cohorts = {c.id for c in config.cohorts}
    waves = {w.id for w in config.waves}
    valid, records, summary = {}, [], []
    for inst_id, frame in responses.items():
        inst = instruments[inst_id]
        failing = pd.Series(False, index=frame.index)
        bad_range, bad_col, bad_val = out_of_range(frame, inst)
        rules = [
            ("unknown_cohort", ~frame["cohort"].isin(cohorts), "cohort",
             frame["cohort"], "cohort is not declared in program.yaml"),
            ("unknown_wave", ~frame["wave"].isin(waves), "wave",
             frame["wave"], "wave is not declared in program.yaml"),
            ("code_out_of_range", bad_range, bad_col, bad_val,
             f"answer is not one of the item's response codes ({inst.label})"),
        ]
        for rule, mask, column, values, detail in rules:
            failing = quarantine_rows(frame, mask, failing, rule, column, values, detail, records)
            summary.append({"instrument": inst_id, "rule": rule,
                            "checked": len(frame), "failed": int(mask.sum())})
        # Duplicates are judged among rows that passed everything else.
        dupes = duplicates(frame.loc[~failing]).reindex(frame.index, fill_value=False)
        failing = quarantine_rows(
            frame, dupes, failing, "duplicate_submission", "", pd.Series("", index=frame.index),
            "an earlier submission of this person, wave and instrument; the latest one is kept",
            records,
        )
        summary.append({"instrument": inst_id, "rule": "duplicate_submission",
                        "checked": int((~failing | dupes).sum()), "failed": int(dupes.sum())})
        valid[inst_id] = frame.loc[~failing].reset_index(drop=True)
    return ContractResult(valid, quarantine_frame(records), pd.DataFrame(summary))


def quarantine_rows(frame, mask, failing, rule, column, values, detail, records) -> pd.Series:
    """Add a record for each newly failing row; return the updated failing mask."""
    new = mask & ~failing
    for idx in new[new].index:
        col = column if isinstance(column, str) else column.loc[idx]
        records.append(record(frame.loc[idx], "contracts", rule, detail, col, values.loc[idx]))
    return failing | mask
