"""Benchmark: the contracts stage (Great Expectations) on the demo and a 200k-row program.

Run: python benchmarks/contracts.py [--rows 200000]

Prints the wall time of ingest, contracts and the rest of the analysis on the
same data, and the contracts' share, so "contracts must not dominate" is a
measured ratio rather than a claim.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CAPACITAR_PSEUDONYM_KEY", "benchmark-key-" + "x" * 20)

from benchmarks._machine import describe  # noqa: E402
from pipelines import stages  # noqa: E402
from pipelines.demo import write_demo  # noqa: E402


def synthetic_program(root: Path, rows: int, seed: int = 1) -> Path:
    """A program with ``rows`` STSS rows (17 items) over 100 cohorts and 2 waves, 0.5% bad codes."""
    rng = np.random.default_rng(seed)
    n_cohorts = 100
    people = rows // 2
    answers = rng.integers(1, 6, size=(rows, 17)).astype(str)
    bad = rng.random(rows) < 0.005
    answers[bad, 3] = "9"
    frame = pd.DataFrame(answers, columns=[f"s{i}" for i in range(1, 18)])
    frame.insert(0, "email", [f"p{i % people}@x.pe" for i in range(rows)])
    frame.insert(1, "sede", [f"c{(i % people) % n_cohorts}" for i in range(rows)])
    frame.insert(2, "momento", np.where(np.arange(rows) < people, "pre", "post"))
    (root / "inbox").mkdir(parents=True)
    frame.to_csv(root / "inbox" / "stss_all.csv", index=False)
    config = {
        "name": "benchmark", "cohorts": [{"id": f"c{i}", "site": f"Site {i}"} for i in range(n_cohorts)],
        "waves": [{"id": "pre", "order": 1}, {"id": "post", "order": 2}],
        "sources": [{"name": "s", "pattern": "stss_*.csv", "identifier": ["email"],
                     "cohort": {"column": "sede"}, "wave": {"column": "momento"},
                     "instruments": {"stss": {"items": "s{n}"}}}],
    }
    (root / "program.yaml").write_text(yaml.safe_dump(config))
    return root


def time_stages(root: Path) -> dict[str, float]:
    """Wall seconds of each stage on one program (no Prefect, no export), and the contracts'
    CPU seconds (steadier than wall time on a shared machine)."""
    times = {}
    start = time.perf_counter()
    ctx = stages.load_context(root)
    ingested = stages.ingest(ctx)
    times["ingest"] = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    contracts = stages.validate(ctx, ingested)
    times["contracts"] = time.perf_counter() - start
    times["contracts_cpu"] = time.process_time() - cpu
    start = time.perf_counter()
    scores = stages.score(ctx, contracts)
    stages.analyse(ctx, contracts, scores)
    times["score+analyse"] = time.perf_counter() - start
    times["rows"] = sum(len(f) for f in ingested.responses.values())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    print(describe())
    import great_expectations  # noqa: F401  (import once, outside the timings)

    with tempfile.TemporaryDirectory() as tmp:
        for name, root in (("demo", write_demo(Path(tmp) / "demo")),
                           (f"synthetic {args.rows:,} rows",
                            synthetic_program(Path(tmp) / "synthetic", args.rows))):
            t = time_stages(root)
            total = t["ingest"] + t["contracts"] + t["score+analyse"]
            print(f"{name}: {t['rows']:,} instrument rows; ingest {t['ingest']:.2f} s, "
                  f"contracts {t['contracts']:.2f} s (CPU {t['contracts_cpu']:.2f} s; "
                  f"{t['contracts'] / total:.0%} of these stages, "
                  f"{t['rows'] / t['contracts']:,.0f} rows/s), score+analyse {t['score+analyse']:.2f} s")


if __name__ == "__main__":
    main()
