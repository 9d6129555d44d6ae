"""The pipeline's stages as plain functions from tables to tables (no Prefect here).

``flows.py`` wraps each in a Prefect task; a notebook can call them directly:

>>> from pipelines.stages import load_context, ingest, validate, score, analyse
>>> ctx = load_context("demo_program")                      # doctest: +SKIP
>>> ingested = ingest(ctx)                                  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from data_contracts import ContractResult, apply_contracts
from instruments import Instrument, load_builtin, load_instruments
from pipelines.accounting import row_accounting
from pipelines.config import ProgramConfig, load_program
from pipelines.ingest import IngestResult, ingest_program
from pipelines.ingest.pseudonym import key_identity, load_key, write_link_file
from pipelines.preflight import check_instruments, check_primary_outcomes

# The analysis, export, publication and reports are imported by the stages that use them:
# `capacitar validate` needs none of them (scipy, statsmodels, duckdb, jinja2).
if TYPE_CHECKING:
    from pipelines.incremental import Plan
    from reports.render import Rendered


@dataclass
class Context:
    """What every stage needs: the program config and its instruments."""

    config: ProgramConfig
    instruments: dict[str, Instrument]
    run_id: str
    started: str
    # Problems met before ingest (a failed pull), reported with the run's others.
    problems: list[str] = field(default_factory=list)


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
    from pipelines.analysis.scoring import score_responses

    return score_responses(contracts.valid, ctx.instruments, ctx.config.wave_order()[0])


def analyse(ctx: Context, contracts: ContractResult, scores: pd.DataFrame) -> dict:
    """Stage 4: reliability, items, change, models, participation, every cohort afresh.

    The flow runs the same steps reusing unchanged cohorts (or on Dask); results
    are identical.
    """
    from pipelines.cohort_analysis import analyse_shared, assemble, cohorts_present

    pooled, fresh = analyse_shared(ctx, contracts.valid, scores, cohorts_present(contracts.valid))
    return assemble(ctx, scores, fresh, pooled, quarantine=contracts.quarantine)


def plan(ctx: Context, new_key: bool = False) -> Plan:
    """Hash the inbox: what would be read, and whether anything changed since the last run.

    Call it holding the program lock: it first finishes or undoes a publication
    a dead run left (:func:`prepare_outputs`).
    """
    from pipelines.incremental import plan_run
    from pipelines.run_records import code_version

    prepare_outputs(ctx)
    return plan_run(ctx.config, ctx.instruments, code_version(), key_identity(program_key(ctx)),
                    new_key)


def prepare_outputs(ctx: Context) -> None:
    """Before a run touches the outputs: undo or finish a dead run's publication, remove its
    leftovers, refuse output folders capacitar did not make, make everything owner-only."""
    from pipelines.publish import check_replaceable, clean_stale, recover, tighten

    out = ctx.config.output_dir
    recover(out)
    clean_stale(out)
    for name in ("tables", "reports"):
        check_replaceable(out / name)
    tighten(out)


def export(ctx: Context, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """Stage 5: every table as Parquet, CSV, .sav, .dta; codebook; load scripts; warehouse.

    The tables folder is staged and swapped in whole, so a run killed midway
    leaves the previous outputs intact. The flow does the same in parts
    (:func:`table_export`), starting with the tables that are final before the
    analysis, and publishes the reports with the tables.
    """
    from pipelines.run_records import record_run
    from pipelines.table_export import table_export

    with table_export(ctx) as exporting:
        exporting.add(tables)
        exporting.seal()
        written = exporting.finish()
        exporting.commit()
    if "runs" in tables:
        record_run(ctx, tables["runs"])
    return written


def report(ctx: Context, tables: dict[str, pd.DataFrame], pdf: bool = True) -> list[Path]:
    """Stage 6: cohort and program reports, es and en, HTML (and PDF with Chromium)."""
    return report_folder(ctx, tables, pdf).paths


def report_folder(ctx: Context, tables: dict[str, pd.DataFrame], pdf: bool = True,
                  staging: Path | None = None, printing=None) -> Rendered:
    """Stage 6, with what was reused: unchanged pages keep their PDF (not re-printed).

    With ``staging`` (a run's :attr:`TableExport.reports_staging`) the pages are
    written there and published with the tables; without, they are published at once.
    With ``printing`` (:func:`report_printer`'s) the PDFs may still be printing on return
    (``Rendered.finish`` waits for them).
    """
    return render_report_folder(tables, ctx.config, ctx.instruments,
                                ctx.config.output_dir / "reports", pdf=pdf, staging=staging,
                                run_id=ctx.run_id, printing=printing)


@contextmanager
def report_printer(pdf: bool = True) -> Iterator:
    """The printing of a run's PDFs (None without PDFs), its browser started now; it ends
    with the block (:func:`reports.pdf.printer`)."""
    if not pdf:
        yield None
        return
    from reports.pdf import printer

    with printer() as printing:
        yield printing


def render_report_folder(*args, **kwargs) -> Rendered:
    """:func:`reports.render.render_report_folder`, imported when a stage first renders."""
    from reports.render import render_report_folder as render

    return render(*args, **kwargs)


REPORT_TABLES = ["participation", "change", "reliability", "items", "band_transitions",
                 "models", "wave_means", "quarantine"]
REPORT_TABLES_OPTIONAL = ["accounting", "runs"]  # and the competence tables


def stored_tables(ctx: Context) -> dict[str, pd.DataFrame]:
    """The result tables a previous run wrote (Parquet), for re-rendering reports."""
    folder = ctx.config.output_dir / "tables"
    tables = {}
    for name in REPORT_TABLES:
        path = folder / f"{name}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"no stored results: {path} is missing")
        tables[name] = pd.read_parquet(path)
    from pipelines.competence import TABLES as COMPETENCE_TABLES

    # the data-quality section, the run's record, the competence tables
    for name in [*REPORT_TABLES_OPTIONAL, *COMPETENCE_TABLES]:
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
