"""The pipeline's stages as plain functions from tables to tables (no Prefect here).

``flows.py`` wraps each in a Prefect task; a notebook can call them directly:

>>> from pipelines.stages import load_context, ingest, validate, score, analyse
>>> ctx = load_context("demo_program")                      # doctest: +SKIP
>>> ingested = ingest(ctx)                                  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

from data_contracts import RULES, ContractResult, apply_contracts
from instruments import Instrument, load_builtin, load_instruments
from pipelines.accounting import row_accounting
from pipelines.analysis.scoring import score_responses
from pipelines.analysis.tables import (
    POOLED,
    apply_rci,
    band_transitions,
    change_tables,
    change_verdicts,
    check_primary_outcomes,
    improvement_directions,
    item_tables,
    mixed_model_rows,
    model_verdicts,
    models_table,
    rci_references,
    reliability_table,
    retention,
    wave_means,
)
from pipelines.codebook import codebook_texts
from pipelines.competence import RCI_RELIABILITY, competence_tables
from pipelines.competence import TABLES as COMPETENCE_TABLES
from pipelines.codes import REGISTRY_FILE, program_codes
from pipelines.config import ProgramConfig, load_program
from pipelines.errors import CapacitarError
from pipelines.export import WORKERS, LabelledFiles, json_text, write_open_formats
from pipelines.incremental import (
    ANALYSIS_VERSION,
    Plan,
    cohort_fingerprints,
    instruments_digest,
    plan_run,
    run_fingerprint,
    save_state,
    stale_cohorts,
)
from pipelines.ingest import IngestResult, ingest_program
from pipelines.ingest.pseudonym import key_identity, load_key, write_link_file
from pipelines.parallel import Beside
from pipelines.preflight import check_instruments
from pipelines.publish import Publication, check_replaceable, clean_stale, recover, tighten
from pipelines.schema import load_schema
from pipelines.warehouse import update_warehouse
from pipelines.wide import scores_wide, scores_wide_spec
from reports.render import Rendered, render_report_folder


@dataclass
class Context:
    """What every stage needs: the program config and its instruments."""

    config: ProgramConfig
    instruments: dict[str, Instrument]
    run_id: str
    started: str
    # Problems met before ingest (a failed pull), reported with the run's others.
    problems: list[str] = field(default_factory=list)


def code_version() -> str:
    """Installed capacitar version (for the runs record)."""
    try:
        return version("capacitar")
    except PackageNotFoundError:
        return "unknown"


def load_context(program_dir: str | Path) -> Context:
    """Load program.yaml and the instruments (built-in, then the program's own)."""
    config = load_program(program_dir)
    instruments = {**load_builtin(), **load_instruments(config.path(config.instruments_dir))}
    check_instruments(config, instruments)
    check_primary_outcomes(config.primary_outcomes, instruments)
    return Context(
        config=config,
        instruments=instruments,
        run_id=uuid.uuid4().hex[:12],
        started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def program_key(ctx: Context) -> bytes:
    """The program's pseudonymisation key (checked: long enough, owner-only file)."""
    pseudo = ctx.config.pseudonymisation
    return load_key(ctx.config.path(pseudo.key_file), pseudo.create_if_missing)


def ingest(ctx: Context) -> IngestResult:
    """Stage 1: raw exports -> canonical responses (PII gone, pseudonyms in)."""
    pseudo = ctx.config.pseudonymisation
    key = program_key(ctx)
    result = ingest_program(ctx.config, ctx.instruments, key)
    if pseudo.link_file and result.links is not None:
        write_link_file(ctx.config.path(pseudo.link_file), result.links)
    result.links = None  # identifiers never travel further (task results, logs)
    return result


def validate(ctx: Context, ingested: IngestResult) -> ContractResult:
    """Stage 2: contracts split rows into valid and quarantine (with ingest's rejects, which
    also count towards each file's batch rule)."""
    return apply_contracts(ingested.responses, ctx.instruments, ctx.config, at_ingest=ingested)


def score(ctx: Context, contracts: ContractResult) -> pd.DataFrame:
    """Stage 3: the scores table."""
    return score_responses(contracts.valid, ctx.instruments, ctx.config.wave_order()[0])


def participation_table(scores: pd.DataFrame, first_wave: str | None = None) -> pd.DataFrame:
    """People with a valid response per cohort x wave x instrument, and who lacks a baseline.

    A person seen at a later wave but not at ``first_wave`` is kept (their
    wave figures count) and reported in ``n_unmatched``.
    """
    people = scores[["cohort", "wave", "instrument", "participant"]].drop_duplicates()
    baseline = people[people["wave"] == first_wave][["cohort", "instrument", "participant"]]
    people = people.merge(baseline.assign(matched=True), how="left",
                          on=["cohort", "instrument", "participant"])
    people["matched"] = people["matched"].fillna(False).astype(bool)
    grouped = people.groupby(["cohort", "wave", "instrument"])
    table = grouped["participant"].nunique().rename("n").to_frame()
    table["n_matched_first_wave"] = grouped["matched"].sum().astype("int64")
    table["n_unmatched"] = table["n"] - table["n_matched_first_wave"]
    return table.reset_index()


COHORT_TABLES = ["reliability", "items", "item_options", "change", "individual_change",
                 "band_transitions", "wave_means"]


def analysis_context(ctx: Context) -> str:
    """What a cohort's figures depend on besides its own rows (for its fingerprint)."""
    return json.dumps({
        "waves": ctx.config.wave_order(), "pairs": ctx.config.pairs(),
        "instruments": instruments_digest(ctx.instruments),
        "analysis": ANALYSIS_VERSION, "code": code_version()})


def cohorts_present(valid: dict[str, pd.DataFrame]) -> list[str]:
    """Cohorts with at least one valid row, in a stable order."""
    found = {str(c) for frame in valid.values() if not frame.empty
             for c in frame["cohort"].unique()}
    return sorted(found)


def cohort_groups(cohorts: list[str], n_groups: int) -> list[list[str]]:
    """Split cohorts into at most ``n_groups`` groups of about equal size (tasks to run).

    >>> cohort_groups(["a", "b", "c", "d", "e"], 2)
    [['a', 'c', 'e'], ['b', 'd']]
    """
    n_groups = max(1, min(n_groups, len(cohorts)))
    return [cohorts[i::n_groups] for i in range(n_groups)] if cohorts else []


def cohort_inputs(valid: dict[str, pd.DataFrame], scores: pd.DataFrame, cohorts: list[str]
                  ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The valid responses and scores of ``cohorts`` only (what one analysis task needs)."""
    wanted = set(cohorts)
    if wanted.issuperset(cohorts_present(valid)):  # every cohort (a full local run): no copy
        return valid, scores
    return ({i: f[f["cohort"].astype(str).isin(wanted)] for i, f in valid.items()},
            scores[scores["cohort"].astype(str).isin(wanted)])


def analyse_cohorts(ctx: Context, valid: dict[str, pd.DataFrame], scores: pd.DataFrame
                    ) -> dict[str, pd.DataFrame]:
    """Cohort-level rows (no pooled rows) of the cohort tables for the cohorts given.

    Every figure here depends on one cohort's data only, so cohorts can be
    analysed in any grouping, on any worker, and reused while unchanged. RCI
    columns are left for :func:`assemble` (they use program-wide references).
    """
    items, options = item_tables(valid, ctx.instruments, scope="cohorts")
    change, individual, transitions = change_tables(
        scores, ctx.config.pairs(), improvement_directions(ctx.instruments), scope="cohorts")
    return {"reliability": reliability_table(valid, ctx.instruments, scope="cohorts"),
            "items": items, "item_options": options, "change": change,
            "individual_change": individual, "band_transitions": transitions,
            "wave_means": wave_means(scores, scope="cohorts")}


def analyse_pooled(ctx: Context, valid: dict[str, pd.DataFrame], scores: pd.DataFrame
                   ) -> dict[str, pd.DataFrame]:
    """Program-wide (cohort ``ALL``) rows of the cohort tables, and the mixed models' rows
    (:func:`mixed_model_rows`): they need no cohort's figures, refreshed on every run."""
    items, options = item_tables(valid, ctx.instruments, scope="pooled")
    transitions = [band_transitions(scores, f, t, scope="pooled") for f, t in ctx.config.pairs()]
    return {"reliability": reliability_table(valid, ctx.instruments, scope="pooled"),
            "items": items, "item_options": options,
            "band_transitions": pd.concat(transitions, ignore_index=True) if transitions else None,
            "wave_means": wave_means(scores, scope="pooled"),
            "mixed_models": mixed_model_rows(scores, ctx.config.pairs()),
            **competence_tables(valid, ctx.instruments, ctx.config.wave_order())}


BESIDE_EVERY = 5  # of the changed cohorts, every 5th is analysed beside (with the pooled rows)


def split_beside(stale: list[str]) -> tuple[list[str], list[str]]:
    """(cohorts analysed beside, cohorts analysed here) for :func:`start_beside`.

    The process beside also computes the program-wide rows (about half the
    cost of all cohorts on a national program), so it takes only every 5th
    changed cohort, and none of a few: the two sides then finish about
    together (measured on 1,000 cohorts: every 4th, 5th and 8th gave 20.9,
    21.4 and 22.7 s for the analysis; none, 25 s).

    >>> split_beside([f"c{i}" for i in range(12)])[0]
    ['c0', 'c5', 'c10']
    """
    if len(stale) < 2 * BESIDE_EVERY:
        return [], list(stale)
    there = set(stale[::BESIDE_EVERY])
    return [c for c in stale if c in there], [c for c in stale if c not in there]


def start_beside(ctx: Context, valid: dict[str, pd.DataFrame], scores: pd.DataFrame,
                 cohorts: list[str]) -> Beside:
    """:func:`analyse_pooled`, and :func:`analyse_cohorts` of ``cohorts``, started beside the
    caller's work (a forked process on Linux). Its result: (pooled rows, cohort rows or None)."""
    return Beside(pooled_and_cohorts, ctx, valid, scores, cohorts)


def pooled_and_cohorts(ctx: Context, valid: dict[str, pd.DataFrame], scores: pd.DataFrame,
                       cohorts: list[str]) -> tuple[dict, dict | None]:
    """The program-wide rows, and the cohort rows of ``cohorts`` (None when there are none)."""
    fresh = analyse_cohorts(ctx, *cohort_inputs(valid, scores, cohorts)) if cohorts else None
    return analyse_pooled(ctx, valid, scores), fresh


def cohort_rank(config: ProgramConfig):
    """Sort key: declared cohorts in program.yaml's order, then others, pooled rows last."""
    declared = {c.id: i for i, c in enumerate(config.cohorts)}
    return lambda cohort: (cohort == POOLED, declared.get(cohort, len(declared)), cohort)


def stack(parts: list[pd.DataFrame | None], rank, name: str) -> pd.DataFrame:
    """Concatenate table parts, cohorts in ``rank`` order, row order within a cohort kept.

    With no rows at all (no valid data, every file skipped) the table is empty
    with the columns ``schema.yaml`` documents for ``name``.
    """
    used = [p for p in parts if p is not None and not p.empty]
    if not used:
        known = [p for p in parts if p is not None]
        return known[0].iloc[0:0] if known else pd.DataFrame(
            columns=list(load_schema().tables[name].columns))
    table = pd.concat(used, ignore_index=True)
    codes, cohorts = pd.factorize(table["cohort"].astype(str))
    place = np.empty(len(cohorts), dtype=np.int64)  # each distinct cohort's place in rank order
    place[sorted(range(len(cohorts)), key=lambda i: rank(cohorts[i]))] = np.arange(len(cohorts))
    order = place[codes]
    if (np.diff(order) >= 0).all():  # already in order (a full run): no copy
        return table
    return table.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def assemble(ctx: Context, scores: pd.DataFrame, fresh: list[dict], pooled: dict,
             previous: dict[str, pd.DataFrame] | None = None, kept: list[str] = (),
             quarantine: pd.DataFrame | None = None) -> dict:
    """The analysis tables from fresh cohort rows, reused cohort rows and pooled rows.

    Then what depends on the whole program: RCI (pooled baseline references),
    participation (with retention: ``quarantine`` tells forms set aside from
    absences), the models across cohorts and the verdicts.
    """
    rank, tables = cohort_rank(ctx.config), {}
    for name in COHORT_TABLES:
        reused = None
        if previous is not None and kept:
            reused = previous[name][previous[name]["cohort"].astype(str).isin(set(kept))]
        tables[name] = stack([*(f[name] for f in fresh), reused, pooled.get(name)], rank, name)
    first = ctx.config.wave_order()[0]
    references = rci_references(scores, tables["reliability"], ctx.instruments, first,
                                rated=pooled.get(RCI_RELIABILITY))
    tables["change"], tables["individual_change"] = apply_rci(
        tables["change"], tables["individual_change"], references,
        improvement_directions(ctx.instruments))
    tables["participation"] = retention(participation_table(scores, first), scores, quarantine,
                                        ctx.config.wave_order())
    tables["models"] = models_table(scores, ctx.config.pairs(), tables["change"],
                                    pooled.get("mixed_models"))
    primary = ctx.config.primary_outcomes
    tables["change"] = change_verdicts(tables["change"], primary)
    tables["models"] = model_verdicts(tables["models"], improvement_directions(ctx.instruments),
                                      primary)
    tables.update({name: pooled[name] for name in COMPETENCE_TABLES if name in pooled})
    return tables


def analyse(ctx: Context, contracts: ContractResult, scores: pd.DataFrame) -> dict:
    """Stage 4 (everything, in one process): reliability, items, change, models, participation.

    The flow runs the same steps with the cohorts fanned out over tasks and
    unchanged cohorts reused; results are identical.
    """
    valid = contracts.valid
    fresh = analyse_cohorts(ctx, valid, scores)
    return assemble(ctx, scores, [fresh], analyse_pooled(ctx, valid, scores),
                    quarantine=contracts.quarantine)


@dataclass
class CohortWork:
    """Which cohorts a run analyses afresh and which keep their stored rows."""

    fingerprints: dict[str, str]
    stale: list[str]
    kept: list[str]
    previous: dict[str, pd.DataFrame] | None


def cohort_work(ctx: Context, plan: Plan, valid: dict[str, pd.DataFrame],
                force: bool = False) -> CohortWork:
    """Compare each cohort's fingerprint with the last good run's (all stale when forced)."""
    fingerprints = cohort_fingerprints(valid, analysis_context(ctx))
    previous = None if force or plan.previous is None else stored_cohort_tables(ctx)
    stale = stale_cohorts(fingerprints, plan.previous if previous is not None else None)
    return CohortWork(fingerprints, stale, [c for c in fingerprints if c not in stale], previous)


def stored_cohort_tables(ctx: Context) -> dict[str, pd.DataFrame] | None:
    """The cohort tables of the last good run, or None when any is missing."""
    folder = ctx.config.output_dir / "tables"
    paths = {name: folder / f"{name}.parquet" for name in COHORT_TABLES}
    if not all(p.exists() for p in paths.values()):
        return None
    return {name: pd.read_parquet(p) for name, p in paths.items()}


def plan(ctx: Context, new_key: bool = False) -> Plan:
    """Hash the inbox: what would be read, and whether anything changed since the last run.

    Call it holding the program lock: it first finishes or undoes a publication
    a dead run left (:func:`prepare_outputs`).
    """
    prepare_outputs(ctx)
    return plan_run(ctx.config, ctx.instruments, code_version(), key_identity(program_key(ctx)),
                    new_key)


def prepare_outputs(ctx: Context) -> None:
    """Before a run touches the outputs: undo or finish a dead run's publication, remove its
    leftovers, refuse output folders capacitar did not make, make everything owner-only."""
    out = ctx.config.output_dir
    recover(out)
    clean_stale(out)
    for name in ("tables", "reports"):
        check_replaceable(out / name)
    tighten(out)


COMPLETE, WITH_PROBLEMS, NO_NEW_DATA, FAILED = (
    "complete", "complete_with_problems", "no_new_data", "failed")
RUN_COLUMNS = ["fingerprint", "run_id", "started", "finished", "program", "status",
               "code_version", "instrument_versions", "inputs", "rows_read", "rows_valid",
               "rows_quarantined", "cohorts_recomputed", "cohorts_reused", "problems"]


def run_record(
    ctx: Context, ingested: IngestResult | None, contracts: ContractResult | None,
    accounting: pd.DataFrame | None, plan: Plan | None = None, status: str | None = None,
    recomputed: int | None = None, reused: int | None = None, problems: list[str] = (),
) -> pd.DataFrame:
    """The ``runs`` table row of this run: inputs with SHA-256, versions, row accounting.

    A run with no new data or a failed run has no accounting (null counts). The
    status of a run that went through is ``complete``, or ``complete_with_problems``
    when anything was skipped, rejected or left unread (:func:`run_problems`).
    """
    plan = plan or ctx_plan_from(ctx, ingested)
    inputs = (ingested.inputs[["source_file", "sha256", "status", "rows"]].to_dict("records")
              if ingested is not None else [
                  {"source_file": e["source_file"], "sha256": e["sha256"]} for e in plan.inputs])
    def total(column: str):
        return int(accounting[column].sum()) if accounting is not None else None
    problems = [*run_problems(ctx, plan, ingested, contracts), *problems]
    status = status or (WITH_PROBLEMS if problems else COMPLETE)
    row = {
        "fingerprint": plan.fingerprint, "run_id": ctx.run_id, "started": ctx.started,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "program": ctx.config.name, "status": status, "code_version": code_version(),
        "instrument_versions": ";".join(sorted(i.label for i in ctx.instruments.values())),
        "inputs": json.dumps(inputs), "rows_read": total("rows_read"),
        "rows_valid": total("rows_valid"), "rows_quarantined": total("rows_quarantined"),
        "cohorts_recomputed": recomputed, "cohorts_reused": reused,
        "problems": " | ".join(problems),
    }
    table = pd.DataFrame([row], columns=RUN_COLUMNS)
    for column in ("rows_read", "rows_valid", "rows_quarantined", "cohorts_recomputed",
                   "cohorts_reused"):
        table[column] = table[column].astype("Int64")
    return table


def run_problems(ctx: Context, plan: Plan | None, ingested: IngestResult | None,
                 contracts: ContractResult | None) -> list[str]:
    """Everything that makes a run "complete with problems": problems met before ingest (a
    failed pull), inbox files no source reads, files skipped, batches rejected."""
    return [*ctx.problems, *(plan.problems if plan else []),
            *(ingested.problems if ingested else []), *(contracts.problems if contracts else [])]


def ctx_plan_from(ctx: Context, ingested: IngestResult) -> Plan:
    """A plan from what ingest read (for callers that did not plan first)."""
    inputs = ingested.inputs[["source", "source_file", "sha256"]].to_dict("records")
    return Plan(run_fingerprint(inputs, ctx.config.root / "program.yaml", ctx.instruments,
                                code_version()), inputs)


def record_run(ctx: Context, record: pd.DataFrame, plan: Plan | None = None) -> None:
    """Add this run's row to the warehouse's ``runs`` table, without touching other tables.

    ``state.json`` is the record of the last published run: its row is written
    again with this one (the same values), so a run killed between writing its
    state and its row is in the table all the same.
    """
    published = (plan.previous or {}).get("run") if plan else None
    rows = [record] if not published or published.get("run_id") == record["run_id"].iloc[0] \
        else [runs_frame([published]), record]
    specs = dict(load_schema().tables)
    update_warehouse(ctx.config.output_dir / "warehouse.duckdb",
                     {"runs": pd.concat(rows, ignore_index=True)}, specs)


def runs_frame(rows: list[dict]) -> pd.DataFrame:
    """Run rows as the ``runs`` table (whole numbers as nullable integers)."""
    table = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for column in ("rows_read", "rows_valid", "rows_quarantined", "cohorts_recomputed",
                   "cohorts_reused"):
        table[column] = pd.to_numeric(table[column]).astype("Int64")
    return table


class ProblemsFound(CapacitarError):
    """``--strict``: the run met problems, so it stopped before publishing anything."""


def strict_message(problems: list[str]) -> str:
    """The one line a --strict run stops with."""
    return (f"stopped (--strict) before publishing anything, on {len(problems)} problem(s): "
            + " | ".join(problems))


def record_failed(ctx: Context, plan: Plan, message: str) -> None:
    """A ``failed`` row in the runs table, with the one line that says why."""
    record_run(ctx, run_record(ctx, None, None, None, plan, status=FAILED, problems=[message]),
               plan)


def record_no_new_data(ctx: Context, plan: Plan) -> dict:
    """Record a run that found nothing new; its summary (the CLI and the flow both use it).

    Inbox files that no source reads are reported even then (a scheduled run
    must hear of them).
    """
    record = run_record(ctx, None, None, None, plan, status=NO_NEW_DATA, recomputed=0)
    record_run(ctx, record, plan)
    last = plan.previous or {}
    return {"run_id": ctx.run_id, "status": NO_NEW_DATA, "previous_run": last.get("run_id"),
            "previous_finished": last.get("finished"), "output_dir": str(ctx.config.output_dir),
            "report": str(ctx.config.output_dir / "reports" / f"program_{ctx.config.language}.html"),
            "problems": [*ctx.problems, *plan.problems]}


def run_history(ctx: Context, last: int = 10) -> pd.DataFrame:
    """The last runs recorded in the warehouse, newest first (empty before any run)."""
    import duckdb

    path = ctx.config.output_dir / "warehouse.duckdb"
    if not path.exists():
        return pd.DataFrame(columns=RUN_COLUMNS)
    with duckdb.connect(str(path), read_only=True) as con:
        names = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
        if "runs" not in names:
            return pd.DataFrame(columns=RUN_COLUMNS)
        return con.execute('SELECT * FROM runs ORDER BY started DESC, finished DESC LIMIT ?',
                           [last]).df()


def save_run_state(ctx: Context, plan: Plan, cohorts: dict[str, str],
                   record: pd.DataFrame | None = None, skipped: list[str] = ()) -> None:
    """Remember this published run: fingerprint, inputs, cohort fingerprints, the key's
    identity, files skipped (read again next time) and its ``runs`` row. The commit point of
    the run's publication."""
    run = None
    if record is not None:
        run = {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v)
               for k, v in record.iloc[0].items()}
    save_state(ctx.config.output_dir, {
        "fingerprint": plan.fingerprint, "run_id": ctx.run_id, "started": ctx.started,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "key_id": plan.key_id, "inputs": plan.inputs, "skipped": list(skipped),
        "cohorts": cohorts, "run": run})


def skipped_files(ingested: IngestResult) -> list[str]:
    """Files ingest skipped (a problem named in the run): read again by the next run."""
    inputs = ingested.inputs
    return inputs.loc[inputs["status"] != "read", "source_file"].tolist()


def export(ctx: Context, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """Stage 5: every table as Parquet, CSV, .sav, .dta; codebook; load scripts; warehouse.

    The tables folder is staged and swapped in whole, so a run killed midway
    leaves the previous outputs intact. The flow does the same in parts
    (:func:`table_export`), starting with the tables that are final before the
    analysis, and publishes the reports with the tables.
    """
    with table_export(ctx) as exporting:
        exporting.add(tables)
        exporting.seal()
        written = exporting.finish()
        exporting.commit()
    if "runs" in tables:
        record_run(ctx, tables["runs"])
    return written


@contextmanager
def table_export(ctx: Context) -> Iterator[TableExport]:
    """Stage 5 in parts: :meth:`TableExport.add` tables as they become final (their SPSS and
    Stata files are written by worker processes meanwhile), :meth:`TableExport.seal` once all
    are in (the warehouse merges on a thread), :meth:`TableExport.finish` swaps the tables (and
    the reports staged in :attr:`TableExport.reports_staging`) in, :meth:`TableExport.commit`
    once the run's state is written. Leaving before the commit (an error) stops the workers,
    drops the staging folders and undoes the swap."""
    publication = Publication(ctx.config.output_dir, ctx.run_id)
    try:
        exporting = TableExport(ctx, publication)
        yield exporting
    finally:
        if not publication.committed:
            if "exporting" in locals():
                exporting.cancel()
            publication.abandon()


class TableExport:
    """One run's outputs, filled in staging folders and published by :meth:`finish`."""

    def __init__(self, ctx: Context, publication: Publication):
        self.ctx, self.publication = ctx, publication
        self.staging = publication.folder("tables")
        self._reports: Path | None = None
        self.specs = dict(load_schema().tables)
        self.sets = program_codes(ctx.config, ctx.instruments,
                                  {r: v["label"] for r, v in RULES.items()},
                                  ctx.config.output_dir / "tables", self.staging)
        self.labelled = LabelledFiles(self.staging, self.specs, self.sets, ctx.config.language)
        self.files: dict[str, pd.DataFrame] = {}
        self.written: list[Path] = [self.staging / REGISTRY_FILE]
        self.top: list[Path] = []  # codebook and load scripts beside the folders
        self.warehouse: Future | None = None

    @property
    def reports_staging(self) -> Path:
        """The staging folder of the reports, published with the tables."""
        if self._reports is None:
            self._reports = self.publication.folder("reports")
        return self._reports

    def add(self, tables: dict[str, pd.DataFrame], workers: int = WORKERS) -> None:
        """Write Parquet and CSV now; start the SPSS/Stata files on ``workers`` processes."""
        files = dict(tables)
        if "scores" in files:
            files["scores_wide"] = scores_wide(files["scores"], self.ctx.config.wave_order())
            self.specs["scores_wide"] = scores_wide_spec(files["scores_wide"], self.sets)
        check_documented(files, self.specs)
        for name, frame in files.items():
            self.written += write_open_formats(frame, self.staging, name)
        self.labelled.submit(files, workers)
        self.files.update(files)

    def seal(self) -> None:
        """Every table is in: merge them into the warehouse on a thread while the caller goes on.

        DuckDB reads the staged Parquet files without the GIL, so this overlaps
        with rendering the reports. The warehouse commits before the outputs are
        swapped in: if the run then fails, the next run replaces those rows. The
        run's own ``runs`` row is added after the run's state is written
        (:func:`record_run`), so the table never calls complete a run that was
        not published.
        """
        files = {n: f for n, f in self.ordered_files().items() if n != "runs"}
        parquet = {name: self.staging / f"{name}.parquet" for name in files}
        self._threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warehouse")
        self.warehouse = self._threads.submit(
            update_warehouse, self.ctx.config.output_dir / "warehouse.duckdb", files, self.specs,
            parquet)

    def ordered_files(self) -> dict[str, pd.DataFrame]:
        """The tables added so far, in the schema's order (the codebook's)."""
        return {name: self.files[name] for name in self.specs if name in self.files}

    def finish(self) -> list[Path]:
        """Wait for the SPSS/Stata files and the warehouse; stage the codebook and load scripts;
        swap the tables, reports and those files in together (committed by :meth:`commit`)."""
        out = self.ctx.config.output_dir
        if not self.publication.swapped:  # a retried finish goes on from here
            if self.warehouse is None:
                self.seal()
            staged = self.written + self.labelled.wait()
            try:
                self.warehouse.result()
            finally:
                self.stop_warehouse()
            files = self.ordered_files()
            texts = codebook_texts(out, self.specs, files, self.sets, self.ctx.instruments,
                                   self.ctx.config)
            texts["last_run.json"] = json_text(files["runs"].iloc[0].to_dict())
            self.top = [self.publication.file(
                name, lambda path, text=text: path.write_text(text, encoding="utf-8"))
                for name, text in texts.items()]
            self.publication.swap()
            self.written = [out / "tables" / p.relative_to(self.staging) for p in staged]
        return [*self.written, out / "warehouse.duckdb", *self.top]

    def commit(self) -> None:
        """The run's state is written: the swap is final."""
        self.publication.commit()

    def stop_warehouse(self) -> None:
        """Let the warehouse thread end (before its Parquet files move or go)."""
        if self.warehouse is not None:
            self._threads.shutdown(wait=True)
            self.warehouse = None

    def cancel(self) -> None:
        """The run failed: stop the workers, let the warehouse thread end."""
        self.labelled.cancel()
        self.stop_warehouse()


def check_documented(tables: dict[str, pd.DataFrame], specs: dict) -> None:
    """Refuse to write a table or column the schema does not document (a bug, not a user error)."""
    for name, frame in tables.items():
        spec = specs.get(name)
        missing = [c for c in frame.columns if spec is None or c not in spec.columns]
        if missing:
            raise RuntimeError(f"table {name}: columns not documented in schema.yaml: {missing}")


def report(ctx: Context, tables: dict[str, pd.DataFrame], pdf: bool = True) -> list[Path]:
    """Stage 6: cohort and program reports, es and en, HTML (and PDF with Chromium)."""
    return report_folder(ctx, tables, pdf).paths


def report_folder(ctx: Context, tables: dict[str, pd.DataFrame], pdf: bool = True,
                  staging: Path | None = None) -> Rendered:
    """Stage 6, with what was reused: unchanged pages keep their PDF (not re-printed).

    With ``staging`` (a run's :attr:`TableExport.reports_staging`) the pages are
    written there and published with the tables; without, they are published at once.
    """
    return render_report_folder(tables, ctx.config, ctx.instruments,
                                ctx.config.output_dir / "reports", pdf=pdf, staging=staging,
                                run_id=ctx.run_id)


REPORT_TABLES = ["participation", "change", "reliability", "items", "band_transitions",
                 "models", "wave_means", "quarantine"]
REPORT_TABLES_OPTIONAL = ["accounting", "runs", *COMPETENCE_TABLES]


def stored_tables(ctx: Context) -> dict[str, pd.DataFrame]:
    """The result tables a previous run wrote (Parquet), for re-rendering reports."""
    folder = ctx.config.output_dir / "tables"
    tables = {}
    for name in REPORT_TABLES:
        path = folder / f"{name}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"no stored results: {path} is missing")
        tables[name] = pd.read_parquet(path)
    for name in REPORT_TABLES_OPTIONAL:  # the data-quality section and the run's record
        if (folder / f"{name}.parquet").exists():
            tables[name] = pd.read_parquet(folder / f"{name}.parquet")
    return tables


def check_accounting(accounting: pd.DataFrame) -> None:
    """Fail loudly if any row was lost: a bug, never a user's mistake."""
    unbalanced = accounting[~accounting["balanced"]]
    if not unbalanced.empty:
        raise RuntimeError(f"rows unaccounted for:\n{unbalanced.to_string()}")


def accounting_table(ingested: IngestResult, contracts: ContractResult) -> pd.DataFrame:
    """Rows read = valid + quarantined, per file and instrument (checked)."""
    table = row_accounting(ingested.accounting, contracts.valid, contracts.quarantine)
    check_accounting(table)
    return table
