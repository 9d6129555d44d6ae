"""The Prefect flow: one task per stage, wired in the order of ARCHITECTURE.md.

Runs on Prefect's embedded (ephemeral) API by default: no server needed.
The stages know nothing of Prefect: this module wires them (``embedded_server.py`` starts
Prefect's embedded server early, ``serve.py`` serves deployments).

A run holds the program folder's lock, first hashes the inbox (nothing new:
it records that and stops), then ingests, validates and scores everything,
analyses only the cohorts whose data changed (fanned out over tasks, on Dask
when asked), refreshes the program-wide figures, stages the tables and the
reports, publishes them together and records its state last.

How a run ends, for people and for Prefect automations:

- clean: a ``Completed`` state;
- with problems (a file skipped, a batch rejected, an inbox file no source reads,
  a failed pull): a ``Completed``-type state named ``CompletedWithProblems``
  (Prefect event ``prefect.flow-run.CompletedWithProblems``), the problems first
  in the markdown artifact, status ``complete_with_problems`` in ``runs``;
  ``strict=True`` makes any problem a failure instead;
- a failure the user can act on (a mistake in program.yaml, a changed key, the
  folder busy, disk full, a read-only output): a ``Failed`` state with that one
  line as its message and no traceback; calling the flow raises
  :class:`pipelines.errors.RunFailed` with it;
- anything else is a bug: Prefect's ``Failed`` state with the traceback.
"""

from __future__ import annotations

from pipelines.embedded_server import offline_defaults

offline_defaults()  # before Prefect reads its settings

import errno  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
from prefect import Task, flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact, create_table_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.states import Completed, Failed  # noqa: E402
from prefect.utilities.annotations import quote  # noqa: E402

from pipelines import pull as pulls  # noqa: E402
from pipelines import cohort_analysis, run_records, stages, table_export  # noqa: E402
from pipelines.errors import CapacitarError, RunFailed, user_message  # noqa: E402
from pipelines.locking import program_lock  # noqa: E402
from pipelines.preflight import check_headers  # noqa: E402
from pipelines.progress import progress, step  # noqa: E402
from pipelines.publish import owner_only  # noqa: E402

WITH_PROBLEMS = "CompletedWithProblems"  # the state name Prefect automations can match
PERMANENT = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
             getattr(errno, "EDQUOT", errno.ENOSPC)}


class NoTracebackForUserErrors(logging.Filter):
    """Prefect logs a failed task or flow with its traceback; for an error the user can fix
    (disk full, a read-only folder, a mistake in program.yaml) the one line says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None \
                and user_message(record.exc_info[1]) is not None:
            record.exc_info, record.exc_text = None, None
        return True


for _name in ("prefect.flow_runs", "prefect.task_runs"):
    logging.getLogger(_name).addFilter(NoTracebackForUserErrors())


def transient_io(task, task_run, state) -> bool:
    """Retry a stage only on an OS-level I/O error that may pass (a folder mid-sync), never a
    user's mistake nor a full disk or a read-only folder."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable state is not worth a retry
        return False
    return (isinstance(exc, OSError) and not isinstance(exc, CapacitarError)
            and exc.errno not in PERMANENT)


class StageTask(Task):
    """A stage as a Prefect task, given its arguments as they are when called.

    Prefect walks every list, dict and dataclass of a task's arguments looking
    for futures to wait on; a stage called in the flow is given a run's context
    and tables (tens of thousands of objects, walked twice per call), never a
    future, so its arguments are passed quoted: Prefect hands them over without
    walking them. Submitted stages (on Dask) are not quoted: Dask's serialisation
    sends the quote as a plain tuple.
    """

    CONTROLS = ("return_state", "wait_for")  # arguments of Prefect's own, not the stage's

    def __call__(self, *args, **kwargs):
        return super().__call__(*map(quote, args), **{
            k: v if k in self.CONTROLS else quote(v) for k, v in kwargs.items()})


def stage_tasks(**options):
    """A decorator making stage functions :class:`StageTask` with ``options``."""
    return lambda fn: StageTask(fn, **options)


# Tables are passed in memory between tasks; caching them by input hash would
# hash whole DataFrames for nothing.
stage_task = stage_tasks(cache_policy=NO_CACHE, persist_result=False)
io_task = stage_tasks(cache_policy=NO_CACHE, persist_result=False, retries=2,
                      retry_delay_seconds=3, retry_condition_fn=transient_io)


def server_down(task, task_run, state) -> bool:
    """Retry a pull only when its server was down or slow, never for a token or a bad answer."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable state is not worth a retry
        return False
    return isinstance(exc, pulls.ServerDown)


@task(cache_policy=NO_CACHE, persist_result=False, retry_condition_fn=server_down)
def pull_task(ctx: stages.Context, source_name: str) -> pulls.PullResult:
    """Fetch one source from its server into an inbox snapshot (retried with back-off)."""
    source = next(s for s in ctx.config.sources if s.name == source_name)
    result = pulls.pull_source(ctx.config, source, ctx.instruments)
    get_run_logger().info("Pull: %s", result.line())
    return result


def pull_sources(ctx: stages.Context) -> list:
    """Pull every source that has a ``pull:`` section, side by side, one task run each.

    A source whose pull failed (after the retries, for a server that was down)
    keeps its last snapshot; the failure is one of the run's problems.
    """
    sources = pulls.pulled_sources(ctx.config)
    futures = [pull_task.with_options(
        task_run_name=f"pull-{s.name}", retries=s.pull.retries,
        retry_delay_seconds=[s.pull.retry_delay * 2 ** i for i in range(s.pull.retries)] or 0,
    ).submit(ctx, s.name) for s in sources]
    results = []
    for source, future in zip(sources, futures):
        future.wait()
        if future.state.is_completed():
            results.append(future.result())
            continue
        result = pulls.failed(ctx.config, source, future.state.result(raise_on_failure=False))
        get_run_logger().warning("%s", result.problem)
        ctx.problems.append(result.problem)
        results.append(result)
    return results


@flow(name="capacitar-pull", log_prints=False)
def pull_program(program_dir: str, lock_timeout: float = 600) -> list:
    """Fetch a program's pulled sources into its inbox without evaluating (``capacitar pull``)."""
    ctx = stages.load_context(program_dir)
    with program_lock(ctx.config.root, ctx.run_id, lock_timeout, on_wait=get_run_logger().info):
        return pull_sources(ctx)


@io_task
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
    if contracts.reused:
        log.info("Great Expectations: unchanged since validated, verdict reused for %s",
                 ", ".join(contracts.reused))
    for problem in contracts.problems:
        log.warning("Batch problem: %s", problem)
    summary = contracts.summary[contracts.summary["failed"] > 0]
    create_table_artifact(
        key="validation-summary", description="Rows checked, failing and quarantined per rule",
        table=json_safe(summary))
    return contracts, accounting


@stage_task
def score_task(ctx: stages.Context, contracts):
    scores = stages.score(ctx, contracts)
    get_run_logger().info("Scored %d person x scale rows", len(scores))
    return scores


@stage_task
def analyse_group_task(ctx: stages.Context, valid: dict, scores: pd.DataFrame) -> dict:
    """The cohort tables of one group of cohorts (runs on a thread or a Dask worker)."""
    return cohort_analysis.analyse_cohorts(ctx, valid, scores)


@stage_task
def analyse_pooled_task(ctx: stages.Context, valid: dict, scores: pd.DataFrame) -> dict:
    """The program-wide (cohort ALL) rows, beside the cohort groups on the same runner."""
    return cohort_analysis.analyse_pooled(ctx, valid, scores)


@flow(name="capacitar-analyse-cohorts", log_prints=False)
def analyse_cohorts_flow(ctx: stages.Context, parts: list, program: tuple | None = None) -> dict:
    """Fan the changed cohorts out over the task runner, one task per group of cohorts.

    With ``program`` (all valid responses and scores) the program-wide rows are
    computed by one more task on the same runner, submitted first (the biggest).
    """
    pooled = analyse_pooled_task.submit(ctx, *program) if program is not None else None
    futures = [analyse_group_task.submit(ctx, valid, scores) for valid, scores in parts]
    with progress("Analysing cohorts", len(futures)) as advance:
        results = []
        for future in futures:
            results.append(future.result())
            advance()
    return {"cohorts": results, "pooled": pooled.result() if pooled is not None else None}


@stage_task
def analyse_here_task(ctx: stages.Context, valid: dict, scores: pd.DataFrame,
                      cohorts: list[str]) -> tuple[dict, list[dict]]:
    """The program-wide rows and the cohort rows of ``cohorts`` on this machine: forked
    processes share the tables without copying them (threads would contend for the GIL,
    Prefect's process runner would copy every input)."""
    return cohort_analysis.analyse_shared(ctx, valid, scores, cohorts)


# On Dask, groups of cohorts run on the workers, a few per worker so a slow group does not hold
# the run, and the program-wide rows run beside them there.
DASK_GROUPS = 32


def dask_runner(dask_address: str):
    """A Dask task runner on an existing cluster."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as missing:
        raise CapacitarError("--dask-address needs prefect-dask: "
                             "pip install 'capacitar[dask]'") from missing
    return DaskTaskRunner(address=dask_address)


@stage_task
def pooled_task(ctx: stages.Context, contracts, scores, fresh: list, previous, kept: list,
                pooled: dict | None = None):
    if pooled is None:
        pooled = cohort_analysis.analyse_pooled(ctx, contracts.valid, scores)
    tables = cohort_analysis.assemble(ctx, scores, fresh, pooled, previous, kept,
                                      contracts.quarantine)
    get_run_logger().info("Analysis: %d reliability rows, %d change rows, %d model rows",
                          len(tables["reliability"]), len(tables["change"]), len(tables["models"]))
    return tables


@io_task
def export_tables_task(exporting: table_export.TableExport, tables: dict,
                       processes: int | None = None):
    """Parquet and CSV now; SPSS and Stata files started on forked processes."""
    exporting.add(tables, processes)


@io_task
def export_task(ctx: stages.Context, exporting: table_export.TableExport):
    written = exporting.finish()
    get_run_logger().info("Wrote %d files to %s", len(written), ctx.config.output_dir)
    return written


@stage_task
def report_task(ctx: stages.Context, tables, printing=None, staging=None):
    """The report pages, their PDFs handed to ``printing`` (:func:`pdf_task` waits for them)."""
    rendered = stages.report_folder(ctx, tables, pdf=printing is not None, staging=staging,
                                    printing=printing)
    pending = len(rendered.printing.added) if rendered.printing is not None else 0
    get_run_logger().info("Rendered %d report pages: %d PDFs to print, %d unchanged kept",
                          sum(p.suffix == ".html" for p in rendered.paths), pending,
                          rendered.reused)
    return rendered


@stage_task
def pdf_task(rendered):
    rendered.finish()
    get_run_logger().info("Reports: %d files, %d PDFs printed, %d unchanged kept",
                          len(rendered.paths), rendered.printed, rendered.reused)
    return rendered.paths


@flow(name="capacitar-evaluate", log_prints=False)
def evaluate_program(program_dir: str, force: bool = False, dask_address: str | None = None,
                     lock_timeout: float = 600, pdf: bool = True, strict: bool = False,
                     new_key: bool = False, pull: bool = True):
    """Evaluate one program folder: ingest, validate, score, analyse, export and report.

    Parameters
    ----------
    program_dir : folder holding program.yaml
    force : recompute everything even when nothing changed
    dask_address : run the per-cohort analysis on this Dask scheduler (``tcp://host:8786``)
    lock_timeout : seconds to wait for another run of the same program to finish
    pdf : print the reports to PDF (needs Chromium)
    strict : any problem (a file skipped, a batch rejected, an unread inbox file) fails the run
        before anything is published
    new_key : the pseudonymisation key was replaced on purpose (else a new key stops the run)
    pull : first fetch the sources that have a ``pull:`` section from their servers

    Returns the run's summary (a dict); see the module's docstring for the states.
    """
    with owner_only():
        try:
            summary = evaluate_locked(program_dir, force, dask_address, lock_timeout, pdf,
                                      strict, new_key, pull)
        except Exception as exc:  # noqa: BLE001 - a bug is raised again just below
            message = user_message(exc)
            if message is None:
                raise
            get_run_logger().error("%s", message)
            return Failed(message=message, data=RunFailed(message))
    if summary["problems"]:
        return Completed(name=WITH_PROBLEMS, data=summary,
                         message=f"{len(summary['problems'])} problem(s): "
                                 + " | ".join(summary["problems"])[:500])
    return summary


def evaluate_locked(program_dir: str, force: bool, dask_address: str | None,
                    lock_timeout: float, pdf: bool, strict: bool, new_key: bool,
                    pull: bool = True) -> dict:
    """The run under the program folder's lock; a failure after planning is recorded."""
    ctx = stages.load_context(program_dir)
    log = get_run_logger()
    with program_lock(ctx.config.root, ctx.run_id, lock_timeout, on_wait=log.info):
        if pull:
            pull_sources(ctx)
        plan = stages.plan(ctx, new_key=new_key)
        try:
            if strict and (ctx.problems or plan.problems):
                raise run_records.ProblemsFound(
                    run_records.strict_message([*ctx.problems, *plan.problems]))
            if plan.nothing_new and not force:
                return no_new_data(ctx, plan)
            check_headers(ctx.config, ctx.instruments,
                          None if force else set(plan.changed_files))
            return full_run(ctx, plan, force, dask_address or ctx.config.dask_address, pdf,
                            strict)
        except Exception as exc:
            record_failure(ctx, plan, exc)
            raise


def record_failure(ctx: stages.Context, plan, exc: Exception) -> None:
    """A ``failed`` row in the runs table (unless the disk is what failed)."""
    try:
        run_records.record_failed(ctx, plan, user_message(exc) or f"{type(exc).__name__}: {exc}")
    except Exception as also:  # noqa: BLE001 - the first error is the one to report
        get_run_logger().warning("Could not record the failed run in the warehouse: %s", also)


class StageClock:
    """Wall seconds per stage of one run (for the summary, the logs and benchmarks)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        step(stage)
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


def full_run(ctx: stages.Context, plan, force: bool, dask_address: str | None, pdf: bool,
             strict: bool = False) -> dict:
    """Every stage, analysing only cohorts whose data changed since the last good run.

    The tables final before the analysis (scores, quarantine, validation,
    accounting) are exported first, so their SPSS/Stata files are written
    beside the analysis; the others once the report pages are handed to Chromium, while it
    prints them (:func:`pdf_task` then waits for the PDFs). Tables, reports and
    codebook are published together once all are written and the warehouse has
    committed; the state then commits the publication, and the run's row follows.
    """
    clock = StageClock()
    with clock("ingest"):
        ingested = ingest_task(ctx)
    with clock("validate"):
        contracts, accounting = validate_task(ctx, ingested)
    problems = run_records.run_problems(ctx, plan, ingested, contracts)
    if strict and problems:
        raise run_records.ProblemsFound(run_records.strict_message(problems))
    with clock("score"):
        scores = score_task(ctx, contracts)
    with table_export.table_export(ctx) as exporting:
        early = {"scores": scores, "quarantine": contracts.quarantine,
                 "validation_summary": contracts.summary, "accounting": accounting}
        with clock("export"):
            export_tables_task(exporting, early, processes=1)  # the analysis runs meanwhile
        tables, work = analyse(ctx, plan, contracts, scores, force, dask_address, clock)
        tables["runs"] = run_records.run_record(ctx, ingested, contracts, accounting, plan,
                                                recomputed=len(work.stale),
                                                reused=len(work.kept))
        report_tables = {"scores": scores, **tables, "quarantine": contracts.quarantine,
                         "validation_summary": contracts.summary, "accounting": accounting}

        def write_tables() -> None:
            with clock("export"):
                export_tables_task(exporting, tables)
                exporting.seal()  # the warehouse is merged on a thread meanwhile

        with stages.report_printer(pdf) as printing:
            if printing is None:  # HTML only: the SPSS/Stata files are written beside it
                write_tables()
            with clock("report"):
                rendered = report_task(ctx, report_tables, printing, exporting.reports_staging)
            if printing is not None:  # written while Chromium prints
                write_tables()
            with clock("report_pdf"):
                reports = pdf_task(rendered)
        tables = report_tables
        with clock("export_wait"):
            export_task(ctx, exporting)
            run_records.save_run_state(ctx, plan, work.fingerprints, tables["runs"],
                                       run_records.skipped_files(ingested))
            exporting.commit()
    record_published(ctx, tables["runs"], plan)
    summary = summarise(ctx, tables, reports, problems, plan)
    summary.update(data_docs=contracts.data_docs, cohorts_recomputed=work.stale,
                   cohorts_reused=work.kept, stage_seconds=clock.seconds)
    summary["markdown"] += "\n\n## Time (s)\n" + "\n".join(
        f"- {stage}: {seconds:.1f}" for stage, seconds in clock.seconds.items())
    create_markdown_artifact(markdown=summary["markdown"], key="capacitar-run-summary",
                             description=f"capacitar run {ctx.run_id}")
    create_table_artifact(key="capacitar-change", table=json_safe(change_view(tables["change"])),
                          description="Change per cohort, scale and wave pair "
                                      "(effect sizes positive = improvement)")
    for problem in problems:
        get_run_logger().warning("Problem: %s", problem)
    return summary


def record_published(ctx: stages.Context, record: pd.DataFrame, plan) -> None:
    """The published run's row in the runs table (if that fails, the next run writes it from
    the state)."""
    try:
        run_records.record_run(ctx, record, plan)
    except OSError as exc:
        get_run_logger().warning("The run is published, but its row in the runs table could not "
                                 "be written (%s); the next run writes it", exc)


def analyse(ctx: stages.Context, plan, contracts, scores, force: bool, dask_address, clock):
    """Changed cohorts, then the program-wide figures (one task).

    Locally one task shares groups of changed cohorts and the program-wide parts
    between this process and forked ones (:func:`cohort_analysis.analyse_shared`);
    on Dask, groups of cohorts and the program-wide rows are tasks on the cluster.
    """
    with clock("analyse_cohorts"):
        work = cohort_analysis.cohort_work(ctx, plan, contracts.valid, force)
        get_run_logger().info("Cohorts to analyse: %d changed or new, %d unchanged (reused)",
                              len(work.stale), len(work.kept))
        if dask_address:
            fresh, pooled = analyse_on_dask(ctx, contracts, scores, work.stale, dask_address)
        else:
            pooled, fresh = analyse_here_task(ctx, contracts.valid, scores, work.stale)
    with clock("analyse_program"):
        tables = pooled_task(ctx, contracts, scores, fresh, work.previous, work.kept, pooled)
    return tables, work


def analyse_on_dask(ctx: stages.Context, contracts, scores, stale: list[str], dask_address):
    """Groups of changed cohorts and the program-wide rows as tasks on a Dask cluster."""
    parts = [cohort_analysis.cohort_inputs(contracts.valid, scores, g)
             for g in cohort_analysis.cohort_groups(stale, DASK_GROUPS)]
    try:
        done = (analyse_cohorts_flow.with_options(task_runner=dask_runner(dask_address))(
            ctx, parts, (contracts.valid, scores)) if parts else {"cohorts": [], "pooled": None})
    except OSError as exc:
        raise CapacitarError(f"could not use the Dask scheduler at {dask_address} ({exc}); "
                             "check the address and that the cluster is up") from exc
    return done["cohorts"], done["pooled"]


def no_new_data(ctx: stages.Context, plan) -> dict:
    """Record a run that found nothing new, and say so (with any inbox file no source reads)."""
    summary = run_records.record_no_new_data(ctx, plan)
    text = "\n".join([
        f"# capacitar run {ctx.run_id}: {escape_markdown(ctx.config.name)}",
        *problem_lines(summary["problems"]),
        f"No new data: the {len(plan.inputs)} input files, program.yaml and instruments are "
        f"those of run {summary['previous_run']} ({summary['previous_finished']}). Outputs "
        f"unchanged: {ctx.config.output_dir}"])
    get_run_logger().info("No new data since run %s: outputs unchanged", summary["previous_run"])
    for problem in summary["problems"]:
        get_run_logger().warning("Problem: %s", problem)
    create_markdown_artifact(markdown=text, key="capacitar-run-summary",
                             description=f"capacitar run {ctx.run_id} (no new data)")
    return {**summary, "markdown": text}


def problem_lines(problems: list[str]) -> list[str]:
    """The markdown section that opens a run summary with problems (none: no lines)."""
    if not problems:
        return []
    return [f"## Completed with problems ({len(problems)})",
            *[f"- {escape_markdown(p)}" for p in problems], ""]


def escape_markdown(text: str) -> str:
    """A message as literal text in markdown (file names hold _ * [ ] and the like)."""
    return "".join("\\" + c if c in "\\`*_{}[]<>()#+-.!|" else c for c in text)


CHANGE_VIEW = ["cohort", "instrument", "scale", "from_wave", "to_wave", "n_pairs", "mean_from",
               "mean_to", "mean_diff", "ci_low", "ci_high", "p_holm", "d_z", "d_z_ci_low",
               "d_z_ci_high", "rci_improved", "rci_deteriorated", "verdict", "flags"]
ARTIFACT_ROWS = 2000  # an artifact is for a glance in the UI; the full table is in outputs


def change_view(change: pd.DataFrame) -> pd.DataFrame:
    """The change table's headline columns, capped in length for the Prefect UI."""
    return change[CHANGE_VIEW].head(ARTIFACT_ROWS)


def json_safe(frame: pd.DataFrame) -> list[dict]:
    """Records with plain Python values: NaN/NA -> None, numpy numbers -> int/float."""
    def plain(value):
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            return None
        if hasattr(value, "item"):  # numpy scalars
            value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
        return value if isinstance(value, (int, float, bool, str)) else str(value)
    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def headline_lines(tables: dict) -> list[str]:
    """One line per scale: the pooled effect (REML) before -> after, for the run summary."""
    models = tables["models"]
    pooled = models[(models["model"] == "meta_reml") & models["estimate"].notna()]
    lines = []
    for row in pooled.itertuples():
        lines.append(f"- {row.instrument} {row.scale} {row.from_wave}->{row.to_wave}: pooled d_z "
                     f"{row.estimate:.2f} (95% CI {row.ci_low:.2f} to {row.ci_high:.2f}, "
                     f"{row.n_groups} cohorts; positive = improvement)")
    return lines


def quarantine_lines(quarantine: pd.DataFrame) -> list[str]:
    """Per rule, the rows and the single answers (cells) set aside, counted apart.

    >>> q = pd.DataFrame({"rule": ["dup", "dup", "range"], "scope": ["row", "row", "cell"]})
    >>> quarantine_lines(q)
    ['- dup: 2 rows', '- range: 1 cell']
    """
    counts = quarantine.groupby(["rule", "scope"], sort=True).size()
    lines = []
    for rule, by_scope in counts.groupby(level="rule", sort=True):
        parts = [f"{n} {scope}{'s' if n != 1 else ''}"
                 for (_, scope), n in by_scope.items()]
        lines.append(f"- {escape_markdown(str(rule))}: " + ", ".join(parts))
    return lines


def summarise(ctx, tables, reports: list[Path], problems: list[str], plan=None) -> dict:
    """A short run summary: what came in, what was set aside, headline changes, report links."""
    acc = tables["accounting"]
    changed = set(plan.changed_files) if plan else set()
    files = [f"- `{e['source_file']}`" + (" (new or changed)" if e["source_file"] in changed
                                         else "") for e in (plan.inputs if plan else [])]
    lines = [
        f"# capacitar run {ctx.run_id}: {escape_markdown(ctx.config.name)}",
        *problem_lines(problems),
        f"- rows read {acc['rows_read'].sum()}, valid {acc['rows_valid'].sum()}, "
        f"quarantined {acc['rows_quarantined'].sum()}; single answers (cells) quarantined "
        f"{acc['cells_quarantined'].sum()}",
        f"- outputs: {ctx.config.output_dir}",
        f"- program report: [{reports[0].name}]({reports[0].resolve().as_uri()})",
        "", "## What came in", *files,
        "", "## Set aside (quarantine)", *quarantine_lines(tables["quarantine"]),
        "", "## Headline changes", *headline_lines(tables),
        "", "## Reports",
        *[f"- [{p.name}]({p.resolve().as_uri()})" for p in reports[1:] if p.suffix == ".html"],
    ]
    return {
        "run_id": ctx.run_id,
        "status": run_records.WITH_PROBLEMS if problems else run_records.COMPLETE,
        "output_dir": str(ctx.config.output_dir),
        "report": str(reports[0]),
        "rows_read": int(acc["rows_read"].sum()),
        "rows_valid": int(acc["rows_valid"].sum()),
        "rows_quarantined": int(acc["rows_quarantined"].sum()),
        "problems": problems,
        "markdown": "\n".join(lines),
    }
