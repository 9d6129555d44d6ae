"""The ``capacitar`` command line.

A user's mistake (a bad YAML field, a missing key, an unreadable file) prints
one clear message and exits with status 2, never a traceback.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from instruments import load_builtin, load_instruments
from pipelines.errors import CapacitarError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Training evaluation and psychometrics for mental-health training programs.")
instruments_app = typer.Typer(no_args_is_help=True, help="List and show instrument definitions.")
app.add_typer(instruments_app, name="instruments")
console = Console()


def fail(message: str) -> None:
    """Print a user-facing error and exit 2."""
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def preflight(program: Path):
    """Load program.yaml, instruments and the key before Prefect starts."""
    from pipelines import stages
    from pipelines.ingest.pseudonym import load_key

    ctx = stages.load_context(program)
    pseudo = ctx.config.pseudonymisation
    load_key(ctx.config.path(pseudo.key_file), pseudo.create_if_missing)
    return ctx


def run_flow(program: Path, force: bool = False, wait: float = 600,
             dask_address: str | None = None, pdf: bool = True, pull: bool = True) -> dict:
    """Validate the program; say so at once when nothing changed; else run the Prefect flow.

    The no-new-data check runs before Prefect starts (its embedded server takes
    seconds to start): a scheduled run that finds nothing new costs about a second.
    A program that pulls from servers goes to the flow, which pulls first.
    """
    ctx = preflight(program)
    pulling = pull and any(s.pull for s in ctx.config.sources)
    if not force and not pulling:
        quick = no_new_data_quickly(ctx, wait)
        if quick is not None:
            return quick
    from pipelines.embedded_server import start_early

    server = start_early()  # Prefect's embedded server comes up while the run imports
    import great_expectations  # noqa: F401 - needed by validation; imported while it waits

    from pipelines.flows import evaluate_program

    with server.api():
        return evaluate_program(str(program.resolve()), force=force, dask_address=dask_address,
                                lock_timeout=wait, pdf=pdf, pull=pull)


def no_new_data_quickly(ctx, wait: float) -> dict | None:
    """Record and return a no-new-data run without Prefect, or None when there is work."""
    from pipelines import stages
    from pipelines.locking import program_lock

    def waiting(message: str) -> None:
        console.print(f"[yellow]{message}[/]", highlight=False)

    with program_lock(ctx.config.root, ctx.run_id, wait, on_wait=waiting):
        plan = stages.plan(ctx)
        return stages.record_no_new_data(ctx, plan) if plan.nothing_new else None


def print_summary(summary: dict, seconds: float) -> None:
    if summary.get("status") == "no_new_data":
        console.print(f"\n[bold green]No new data[/] since run {summary['previous_run']}: outputs "
                      f"unchanged ({seconds:.1f} s). Use --force to recompute anyway.")
        console.print(f"  report:  {summary['report']}")
        for problem in summary.get("problems", []):
            console.print(f"  [yellow]problem:[/] {problem}", highlight=False)
        return
    console.print(f"\n[bold green]Done[/] in {seconds:.1f} s (run {summary['run_id']})")
    console.print(f"  rows read {summary['rows_read']}, valid {summary['rows_valid']}, "
                  f"quarantined {summary['rows_quarantined']}")
    for problem in summary["problems"]:
        console.print(f"  [yellow]skipped:[/] {problem}", highlight=False)
    console.print(f"  outputs: {summary['output_dir']}")
    console.print(f"  report:  {summary['report']}")


@app.command()
def run(
    program: Path = typer.Argument(..., help="Program folder (holding program.yaml)."),
    force: bool = typer.Option(False, "--force", help="Recompute everything, even unchanged."),
    wait: float = typer.Option(600, "--wait", help="Seconds to wait for a run of the same "
                               "program in progress (0: stop at once)."),
    dask_address: str = typer.Option(None, "--dask-address", help="Analyse cohorts on this Dask "
                                     "scheduler, e.g. tcp://10.0.0.5:8786."),
    no_pdf: bool = typer.Option(False, "--no-pdf", help="HTML reports only."),
    no_pull: bool = typer.Option(False, "--no-pull", help="Do not fetch the sources that have "
                                 "a pull: section; use the snapshots in the inbox."),
):
    """Run the evaluation (Prefect flow) on a program folder: only what changed is recomputed."""
    if dask_address and "://" not in dask_address:
        fail(f"--dask-address {dask_address!r}: give the scheduler's address, "
             "e.g. tcp://10.0.0.5:8786")
    start = time.perf_counter()
    summary = run_flow(program, force=force, wait=wait, dask_address=dask_address, pdf=not no_pdf,
                       pull=not no_pull)
    print_summary(summary, time.perf_counter() - start)


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
        console.print(("[bold red]failed:[/] " if result.problem else "") + result.line(),
                      highlight=False, soft_wrap=True)
    if any(result.problem for result in results):
        raise typer.Exit(1)


@app.command()
def status(program: Path = typer.Argument(..., help="Program folder (holding program.yaml)."),
           last: int = typer.Option(10, "--last", help="How many runs to list.")):
    """List the last runs of a program (from its warehouse), newest first."""
    import pandas as pd

    from pipelines import stages

    ctx = stages.load_context(program)
    history = stages.run_history(ctx, last)
    if history.empty:
        console.print(f"No runs yet for {ctx.config.name} ({program}).")
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
        table.add_row(*cells, *([str(row.problems or "")[:80]] if problems else []))
    console.print(table)


@app.command()
def validate(program: Path = typer.Argument(..., help="Program folder (holding program.yaml).")):
    """Ingest and check the contracts only; exit 1 when a file or batch was rejected."""
    from pipelines import stages

    ctx = preflight(program)
    ingested = stages.ingest(ctx)
    contracts = stages.validate(ctx, ingested)
    accounting = stages.accounting_table(ingested, contracts)
    table = Table("file", "instrument", "read", "valid", "quarantined")
    for row in accounting.itertuples():
        table.add_row(row.source_file, row.instrument, str(row.rows_read), str(row.rows_valid),
                      str(row.rows_quarantined))
    console.print(table)
    rules = contracts.quarantine["rule"].value_counts()
    for rule, n in rules.items():
        console.print(f"  quarantined for {rule}: {n}")
    console.print(f"Great Expectations Data Docs: {contracts.data_docs}")
    problems = ingested.problems + contracts.problems
    for problem in problems:
        console.print(f"[bold red]batch problem:[/] {problem}", highlight=False)
    if problems:
        raise typer.Exit(1)


@app.command()
def report(program: Path = typer.Argument(..., help="Program folder (holding program.yaml)."),
           no_pdf: bool = typer.Option(False, "--no-pdf", help="HTML only.")):
    """Re-render the reports (es and en, HTML and PDF) from the stored result tables."""
    from pipelines import stages

    ctx = preflight(program)
    try:
        tables = stages.stored_tables(ctx)
    except FileNotFoundError as missing:
        fail(f"{missing}; run `capacitar run {program}` first")
    written = stages.report(ctx, tables, pdf=not no_pdf)
    console.print(f"Rendered {len(written)} files; program report: {written[0]}")


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
def demo(folder: Path = typer.Argument(Path("capacitar-demo"), help="Where to write the demo.")):
    """Write the demo program (simulated raw exports) into FOLDER and run it."""
    from pipelines.demo import write_demo

    start = time.perf_counter()
    root = write_demo(folder)
    console.print(f"Demo program written to {root.resolve()} (raw exports in inbox/)")
    print_summary(run_flow(root), time.perf_counter() - start)


@app.command()
def init(folder: Path = typer.Argument(..., help="New program folder.")):
    """Scaffold a working program folder: program.yaml, inbox with an example export, key."""
    from pipelines.scaffold import scaffold_program

    root = scaffold_program(folder)
    console.print(f"Program folder ready: {root.resolve()}\n"
                  f"  edit {root / 'program.yaml'}, put exports in {root / 'inbox'}, then:\n"
                  f"  capacitar run {root}")


@app.command()
def keygen(key_file: Path = typer.Argument(..., help="Where to write the new key.")):
    """Create a program's pseudonymisation key (keep it outside the outputs, backed up)."""
    from pipelines.ingest.pseudonym import write_new_key

    if key_file.exists():
        fail(f"{key_file} already exists; a new key would change every pseudonym")
    write_new_key(key_file)
    console.print(f"Key written to {key_file} (readable by you only). Back it up safely.")


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
        table.add_row(inst.id, inst.version, inst.kind, str(len(inst.items)), ", ".join(parts),
                      inst.title.en)
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
    console.print(f"[bold]{inst.title.get(language)}[/] ({inst.id} {inst.version}, {inst.kind})")
    console.print(f"Citation: {inst.citation}\nLicence: {inst.licence}", highlight=False)
    if inst.response_options:
        console.print("Options: " + ", ".join(
            f"{o.code}={getattr(o, language)}" for o in inst.response_options))
    for sub in inst.subscales:
        bands = "; ".join(f"{b.id} {b.min if b.min is not None else ''}-"
                          f"{b.max if b.max is not None else ''}" for b in sub.bands)
        console.print(f"- {sub.id} ({sub.label.get(language)}): {sub.scoring} of "
                      f"{len(sub.items)} items, min {sub.required_items} answered; higher is "
                      f"{sub.higher_is}\n    items {', '.join(sub.items)}\n    reverse "
                      f"{', '.join(sub.reverse) or 'none'}" + (f"\n    bands {bands}" if bands else ""),
                      highlight=False)
    for form in inst.forms:
        console.print(f"- form {form.id}: " + ", ".join(f"{i}={form.key[i]}" for i in form.items))


def main() -> None:
    """Entry point: run the app, turning user errors into one clear message."""
    try:
        # In non-standalone mode click returns the exit code of typer.Exit instead of raising.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except CapacitarError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()

