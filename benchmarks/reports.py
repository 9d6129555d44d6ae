"""Benchmark: the report stage (HTML pages only; PDF printing is timed separately).

Run::

    python benchmarks/reports.py                      # the 5-cohort demo
    python benchmarks/reports.py --tables T.pkl --program DIR --cohorts 1000

``--tables`` is a pickle of the tables dict passed to ``stages.report`` (as
``/tmp/stages100.py`` writes it) and ``--program`` its program folder. When
``--cohorts`` exceeds the cohorts in those tables, the tables are replicated
with relabelled cohort ids (``<id>-r2``, ``<id>-r3``, ...) and the copies are
added to program.yaml, so 1,000 cohorts can be timed without re-running the
analysis. Only the public stage function is timed (``stages.report_folder``
with ``pdf=False``), so the script runs unchanged on older commits: the
numbers are comparable before and after a change. It prints the machine, the
pages written per language and seconds for the whole stage, per cohort page.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CAPACITAR_PSEUDONYM_KEY", "benchmark-key-" + "x" * 20)
os.environ.setdefault("CAPACITAR_NO_PROGRESS", "1")

from benchmarks._machine import describe  # noqa: E402
from pipelines import cohort_analysis, stages  # noqa: E402


def demo_tables(root: Path) -> dict:
    """Write the demo into ``root`` and run the stages up to the report's tables."""
    from pipelines.demo import write_demo

    write_demo(root)
    ctx = stages.load_context(root)
    ingested = stages.ingest(ctx)
    contracts = stages.validate(ctx, ingested)
    scores = stages.score(ctx, contracts)
    fresh = cohort_analysis.analyse_cohorts(ctx, contracts.valid, scores)
    pooled = cohort_analysis.analyse_pooled(ctx, contracts.valid, scores)
    tables = cohort_analysis.assemble(ctx, scores, [fresh], pooled, quarantine=contracts.quarantine)
    return {"scores": scores, **tables, "quarantine": contracts.quarantine}


def replicate(tables: dict, program: Path, n_cohorts: int) -> dict:
    """Tables and program.yaml with the cohorts copied under new ids up to ``n_cohorts``."""
    spec = yaml.safe_load((program / "program.yaml").read_text(encoding="utf-8"))
    base = spec["cohorts"]
    copies = -(-n_cohorts // len(base))
    cohorts, ids = [], {}
    for k in range(copies):
        for c in base:
            if len(cohorts) == n_cohorts:
                break
            new = dict(c, id=c["id"] if k == 0 else f"{c['id']}-r{k + 1}",
                       site=c["site"] if k == 0 else f"{c['site']} ({k + 1})")
            cohorts.append(new)
            ids.setdefault(c["id"], []).append(new["id"])
    spec["cohorts"] = cohorts
    (program / "program.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True,
                                                         sort_keys=False), encoding="utf-8")
    out = {}
    for name, table in tables.items():
        if not isinstance(table, pd.DataFrame) or "cohort" not in table.columns:
            out[name] = table
            continue
        parts = [table[~table["cohort"].isin(ids)]]  # pooled ("ALL") and unlisted rows
        for k in range(copies):
            part = table[table["cohort"].isin(ids)].copy()
            part["cohort"] = part["cohort"].map(
                lambda c, k=k: ids[c][k] if k < len(ids[c]) else None)
            parts.append(part.dropna(subset=["cohort"]))
        out[name] = pd.concat(parts, ignore_index=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=Path, help="pickle of the report stage's tables")
    parser.add_argument("--program", type=Path, help="the program folder of those tables")
    parser.add_argument("--cohorts", type=int, help="replicate cohorts up to this many")
    parser.add_argument("--repeat", type=int, default=1, help="time the stage this many times")
    parser.add_argument("--keep", type=Path, help="render into this folder (kept) instead")
    args = parser.parse_args()
    print(describe())
    scratch = None if args.keep else Path(tempfile.mkdtemp(prefix="bench-reports-"))
    work = Path(args.keep) if args.keep else scratch / "program"
    try:
        if args.tables:
            if work.exists() and args.keep:
                shutil.rmtree(work)
            shutil.copytree(args.program, work, ignore=shutil.ignore_patterns("outputs"))
            with open(args.tables, "rb") as f:
                tables = pickle.load(f)
            if args.cohorts:
                tables = replicate(tables, work, args.cohorts)
        else:
            tables = demo_tables(work)
        ctx = stages.load_context(work)
        n = len(ctx.config.cohorts)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            rendered = stages.report_folder(ctx, tables, pdf=False)
            times.append(time.perf_counter() - start)
        html = [p for p in rendered.paths if p.suffix == ".html"]
        cohort_pages = [p for p in html if p.name.startswith("cohort_")]
        langs = sorted({p.stem.rsplit("_", 1)[1] for p in cohort_pages})
        best = min(times)
        print(f"cohorts: {n}; pages: {len(html)} HTML ({len(cohort_pages)} cohort pages in "
              f"{', '.join(langs)}; program + index per language); "
              f"size {sum(p.stat().st_size for p in html) / 1e6:.1f} MB")
        print(f"report stage (no PDF): {best:.2f} s best of {len(times)} "
              f"({', '.join(f'{t:.2f}' for t in times)}); "
              f"{1000 * best / max(len(cohort_pages), 1):.1f} ms per cohort page")
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
