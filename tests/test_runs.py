"""Incremental, locked, observable runs of the Prefect flow (issue: scheduled runs).

Each test works on its own small three-cohort program; the flow runs under the
session's Prefect test harness.
"""

import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import psutil
import pytest

from pipelines import cohort_analysis, run_records, stages, table_export
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

    events, real_plan, real_save = [], stages.plan, run_records.save_run_state

    def plan(ctx, **options):  # the first thing a run does once it holds the folder
        events.append((time.perf_counter(), ctx.run_id, "start"))
        time.sleep(1.0)  # long enough for the other run to try to start
        return real_plan(ctx, **options)

    def save(ctx, *args):  # the last thing it does
        real_save(ctx, *args)
        events.append((time.perf_counter(), ctx.run_id, "end"))

    monkeypatch.setattr(stages, "plan", plan)
    monkeypatch.setattr(run_records, "save_run_state", save)
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

    def another_run():
        with program_lock(program, "y", timeout=0):
            pass

    with program_lock(program, "x"), ThreadPoolExecutor() as pool:
        with pytest.raises(ProgramBusy, match="try again"):
            pool.submit(another_run).result()


def test_a_failed_stage_keeps_previous_outputs(program, prefect_harness, monkeypatch):
    from pipelines.flows import evaluate_program

    evaluate_program(str(program))
    outputs = program / "outputs"
    kept = snapshot(outputs / "tables") | snapshot(outputs / "reports")
    state = (outputs / "state.json").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("simulated crash in the analysis")

    monkeypatch.setattr(cohort_analysis, "assemble", broken)
    monkeypatch.setattr("pipelines.export.PARALLEL_ROWS", 0)  # SPSS/Stata writers running
    add_cohort_c3(program)
    with pytest.raises(RuntimeError, match="simulated crash"):
        evaluate_program(str(program))
    assert snapshot(outputs / "tables") | snapshot(outputs / "reports") == kept
    assert not list(outputs.glob(".tables.staging-*"))  # the half-filled staging is gone
    me = psutil.Process()
    assert not [p for p in me.children(recursive=True)  # no forked process left
                if p.cmdline() == me.cmdline() and p.status() != psutil.STATUS_ZOMBIE]
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
    monkeypatch.setenv("CAPACITAR_WORKERS", "3")  # two forked processes beside this one
    forked, real = [], cohort_analysis.Shared

    def recorded(*args, **kwargs):
        shared = real(*args, **kwargs)
        forked.append([child._proc for child in shared._children])
        return shared

    monkeypatch.setattr(cohort_analysis, "Shared", recorded)
    evaluate_program(str(program))
    assert len(forked[0]) == 2 and all(proc is not None for proc in forked[0])
    beside = tables_of(program)
    assert (beside["reliability"]["cohort"] == "ALL").any()
    assert set(beside["change"]["cohort"]) == {"c1", "c2", "c3"}
    monkeypatch.setenv("CAPACITAR_WORKERS", "1")  # no fork: everything in the run's process
    evaluate_program(str(program), force=True)
    assert_same_tables(beside, tables_of(program))


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


def test_a_run_whose_only_file_is_skipped_completes_with_problems(tmp_path, monkeypatch,
                                                                   prefect_harness):
    from pipelines.flows import evaluate_program

    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    monkeypatch.setenv("CAPACITAR_CHROMIUM", "/nonexistent")
    root = small_program(tmp_path, {"stss_pre.csv": "<html><body>Sign in</body></html>\n"})
    state = evaluate_program(str(root), return_state=True)
    run = state.result()
    assert state.is_completed() and state.name == "CompletedWithProblems"
    assert run["status"] == "complete_with_problems" and run["rows_read"] == 0
    assert any("stss_pre.csv" in p and "web page" in p for p in run["problems"])
    change = pd.read_parquet(root / "outputs" / "tables" / "change.parquet")
    assert change.empty and "d_z" in change.columns
    assert runs(root)["status"].tolist() == ["complete_with_problems"]


def flow_run_of(state):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def summary_artifact(state) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    return next(a.data for a in found if a.key == "capacitar-run-summary")


def test_problems_make_noise_even_with_no_new_data(program, prefect_harness, monkeypatch,
                                                   capsys):
    from pipelines.cli import main
    from pipelines.flows import evaluate_program

    (program / "inbox" / "stss_followup_c1.xlsx").write_bytes(b"exported with the wrong name")
    state = evaluate_program(str(program), return_state=True)
    run = state.result()
    stored = flow_run_of(state).state
    assert stored.type.value == "COMPLETED" and stored.name == "CompletedWithProblems"
    assert "stss_followup_c1.xlsx" in stored.message
    assert run["status"] == "complete_with_problems" and len(run["problems"]) == 1
    markdown = summary_artifact(state)
    assert markdown.index("Completed with problems (1)") < markdown.index("rows read")
    assert "stss\\_followup\\_c1\\.xlsx" in markdown
    again = evaluate_program(str(program), return_state=True)  # a scheduled run, nothing new
    assert again.name == "CompletedWithProblems" and again.result()["status"] == "no_new_data"
    assert "stss\\_followup\\_c1\\.xlsx" in summary_artifact(again)
    class Unused:  # launched before planning, stopped unused: no flow run
        stopped = False

        def api(self):
            pytest.fail("no Prefect")

        def stop(self):
            Unused.stopped = True

    monkeypatch.setattr("pipelines.embedded_server.start_early", Unused)
    with pytest.raises(SystemExit) as stop:  # cron: exit status 1, the problem said first
        main(["run", str(program)])
    said = capsys.readouterr().out
    assert stop.value.code == 1 and Unused.stopped
    assert said.index("Completed with problems (1)") < said.index("No new data")
    history = runs(program)
    assert history["status"].tolist() == ["complete_with_problems", "no_new_data", "no_new_data"]
    assert history["problems"].str.contains("stss_followup_c1.xlsx").all()


def test_strict_makes_a_problem_a_failure_before_anything_is_published(program, prefect_harness):
    from pipelines.errors import RunFailed
    from pipelines.flows import evaluate_program

    (program / "inbox" / "stss_post_c2.csv").write_text("<html>login</html>")  # skipped
    state = evaluate_program(str(program), strict=True, return_state=True)
    assert state.is_failed() and "stopped (--strict)" in state.message
    assert "stss_post_c2.csv" in state.message
    with pytest.raises(RunFailed, match="web page"):
        state.result()
    assert not (program / "outputs" / "tables").exists()
    assert not (program / "outputs" / "reports").exists()
    assert runs(program)["status"].tolist() == ["failed"]


def test_a_file_skipped_last_time_is_read_again(program, prefect_harness):
    from pipelines.flows import evaluate_program

    target = program / "inbox" / "stss_post_c2.csv"
    text = target.read_text()
    target.write_text(text.splitlines()[0] + "\n")  # header only: still being written
    first = evaluate_program(str(program))
    assert any("stss_post_c2.csv" in p for p in first["problems"])
    second = evaluate_program(str(program))  # the same bytes: not "no new data"
    assert second["status"] == "complete_with_problems"
    target.write_text(text)
    third = evaluate_program(str(program))
    assert third["status"] == "complete" and third["cohorts_recomputed"] == ["c2"]
    assert evaluate_program(str(program))["status"] == "no_new_data"


def test_a_replaced_key_stops_the_run_unless_declared(program, prefect_harness, monkeypatch):
    from pipelines.cli import main
    from pipelines.errors import RunFailed
    from pipelines.flows import evaluate_program

    evaluate_program(str(program))
    before = set(pd.read_parquet(program / "outputs" / "tables" / "scores.parquet")["participant"])
    state = json.loads((program / "outputs" / "state.json").read_text())
    assert len(state["key_id"]) == 16 and "k" * 16 not in json.dumps(state)
    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "another key, long enough")
    with pytest.raises(SystemExit) as stop:
        main(["run", str(program)])
    assert stop.value.code == 2  # not "no new data"
    with pytest.raises(RunFailed, match="--new-key"):  # a served run
        evaluate_program(str(program))
    declared = evaluate_program(str(program), new_key=True)
    assert declared["status"] == "complete" and declared["cohorts_recomputed"] == ["c1", "c2"]
    after = set(pd.read_parquet(program / "outputs" / "tables" / "scores.parquet")["participant"])
    assert len(after) == len(before) == 24 and not after & before


def test_every_output_is_owner_only(program, prefect_harness):
    from pipelines.flows import evaluate_program

    (program / "outputs").mkdir()
    (program / "outputs" / "warehouse.duckdb").touch(mode=0o644)  # as a version before wrote it
    (program / "outputs" / "warehouse.duckdb").unlink()
    evaluate_program(str(program))
    modes = {str(p.relative_to(program)): p.stat().st_mode & 0o777
             for p in (program / "outputs").rglob("*")}
    assert modes and {m for p, m in modes.items() if (program / p).is_file()} == {0o600}
    assert {m for p, m in modes.items() if (program / p).is_dir()} == {0o700}
    assert (program / ".capacitar.lock.json").exists() is False


class PrefectLogs(list):
    """Log records of flow and task runs (what Prefect's console and database show)."""

    def __enter__(self):
        import logging

        self.handler = logging.Handler(level=logging.DEBUG)
        self.handler.emit = self.append
        for name in ("prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(name).addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        import logging

        for name in ("prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(name).removeHandler(self.handler)

    @property
    def text(self) -> str:
        return "\n".join(r.getMessage() for r in self)

    def tracebacks(self) -> list[str]:
        """Records that would print a traceback."""
        return [r.getMessage() for r in self if r.exc_info or r.exc_text]


@pytest.mark.parametrize("fault", ["lock", "disk", "disk-reports", "read-only"])
def test_failures_at_the_edges_are_one_line_without_traceback(program, prefect_harness,
                                                             monkeypatch, fault):
    import errno

    from pipelines import publish
    from pipelines.errors import RunFailed
    from pipelines.flows import evaluate_program

    evaluate_program(str(program))
    kept = snapshot(program / "outputs" / "tables")
    add_cohort_c3(program)
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "outputs/x.parquet")

    if fault == "disk":  # in a task that retries I/O errors: not this one
        monkeypatch.setattr(table_export, "write_open_formats", full)
        said = "no space left on the disk writing outputs/x.parquet"
    elif fault == "disk-reports":  # in a task Prefect logs with its traceback
        monkeypatch.setattr(stages, "render_report_folder", full)
        said = "no space left on the disk writing outputs/x.parquet"
    elif fault == "read-only":
        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system", str(program / "outputs"))
        monkeypatch.setattr(publish.tempfile, "mkdtemp", read_only)
        said = "(Read-only file system): capacitar needs to write"
    else:
        said = "being evaluated by run holder"
    with ThreadPoolExecutor() as pool:  # the lock held elsewhere (another run)
        holder = threading.Event()
        release = threading.Event()

        def hold():
            with program_lock(program, "holder"):
                holder.set()
                release.wait(60)
        if fault == "lock":
            pool.submit(hold)
            holder.wait(10)
        try:
            with PrefectLogs() as logs:
                state = evaluate_program(str(program), lock_timeout=0, return_state=True)
        finally:
            release.set()
    assert state.is_failed() and said in state.message
    with pytest.raises(RunFailed, match=re.escape(said)):
        state.result()
    assert said in logs.text and logs.tracebacks() == []
    assert "will start" not in logs.text  # no "Retry 1/2 will start in 3 s" on a full disk
    assert snapshot(program / "outputs" / "tables") == kept


def test_the_cli_says_a_failed_run_in_one_line_with_status_3(program, prefect_harness,
                                                             monkeypatch, capsys):
    import errno

    from pipelines.cli import main

    class NoServer:
        def api(self):
            return __import__("contextlib").nullcontext()

        def stop(self):
            pass

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "outputs/x.parquet")

    monkeypatch.setattr("pipelines.embedded_server.start_early", NoServer)
    monkeypatch.setattr(table_export, "write_open_formats", full)
    with pytest.raises(SystemExit) as stop, PrefectLogs() as logs:
        main(["run", str(program)])
    said = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 3 and logs and logs.tracebacks() == []
    assert said == ["error: no space left on the disk writing outputs/x.parquet: free some space, "
                    "then run again"]


def test_report_takes_the_lock_and_no_pdf_keeps_the_pdfs(program, prefect_harness, capsys):
    from pipelines.cli import main
    from pipelines.flows import evaluate_program

    evaluate_program(str(program), pdf=False)
    reports = program / "outputs" / "reports"
    pdf = reports / "cohort_c1_es.pdf"
    pdf.write_bytes(b"%PDF-1.4 printed last week")
    with program_lock(program, "holder-run"), ThreadPoolExecutor() as pool:
        busy = pool.submit(main, ["report", str(program), "--wait", "0"])
        with pytest.raises(SystemExit) as stop:
            busy.result()
    assert stop.value.code == 2 and "being evaluated by run holder-run" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["report", str(program), "--no-pdf"])
    assert stop.value.code == 0
    assert pdf.read_bytes() == b"%PDF-1.4 printed last week"


def test_a_changed_answer_refits_only_the_models_whose_scores_changed(program, prefect_harness,
                                                                     monkeypatch):
    """The mixed models of unchanged scores keep the last run's rows; the tables equal a
    run from scratch."""
    from pipelines.analysis import models, tables
    from pipelines.flows import evaluate_program

    monkeypatch.setenv("CAPACITAR_WORKERS", "1")  # every model fitted in this process
    evaluate_program(str(program))
    fitted = []
    monkeypatch.setattr(tables, "cohort_fixed_model",
                        lambda long: fitted.append(long) or models.cohort_fixed_model(long))
    changed = answers(2, 12, shift=1)
    changed[0][2][0] = "1" if changed[0][2][0] != "1" else "2"  # item s1 of one person
    (program / "inbox" / "stss_post_c2.csv").write_text(stss_csv(changed, "Laredo"))
    run = evaluate_program(str(program))
    assert run["cohorts_recomputed"] == ["c2"]
    scales = tables_of(program)["models"].query("model == 'mixed_cohort_fixed'")["scale"]
    refitted = len(fitted)
    assert 0 < refitted < scales.nunique()
    after = tables_of(program)
    evaluate_program(str(program), force=True)
    assert len(fitted) - refitted == scales.nunique()  # a forced run fits every model
    assert_same_tables(after, tables_of(program))
