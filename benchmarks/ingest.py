"""Benchmark: ingest of 1,000,000 responses (rows x items) from CSV exports.

Run: python benchmarks/ingest.py [--responses 1000000]

Writes a synthetic program (STSS, 17 items, 100 cohorts, two waves; answers
partly typed as Spanish labels, emails with accents and case differences)
once as a plain CSV and once as a KoboToolbox export (';', group-prefixed
names, metadata columns), then times ``ingest_program`` on each: reading,
decoding, label mapping, pseudonymisation and row accounting. Prints
responses per second and the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._machine import describe  # noqa: E402
from instruments import load_builtin  # noqa: E402
from pipelines.config import load_program  # noqa: E402
from pipelines.ingest import ingest_program  # noqa: E402
from pipelines.ingest.core import mark_settled  # noqa: E402

ITEMS = 17
LABELS = ["Nunca", "Rara vez", "Ocasionalmente", "A menudo", "Muy a menudo"]


def synthetic_export(rows: int, kobo: bool, seed: int = 1) -> pd.DataFrame:
    """``rows`` submissions of the STSS; 5% of answers typed as labels."""
    rng = np.random.default_rng(seed)
    people = rows // 2
    codes = rng.integers(1, 6, size=(rows, ITEMS))
    answers = codes.astype(str).astype(object)
    typed = rng.random((rows, ITEMS)) < 0.05
    answers[typed] = np.array(LABELS, dtype=object)[codes[typed] - 1]
    prefix = "estres/" if kobo else ""
    frame = pd.DataFrame(answers, columns=[f"{prefix}s{i}" for i in range(1, ITEMS + 1)])
    person = np.arange(rows) % people
    frame.insert(0, "correo", [f"Persona.{i}@Minsa.gob.pe " if i % 7 == 0 else
                               f"persona.{i}@minsa.gob.pe" for i in person])
    frame.insert(1, "sede", [f"c{i % 100}" for i in person])
    frame.insert(2, "momento", np.where(np.arange(rows) < people, "pre", "post"))
    if kobo:
        frame["_id"] = np.arange(rows).astype(str)
        frame["_submission_time"] = "2026-03-01T10:00:00"
        frame["_validation_status"] = ""
        frame["_submitted_by"] = "tablet"
    return frame


def program(root: Path, rows: int, kobo: bool) -> Path:
    (root / "inbox").mkdir(parents=True)
    sep = ";" if kobo else ","
    synthetic_export(rows, kobo).to_csv(root / "inbox" / "stss.csv", index=False, sep=sep)
    config = {
        "name": "benchmark", "cohorts": [{"id": f"c{i}", "site": f"Site {i}"} for i in range(100)],
        "waves": [{"id": "pre", "order": 1}, {"id": "post", "order": 2}],
        "sources": [{"name": "s", "pattern": "stss.csv", "format": "kobo" if kobo else "csv",
                     "identifier": ["correo"], "cohort": {"column": "sede"},
                     "wave": {"column": "momento"},
                     "instruments": {"stss": {"items": "s{n}"}}}],
    }
    (root / "program.yaml").write_text(yaml.safe_dump(config))
    mark_settled(root / "inbox")  # a complete export (not one still being written)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--responses", type=int, default=1_000_000)
    args = parser.parse_args()
    rows = args.responses // ITEMS
    print(describe())
    instruments = {"stss": load_builtin()["stss"]}
    for kobo in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            root = program(Path(tmp), rows, kobo)
            size = (root / "inbox" / "stss.csv").stat().st_size / 1e6
            config = load_program(root / "program.yaml")
            start = time.perf_counter()
            result = ingest_program(config, instruments, b"benchmark-key-0123456789")
            seconds = time.perf_counter() - start
        ingested = len(result.responses["stss"])
        assert ingested + len(result.rejected) == rows, "rows lost"
        responses = rows * ITEMS
        print(f"{'KoboToolbox' if kobo else 'plain CSV':>11}: {rows:,} rows x {ITEMS} items = "
              f"{responses:,} responses ({size:.1f} MB) in {seconds:.2f} s "
              f"-> {responses / seconds:,.0f} responses/s ({ingested:,} rows ingested)")


if __name__ == "__main__":
    main()
