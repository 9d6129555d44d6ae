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
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

from data_contracts import RULES, ContractResult, apply_contracts, localise
from instruments import Instrument, load_builtin, load_instruments
from pipelines.accounting import row_accounting
from pipelines.analysis.scoring import score_responses
from pipelines.analysis.tables import (
    POOLED,
    apply_rci,
    band_transitions,
    change_tables,
    improvement_directions,
    item_tables,
    mixed_model_rows,
    models_table,
    rci_references,
    reliability_table,
    wave_means,
)
from pipelines.codebook import R_SCRIPT, SPSS_SCRIPT, codebook, codebook_html, codebook_markdown
from pipelines.config import ProgramConfig, load_program
from pipelines.export import (
    WORKERS,
    LabelledFiles,
    atomic_write,
    staged_folder,
    swap_in,
    write_json,
    write_open_formats,
)
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
from pipelines.ingest.pseudonym import load_key, write_link_file
from pipelines.parallel import Beside
from pipelines.schema import load_schema, value_sets
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
    return Context(
        config=config,
        instruments=instruments,
        run_id=uuid.uuid4().hex[:12],
        started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def ingest(ctx: Context) -> IngestResult:
    """Stage 1: raw exports -> canonical responses (PII gone, pseudonyms in)."""
    pseudo = ctx.config.pseudonymisation
    key = load_key(ctx.config.path(pseudo.key_file), pseudo.create_if_missing)
    result = ingest_program(ctx.config, ctx.instruments, key)
    if pseudo.link_file and result.links is not None:
        write_link_file(ctx.config.path(pseudo.link_file), result.links)
    result.links = None  # identifiers never travel further (task results, logs)
    return result


def validate(ctx: Context, ingested: IngestResult) -> ContractResult:
    """Stage 2: contracts split rows into valid and quarantine (with ingest's rejects)."""
    result = apply_contracts(ingested.responses, ctx.instruments, ctx.config)
    at_ingest = localise(ingested.rejected, ctx.config.language)
    result.quarantine = pd.concat([at_ingest, result.quarantine], ignore_index=True)
    result.summary = pd.concat([ingest_summary(ingested), result.summary], ignore_index=True)
    return result


def ingest_summary(ingested: IngestResult) -> pd.DataFrame:
    """Validation-summary rows for the rules applied while reading (per file and rule)."""
    rejected = ingested.rejected
    keys = ["source_file", "instrument", "rule"]
    counts = rejected.groupby(keys).size().rename("failed")
    whole = rejected[rejected["scope"] == "row"].groupby(keys).size().rename("quarantined")
    read = ingested.accounting.set_index(["source_file", "instrument"])["rows_in"]
    table = pd.concat([counts, whole], axis=1).fillna(0).astype("int64").reset_index().merge(
        read.rename("checked").reset_index(), on=["source_file", "instrument"])
    return table[["source_file", "instrument", "rule", "checked", "failed", "quarantined"]]


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
            "band_transitions": pd.concat(transitions, ignore_index=True),
            "wave_means": wave_means(scores, scope="pooled"),
            "mixed_models": mixed_model_rows(scores, ctx.config.pairs())}


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
             previous: dict[str, pd.DataFrame] | None = None, kept: list[str] = ()) -> dict:
    """The analysis tables from fresh cohort rows, reused cohort rows and pooled rows.

    Then what depends on the whole program: RCI (pooled baseline references),
    participation and the models across cohorts.
    """
    rank, tables = cohort_rank(ctx.config), {}
    for name in COHORT_TABLES:
        reused = None
        if previous is not None and kept:
            reused = previous[name][previous[name]["cohort"].astype(str).isin(set(kept))]
        tables[name] = stack([*(f[name] for f in fresh), reused, pooled.get(name)], rank, name)
    first = ctx.config.wave_order()[0]
    references = rci_references(scores, tables["reliability"], ctx.instruments, first)
    tables["change"], tables["individual_change"] = apply_rci(
        tables["change"], tables["individual_change"], references,
        improvement_directions(ctx.instruments))
    tables["participation"] = participation_table(scores, first)
    tables["models"] = models_table(scores, ctx.config.pairs(), tables["change"],
                                    pooled.get("mixed_models"))
    return tables


def analyse(ctx: Context, contracts: ContractResult, scores: pd.DataFrame) -> dict:
    """Stage 4 (everything, in one process): reliability, items, change, models, participation.

    The flow runs the same steps with the cohorts fanned out over tasks and
    unchanged cohorts reused; results are identical.
    """
    valid = contracts.valid
    fresh = analyse_cohorts(ctx, valid, scores)
    return assemble(ctx, scores, [fresh], analyse_pooled(ctx, valid, scores))


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


def plan(ctx: Context) -> Plan:
    """Hash the inbox: what would be read, and whether anything changed since the last run."""
    return plan_run(ctx.config, ctx.instruments, code_version())


RUN_COLUMNS = ["fingerprint", "run_id", "started", "finished", "program", "status",
               "code_version", "instrument_versions", "inputs", "rows_read", "rows_valid",
               "rows_quarantined", "cohorts_recomputed", "cohorts_reused", "problems"]


def run_record(
    ctx: Context, ingested: IngestResult | None, contracts: ContractResult | None,
    accounting: pd.DataFrame | None, plan: Plan | None = None, status: str = "complete",
    recomputed: int | None = None, reused: int | None = None, problems: list[str] = (),
) -> pd.DataFrame:
    """The ``runs`` table row of this run: inputs with SHA-256, versions, row accounting.

    A run with no new data or a failed run has no accounting (null counts).
    """
    plan = plan or ctx_plan_from(ctx, ingested)
    inputs = (ingested.inputs[["source_file", "sha256", "status", "rows"]].to_dict("records")
              if ingested is not None else [
                  {"source_file": e["source_file"], "sha256": e["sha256"]} for e in plan.inputs])
    def total(column: str):
        return int(accounting[column].sum()) if accounting is not None else None
    problems = [*(ingested.problems if ingested else []),
                *(contracts.problems if contracts else []), *problems]
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


def ctx_plan_from(ctx: Context, ingested: IngestResult) -> Plan:
    """A plan from what ingest read (for callers that did not plan first)."""
    inputs = ingested.inputs[["source", "source_file", "sha256"]].to_dict("records")
    return Plan(run_fingerprint(inputs, ctx.config.root / "program.yaml", ctx.instruments,
                                code_version()), inputs)


def record_run(ctx: Context, record: pd.DataFrame) -> None:
    """Add a run row (no new data, failed) to the warehouse without touching other tables."""
    specs = dict(load_schema().tables)
    update_warehouse(ctx.config.output_dir / "warehouse.duckdb", {"runs": record}, specs)


def record_no_new_data(ctx: Context, plan: Plan) -> dict:
    """Record a run that found nothing new; its summary (the CLI and the flow both use it)."""
    record_run(ctx, run_record(ctx, None, None, None, plan, status="no_new_data", recomputed=0))
    last = plan.previous or {}
    return {"run_id": ctx.run_id, "status": "no_new_data", "previous_run": last.get("run_id"),
            "previous_finished": last.get("finished"), "output_dir": str(ctx.config.output_dir),
            "report": str(ctx.config.output_dir / "reports" / f"program_{ctx.config.language}.html"),
            "problems": []}


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
                   pending: list[str] = ()) -> None:
    """Remember this successful run (fingerprint, inputs, cohort fingerprints): written last.

    Files ``pending`` (skipped while being written) are left out of the state, and
    the fingerprint marked, so that the next run reads them even if unchanged.
    """
    inputs = [e for e in plan.inputs if e["source_file"] not in set(pending)]
    fingerprint = plan.fingerprint + ("+pending" if pending else "")
    save_state(ctx.config.output_dir, {
        "fingerprint": fingerprint, "run_id": ctx.run_id, "started": ctx.started,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "inputs": inputs, "cohorts": cohorts})


def export(ctx: Context, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """Stage 5: every table as Parquet, CSV, .sav, .dta; codebook; load scripts; warehouse.

    The tables folder is staged and swapped in whole, so a run killed midway
    leaves the previous outputs intact. The flow does the same in parts
    (:func:`table_export`), starting with the tables that are final before the
    analysis.
    """
    with table_export(ctx) as exporting:
        exporting.add(tables)
        exporting.seal()
        return exporting.finish()


@contextmanager
def table_export(ctx: Context) -> Iterator[TableExport]:
    """Stage 5 in parts: :meth:`TableExport.add` tables as they become final (their SPSS and
    Stata files are written by worker processes meanwhile), :meth:`TableExport.seal` once all
    are in (the warehouse merges on a thread), :meth:`TableExport.finish` at the end. Leaving
    early (an error) stops the workers and drops the staging folder."""
    with staged_folder(ctx.config.output_dir / "tables") as staging:
        exporting = TableExport(ctx, staging)
        try:
            yield exporting
        finally:
            exporting.cancel()


class TableExport:
    """One run's tables folder, filled in a staging folder and swapped in by :meth:`finish`."""

    def __init__(self, ctx: Context, staging: Path):
        self.ctx, self.staging = ctx, staging
        self.specs = dict(load_schema().tables)
        self.sets = value_sets(ctx.config, ctx.instruments,
                               {r: v["label"] for r, v in RULES.items()})
        self.labelled = LabelledFiles(staging, self.specs, self.sets, ctx.config.language)
        self.files: dict[str, pd.DataFrame] = {}
        self.written: list[Path] = []
        self.warehouse: Future | None = None

    def add(self, tables: dict[str, pd.DataFrame], workers: int = WORKERS) -> None:
        """Write Parquet and CSV now; start the SPSS/Stata files on ``workers`` processes."""
        files = dict(tables)
        if "scores" in files:
            files["scores_wide"] = scores_wide(files["scores"], self.ctx.config.wave_order())
            self.specs["scores_wide"] = scores_wide_spec(files["scores_wide"],
                                                         self.ctx.instruments, self.ctx.config)
        check_documented(files, self.specs)
        for name, frame in files.items():
            self.written += write_open_formats(frame, self.staging, name)
        self.labelled.submit(files, workers)
        self.files.update(files)

    def seal(self) -> None:
        """Every table is in: merge them into the warehouse on a thread while the caller goes on.

        DuckDB reads the staged Parquet files without the GIL, so this overlaps
        with rendering the reports. The warehouse commits before the tables are
        swapped in: if the run then fails, the next run replaces those rows.
        """
        files = self.ordered_files()
        parquet = {name: self.staging / f"{name}.parquet" for name in files}
        self._threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warehouse")
        self.warehouse = self._threads.submit(
            update_warehouse, self.ctx.config.output_dir / "warehouse.duckdb", files, self.specs,
            parquet)

    def ordered_files(self) -> dict[str, pd.DataFrame]:
        """The tables added so far, in the schema's order (the codebook's)."""
        return {name: self.files[name] for name in self.specs if name in self.files}

    def finish(self) -> list[Path]:
        """Wait for the SPSS/Stata files and the warehouse, swap the tables in, write the codebook
        and load scripts."""
        out, lang = self.ctx.config.output_dir, self.ctx.config.language
        if self.staging.exists():  # not swapped in yet (a retried finish goes on from here)
            if self.warehouse is None:
                self.seal()
            staged = self.written + self.labelled.wait()
            try:
                self.warehouse.result()
            finally:
                self.stop_warehouse()
            swap_in(self.staging, out / "tables")
            self.written = [out / "tables" / p.relative_to(self.staging) for p in staged]
        files = self.ordered_files()
        written = [*self.written, out / "warehouse.duckdb"]
        book = codebook(self.specs, files, self.sets, self.ctx.instruments, self.ctx.config, lang)
        markdown = codebook_markdown(book)
        for name, text in (("codebook.md", markdown),
                           ("codebook.html", codebook_html(markdown, "Codebook")),
                           ("load_in_R.R", R_SCRIPT),
                           ("load_in_SPSS.sps", SPSS_SCRIPT.format(folder=out))):
            atomic_write(out / name, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
            written.append(out / name)
        written.append(write_json(book, out / "codebook.json"))
        written.append(write_json(files["runs"].iloc[0].to_dict(), out / "last_run.json"))
        return written

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


def report_folder(ctx: Context, tables: dict[str, pd.DataFrame], pdf: bool = True) -> Rendered:
    """Stage 6, with what was reused: unchanged pages keep their PDF (not re-printed)."""
    return render_report_folder(tables, ctx.config, ctx.instruments,
                                ctx.config.output_dir / "reports", pdf=pdf)


REPORT_TABLES = ["participation", "change", "reliability", "items", "band_transitions",
                 "models", "wave_means", "quarantine"]


def stored_tables(ctx: Context) -> dict[str, pd.DataFrame]:
    """The result tables a previous run wrote (Parquet), for re-rendering reports."""
    folder = ctx.config.output_dir / "tables"
    tables = {}
    for name in REPORT_TABLES:
        path = folder / f"{name}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"no stored results: {path} is missing")
        tables[name] = pd.read_parquet(path)
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
