"""Benchmark: the table files of a national program, table by table (Parquet + CSV, .sav + .dta).

Run: python benchmarks/national.py --keep /tmp/nat         # once: a national program and its run
     python benchmarks/exports.py /tmp/nat/national_1000

Reads the tables the run wrote (Parquet) and writes them again the way the
export stage does, in this process (no worker processes): Parquet and CSV
(formulas neutralised) as the run's own thread writes them, then the SPSS and
Stata files (codes, value labels, flag variables) as the export workers do.
Prints rows, CPU and wall seconds per table and in total, and the machine.
CPU seconds are the figure to compare on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._machine import describe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("program", type=Path, help="a program folder with outputs/tables")
    args = parser.parse_args()

    import pandas as pd

    from data_contracts import RULES
    from pipelines.codes import program_codes
    from pipelines.export import labelled_paths, write_labelled_files, write_open_formats
    from pipelines.schema import load_schema
    from pipelines.stages import load_context
    from pipelines.wide import scores_wide, scores_wide_spec

    ctx = load_context(args.program)
    folder = args.program / "outputs" / "tables"
    out = Path(tempfile.mkdtemp(prefix="capacitar-exports-"))
    specs = dict(load_schema().tables)
    tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in specs
              if (folder / f"{name}.parquet").exists()}
    sets = program_codes(ctx.config, ctx.instruments, {r: v["label"] for r, v in RULES.items()},
                         folder, out)
    tables["scores_wide"] = scores_wide(tables["scores"], ctx.config.wave_order())
    specs["scores_wide"] = scores_wide_spec(tables["scores_wide"], sets)
    print(describe())
    print(f"{'table':<20}{'rows':>10}  open CPU/wall s   labelled CPU/wall s")
    totals = [0.0] * 4
    for name, frame in tables.items():
        clocks = [time.process_time(), time.perf_counter()]
        write_open_formats(frame, out, name)
        middle = [time.process_time(), time.perf_counter()]
        write_labelled_files(frame, specs[name], sets, ctx.config.language,
                             labelled_paths(name, out))
        end = [time.process_time(), time.perf_counter()]
        times = [middle[0] - clocks[0], middle[1] - clocks[1], end[0] - middle[0],
                 end[1] - middle[1]]
        totals = [a + b for a, b in zip(totals, times)]
        print(f"{name:<20}{len(frame):>10,}  {times[0]:6.2f} / {times[1]:6.2f}   "
              f"{times[2]:7.2f} / {times[3]:6.2f}")
    print(f"{'total':<30}  {totals[0]:6.2f} / {totals[1]:6.2f}   "
          f"{totals[2]:7.2f} / {totals[3]:6.2f}")


if __name__ == "__main__":
    main()
