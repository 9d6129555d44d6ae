"""`capacitar validate`: loads only what it uses, and says when Great Expectations' verdicts
were reused (issue 22)."""

import json
import os
import subprocess
import sys

from tests.helpers import small_program, stss_csv

# Run the command in a fresh interpreter, then list the heavy packages it imported.
VALIDATE = """
import sys
from pipelines.cli import main
try:
    main(["validate", sys.argv[1]])
except SystemExit as stop:
    code = stop.code
heavy = ["great_expectations", "prefect", "pipelines.analysis", "pipelines.flows", "reports",
         "duckdb", "scipy.stats", "statsmodels", "pingouin"]
print("MODULES " + __import__("json").dumps([m for m in heavy if m in sys.modules]))
sys.exit(code)
"""


def validate(root, env):
    done = subprocess.run([sys.executable, "-c", VALIDATE, str(root)], capture_output=True,
                          text=True, env=env, timeout=300)
    said, _, modules = done.stdout.rpartition("MODULES ")
    return done.returncode, said, json.loads(modules), done.stderr


def test_validate_imports_what_it_uses_and_says_what_it_reused(tmp_path):
    # a declared primary outcome is checked against the instruments without the analysis
    root = small_program(tmp_path, {"stss_pre.csv": stss_csv([
        ("Ana", "ana@x.pe", ["3"] * 17), ("Luis", "luis@x.pe", ["9"] + ["3"] * 16)])},
        primary_outcomes=[{"instrument": "stss", "scale": "total"}])
    env = {**os.environ, "CAPACITAR_PSEUDONYM_KEY": "k" * 32, "COLUMNS": "200"}
    status, first, imported, err = validate(root, env)
    assert status == 0, err
    assert "great_expectations" in imported  # nothing recorded yet: GX validates
    assert {"prefect", "pipelines.analysis", "pipelines.flows", "reports", "duckdb",
            "statsmodels", "pingouin"}.isdisjoint(imported)
    assert "verdict reused" not in first
    status, second, imported, err = validate(root, env)
    assert status == 0, err
    assert imported == []  # nothing changed: not even Great Expectations is loaded
    assert "Great Expectations: unchanged since validated, verdict reused for stss" in second
    assert second.replace(
        "Great Expectations: unchanged since validated, verdict reused for stss\n", "") == first
    assert "quarantined for code_out_of_range: 1" in second
