"""Shared fixtures: one Prefect test harness per session, one demo run per session."""

import gc
import json
import os
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(autouse=True, scope="session")
def files_settle_at_once():
    """Tests write inbox files and read them at once: no settle time (tests of it set their own).

    Session-scoped, so module and session fixtures that write an inbox read it too.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAPACITAR_SETTLE_SECONDS", "0")
        yield


@pytest.fixture(autouse=True)
def collector_left_on():
    """Every command that pauses Python's garbage collector (a run, while its modules load)
    turns it on again, on every path; what it froze is unfrozen for the next test."""
    yield
    enabled = gc.isenabled()
    gc.enable()
    gc.unfreeze()
    assert enabled, "the test left Python's garbage collector off"


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """Prefect's test harness (a temporary API and database), started once."""
    from prefect.testing.utilities import prefect_test_harness

    results = tmp_path_factory.mktemp("prefect-results")
    os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(results)
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def demo_run(prefect_harness, tmp_path_factory):
    """The demo program written and run through the real flow once."""
    from pipelines.demo import write_demo
    from pipelines.flows import evaluate_program

    root = write_demo(tmp_path_factory.mktemp("demo"))
    summary = evaluate_program(str(root))
    tables = {
        p.stem: pd.read_parquet(p) for p in (root / "outputs" / "tables").glob("*.parquet")
    }
    truth = json.loads((root / "truth" / "truth.json").read_text(encoding="utf-8"))
    return {"root": root, "summary": summary, "tables": tables, "truth": truth}


def outputs_text(root: Path) -> str:
    """Every output file's text (binary formats decoded leniently)."""
    chunks = []
    for path in (root / "outputs").rglob("*"):
        if path.is_file():
            chunks.append(path.read_bytes().decode("utf-8", errors="ignore"))
    return "\n".join(chunks)
