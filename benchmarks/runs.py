"""Benchmark: what a scheduled run costs (no new data, one corrected file) and Prefect's share.

Run: python benchmarks/runs.py

On the demo program (HTML reports; PDF printing is timed by `capacitar demo`):
- the stages called as plain functions (no Prefect) vs the same work as the
  Prefect flow, with the embedded server's start timed apart: Prefect's share;
- a run with no new data, from the command line (checked before Prefect
  starts) and as a flow run (what a served deployment does);
- a run after one cohort's answers were corrected (only that cohort is
  re-analysed) vs a forced full run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ["CAPACITAR_CHROMIUM"] = "/nonexistent"  # HTML only: same work on both sides
os.environ["CAPACITAR_NO_PROGRESS"] = "1"

from benchmarks._machine import describe  # noqa: E402


def timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def plain_stages(root: Path) -> dict[str, float]:
    """Every stage as a plain function call, as a notebook would (no Prefect)."""
    from pipelines import run_records, stages

    t: dict[str, float] = {}
    ctx = stages.load_context(root)
    t["ingest"], ingested = timed(lambda: stages.ingest(ctx))
    t["validate"], contracts = timed(lambda: stages.validate(ctx, ingested))
    accounting = stages.accounting_table(ingested, contracts)
    t["score"], scores = timed(lambda: stages.score(ctx, contracts))
    t["analyse"], tables = timed(lambda: stages.analyse(ctx, contracts, scores))
    tables = {"scores": scores, **tables, "quarantine": contracts.quarantine,
              "validation_summary": contracts.summary, "accounting": accounting,
              "runs": run_records.run_record(ctx, ingested, contracts, accounting)}
    t["export"], _ = timed(lambda: stages.export(ctx, tables))
    t["report"], _ = timed(lambda: stages.report(ctx, tables, pdf=False))
    return t


def correct_one_cohort(root: Path) -> None:
    """Fix one answer of one Alto Trujillo provider in the OMS-HC post-test file."""
    path = root / "inbox" / "estigma_OMSHC_post.csv"
    lines = path.read_bytes().split(b"\r\n" if b"\r\n" in path.read_bytes() else b"\n")
    for i, line in enumerate(lines[1:], start=1):
        cells = line.split(b";")
        if len(cells) > 5 and cells[2] == b"Alto Trujillo":
            cells[4] = b"5" if cells[4] != b"5" else b"4"
            lines[i] = b";".join(cells)
            break
    path.write_bytes((b"\r\n" if b"\r\n" in path.read_bytes() else b"\n").join(lines))


def main() -> None:
    print(describe())
    from prefect import flow

    from pipelines.demo import write_demo
    from pipelines.flows import evaluate_program

    with tempfile.TemporaryDirectory() as tmp:
        plain_root = write_demo(Path(tmp) / "plain")
        plain = plain_stages(plain_root)
        plain_total = sum(plain.values())
        print("plain stages (no Prefect): " + ", ".join(f"{k} {v:.2f} s" for k, v in plain.items())
              + f"; total {plain_total:.2f} s")

        root = write_demo(Path(tmp) / "flow")

        @flow
        def hello() -> int:
            return 1

        server, _ = timed(hello)  # starts Prefect's embedded server (once per process)
        full, summary = timed(lambda: evaluate_program(str(root), pdf=False))
        overhead = full - plain_total
        print(f"Prefect flow, same work: {full:.2f} s (+ {server:.2f} s to start the embedded "
              f"server once per process); Prefect's share of the run: {overhead:.2f} s = "
              f"{overhead / full:.0%} without the server start, "
              f"{(overhead + server) / (full + server):.0%} with it")

        cli = [sys.executable, "-m", "pipelines.cli", "run", str(root)]
        quick, done = timed(lambda: subprocess.run(cli, capture_output=True, text=True))
        assert "No new data" in done.stdout, done.stdout + done.stderr
        as_flow, result = timed(lambda: evaluate_program(str(root)))
        assert result["status"] == "no_new_data"
        print(f"no new data: `capacitar run` {quick:.2f} s wall (new process, no Prefect "
              f"server); as a flow run (served deployment, server up) {as_flow:.2f} s")

        correct_one_cohort(root)
        one, result = timed(lambda: evaluate_program(str(root), pdf=False))
        forced, _ = timed(lambda: evaluate_program(str(root), pdf=False, force=True))
        print(f"one cohort corrected: {one:.2f} s (re-analysed {result['cohorts_recomputed']}, "
              f"reused {len(result['cohorts_reused'])}) vs a forced full run {forced:.2f} s "
              f"-> {forced / one:.1f}x")


if __name__ == "__main__":
    main()
