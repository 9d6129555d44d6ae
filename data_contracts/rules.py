"""Run the contracts: Great Expectations for row and answer rules, then duplicates and batches.

Every ingested row ends up exactly once in the valid data or set aside whole in
the quarantine; single answers can be set aside too:
- an answer that is not one of its item's codes (``code_out_of_range``) is set
  aside alone: recorded with ``scope="cell"`` and treated as missing, the row
  stays valid (scoring's missing-item rule decides whether it is scored);
- row problems (an expectation's unexpected rows: no identifier, undeclared
  cohort or wave, a hand-added expectation) quarantine that row, the most basic
  rule being its reason;
- ``date_outside_cohort``: submitted before the cohort's start or after its end,
  beyond ``date_window`` in program.yaml;
- ``duplicate_submission``: one person, wave and instrument submitted more
  than once; the latest submission (by timestamp, else by file and row order)
  wins, the others are quarantined; for a rating instrument (one rating per rater), every
  rating one rater gave one person at one wave is quarantined when there are several
  (``duplicate_rating``: which one holds is unknown);
- batch problems (a table-level expectation failing, or more than
  ``max_failing_share`` of a file's rows with a problem, counting the rows that
  failed at ingest) reject that file for that instrument: all its rows go to
  quarantine as ``batch_rejected``, with a message, and the other files go on.
Missing answers are not errors: scoring's missing-item rule handles them.

Great Expectations sees neutral frames (:mod:`data_contracts.neutral`), and the
quarantine keeps no raw personal text, whatever ingest let through.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from data_contracts.neutral import neutral_frame, safe_column
from instruments.model import Instrument
from pipelines.config import ProgramConfig
from pipelines.ingest.core import QUARANTINE_COLUMNS, IngestResult, quarantine_frame

TEXTS = yaml.safe_load((Path(__file__).parent / "reasons.yaml").read_text(encoding="utf-8"))
RULES = TEXTS["rules"]
# Which reason a row gets when it breaks several rules: the most basic problem first.
RULE_ORDER = ["missing_column", "missing_identifier", "unknown_cohort", "unknown_wave",
              "user_expectation"]
CELL_RULES = {"code_out_of_range"}  # one answer set aside (treated as missing), the row stays
# Ingest rules for rows that hold no form of the instrument: absent, not broken.
NO_FORM_RULES = {"form_incomplete", "no_answers", "other_redcap_form"}
# A shifted or joined row: none of its cells' text is kept (they may be anyone's).
NO_TEXT_RULES = {"malformed_row"}
RECORD_KEYS = ["source_file", "source_row", "participant", "instrument", "cohort", "wave"]
SUMMARY_COLUMNS = ["source_file", "instrument", "rule", "checked", "failed", "quarantined",
                   "cells_quarantined"]


@dataclass
class ContractResult:
    """Valid rows per instrument, the quarantine, a per-rule summary, batch problems."""

    valid: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    summary: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    data_docs: str = ""
    reused: list[str] = field(default_factory=list)  # instruments whose GX verdict was reused


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
    """Validate one instrument's frame with its suite (GX sees :func:`neutral_frame` of it).

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

    suite = build_suite(inst, config)
    checkpoint, stored = checkpoint_for(context, suite, suite_path(config, inst.id))
    result = checkpoint.run(batch_parameters={"dataframe": neutral_frame(frame, suite)})
    failures = [failure_of(r) for run in result.run_results.values() for r in run.results
                if not r.success]
    pages = list(result.run_results)
    if stored:
        pages.append(ExpectationSuiteIdentifier(name=inst.id))
    return failures, pages


class Verdicts:
    """Great Expectations' failures per instrument: recorded ones reused, the others checked.

    GX is imported, and its context opened, only when an instrument's frame or
    contract changed since its verdict was recorded (:mod:`data_contracts.outcomes`)
    or the Data Docs site is missing.
    """

    def __init__(self, config: ProgramConfig):
        from data_contracts.outcomes import OutcomeRecord

        self.config = config
        self.record = OutcomeRecord(config)
        self.pages: list = []  # Data Docs resources of this run's checkpoint runs
        self.checked: list[tuple] = []  # instrument, frame digest, failures: GX's this run
        self.reused: list[str] = []
        self._context = None

    @property
    def context(self):
        if self._context is None:
            self._context = gx_context(self.config)
        return self._context

    def failures(self, inst: Instrument, frame: pd.DataFrame) -> list[Failure]:
        """The failed expectations of ``inst``'s suite on ``frame`` (GX, or their record)."""
        from data_contracts.outcomes import contract_digest, frame_digest

        if frame.empty:
            return []
        data = frame_digest(frame)
        kept = self.record.get(inst.id, data, contract_digest(inst, self.config))
        if kept is not None:
            self.reused.append(inst.id)
            return [Failure(**failure) for failure in kept]
        failures, pages = run_suite(self.context, inst, self.config, frame)
        self.pages += pages
        self.checked.append((inst, data, [{**vars(f), "rows": [int(r) for r in f.rows]}
                                          for f in failures]))
        return failures

    def data_docs(self) -> str:
        """Data Docs with this run's pages (built only if any, or if the site is missing);
        their address. This run's verdicts are recorded once the pages are built, keyed by
        the GX files as the run left them (what the next run will find)."""
        from data_contracts.checkpoints import build_docs
        from data_contracts.outcomes import contract_digest

        if self.pages or not self.record.docs_exist():
            docs = build_docs(self.context, self.pages)
        else:
            docs = self.record.docs
        for inst, data, failures in self.checked:
            self.record.put(inst.id, data, contract_digest(inst, self.config), failures)
        self.record.save(docs)
        return docs


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


def repeated_ratings(frame: pd.DataFrame) -> pd.Series:
    """Rows of a rater rating one participant more than once at one wave (all of them).

    >>> frame = pd.DataFrame({"participant": ["P1", "P1", "P1"], "wave": ["pre"] * 3,
    ...                       "instrument": ["x"] * 3, "rater": ["R1", "R1", "R2"]})
    >>> repeated_ratings(frame).tolist()
    [True, True, False]
    """
    return frame.duplicated(["participant", "wave", "instrument", "rater"], keep=False)


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
    template = RULES[rule]["reason"][language] if rule in RULES else TEXTS["fallback"][language]
    return template.format(column=column, value=value, allowed=allowed, rule=rule)


class Quarantine:
    """The quarantine records of one instrument's frame: whole rows, and single answers."""

    def __init__(self, frame: pd.DataFrame, language: str):
        self.frame = frame
        self.language = language
        self.failing = pd.Series(False, index=frame.index)  # rows set aside whole
        self.first_rule = pd.Series(pd.NA, index=frame.index, dtype="str")
        self.cells: dict[str, pd.Series] = {}  # column -> rows whose answer is set aside
        self.parts: list[pd.DataFrame] = []

    def add(self, rows, rule: str, column: str = "", allowed: str = "", value=None) -> None:
        """Set ``rows`` aside whole (those not set aside already)."""
        rows = pd.Index(rows)
        rows = rows[~self.failing.loc[rows].to_numpy()]
        if not rows.empty:
            self.parts.append(self.records(rows, rule, "row", column, allowed, value))
            self.failing.loc[rows] = True
            self.first_rule.loc[rows] = rule

    def set_aside(self, rows, rule: str, column: str, allowed: str = "") -> None:
        """Set the answers of ``column`` in ``rows`` aside: missing from now on, rows stay."""
        done = self.cells.setdefault(column, pd.Series(False, index=self.frame.index))
        rows = pd.Index(rows)
        rows = rows[~done.loc[rows].to_numpy()]
        if not rows.empty:
            self.parts.append(self.records(rows, rule, "cell", column, allowed))
            done.loc[rows] = True

    def records(self, rows: pd.Index, rule: str, scope: str, column: str, allowed: str,
                value=None) -> pd.DataFrame:
        """Quarantine records of ``rows`` (index = the frame's row labels)."""
        if value is None and column in self.frame.columns:
            raw = self.frame.loc[rows, column]
        else:
            raw = pd.Series("" if value is None else value, index=rows, dtype=object)
        withheld = TEXTS["withheld"][self.language]
        values = safe_column(raw, withheld=withheld)
        details = pd.Series({v: reason(rule, self.language, column, v, allowed)
                             for v in values.unique()}).reindex(values).to_numpy()
        return self.frame.loc[rows, RECORD_KEYS].assign(
            stage="contracts", rule=rule, scope=scope, column=column, value=values,
            detail=details)[QUARANTINE_COLUMNS]

    def table(self) -> pd.DataFrame:
        """Every record so far, index = the frame's row labels."""
        return pd.concat(self.parts) if self.parts else quarantine_frame()

    def with_problem(self) -> pd.Series:
        """Rows set aside whole or with an answer set aside."""
        problem = self.failing.copy()
        for rows in self.cells.values():
            problem |= rows
        return problem

    def valid(self) -> pd.DataFrame:
        """The rows not set aside, with their set-aside answers missing."""
        valid = self.frame.loc[~self.failing]  # a new frame (copy on write)
        for column, rows in self.cells.items():
            hit = rows.loc[valid.index]
            if hit.any():
                valid.loc[hit, column] = None
        return valid.reset_index(drop=True)


def check_instrument(verdicts: Verdicts, inst, config, frame, language,
                     at_ingest: pd.DataFrame):
    """Valid rows, quarantine records, summary rows and batch problems.

    ``at_ingest``: this instrument's quarantine records from ingest (they count
    towards the batch rule).
    """
    q = Quarantine(frame, language)
    problems: list[str] = []
    failures = verdicts.failures(inst, frame)
    for failure in failures:  # answers first: a row rule does not count an answer set aside
        if failure.rule in CELL_RULES and not failure.batch:
            q.set_aside(failure.rows, failure.rule, failure.column, failure.allowed)
    rows_first = sorted((f for f in failures if f.batch or f.rule not in CELL_RULES),
                        key=lambda f: RULE_ORDER.index(f.rule) if f.rule in RULE_ORDER
                        else len(RULE_ORDER))
    for failure in rows_first:
        if failure.batch:
            problems.append(f"{inst.id}: expectation on '{failure.column}' failed for the whole "
                            f"batch ({failure.allowed or failure.rule})")
            q.add(frame.index, "batch_rejected", value=f"{failure.rule} {failure.column}")
        else:
            aside = q.cells.get(failure.column)
            rows = [r for r in failure.rows if aside is None or not aside.loc[r]]
            q.add(rows, failure.rule, failure.column, failure.allowed)
    dated = outside_cohort_dates(frame, config)
    q.add(frame.index[dated], "date_outside_cohort", "submitted_at")
    remaining = frame.loc[~q.failing]
    if inst.kind == "rating":  # one rating per rater, participant and wave: which one is right?
        q.add(remaining.index[repeated_ratings(remaining)], "duplicate_rating")
    else:
        q.add(remaining.index[duplicates(remaining)], "duplicate_submission")
    problems += reject_bad_files(q, inst, config.max_failing_share, at_ingest)
    summary = summary_rows(frame, inst.id, failures, q)
    return q.valid(), q.table(), summary, problems


def file_shares(q: Quarantine, at_ingest: pd.DataFrame) -> pd.DataFrame:
    """Per file: rows with a form (``rows``), rows with a problem (``failed``), at ingest or here.

    Rows that hold no form of the instrument (an incomplete or absent form) are
    neither; an answer set aside at ingest makes its row one with a problem.
    """
    broken = at_ingest[~at_ingest["rule"].isin(NO_FORM_RULES)]
    whole = broken[broken["scope"] != "cell"].drop_duplicates(["source_file", "source_row"])
    problem = q.with_problem()
    cells = broken[broken["scope"] == "cell"]
    if not cells.empty:
        keys = pd.MultiIndex.from_frame(q.frame[["source_file", "source_row"]].astype(object))
        problem |= keys.isin(list(zip(cells["source_file"], cells["source_row"].astype(int))))
    files = q.frame["source_file"]
    here = pd.DataFrame({"rows": files.value_counts(),
                         "failed": problem.groupby(files).sum()})
    there = whole["source_file"].value_counts()
    return here.add(pd.DataFrame({"rows": there, "failed": there}), fill_value=0).astype(
        "int64").sort_index()


def reject_bad_files(q: Quarantine, inst: Instrument, share: float,
                     at_ingest: pd.DataFrame) -> list[str]:
    """Reject whole files where more than ``share`` of the rows have a problem."""
    problems = []
    shares = file_shares(q, at_ingest)
    for source_file, counts in shares[shares["failed"] > share * shares["rows"]].iterrows():
        rows = q.frame.index[q.frame["source_file"] == source_file]
        note = f"{counts['failed'] / counts['rows']:.0%} of rows failed (limit {share:.0%})"
        q.add(rows, "batch_rejected", value=note)
        problems.append(f"{source_file} ({inst.id}): rejected, {note}; check the export and "
                        "its mapping in program.yaml")
    return problems


def summary_rows(frame, inst_id, failures, q: Quarantine) -> list[dict]:
    """Per source file and rule: rows checked, rows failing the rule, rows set aside whole for
    it (``quarantined``) and answers set aside for it (``cells_quarantined``)."""
    flagged: dict[str, set] = {}
    for failure in failures:
        flagged.setdefault(failure.rule, set()).update(failure.rows)
    records = q.table()
    files = frame["source_file"]
    rows = []
    for rule in [*flagged, *(r for r in ("date_outside_cohort", "duplicate_submission",
                                           "duplicate_rating", "batch_rejected")
                             if r not in flagged)]:
        mine = records[records["rule"] == rule]
        whole = mine[mine["scope"] == "row"]
        # GX rules: the rows the expectation flagged; pandas-side rules: the rows they set aside
        failing = frame.index.isin(list(flagged[rule])) if rule in flagged \
            else frame.index.isin(whole.index)
        counts = pd.DataFrame({
            "checked": files.value_counts(), "failed": files[failing].value_counts(),
            "quarantined": whole["source_file"].value_counts(),
            "cells_quarantined": mine.loc[mine["scope"] == "cell", "source_file"].value_counts(),
        }).reindex(files.unique()).fillna(0).astype("int64")
        rows += [{"source_file": f, "instrument": inst_id, "rule": rule, **c}
                 for f, c in counts.to_dict("index").items()]
    return sorted(rows, key=lambda r: r["source_file"])


def ingest_summary(rejected: pd.DataFrame, accounting: pd.DataFrame) -> pd.DataFrame:
    """Validation-summary rows for the rules applied while reading (per file and rule)."""
    keys = ["source_file", "instrument", "rule"]
    cell = rejected["scope"].eq("cell")
    table = rejected.assign(whole=rejected["source_row"].where(~cell), cell=cell).groupby(
        keys, dropna=False).agg(failed=("source_row", "nunique"), quarantined=("whole", "nunique"),
                                cells_quarantined=("cell", "sum")).reset_index()
    records = "rows_in" if "rows_in" in accounting else "rows_read"  # rows_in: the file's records
    read = accounting.groupby(["source_file", "instrument"])[records].sum().rename("checked")
    table = table.merge(read.reset_index(), on=["source_file", "instrument"], how="left")
    table["checked"] = table["checked"].fillna(0)
    return table.astype({c: "int64" for c in SUMMARY_COLUMNS[3:]})[SUMMARY_COLUMNS]


def localise(quarantine: pd.DataFrame, language: str) -> pd.DataFrame:
    """Each record's value made safe to keep and its ``detail`` written in ``language``.

    A value that looks personal is withheld (:func:`data_contracts.neutral.safe_value`); a
    shifted or joined row (``NO_TEXT_RULES``) keeps no value at all.
    """
    withheld = TEXTS["withheld"][language]
    values = safe_column(quarantine["value"], withheld=withheld).where(
        ~quarantine["rule"].isin(NO_TEXT_RULES), "")
    detail = [reason(rule, language, column, value)
              for rule, column, value in zip(quarantine["rule"], quarantine["column"], values)]
    return quarantine.assign(value=values,
                             detail=pd.Series(detail, index=quarantine.index, dtype="str"))


def without_raw_keys(quarantine: pd.DataFrame, config: ProgramConfig) -> pd.DataFrame:
    """Cohort and wave as found, kept only when declared or safe (:func:`safe_value`)."""
    withheld = TEXTS["withheld"][config.language]
    shifted = quarantine["rule"].isin(NO_TEXT_RULES)
    out = {}
    for column, ids in (("cohort", {c.id for c in config.cohorts}),
                        ("wave", {w.id for w in config.waves})):
        safe = safe_column(quarantine[column], declared=ids, withheld=withheld)
        out[column] = safe.where(~shifted | quarantine[column].isin(ids), withheld)
    return quarantine.assign(**out)


def apply_contracts(
    responses: dict[str, pd.DataFrame], instruments: dict[str, Instrument], config: ProgramConfig,
    at_ingest: IngestResult | None = None,
) -> ContractResult:
    """Split canonical responses into valid rows and quarantine records.

    With ``at_ingest`` (what ingest rejected and counted), its records join the
    quarantine (values made safe, reasons localised), its rows count towards
    each file's batch rule, and its rules open the summary.

    Examples
    --------
    >>> result = apply_contracts(ingested.responses, instruments, config, ingested)  # doctest: +SKIP
    >>> result.quarantine["rule"].value_counts()  # doctest: +SKIP
    """
    rejected = at_ingest.rejected if at_ingest is not None else quarantine_frame()
    verdicts = Verdicts(config)
    valid, records, summary, problems = {}, [], [], []
    for inst_id, frame in responses.items():
        mine = rejected[rejected["instrument"].eq(inst_id) | rejected["instrument"].isna()
                        | rejected["instrument"].eq("")]
        ok, recs, rows, probs = check_instrument(
            verdicts, instruments[inst_id], config, frame.reset_index(drop=True), config.language,
            mine)
        valid[inst_id] = ok
        records.append(recs)
        summary += rows
        problems += probs
    docs = verdicts.data_docs()
    quarantine = pd.concat([localise(rejected, config.language), *records], ignore_index=True)
    summary = pd.DataFrame(summary, columns=SUMMARY_COLUMNS)
    if at_ingest is not None:
        summary = pd.concat([ingest_summary(rejected, at_ingest.accounting), summary],
                            ignore_index=True)
    return ContractResult(
        valid=valid,
        quarantine=without_raw_keys(quarantine, config).astype({"source_row": "Int64"}),
        summary=summary,
        problems=problems,
        data_docs=docs,
        reused=verdicts.reused,
    )
