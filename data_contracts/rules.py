"""Run the contracts: Great Expectations for row rules, then duplicates and batch shares.

Every ingested row ends up exactly once in the valid data or the quarantine:
- row problems (an expectation's unexpected rows) quarantine that row, the
  first failing expectation in suite order being its reason;
- ``date_outside_cohort``: submitted before the cohort's start or after its end,
  beyond ``date_window`` in program.yaml;
- ``duplicate_submission``: one person, wave and instrument submitted more
  than once; the latest submission (by timestamp, else by file and row order)
  wins, the others are quarantined;
- batch problems (a table-level expectation failing, or more than
  ``max_failing_share`` of a file's rows failing) reject that file for that
  instrument: all its rows go to quarantine as ``batch_rejected``, with a
  message, and the other files go on.
Missing answers are not errors: scoring's missing-item rule handles them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from instruments.model import Instrument
from pipelines.config import ProgramConfig
from pipelines.ingest.core import quarantine_frame, record

RULES = yaml.safe_load((Path(__file__).parent / "reasons.yaml").read_text(encoding="utf-8"))["rules"]
# Which reason a row gets when it breaks several rules: the most basic problem first.
RULE_ORDER = ["missing_column", "missing_identifier", "unknown_cohort", "unknown_wave",
              "code_out_of_range", "user_expectation"]
SUMMARY_COLUMNS = ["source_file", "instrument", "rule", "checked", "failed", "quarantined"]


@dataclass
class ContractResult:
    """Valid rows per instrument, the quarantine, a per-rule summary, batch problems."""

    valid: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    summary: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    data_docs: str = ""


@dataclass
class Failure:
    """One expectation's verdict on a frame."""

    rule: str
    column: str
    rows: list  # index labels of unexpected rows; empty for a batch failure
    batch: bool
    allowed: str = ""


def gx_context(config: ProgramConfig):
    """A file-backed GX context in the program folder (suites + Data Docs in ``gx/``)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="file", project_root_dir=str(config.root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def run_suite(context, inst: Instrument, config: ProgramConfig, frame: pd.DataFrame):
    """Validate one instrument's frame with its suite.

    Returns
    -------
    failures : list of Failure
    pages : the Data Docs resources this run adds: the validation result, and
        the suite when it was stored anew.
    """
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    from data_contracts.checkpoints import checkpoint_for
    from data_contracts.suites import build_suite, suite_path

    checkpoint, stored = checkpoint_for(context, build_suite(inst, config),
                                        suite_path(config, inst.id))
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    failures = [failure_of(r) for run in result.run_results.values() for r in run.results
                if not r.success]
    pages = list(result.run_results)
    if stored:
        pages.append(ExpectationSuiteIdentifier(name=inst.id))
    return failures, pages


def failure_of(result) -> Failure:
    """Our reading of one failed expectation result."""
    cfg = result.expectation_config
    meta = cfg.meta or {}
    column = cfg.kwargs.get("column", "") or ",".join(cfg.kwargs.get("column_list", []))
    rows = (result.result or {}).get("unexpected_index_list")
    rule = meta.get("rule", "user_expectation")
    allowed = ", ".join(meta.get("allowed", []))
    return Failure(rule=rule, column=column, rows=list(rows or []), batch=rows is None,
                   allowed=allowed if rule != "user_expectation" else cfg.type)


def duplicates(frame: pd.DataFrame) -> pd.Series:
    """Rows superseded by a later submission of the same person, wave and instrument."""
    order = frame.sort_values(
        ["submitted_at", "source_file", "source_row"], na_position="first", kind="stable")
    latest = ~order.duplicated(["participant", "wave", "instrument"], keep="last")
    return ~latest.reindex(frame.index)


def outside_cohort_dates(frame: pd.DataFrame, config: ProgramConfig) -> pd.Series:
    """Rows submitted before the cohort's start or after its end, beyond the date window."""
    window = config.date_window
    low = {c.id: pd.Timestamp(c.start) - pd.Timedelta(days=window.days_before_start)
           for c in config.cohorts if c.start}
    high = {c.id: pd.Timestamp(c.end) + pd.Timedelta(days=window.days_after_end)
            for c in config.cohorts if c.end}
    stamps = pd.to_datetime(frame["submitted_at"], errors="coerce")
    early = stamps < frame["cohort"].map(low).astype("datetime64[ns]")
    late = stamps > frame["cohort"].map(high).astype("datetime64[ns]")
    return (early | late).fillna(False).astype(bool)


def reason(rule: str, language: str, column: str, value: str, allowed: str = "") -> str:
    """The human-readable reason of a rule in the report language."""
    template = RULES.get(rule, RULES["user_expectation"])["reason"][language]
    return template.format(column=column, value=value, allowed=allowed)


class Quarantine:
    """Collects quarantine records and remembers which rows failed."""

    def __init__(self, frame: pd.DataFrame, language: str):
        self.frame = frame
        self.language = language
        self.failing = pd.Series(False, index=frame.index)
        self.records: list[dict] = []
        self.first_rule: dict = {}

    def add(self, rows, rule: str, column: str = "", allowed: str = "", value=None) -> None:
        for idx in rows:
            if self.failing.loc[idx]:
                continue
            if value is None and column in self.frame.columns:
                val = self.frame.at[idx, column]
            else:
                val = "" if value is None else value
            val = "" if pd.isna(val) else str(val).removesuffix(".0")
            detail = reason(rule, self.language, column, val, allowed)
            self.records.append(record(self.frame.loc[idx], "contracts", rule, detail, column,
                                       val))
            self.failing.loc[idx] = True
            self.first_rule[idx] = rule


def check_instrument(context, inst, config, frame, language):
    """Valid rows, quarantine records, summary rows, batch problems and Data Docs pages."""
    q = Quarantine(frame, language)
    problems: list[str] = []
    failures, pages = run_suite(context, inst, config, frame) if not frame.empty else ([], [])
    failures.sort(key=lambda f: RULE_ORDER.index(f.rule) if f.rule in RULE_ORDER else len(RULE_ORDER))
    for failure in failures:
        if failure.batch:
            problems.append(f"{inst.id}: expectation on '{failure.column}' failed for the whole "
                            f"batch ({failure.allowed or failure.rule})")
            q.add(frame.index, "batch_rejected", value=f"{failure.rule} {failure.column}")
        else:
            q.add(failure.rows, failure.rule, failure.column, failure.allowed)
    dated = outside_cohort_dates(frame, config)
    q.add(frame.index[dated], "date_outside_cohort", "submitted_at")
    remaining = frame.loc[~q.failing]
    q.add(remaining.index[duplicates(remaining)], "duplicate_submission")
    problems += reject_bad_files(q, inst, config.max_failing_share)
    summary = summary_rows(frame, inst.id, failures, q)
    return frame.loc[~q.failing].reset_index(drop=True), q.records, summary, problems, pages


def reject_bad_files(q: Quarantine, inst: Instrument, share: float) -> list[str]:
    """Reject whole files where more than ``share`` of the rows failed a row rule."""
    problems = []
    rates = q.failing.groupby(q.frame["source_file"]).mean()
    for source_file, rate in rates[rates > share].items():
        rows = q.frame.index[q.frame["source_file"] == source_file]
        note = f"{rate:.0%} of rows failed (limit {share:.0%})"
        q.add(rows, "batch_rejected", value=note)
        problems.append(f"{source_file} ({inst.id}): rejected, {note}; check the export and "
                        "its mapping in program.yaml")
    return problems


def summary_rows(frame, inst_id, failures, q: Quarantine) -> list[dict]:
    """Per source file and rule: rows checked, failing the rule, quarantined for it."""
    rows = []
    first = pd.Series(q.first_rule, dtype="str").reindex(frame.index)
    rules = dict.fromkeys([f.rule for f in failures]
                          + ["date_outside_cohort", "duplicate_submission", "batch_rejected"])
    for source_file, grp in frame.groupby("source_file"):
        for rule in rules:
            failed = {i for f in failures if f.rule == rule for i in f.rows} & set(grp.index)
            if rule not in {f.rule for f in failures}:  # pandas-side rules: count what they set aside
                failed = {i for i in grp.index if q.first_rule.get(i) == rule}
            rows.append({
                "source_file": source_file, "instrument": inst_id, "rule": rule,
                "checked": len(grp), "failed": len(failed),
                "quarantined": int((first.loc[grp.index] == rule).sum()),
            })
    return rows


def localise(quarantine: pd.DataFrame, language: str) -> pd.DataFrame:
    """Rewrite each record's ``detail`` as the human reason in ``language``."""
    detail = [reason(r.rule, language, r.column, r.value) for r in quarantine.itertuples()]
    return quarantine.assign(detail=pd.Series(detail, index=quarantine.index, dtype="str"))


def apply_contracts(
    responses: dict[str, pd.DataFrame], instruments: dict[str, Instrument], config: ProgramConfig
) -> ContractResult:
    """Split canonical responses into valid rows and quarantine records.

    Examples
    --------
    >>> result = apply_contracts(ingested.responses, instruments, config)  # doctest: +SKIP
    >>> result.quarantine["rule"].value_counts()  # doctest: +SKIP
    """
    from data_contracts.checkpoints import build_docs

    context = gx_context(config)
    valid, records, summary, problems, pages = {}, [], [], [], []
    for inst_id, frame in responses.items():
        ok, recs, rows, probs, new_pages = check_instrument(
            context, instruments[inst_id], config, frame.reset_index(drop=True), config.language)
        valid[inst_id] = ok
        records += recs
        summary += rows
        problems += probs
        pages += new_pages
    docs = build_docs(context, pages)
    return ContractResult(
        valid=valid,
        quarantine=quarantine_frame(records),
        summary=pd.DataFrame(summary, columns=SUMMARY_COLUMNS),
        problems=problems,
        data_docs=docs,
    )
