"""The pipeline's stages as plain functions from tables to tables (no Prefect here).

``flows.py`` wraps each in a Prefect task; a notebook can call them directly:

>>> from pipelines.stages import load_context, ingest, validate, score, analyse
>>> ctx = load_context("demo_program")                      # doctest: +SKIP
>>> ingested = ingest(ctx)                                  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from data_contracts import ContractResult, apply_contracts, localise
from instruments import Instrument, load_builtin, load_instruments
from pipelines.accounting import row_accounting
from pipelines.analysis.change import change_table
from pipelines.analysis.scoring import score_responses
from pipelines.analysis.tables import improvement_directions, reliability_table
from pipelines.config import ProgramConfig, load_program
from pipelines.export import write_json, write_tables
from pipelines.ingest import IngestResult, ingest_program
from pipelines.ingest.pseudonym import load_key
from reports.render import render_reports


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
    return ingest_program(ctx.config, ctx.instruments, key)


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
    counts = rejected.groupby(["source_file", "instrument", "rule"]).size().rename("failed")
    read = ingested.accounting.set_index(["source_file", "instrument"])["rows_read"]
    table = counts.reset_index().merge(read.rename("checked").reset_index(),
                                       on=["source_file", "instrument"])
    return table.assign(quarantined=table["failed"])[
        ["source_file", "instrument", "rule", "checked", "failed", "quarantined"]]


def score(ctx: Context, contracts: ContractResult) -> pd.DataFrame:
    """Stage 3: the scores table."""
    return score_responses(contracts.valid, ctx.instruments)


def participation_table(scores: pd.DataFrame) -> pd.DataFrame:
    """People with a valid response per cohort x wave x instrument."""
    return (
        scores.groupby(["cohort", "wave", "instrument"])["participant"].nunique()
        .rename("n").reset_index()
    )


def analyse(ctx: Context, contracts: ContractResult, scores: pd.DataFrame) -> dict:
    """Stage 4: reliability, change and participation tables."""
    directions = improvement_directions(ctx.instruments)
    return {
        "participation": participation_table(scores),
        "reliability": reliability_table(contracts.valid, ctx.instruments),
        "change": change_table(scores, ctx.config.pairs(), directions),
    }


def run_record(
    ctx: Context, ingested: IngestResult, contracts: ContractResult, accounting: pd.DataFrame
) -> pd.DataFrame:
    """The ``runs`` table row of this run: inputs with SHA-256, versions, row accounting."""
    inputs = ingested.inputs[["source_file", "sha256", "status", "rows"]].to_dict("records")
    return pd.DataFrame([{
        "run_id": ctx.run_id,
        "started": ctx.started,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "program": ctx.config.name,
        "code_version": code_version(),
        "instrument_versions": ";".join(sorted(i.label for i in ctx.instruments.values())),
        "inputs": str(inputs),
        "rows_read": int(accounting["rows_read"].sum()),
        "rows_valid": int(accounting["rows_valid"].sum()),
        "rows_quarantined": int(accounting["rows_quarantined"].sum()),
        "problems": " | ".join(ingested.problems + contracts.problems),
    }])


def export(ctx: Context, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """Stage 5: write every result table (Parquet + CSV) and the run summary."""
    folder = ctx.config.output_dir / "tables"
    written = write_tables(tables, folder)
    runs = tables["runs"].iloc[0].to_dict()
    written.append(write_json(runs, ctx.config.output_dir / "last_run.json"))
    return written


def report(ctx: Context, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """Stage 6: HTML reports per cohort plus a program index."""
    return render_reports(tables, ctx.config, ctx.instruments, ctx.config.output_dir / "reports")


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
