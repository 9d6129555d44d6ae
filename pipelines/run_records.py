"""The record of runs: the ``runs`` table row of a run, its problems, its state, the history.

A run that went through is ``complete``, or ``complete_with_problems`` when
anything was skipped, rejected or left unread; a run that found nothing new is
``no_new_data``; a run that stopped is ``failed`` with the one line that says
why. ``state.json`` (:func:`save_run_state`) is the commit point of a run's
publication (``pipelines/publish.py``).
"""

from __future__ import annotations

import datetime as dt
import json
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import pandas as pd

from data_contracts import ContractResult
from pipelines.errors import CapacitarError
from pipelines.incremental import Plan, run_fingerprint, save_state
from pipelines.ingest import IngestResult
from pipelines.schema import load_schema
from pipelines.warehouse import update_warehouse

if TYPE_CHECKING:
    from pipelines.stages import Context


def code_version() -> str:
    """Installed capacitar version (for the runs record)."""
    try:
        return version("capacitar")
    except PackageNotFoundError:
        return "unknown"


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
