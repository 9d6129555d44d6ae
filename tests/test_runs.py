"""Incremental, locked, observable runs of the Prefect flow (issue: scheduled runs).

Each test works on its own small three-cohort program; the flow runs under the
session's Prefect test harness.
"""

import os
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import psutil
import pytest

from pipelines import stages
from pipelines.locking import ProgramBusy, program_lock
from tests.helpers import small_program, stss_csv
from tests.test_cli import capacitar

SITES = {"c1": "Virú", "c2": "Laredo", "c3": "Chao"}
ANALYSIS = ["reliability", "items", "item_options", "change", "individual_change",
            "band_transitions", "wave_means", "participation", "models"]


def answers(seed: int, n: int, shift: int = 0) -> list[tuple]:
    """People with a trait: answers correlate across items (alpha well above 0)."""
    rng = np.random.default_rng(seed)
    trait = rng.normal(size=n)
    rows = []
    for i in range(n):
        codes = np.clip(np.round(3 + trait[i] + rng.normal(scale=0.8, size=17) - shift), 1, 5)
        rows.append((f"P{i}", f"p{seed}_{i}@x.pe", [str(int(c)) for c in codes]))
    return rows


def cohort_files(cohort: str, seed: int, n: int = 12) -> dict[str, str]:
    site = SITES[cohort]
    return {f"stss_pre_{cohort}.csv": stss_csv(answers(seed, n), site),
            f"stss_post_{cohort}.csv": stss_csv(answers(seed, n, shift=1), site)}


@pytest.fixture
def program(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    monkeypatch.setenv("CAPACITAR_CHROMIUM", "/nonexistent")  # HTML only: faster
    files = {**cohort_files("c1", 1), **cohort_files("c2", 2)}
    cohorts = [{"id": c, "site": s} for c, s in SITES.items() if c != "c3"]
    return small_program(tmp_path, files, cohorts=cohorts)


def add_cohort_c3(root: Path) -> None:
    import yaml

    config = yaml.safe_load((root / "program.yaml").read_text())
    config["cohorts"].append({"id": "c3", "site": SITES["c3"]})
    (root / "program.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    for name, text in cohort_files("c3", 3).items():
        (root / "inbox" / name).write_text(text, encoding="utf-8")


def tables_of(root: Path) -> dict[str, pd.DataFrame]:
    folder = root / "outputs" / "tables"
    return {name: pd.read_parquet(folder / f"{name}.parquet") for name in ANALYSIS}


def assert_same_tables(left: dict, right: dict) -> None:
    for name in ANALYSIS:
        pd.testing.assert_frame_equal(left[name], right[name], check_dtype=False,
                                      check_exact=False, rtol=1e-9, obj=name)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def runs(root: Path) -> pd.DataFrame:
    with duckdb.connect(str(root / "outputs" / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT * FROM runs ORDER BY started, finished").df()


def test_a_second_run_with_no_new_data_recomputes_nothing(program, prefect_harness):
    from pipelines.flows import evaluate_program

    first = evaluate_program(str(program))
    outputs = snapshot(program / "outputs" / "tables") | snapshot(program / "outputs" / "reports")
    started = time.perf_counter()
    second = evaluate_program(str(program))
    seconds = time.perf_counter() - started
    assert first["status"] == "complete" and second["status"] == "no_new_data"
    assert second["previous_run"] == first["run_id"]
    after = snapshot(program / "outputs" / "tables") | snapshot(program / "outputs" / "reports")
    assert after == outputs  # not one byte rewritten
    history = runs(program)
    assert history["status"].tolist() == ["complete", "no_new_data"]
    assert history["cohorts_recomputed"].tolist() == [2, 0]
    print(f"no-new-data run: {seconds:.2f} s")  # shown with -s; timing is never asserted


def test_adding_one_cohort_recomputes_only_it_and_equals_a_full_run(program, prefect_harness):
    from pipelines.flows import evaluate_program

    evaluate_program(str(program))
    add_cohort_c3(program)
    incremental = evaluate_program(str(program))
    assert incremental["cohorts_recomputed"] == ["c3"]
    assert incremental["cohorts_reused"] == ["c1", "c2"]
    assert set(tables_of(program)["change"]["cohort"]) == {"c1", "c2", "c3"}
    after_incremental = tables_of(program)
    evaluate_program(str(program), force=True)  # everything from scratch
    assert_same_tables(after_incremental, tables_of(program))
    pooled = after_incremental["reliability"].query("cohort == 'ALL'")
    assert (pooled["n"] == 36).all()  # pooled figures include the new cohort


def test_a_corrected_file_supersedes_its_old_version(program, prefect_harness):
    from pipelines.flows import evaluate_program

    evaluate_program(str(program))
    before = tables_of(program)["change"].set_index("cohort")
    corrected = answers(2, 12, shift=1)
    corrected[0] = (corrected[0][0], corrected[0][1], ["5"] * 17)  # a typed-in row fixed
    (program / "inbox" / "stss_post_c2.csv").write_text(stss_csv(corrected, "Laredo"))
    run = evaluate_program(str(program))
    assert run["cohorts_recomputed"] == ["c2"] and run["cohorts_reused"] == ["c1"]
    after = tables_of(program)["change"].set_index("cohort")
    assert after.loc["c1", "mean_to"].tolist() == before.loc["c1", "mean_to"].tolist()
    assert (after.loc["c2", "mean_to"] != before.loc["c2", "mean_to"]).all()
    assert "stss_post_c2.csv" in run["markdown"] and "(new or changed)" in run["markdown"]


def test_two_concurrent_runs_do_not_interleave(program, prefect_harness, monkeypatch):
    from pipelines.flows import evaluate_program

    events, real_plan, real_save = [], stages.plan, stages.save_run_state

    def plan(ctx):  # the first thing a run does once it holds the folder
        events.append((time.perf_counter(), ctx.run_id, "start"))
        time.sleep(1.0)  # long enough for the other run to try to start
        return real_plan(ctx)

    def save(ctx, *args):  # the last thing it does
        real_save(ctx, *args)
        events.append((time.perf_counter(), ctx.run_id, "end"))

    monkeypatch.setattr(stages, "plan", plan)
    monkeypatch.setattr(stages, "save_run_state", save)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        evaluate_program(str(program), force=True))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert [r["status"] for r in results] == ["complete", "complete"]
    order = [(run, what) for _, run, what in sorted(events)]
    first, second = order[0][0], order[2][0]
    assert first != second
    assert order == [(first, "start"), (first, "end"), (second, "start"), (second, "end")]


def test_a_busy_program_is_a_clear_message_not_a_traceback(program):
    with program_lock(program, "holder-run", timeout=0):
        result = capacitar("run", str(program), "--wait", "0")
        waited = capacitar("run", str(program), "--wait", "2")
    said, said_after_waiting = (" ".join(r.stderr.split()) for r in (result, waited))
    assert result.returncode == 2
    assert "being evaluated by run holder-run" in said
    assert "try again when it has finished" in said
    assert "gave up after waiting 2 s" in said_after_waiting and waited.returncode == 2
    assert "Traceback" not in result.stderr + waited.stderr
    with program_lock(program, "x"), pytest.raises(ProgramBusy, match="try again"):
        with program_lock(program, "y", timeout=0):
            pass


def test_a_failed_stage_keeps_previous_outputs(program, prefect_harness, monkeypatch):
    from pipelines.flows import evaluate_program

    evaluate_program(str(program))
    outputs = program / "outputs"
    kept = snapshot(outputs / "tables") | snapshot(outputs / "reports")
    state = (outputs / "state.json").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("simulated crash in the analysis")

    monkeypatch.setattr(stages, "assemble", broken)
    monkeypatch.setattr("pipelines.export.PARALLEL_ROWS", 0)  # SPSS/Stata workers running
    add_cohort_c3(program)
    with pytest.raises(RuntimeError, match="simulated crash"):
        evaluate_program(str(program))
    assert snapshot(outputs / "tables") | snapshot(outputs / "reports") == kept
    assert not list(outputs.glob(".tables.staging-*"))  # the half-filled staging is gone
    assert not [p for p in psutil.Process().children(recursive=True)  # workers stopped
                if "pipelines.export" in " ".join(p.cmdline())]
    assert (outputs / "state.json").read_bytes() == state
    history = runs(program)
    assert history["status"].tolist() == ["complete", "failed"]
    assert "simulated crash" in history["problems"].iloc[-1]
    monkeypatch.undo()
    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    monkeypatch.setenv("CAPACITAR_CHROMIUM", "/nonexistent")
    assert evaluate_program(str(program))["cohorts_recomputed"] == ["c3"]  # picks up after


def test_rows_computed_beside_equal_those_computed_in_process(program, prefect_harness,
                                                                       monkeypatch):
    from pipelines.flows import evaluate_program

    add_cohort_c3(program)
    # program-wide rows and every cohort's rows in a forked process (Linux)
    monkeypatch.setattr(stages, "BESIDE_EVERY", 1)
    assert stages.split_beside(["c1", "c2", "c3"]) == (["c1", "c2", "c3"], [])
    evaluate_program(str(program))
    beside = tables_of(program)
    assert (beside["reliability"]["cohort"] == "ALL").any()
    assert set(beside["change"]["cohort"]) == {"c1", "c2", "c3"}
    monkeypatch.setattr(stages, "split_beside", lambda stale: (["c1", "c3"], ["c2"]))
    evaluate_program(str(program), force=True)  # c1 and c3 beside, c2 here
    split = tables_of(program)
    monkeypatch.setenv("CAPACITAR_WORKERS", "1")  # no fork: everything in the run's process
    evaluate_program(str(program), force=True)
    assert_same_tables(beside, tables_of(program))
    assert_same_tables(split, tables_of(program))


def test_a_dask_cluster_gives_the_same_tables(program, prefect_harness):
    from distributed import LocalCluster

    from pipelines.flows import evaluate_program

    add_cohort_c3(program)
    evaluate_program(str(program))
    local = tables_of(program)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        run = evaluate_program(str(program), force=True, dask_address=cluster.scheduler_address)
    assert run["cohorts_recomputed"] == ["c1", "c2", "c3"]
    assert_same_tables(local, tables_of(program))


def test_status_lists_the_last_runs_and_run_says_no_new_data(program, prefect_harness):
    from pipelines.flows import evaluate_program

    result = capacitar("status", str(program))
    assert result.returncode == 0 and "No runs yet" in result.stdout
    evaluate_program(str(program))
    quick = capacitar("run", str(program))  # no Prefect server started for this
    assert quick.returncode == 0 and "No new data" in quick.stdout
    result = capacitar("status", str(program), env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0
    assert "no_new_data" in result.stdout and "complete" in result.stdout
    assert result.stdout.index("no_new_data") < result.stdout.index("complete")  # newest first


def test_change_artifact_rows_are_json_safe():
    import json

    from pipelines.flows import json_safe

    frame = pd.DataFrame({"a": [1.5, np.nan], "b": pd.array([1, None], dtype="Int64"),
                          "c": ["x", None], "d": [np.int64(3), np.int64(4)]})
    rows = json_safe(frame)
    assert json.loads(json.dumps(rows, allow_nan=False)) == [
        {"a": 1.5, "b": 1, "c": "x", "d": 3}, {"a": None, "b": None, "c": None, "d": 4}]


def test_progress_bars_stay_quiet_under_ci(monkeypatch):
    from pipelines import progress

    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("CAPACITAR_NO_PROGRESS", raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert progress.progress_wanted()
    monkeypatch.setenv("CI", "true")
    assert not progress.progress_wanted()


def test_an_unreachable_dask_scheduler_is_one_clear_message(program, prefect_harness):
    import dask

    from pipelines.errors import CapacitarError
    from pipelines.flows import evaluate_program

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), \
            pytest.raises(CapacitarError, match="could not use the Dask scheduler at tcp://127"):
        evaluate_program(str(program), dask_address="tcp://127.0.0.1:9")
    assert not (program / "outputs" / "tables").exists()  # nothing half-written


def test_a_run_whose_only_file_is_skipped_completes_with_the_message(tmp_path, monkeypatch,
                                                                     prefect_harness):
    from pipelines.flows import evaluate_program

    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    monkeypatch.setenv("CAPACITAR_CHROMIUM", "/nonexistent")
    root = small_program(tmp_path, {"stss_pre.csv": "name,email,other\nA,a@x.pe,1\n"})
    run = evaluate_program(str(root))
    assert run["status"] == "complete" and run["rows_read"] == 0
    assert any("the cohort column 'sede' is not in the file" in p for p in run["problems"])
    change = pd.read_parquet(root / "outputs" / "tables" / "change.parquet")
    assert change.empty and "d_z" in change.columns
