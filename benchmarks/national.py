"""Benchmark: a national edition, 1,000 cohorts end to end through the Prefect flow.

Run: python benchmarks/national.py                  # 1,000 cohorts (about 5 M item responses)
     python benchmarks/national.py --cohorts 100
     python benchmarks/national.py --scaling 100,1000,3000

For each size: writes a seeded synthetic national program as raw exports
(benchmarks/national_program.py: a national REDCap CSV, Excel CSVs, one xlsx
per region), then runs ``capacitar``'s flow in a fresh process exactly as
``capacitar run`` does (ingest, contracts, scoring, reliability with
bootstrap CIs, change, models, exports, every HTML cohort report + the
program report; PDF printing excluded and timed apart on a sample), and
prints per-stage wall time, rows and responses per second, the peak memory
of the run process and of Prefect's embedded server, and the machine. Then a
run with no new data (``capacitar run`` in a new process). ``--scaling``
prints the cost per cohort at each size (linear growth keeps it flat).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ["CAPACITAR_NO_PROGRESS"] = "1"


def child(root: str) -> None:
    """In a fresh process: start Prefect's embedded server, run the flow, print JSON."""
    start = time.perf_counter()
    from pipelines.embedded_server import start_early

    server = start_early()  # as `capacitar run`: the server starts during the imports
    import great_expectations  # noqa: F401

    from pipelines.flows import evaluate_program

    imported = time.perf_counter()
    server.ready(180)
    ready = time.perf_counter()
    with server.api():
        summary = evaluate_program(root, pdf=False)
    done = time.perf_counter()
    print(json.dumps({
        "imports": imported - start, "server": ready - imported, "flow": done - ready,
        "stages": summary["stage_seconds"], "rows_read": summary["rows_read"],
        "rows_valid": summary["rows_valid"], "rows_quarantined": summary["rows_quarantined"],
        "rss_run_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def tree_rss(pid: int) -> int:
    """Memory of a process and all its descendants (0 without psutil): the sum of their
    proportional set sizes, so pages a forked worker shares with its parent count once."""
    try:
        import psutil
    except ImportError:
        return 0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
        except psutil.Error:
            pass
    return total


def run_flow(root: Path) -> tuple[float, dict]:
    """Wall seconds of a new process running the flow, what it reported, and the peak
    resident memory of it and every process it started (sampled every 0.2 s)."""
    start = time.perf_counter()
    child_proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(root)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "CAPACITAR_CHROMIUM": "/nonexistent"})
    peak = 0
    while child_proc.poll() is None:
        peak = max(peak, tree_rss(child_proc.pid))
        time.sleep(0.2)
    out, err = child_proc.communicate()
    wall = time.perf_counter() - start
    if child_proc.returncode != 0:
        raise SystemExit(f"the run failed:\n{err[-3000:]}")
    report = json.loads(out.strip().splitlines()[-1])
    report["rss_tree_gb"] = peak / 1024**3
    return wall, report


def no_new_data(root: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(root)],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if "No new data" not in done.stdout:
        raise SystemExit(f"expected 'No new data':\n{done.stdout}\n{done.stderr[-2000:]}")
    return wall


def pdf_sample(root: Path, pages: int) -> str:
    """Print ``pages`` cohort reports to PDF (one browser, its start included) and extrapolate
    (``benchmarks/small.py --cohorts 1000 --pdf-pages 2000`` prints them all)."""
    from reports.pdf import chromium, print_all

    if chromium() is None:
        return "PDF: no Chromium here (set CAPACITAR_CHROMIUM), not timed"
    html = sorted((root / "outputs" / "reports").glob("cohort_*.html"))
    sample = html[:pages]
    start = time.perf_counter()
    print_all(sample)
    seconds = time.perf_counter() - start
    return (f"PDF (excluded above): {len(sample)} cohort reports printed in {seconds:.1f} s "
            f"({seconds / len(sample):.2f} s each, the browser's start included) -> all "
            f"{len(html)} cohort "
            f"pages would take ~{seconds / len(sample) * len(html) / 60:.0f} min")


def one_size(n_cohorts: int, folder: Path, pdf_pages: int) -> dict:
    from benchmarks.national_program import write_national

    start = time.perf_counter()
    counts = write_national(folder, n_cohorts)
    written = time.perf_counter() - start
    print(f"\n== {n_cohorts:,} cohorts: {counts['people']:,} providers, {counts['responses']:,} "
          f"item responses in {counts['files']} files ({written:.0f} s to write, not timed)")
    wall, report = run_flow(folder)
    stages = report["stages"]
    print(f"end to end (new process: imports {report['imports']:.1f} s + the rest of Prefect's "
          f"embedded server start {report['server']:.1f} s (it starts during the imports) + flow "
          f"{report['flow']:.1f} s): {wall:.1f} s wall")
    print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items())
          + f"; Prefect and the rest {report['flow'] - sum(stages.values()):.1f} s")
    rows = report["rows_read"]
    print(f"  rows: {rows:,} read = {report['rows_valid']:,} valid + "
          f"{report['rows_quarantined']:,} quarantined; {rows / report['flow']:,.0f} rows/s, "
          f"{counts['responses'] / report['flow']:,.0f} item responses/s through the flow")
    print(f"  peak memory: run process {report['rss_run_mb'] / 1024:.2f} GB; largest child "
          f"process (Prefect server, analysis or export worker) "
          f"{report['rss_children_mb'] / 1024:.2f} GB; all processes together at their peak (PSS) "
          f"{report['rss_tree_gb']:.2f} GB (sampled; 0 without psutil)")
    quiet = no_new_data(folder)
    print(f"  no new data: `capacitar run` {quiet:.1f} s wall (new process)")
    if pdf_pages:
        print("  " + pdf_sample(folder, pdf_pages))
    return {"cohorts": n_cohorts, "wall": wall, "flow": report["flow"], "stages": stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cohorts", type=int, default=1000)
    parser.add_argument("--scaling", help="comma-separated sizes, e.g. 100,1000,3000")
    parser.add_argument("--pdf-sample", type=int, default=40,
                        help="cohort reports to print to PDF (0: none)")
    parser.add_argument("--keep", help="write the programs here instead of a temp folder")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    from benchmarks._machine import describe

    print(describe())
    sizes = [int(s) for s in args.scaling.split(",")] if args.scaling else [args.cohorts]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        results = [one_size(n, base / f"national_{n}", args.pdf_sample if i == 0 else 0)
                   for i, n in enumerate(sizes)]
    if len(results) > 1:
        print("\nscaling (flow seconds per 1,000 cohorts; flat = linear):")
        for r in results:
            per = r["flow"] / r["cohorts"] * 1000
            print(f"  {r['cohorts']:>6,} cohorts: flow {r['flow']:.1f} s -> {per:.1f} s per "
                  f"1,000; " + ", ".join(f"{k} {v / r['cohorts'] * 1000:.1f}"
                                          for k, v in r["stages"].items()))


if __name__ == "__main__":
    main()
