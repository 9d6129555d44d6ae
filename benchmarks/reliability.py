"""Benchmark: bootstrapped alpha and the demo program's whole set of coefficients.

Run: python benchmarks/reliability.py

Prints seconds per bootstrapped alpha (B = 2,000 percentile resamples) for
n=30/k=10 and n=300/k=30, and the time of every reliability and item-analysis
table of the demo program. When ``Rscript`` with psych is on the PATH, R's
``psych::alpha(n.iter=...)`` is timed in the same run on the same data, so
the ratio is measured on one machine at one time; otherwise the issue's
figure (0.67 s for n=30, k=10, n.iter=1000 on this machine class) is printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CAPACITAR_PSEUDONYM_KEY", "benchmark-key-" + "x" * 20)

from benchmarks._machine import describe  # noqa: E402
from pipelines import stages  # noqa: E402
from pipelines.analysis.reliability import bootstrap_alpha_ci, scale_reliability  # noqa: E402
from pipelines.analysis.tables import item_tables, reliability_table  # noqa: E402
from pipelines.demo import write_demo  # noqa: E402

QUOTED_R_SECONDS = 0.67  # psych::alpha, n=30, k=10, n.iter=1000 (issue 5)
R_TIMING = """
suppressPackageStartupMessages(library(psych))
x <- as.matrix(read.csv("{csv}"))
for (iter in c(1000, 2000)) {{
  reps <- {reps}
  t <- system.time(for (i in 1:reps) alpha(x, n.iter = iter, warnings = FALSE))[["elapsed"]]
  cat(iter, t / reps, "\\n")
}}
"""


def likert(n: int, k: int, seed: int = 1) -> np.ndarray:
    """n x k one-factor Likert data (codes 1..5)."""
    rng = np.random.default_rng(seed)
    latent = 0.7 * rng.normal(size=(n, 1)) + 0.7 * rng.normal(size=(n, k))
    return np.digitize(latent, [-1.2, -0.4, 0.4, 1.2]) + 1.0


def seconds_per_call(fn, min_seconds: float = 1.0) -> float:
    """Median seconds of ``fn()`` over repeated batches lasting about min_seconds."""
    fn()
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        fn()
        runs += 1
    batch = max(1, runs // 5)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        times.append((time.perf_counter() - t0) / batch)
    return float(np.median(times))


def r_seconds(x: np.ndarray, reps: int) -> dict[int, float]:
    """psych::alpha seconds per call with n.iter 1000 and 2000, or {} without R."""
    if shutil.which("Rscript") is None:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "x.csv"
        pd.DataFrame(x).to_csv(csv, index=False)
        out = subprocess.run(["Rscript", "-e", R_TIMING.format(csv=csv, reps=reps)],
                             capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return {}
    return {int(a): float(b) for a, b in (line.split() for line in out.stdout.splitlines())}


def demo_tables_seconds() -> tuple[float, float, int]:
    """Seconds for the reliability and item tables of the demo program, and their rows."""
    with tempfile.TemporaryDirectory() as tmp:
        root = write_demo(Path(tmp) / "demo")
        ctx = stages.load_context(root)
        contracts = stages.validate(ctx, stages.ingest(ctx))
        start = time.perf_counter()
        rel = reliability_table(contracts.valid, ctx.instruments)
        mid = time.perf_counter()
        items, options = item_tables(contracts.valid, ctx.instruments)
        end = time.perf_counter()
    return mid - start, end - mid, len(rel), len(items) + len(options)


def main() -> None:
    print(describe())
    print("\nBootstrapped alpha, percentile CI, B = 2,000 (seconds per coefficient)")
    for n, k, reps in ((30, 10, 3), (300, 30, 1)):
        x = likert(n, k)
        ours = seconds_per_call(lambda x=x: bootstrap_alpha_ci(x, n_boot=2000))
        ours_1000 = seconds_per_call(lambda x=x: bootstrap_alpha_ci(x, n_boot=1000))
        full = seconds_per_call(lambda x=x: scale_reliability(x, n_boot=2000))
        r = r_seconds(x, reps)
        line = f"  n={n:>3} k={k:>2}: capacitar {ours * 1e3:8.2f} ms"
        if r:
            line += (f" | R psych::alpha n.iter=2000 {r[2000]:.2f} s -> {r[2000] / ours:,.0f}x;"
                     f" at 1,000 resamples each: capacitar {ours_1000 * 1e3:.2f} ms, psych "
                     f"{r[1000]:.2f} s -> {r[1000] / ours_1000:,.0f}x")
        elif (n, k) == (30, 10):
            line += f" | R psych (quoted, n.iter=1000) {QUOTED_R_SECONDS} s -> " \
                    f"{QUOTED_R_SECONDS / ours:,.0f}x"
        print(line)
        print(f"           every coefficient of the scale (alpha, Feldt + bootstrap CI, std alpha,"
              f" G6, KR-20/21, omega, SEM): {full * 1e3:.1f} ms")
    rel_s, item_s, rel_rows, item_rows = demo_tables_seconds()
    print(f"\nDemo program: reliability table {rel_s:.2f} s ({rel_rows} rows, B = 2,000 each);"
          f" items + item_options {item_s:.2f} s ({item_rows} rows)")


if __name__ == "__main__":
    main()
