"""The pipeline's stages as plain functions from tables to tables (no Prefect here).

``flows.py`` wraps each in a Prefect task; a notebook can call them directly:

>>> from pipelines.stages import load_context, ingest, validate, score, analyse
>>> ctx = load_context("demo_program")                      # doctest: +SKIP
>>> ingested = ingest(ctx)                                  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from data_contracts import RULES, ContractResult, apply_contracts, localise
from instruments import Instrument, load_builtin, load_instruments
from pipelines.accounting import row_accounting
from pipelines.analysis.scoring import score_responses
from pipelines.analysis.tables import (
    change_tables, improvement_directions, item_tables, models_table, rci_references,
    reliability_table, wave_means,
)
from pipelines.config import ProgramConfig, load_program
from pipelines.codebook import R_SCRIPT, SPSS_SCRIPT, codebook, codebook_html, codebook_markdown
from pipelines.export import atomic_write, write_folder, write_json, write_table
from pipelines.schema import load_schema, value_sets
from pipelines.warehouse import update_warehouse
from pipelines.wide import scores_wide, scores_wide_spec
from pipelines.ingest import IngestResult, ingest_program
from pipelines.ingest.pseudonym import load_key, write_link_file
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
    counts = rejected.groupby(["source_file", "instrument", "rule"]).size().rename("failed")
    read = ingested.accounting.set_index(["source_file", "instrument"])["rows_read"]
    table = counts.reset_index().merge(read.rename("checked").reset_index(),
                                       on=["source_file", "instrument"])
    return table.assign(quarantined=table["failed"])[
        ["source_file", "instrument", "rule", "checked", "failed", "quarantined"]]


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


def analyse(ctx: Context, contracts: ContractResult, scores: pd.DataFrame) -> dict:
    """Stage 4: reliability, item analysis, change, models and participation tables."""
    directions = improvement_directions(ctx.instruments)
    items, options = item_tables(contracts.valid, ctx.instruments)
    reliability = reliability_table(contracts.valid, ctx.instruments)
    references = rci_references(scores, reliability, ctx.instruments, ctx.config.wave_order()[0])
    change, individual, transitions = change_tables(scores, ctx.config.pairs(), directions,
                                                    references)
    return {
        "participation": participation_table(scores, ctx.config.wave_order()[0]),
        "reliability": reliability,
        "items": items,
        "item_options": options,
        "change": change,
        "individual_change": individual,
        "band_transitions": transitions,
        "models": models_table(scores, ctx.config.pairs(), change),
        "wave_means": wave_means(scores),
    }


def run_record(
    ctx: Context, ingested: IngestResult, contracts: ContractResult, accounting: pd.DataFrame
) -> pd.DataFrame:
    """The ``runs`` table row of this run: inputs with SHA-256, versions, row accounting."""
    inputs = ingested.inputs[["source_file", "sha256", "status", "rows"]].to_dict("records")
    versions = ";".join(sorted(i.label for i in ctx.instruments.values()))
    return pd.DataFrame([{
        "fingerprint": fingerprint(ctx, ingested, versions),
        "run_id": ctx.run_id,
        "started": ctx.started,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "program": ctx.config.name,
        "code_version": code_version(),
        "instrument_versions": versions,
        "inputs": json.dumps(inputs),
        "rows_read": int(accounting["rows_read"].sum()),
        "rows_valid": int(accounting["rows_valid"].sum()),
        "rows_quarantined": int(accounting["rows_quarantined"].sum()),
        "problems": " | ".join(ingested.problems + contracts.problems),
    }])


def fingerprint(ctx: Context, ingested: IngestResult, versions: str) -> str:
    """SHA-256 over the inputs' hashes, program.yaml, instrument and code versions."""
    digest = hashlib.sha256()
    for sha in sorted(ingested.inputs["sha256"]):
        digest.update(sha.encode())
    digest.update((ctx.config.root / "program.yaml").read_bytes())
    digest.update(versions.encode())
    digest.update(code_version().encode())
    return digest.hexdigest()


def export(ctx: Context, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """Stage 5: every table as Parquet, CSV, .sav, .dta; codebook; load scripts; warehouse.

    The tables folder is staged and swapped in whole, so a run killed midway
    leaves the previous outputs intact.
    """
    out, lang = ctx.config.output_dir, ctx.config.language
    specs = dict(load_schema().tables)
    sets = value_sets(ctx.config, ctx.instruments, {r: v["label"] for r, v in RULES.items()})
    wide = scores_wide(tables["scores"], ctx.config.wave_order())
    specs["scores_wide"] = scores_wide_spec(wide, ctx.instruments, ctx.config)
    files = {**tables, "scores_wide": wide}
    check_documented(files, specs)

    def fill(staging: Path) -> list[Path]:
        return [p for name, frame in files.items()
                for p in write_table(frame, specs[name], sets, lang, staging, name)]

    written = write_folder(out / "tables", fill)
    book = codebook(specs, files, sets, ctx.instruments, ctx.config, lang)
    markdown = codebook_markdown(book)
    for name, text in (("codebook.md", markdown),
                       ("codebook.html", codebook_html(markdown, "Codebook")),
                       ("load_in_R.R", R_SCRIPT),
                       ("load_in_SPSS.sps", SPSS_SCRIPT.format(folder=out))):
        atomic_write(out / name, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
        written.append(out / name)
    written.append(write_json(book, out / "codebook.json"))
    written.append(write_json(tables["runs"].iloc[0].to_dict(), out / "last_run.json"))
    update_warehouse(out / "warehouse.duckdb", tables, specs)
    written.append(out / "warehouse.duckdb")
    return written


def check_documented(tables: dict[str, pd.DataFrame], specs: dict) -> None:
    """Refuse to write a table or column the schema does not document (a bug, not a user error)."""
    for name, frame in tables.items():
        spec = specs.get(name)
        missing = [c for c in frame.columns if spec is None or c not in spec.columns]
        if missing:
            raise RuntimeError(f"table {name}: columns not documented in schema.yaml: {missing}")


def report(ctx: Context, tables: dict[str, pd.DataFrame], pdf: bool = True) -> list[Path]:
    """Stage 6: cohort and program reports, es and en, HTML (and PDF with Chromium)."""
    return render_reports(tables, ctx.config, ctx.instruments,
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
