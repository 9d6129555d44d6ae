"""Benchmark: the analysis of a small run after one changed answer, in CPU seconds.

Run: python benchmarks/small_analysis.py [--work DIR] [--repeat 3] [--profile 40]

Writes the demo program (this tree's ``capacitar demo --no-pdf``: one full run),
changes one answer as ``benchmarks/small.py`` does, reads, validates and scores it
as a run does (not timed), then times in one process (``CAPACITAR_WORKERS=1``) what
the flow's analysis does: which cohorts changed (``cohort_work``), the changed
cohorts and the program-wide parts (``analyse_shared``, mixed models of unchanged
scores reused), and ``assemble``. Prints the best CPU time of ``--repeat``, the
program-wide parts one by one (mixed models refitted in full), and with
``--profile N`` the top N of cProfile's cumulative list. CPU seconds, not wall:
comparable on a shared machine.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
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
os.environ["CAPACITAR_WORKERS"] = "1"


def best_cpu(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, help="folder for the demo (default: a temp folder)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, help="print the top N of a profile")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="capacitar-small-analysis-"))
    program = work / "demo"
    if not (program / "outputs").exists():
        subprocess.run([sys.executable, "-m", "pipelines.cli", "demo", str(program), "--no-pdf"],
                       cwd=ROOT, capture_output=True, check=False)
        from benchmarks.small import change_one_answer
        change_one_answer(program)

    from pipelines import cohort_analysis, stages

    ctx = stages.load_context(program)
    plan = stages.plan(ctx)
    contracts = stages.validate(ctx, stages.ingest(ctx))
    scores = stages.score(ctx, contracts)

    def analysis():
        work = cohort_analysis.cohort_work(ctx, plan, contracts.valid)
        pooled, fresh = cohort_analysis.analyse_shared(ctx, contracts.valid, scores, work.stale)
        return cohort_analysis.assemble(ctx, scores, fresh, pooled, work.previous, work.kept,
                                        contracts.quarantine)

    analysis()  # imports and caches
    changed = cohort_analysis.cohort_work(ctx, plan, contracts.valid)
    print(f"{program}: {len(changed.stale)} cohort(s) changed, {len(changed.kept)} reused")
    print(f"analysis: {best_cpu(analysis, args.repeat):.3f} CPU s (best of {args.repeat})")
    cohorts = best_cpu(lambda: cohort_analysis.analyse_group(ctx, contracts.valid, scores,
                                                             changed.stale), args.repeat)
    print(f"  changed cohorts: {cohorts:.3f}")
    for name, part in cohort_analysis.pooled_parts(ctx, contracts.valid, scores).items():
        print(f"  program-wide {name}: {best_cpu(part, args.repeat):.3f}")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        analysis()
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
