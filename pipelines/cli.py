"""The ``capacitar`` command line.

Exit statuses (README "Exit statuses"):

- 0: done, no problem (also: no new data);
- 1: completed with problems (a file skipped, a batch rejected, an inbox file no source
  reads, a failed pull), or ``validate`` found problems;
- 2: a user's mistake, said in one line: a command typed wrong, a bad program.yaml or
  instrument file, the key, a busy program folder; nothing ran;
- 3: the run failed (disk full, a read-only output folder, ``--strict`` with problems, an
  unexpected error); nothing was published;
- 130: interrupted (Ctrl-C).

Messages are plain text (no markup), one line per mistake, never a traceback.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from instruments import load_builtin, load_instruments
from pipelines.errors import CapacitarError, RunFailed
from pipelines.progress import heartbeat, step

EXIT_OK, EXIT_PROBLEMS, EXIT_USER, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Training evaluation and psychometrics for mental-health training programs.")
instruments_app = typer.Typer(no_args_is_help=True, help="List and show instrument definitions.")
app.add_typer(instruments_app, name="instruments")
console = Console()


def say(text: str, style: str | None = None, err: bool = False) -> None:
    """Print ``text`` as it is (no Rich markup: '[dask]' stays '[dask]')."""
    (Console(stderr=True) if err else console).print(text, style=style, markup=False,
                                                     highlight=False, soft_wrap=True)


def plain(*values) -> list[Text]:
    """Table cells as plain text (a file name like 'export [1].csv' stays whole)."""
    return [Text(str(v)) for v in values]


def fail(message: str) -> None:
    """Print a user-facing error and exit 2."""
    say(f"error: {message}", style="bold red", err=True)
    raise typer.Exit(EXIT_USER)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("capacitar")
    except PackageNotFoundError:
        return "unknown"


def show_version(value: bool) -> None:
    if value:
        print(f"capacitar {package_version()}")
        raise typer.Exit()


@app.callback()
def options(version: bool = typer.Option(False, "--version", callback=show_version,
                                         is_eager=True, help="Show the version and exit.")):
    """Training evaluation and psychometrics for mental-health training programs."""


def preflight(program: Path):
    """Load program.yaml, instruments and the key before Prefect starts."""
    from pipelines import stages

    if not program.exists():
        fail(f"{program}: no such program folder (make one with `capacitar init {program}`)")
    ctx = stages.load_context(program)
    stages.program_key(ctx)
    return ctx


def run_flow(program: Path, force: bool = False, wait: float = 600,
             dask_address: str | None = None, pdf: bool = True, strict: bool = False,
             new_key: bool = False, pull: bool = True) -> dict:
    """Validate the program; say so at once when nothing changed; else run the Prefect flow.

    The program folder is locked first and stays locked through the flow run. The
    no-new-data check and the header check run before Prefect starts (its embedded
    server takes seconds to start): a scheduled run that finds nothing new costs about
    a second, and a column misspelled in program.yaml is one message at once. A program
    that pulls from servers goes to the flow, which pulls first and then plans.
    Prefect's embedded server is launched first, so that it starts on the other core
    while this process plans; it is stopped at once when nothing is new.
    """
    from pipelines.embedded_server import collector_paused, start_early

    server = start_early()
    with collector_paused():  # until the run's modules are loaded (run_prefect)
        return plan_and_run(server, program, force, wait, dask_address, pdf, strict, new_key,
                            pull)


def plan_and_run(server, program: Path, force: bool, wait: float, dask_address: str | None,
                 pdf: bool, strict: bool, new_key: bool, pull: bool) -> dict:
    """:func:`run_flow` once Prefect's server is launched."""
    step("reading program.yaml and the instruments")
    from pipelines import run_records, stages
    from pipelines.locking import program_lock
    from pipelines.preflight import check_headers

    ctx = preflight(program)
    waiting = lambda message: say(message, style="yellow")  # noqa: E731
    pulling = pull and any(s.pull for s in ctx.config.sources)
    with program_lock(ctx.config.root, ctx.run_id, wait, on_wait=waiting):
        if pulling:
            return run_prefect(server, program, force, wait, dask_address, pdf, strict,
                               new_key, pull)
        step("looking for new data in the inbox")
        plan = stages.plan(ctx, new_key=new_key)
        if strict and plan.problems:
            message = run_records.strict_message(plan.problems)
            run_records.record_failed(ctx, plan, message)
            raise RunFailed(message)
        if plan.nothing_new and not force:
            server.stop()
            return run_records.record_no_new_data(ctx, plan)
        check_headers(ctx.config, ctx.instruments, None if force else set(plan.changed_files))
        return run_prefect(server, program, force, wait, dask_address, pdf, strict,
                           new_key, pull)


def run_prefect(server, program: Path, force: bool, wait: float, dask_address: str | None,
                pdf: bool, strict: bool, new_key: bool, pull: bool = True) -> dict:
    """The flow run, on Prefect's embedded ``server`` (started while the run imports)."""
    step("starting Prefect")
    import great_expectations  # noqa: F401 - needed by validation; imported while it waits

    from pipelines.embedded_server import modules_loaded
    from pipelines.flows import evaluate_program

    modules_loaded()

    with server.api():
        try:
            return evaluate_program(str(program.resolve()), force=force,
                                    dask_address=dask_address, lock_timeout=wait, pdf=pdf,
                                    strict=strict, new_key=new_key, pull=pull)
        except CapacitarError as failed:
            raise RunFailed(str(failed)) from None
        except Exception as bug:  # Prefect has logged its traceback above
            raise RunFailed(f"the run failed ({type(bug).__name__}: {bug}); Prefect's log "
                            "above has the details, and nothing was published") from None


def print_summary(summary: dict, seconds: float) -> int:
    """The run's summary, problems first; returns the exit status (0, or 1 with problems)."""
    problems = summary.get("problems") or []
    if problems:
        say(f"\nCompleted with problems ({len(problems)}):", style="bold yellow")
        for problem in problems:
            say(f"  - {problem}", style="yellow")
    if summary.get("status") == "no_new_data":
        say(f"\nNo new data since run {summary['previous_run']}: outputs unchanged "
            f"({seconds:.1f} s). Use --force to recompute anyway.", style="bold green")
        say(f"  report:  {summary['report']}")
        return EXIT_PROBLEMS if problems else EXIT_OK
    say(f"\nDone in {seconds:.1f} s (run {summary['run_id']})",
        style="bold yellow" if problems else "bold green")
    say(f"  rows read {summary['rows_read']}, valid {summary['rows_valid']}, "
        f"quarantined {summary['rows_quarantined']}")
    say(f"  outputs: {summary['output_dir']}")
    say(f"  report:  {summary['report']}")
    return EXIT_PROBLEMS if problems else EXIT_OK


@app.command()
def run(
    program: Path = typer.Argument(..., help="Program folder (holding program.yaml)."),
    force: bool = typer.Option(False, "--force", help="Recompute everything, even unchanged."),
    wait: float = typer.Option(600, "--wait", help="Seconds to wait for a run of the same "
                               "program in progress (0: stop at once)."),
    dask_address: str = typer.Option(None, "--dask-address", help="Analyse cohorts on this Dask "
                                     "scheduler, e.g. tcp://10.0.0.5:8786."),
    no_pdf: bool = typer.Option(False, "--no-pdf", help="HTML reports only."),
    strict: bool = typer.Option(False, "--strict", help="Any problem (a file skipped, a batch "
                                "rejected, an unread inbox file) fails the run (exit 3) before "
                                "anything is published."),
    new_key: bool = typer.Option(False, "--new-key", help="The pseudonymisation key was "
                                 "replaced on purpose: go on with the new key (every pseudonym "
                                 "changes)."),
    no_pull: bool = typer.Option(False, "--no-pull", help="Do not fetch the sources that have "
                                 "a pull: section; use the snapshots in the inbox."),
):
    """Run the evaluation (Prefect flow) on a program folder: only what changed is recomputed.

    Exit status 0 done, 1 completed with problems, 2 a mistake to fix, 3 failed.
    """
    if dask_address and "://" not in dask_address:
        fail(f"--dask-address {dask_address!r}: give the scheduler's address, "
             "e.g. tcp://10.0.0.5:8786")
    start = time.perf_counter()
    say(f"Evaluating {program}")
    summary = run_flow(program, force=force, wait=wait, dask_address=dask_address,
                       pdf=not no_pdf, strict=strict, new_key=new_key, pull=not no_pull)
    raise typer.Exit(print_summary(summary, time.perf_counter() - start))


@app.command()
def pull(program: Path = typer.Argument(..., help="Program folder (holding program.yaml)."),
         wait: float = typer.Option(600, "--wait", help="Seconds to wait for a run of the same "
                                    "program in progress (0: stop at once).")):
    """Fetch the sources that have a pull: section (REDCap, ODK Central, KoboToolbox) into
    the inbox, without evaluating; exit 1 when a pull failed."""
    from pipelines import stages

    ctx = stages.load_context(program)
    if not any(s.pull for s in ctx.config.sources):
        fail(f"no source in {program / 'program.yaml'} has a pull: section")
    from pipelines.embedded_server import start_early

    server = start_early()
    from pipelines.flows import pull_program

    with server.api():
        results = pull_program(str(program.resolve()), lock_timeout=wait)
    for result in results:
        say(("failed: " if result.problem else "") + result.line(),
            style="bold red" if result.problem else None)
    if any(result.problem for result in results):
        raise typer.Exit(1)


@app.command()
def status(program: Path = typer.Argument(..., help="Program folder (holding program.yaml)."),
           last: int = typer.Option(10, "--last", help="How many runs to list.")):
    """List the last runs of a program (from its warehouse), newest first."""
    import pandas as pd

    from pipelines import run_records, stages

    ctx = stages.load_context(program)
    history = run_records.run_history(ctx, last)
    if history.empty:
        say(f"No runs yet for {ctx.config.name} ({program}).")
        return
    problems = history["problems"].fillna("").astype(str).str.len().gt(0).any()
    table = Table("started (UTC)", "run", "status", "read", "valid", "aside",
                  "cohorts", *(["problems"] if problems else []), title=ctx.config.name)
    for column in table.columns[:3]:
        column.no_wrap = True
    for row in history.itertuples():
        def count(value) -> str:
            return "" if pd.isna(value) else str(int(value))
        cells = [str(row.started)[:16].replace("T", " "), str(row.run_id), str(row.status),
                 count(row.rows_read), count(row.rows_valid), count(row.rows_quarantined),
                 f"{count(row.cohorts_recomputed)}/{count(row.cohorts_reused)}".strip("/")]
        table.add_row(*plain(*cells, *([str(row.problems or "")[:80]] if problems else [])))
    console.print(table)


@app.command()
def validate(program: Path = typer.Argument(..., help="Program folder (holding program.yaml).")):
    """Ingest and check the contracts only; exit 1 when a file, batch or inbox file has a problem."""
    from pipelines import stages
    from pipelines.incremental import inbox_problems
    from pipelines.preflight import check_headers

    ctx = preflight(program)
    check_headers(ctx.config, ctx.instruments)
    ingested = stages.ingest(ctx)
    contracts = stages.validate(ctx, ingested)
    accounting = stages.accounting_table(ingested, contracts)
    table = Table("file", "instrument", "read", "valid", "quarantined")
    for row in accounting.itertuples():
        table.add_row(*plain(row.source_file, row.instrument, row.rows_read, row.rows_valid,
                             row.rows_quarantined))
    console.print(table)
    rules = contracts.quarantine["rule"].value_counts()
    for rule, n in rules.items():
        say(f"  quarantined for {rule}: {n}")
    if contracts.reused:
        say(f"Great Expectations: unchanged since validated, verdict reused for "
            f"{', '.join(contracts.reused)}")
    say(f"Great Expectations Data Docs: {contracts.data_docs}")
    problems = inbox_problems(ctx.config) + ingested.problems + contracts.problems
    for problem in problems:
        say(f"problem: {problem}", style="bold red")
    if problems:
        raise typer.Exit(EXIT_PROBLEMS)


@app.command()
def report(program: Path = typer.Argument(..., help="Program folder (holding program.yaml)."),
           no_pdf: bool = typer.Option(False, "--no-pdf", help="HTML only (the PDFs already "
                                       "there are kept)."),
           wait: float = typer.Option(600, "--wait", help="Seconds to wait for a run of the "
                                      "same program in progress (0: stop at once).")):
    """Re-render the reports (es and en, HTML and PDF) from the stored result tables."""
    from pipelines import stages
    from pipelines.locking import program_lock
    from pipelines.publish import owner_only

    ctx = preflight(program)
    waiting = lambda message: say(message, style="yellow")  # noqa: E731
    with program_lock(ctx.config.root, ctx.run_id, wait, on_wait=waiting), owner_only():
        stages.prepare_outputs(ctx)
        try:
            tables = stages.stored_tables(ctx)
        except FileNotFoundError as missing:
            fail(f"{missing}; run `capacitar run {program}` first")
        written = stages.report(ctx, tables, pdf=not no_pdf)
    say(f"Rendered {len(written)} files; program report: {written[0]}")


@app.command()
def serve(
    program: Path = typer.Argument(..., help="Program folder (holding program.yaml)."),
    cron: str = typer.Option(None, "--cron", help="Cron expression in this machine's time zone, "
                             "e.g. \"0 6 * * 1\" (Mondays 06:00)."),
    interval: int = typer.Option(None, "--interval", help="Run every SECONDS seconds.",
                                 metavar="SECONDS"),
    name: str = typer.Option(None, "--name", help="Deployment name (default: the folder name)."),
):
    """Run the evaluation on a schedule (a Prefect deployment served until Ctrl-C).

    Schedules need a Prefect server: the one in PREFECT_API_URL (environment or profile).

    Without PREFECT_API_URL, it starts a local Prefect server (UI address printed) until it stops.

    Give exactly one of --cron or --interval. Runs of one program never overlap.
    """
    from pipelines.serve import serve_program

    serve_program(program, cron=cron, interval=interval, name=name,
                  echo=lambda text: print(text, flush=True))


@app.command()
def demo(folder: Path = typer.Argument(Path("capacitar-demo"), help="Where to write the demo."),
         force: bool = typer.Option(False, "--force", help="Write into FOLDER even if it is not "
                                    "empty (its inbox is replaced)."),
         no_pdf: bool = typer.Option(False, "--no-pdf", help="HTML reports only.")):
    """Write the demo program (simulated raw exports) into FOLDER and run it."""
    from pipelines.demo import write_demo

    if folder.exists() and not folder.is_dir():
        fail(f"{folder} is a file; give a folder for the demo")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        fail(f"{folder} is not empty; give a new folder, or --force to write the demo into it")
    start = time.perf_counter()
    say(f"Writing the demo program to {folder}")
    step("simulating the demo program")
    root = write_demo(folder)
    say(f"Demo program written to {root.resolve()} (raw exports in inbox/); evaluating it")
    raise typer.Exit(print_summary(run_flow(root, pdf=not no_pdf), time.perf_counter() - start))


@app.command()
def init(folder: Path = typer.Argument(..., help="New program folder.")):
    """Scaffold a working program folder: program.yaml, inbox with an example export, key."""
    from pipelines.scaffold import scaffold_program

    root = scaffold_program(folder)
    say(f"Program folder ready: {root.resolve()}\n"
                  f"  edit {root / 'program.yaml'}, put exports in {root / 'inbox'}, then:\n"
                  f"  capacitar run {root}")


@app.command()
def keygen(key_file: Path = typer.Argument(..., help="Where to write the new key.")):
    """Create a program's pseudonymisation key (keep it outside the outputs, backed up)."""
    from pipelines.ingest.pseudonym import write_new_key

    if key_file.is_dir():
        fail(f"{key_file} is a folder; give the key's file name, e.g. {key_file / 'pseudonym.key'}")
    if key_file.exists():
        fail(f"{key_file} already exists; a new key would change every pseudonym")
    write_new_key(key_file)
    say(f"Key written to {key_file} (readable by you only). Back it up safely.")


def program_instruments(program: Path | None) -> dict:
    if program is None:
        return load_builtin()
    from pipelines.config import load_program

    config = load_program(program)
    return {**load_builtin(), **load_instruments(config.path(config.instruments_dir))}


@instruments_app.command("list")
def instruments_list(program: Path = typer.Option(None, help="Also the program's own.")):
    """List the instruments available (built-in and the program's own)."""
    table = Table("id", "version", "kind", "items", "scales / forms", "title")
    for inst in program_instruments(program).values():
        parts = [s.id for s in inst.subscales] or [f"form {f.id}" for f in inst.forms]
        table.add_row(*plain(inst.id, inst.version, inst.kind, len(inst.items), ", ".join(parts),
                             inst.title.en))
    console.print(table)


@instruments_app.command("show")
def instruments_show(
    instrument_id: str = typer.Argument(..., metavar="ID"),
    program: Path = typer.Option(None, help="Also look in the program's own instruments."),
    language: str = typer.Option("en", help="es or en"),
):
    """Show one instrument: citation, licence, options, subscales, keys and bands."""
    found = program_instruments(program)
    if instrument_id not in found:
        fail(f"no instrument {instrument_id!r}; known: {', '.join(sorted(found))}")
    inst = found[instrument_id]
    say(f"{inst.title.get(language)} ({inst.id} {inst.version}, {inst.kind})", style="bold")
    say(f"Citation: {inst.citation}\nLicence: {inst.licence}")
    if inst.response_options:
        say("Options: " + ", ".join(
            f"{o.code}={getattr(o, language)}" for o in inst.response_options))
    for sub in inst.subscales:
        bands = "; ".join(f"{b.id} {b.min if b.min is not None else ''}-"
                          f"{b.max if b.max is not None else ''}" for b in sub.bands)
        say(f"- {sub.id} ({sub.label.get(language)}): {sub.scoring} of "
            f"{len(sub.items)} items, min {sub.required_items} answered; higher is "
            f"{sub.higher_is}\n    items {', '.join(sub.items)}\n    reverse "
            f"{', '.join(sub.reverse) or 'none'}" + (f"\n    bands {bands}" if bands else ""))
    for form in inst.forms:
        say(f"- form {form.id}: " + ", ".join(f"{i}={form.key[i]}" for i in form.items))


def usage_errors() -> tuple[type, ...]:
    """Click's usage errors, from Click or from the copy newer Typer versions carry."""
    import click

    return tuple({click.exceptions.ClickException,
                  getattr(typer, "TyperException", click.exceptions.ClickException)})


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> None:
    """Run the app; every mistake is one plain line and an exit status (``SystemExit``)."""
    from pipelines.publish import owner_only

    heartbeat.start()
    try:
        with owner_only():  # every file capacitar writes is its owner's only
            # Not standalone: click returns the status of typer.Exit instead of exiting.
            code = app(args=argv, prog_name="capacitar", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else EXIT_OK)
    except RunFailed as exc:
        say(f"error: {one_line(exc)}", style="bold red", err=True)
        sys.exit(EXIT_FAILED)
    except CapacitarError as exc:
        say(f"error: {exc}", style="bold red", err=True)
        sys.exit(EXIT_USER)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code if isinstance(code, int) else EXIT_OK)
    except (KeyboardInterrupt, typer.Abort):
        say("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except usage_errors() as exc:
        sys.exit(usage_error(exc))
    finally:
        heartbeat.stop()


def entry() -> None:
    """The ``capacitar`` command: :func:`main`, then exit as soon as its output is out.

    The exit handlers run (Prefect sends its last logs and events, the embedded
    server stops), then the process ends without the interpreter's final garbage
    collection of every object the run loaded, which took seconds after "Done".
    """
    try:
        main()
        code = EXIT_OK
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None
                                                          else EXIT_USER)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def usage_error(exc) -> int:
    """Print a usage mistake as one line (help when nothing was asked); its exit status."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # `capacitar` alone: its help
        text = exc.format_message()  # empty when Typer's Rich help printed it already
        if text.strip():
            print(text)
        return EXIT_OK
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    say(f"error: {one_line(exc.format_message())}{where}", style="bold red", err=True)
    return getattr(exc, "exit_code", EXIT_USER) or EXIT_USER


if __name__ == "__main__":
    entry()
