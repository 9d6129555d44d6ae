"""The Prefect flow: one task per stage, wired in the order of DESIGN.md.

Runs on Prefect's embedded (ephemeral) API by default: no server needed.
This is the only module that imports Prefect.
"""

from __future__ import annotations

import os

# Offline machines: no telemetry (it errors and can lock the SQLite database).
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The first start of the embedded server migrates its SQLite database: slow on a cold machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from pathlib import Path  # noqa: E402

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact, create_table_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from pipelines import stages  # noqa: E402

# Tables are passed in memory between tasks; caching them by input hash would
# hash whole DataFrames for nothing.
stage_task = task(cache_policy=NO_CACHE, persist_result=False)


@stage_task
def ingest_task(ctx: stages.Context):
    result = stages.ingest(ctx)
    log = get_run_logger()
    for problem in result.problems:
        log.warning("Skipped: %s", problem)
    n_rows = sum(len(f) for f in result.responses.values())
    log.info("Ingested %d files, %d instrument rows, %d rejected at ingest",
             int((result.inputs["status"] == "read").sum()), n_rows, len(result.rejected))
    return result


@stage_task
def validate_task(ctx: stages.Context, ingested):
    contracts = stages.validate(ctx, ingested)
    accounting = stages.accounting_table(ingested, contracts)
    log = get_run_logger()
    log.info("Contracts: %d rows valid, %d quarantined (read %d); Data Docs: %s",
             accounting["rows_valid"].sum(), accounting["rows_quarantined"].sum(),
             accounting["rows_read"].sum(), contracts.data_docs)
    for problem in contracts.problems:
        log.warning("Batch problem: %s", problem)
    summary = contracts.summary[contracts.summary["failed"] > 0]
    create_table_artifact(
        key="validation-summary", description="Rows checked, failing and quarantined per rule",
        table=[{k: (int(v) if hasattr(v, "__int__") and not isinstance(v, str) else str(v))
                for k, v in row.items()} for row in summary.to_dict("records")])
    return contracts, accounting


@stage_task
def score_task(ctx: stages.Context, contracts):
    scores = stages.score(ctx, contracts)
    get_run_logger().info("Scored %d person x scale rows", len(scores))
    return scores


@stage_task
def analyse_task(ctx: stages.Context, contracts, scores):
    tables = stages.analyse(ctx, contracts, scores)
    get_run_logger().info("Analysis: %d reliability rows, %d change rows",
                          len(tables["reliability"]), len(tables["change"]))
    return tables


@stage_task
def export_task(ctx: stages.Context, tables):
    written = stages.export(ctx, tables)
    get_run_logger().info("Wrote %d files to %s", len(written), ctx.config.output_dir)
    return written


@stage_task
def report_task(ctx: stages.Context, tables):
    written = stages.report(ctx, tables)
    get_run_logger().info("Rendered %d report pages", len(written))
    return written


@flow(name="capacitar-evaluate", log_prints=False)
def evaluate_program(program_dir: str) -> dict:
    """Ingest, validate, score, analyse, export and report one program folder."""
    ctx = stages.load_context(program_dir)
    ingested = ingest_task(ctx)
    contracts, accounting = validate_task(ctx, ingested)
    scores = score_task(ctx, contracts)
    tables = analyse_task(ctx, contracts, scores)
    tables = {
        "scores": scores, **tables, "quarantine": contracts.quarantine,
        "validation_summary": contracts.summary, "accounting": accounting,
        "runs": stages.run_record(ctx, ingested, contracts, accounting),
    }
    export_task(ctx, tables)
    reports = report_task(ctx, tables)
    summary = summarise(ctx, tables, reports, ingested.problems + contracts.problems)
    summary["data_docs"] = contracts.data_docs
    create_markdown_artifact(markdown=summary["markdown"], key="capacitar-run-summary")
    return summary


def summarise(ctx, tables, reports: list[Path], problems: list[str]) -> dict:
    """A short run summary: counts, where outputs are, what was skipped."""
    acc = tables["accounting"]
    lines = [
        f"# capacitar run {ctx.run_id}: {ctx.config.name}",
        f"- rows read {acc['rows_read'].sum()}, valid {acc['rows_valid'].sum()}, "
        f"quarantined {acc['rows_quarantined'].sum()}",
        f"- outputs: {ctx.config.output_dir}",
        f"- program report: [{reports[0].name}]({reports[0].resolve().as_uri()})",
        *[f"- report: [{p.name}]({p.resolve().as_uri()})" for p in reports[1:]
          if p.suffix == ".html"],
        *[f"- skipped: {p}" for p in problems],
    ]
    return {
        "run_id": ctx.run_id,
        "output_dir": str(ctx.config.output_dir),
        "report": str(reports[0]),
        "rows_read": int(acc["rows_read"].sum()),
        "rows_valid": int(acc["rows_valid"].sum()),
        "rows_quarantined": int(acc["rows_quarantined"].sum()),
        "problems": problems,
        "markdown": "\n".join(lines),
    }
