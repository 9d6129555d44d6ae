"""Runs that pull first (issue 23): the real Prefect flow against the three local API servers.

Run 1 pulls all three servers and evaluates; run 2 finds two new submissions on KoboToolbox and
must add exactly those, reusing every other cohort; run 3, with KoboToolbox down, has nothing
new and must say so with the pull's problem. No secret reaches an output, the inbox, a message,
a log or Prefect's database.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import duckdb
import pandas as pd

from tests.pull_servers import KOBO_TOKEN, ODK_PASSWORD, REDCAP_TOKEN
from tests.test_cli import capacitar
from tests.test_pull import SECRETS, demo, program, servers, write_program  # noqa: F401

LAREDO = "laredo-2026-1"


def tables(root: Path) -> dict[str, pd.DataFrame]:
    folder = root / "outputs" / "tables"
    return {name: pd.read_parquet(folder / f"{name}.parquet")
            for name in ("scores", "accounting", "reliability", "change")}


def runs(root: Path) -> pd.DataFrame:
    with duckdb.connect(str(root / "outputs" / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT * FROM runs ORDER BY started, finished").df()


def new_laredo_submissions(kobo, n: int = 2) -> list[dict]:
    """Two more Laredo providers taking the knowledge test at baseline."""
    template = next(s for s in kobo.submissions
                    if s["datos/sede"] == "Laredo" and s["datos/momento"] == "Pre")
    added = []
    for i in range(n):
        submission = dict(template)
        instance = str(uuid.UUID(int=77_000 + i))
        submission.update({"_id": 77_000 + i, "_uuid": instance,
                           "meta/instanceID": f"uuid:{instance}",
                           "datos/nombres": f"Quispe Huamán, Rosa {i}",
                           "datos/dni": f"4700000{i}",
                           "datos/correo_electronico": f"rosa.quispe{i}@minsa.gob.pe",
                           "_submission_time": f"2026-05-04T10:0{i}:00"})
        added.append(submission)
    return added


def prefect_database_text() -> str:
    """Every byte of the Prefect test harness's SQLite database (and its WAL), logs flushed."""
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    APILogHandler().flush()
    database = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1])
    return "\n".join(p.read_bytes().decode("utf-8", errors="ignore")
                     for p in database.parent.glob(f"{database.name}*"))


def folder_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", errors="ignore")
                     for p in folder.rglob("*") if p.is_file())


def test_two_runs_add_exactly_the_new_submissions_then_a_down_server_is_a_problem(
        program, servers, prefect_harness, caplog, capsys):
    from pipelines.flows import evaluate_program

    first = evaluate_program(str(program))
    assert first["status"] == "complete" and first["problems"] == []
    before, inbox = tables(program), program / "inbox"
    snapshots = sorted(p.name for p in inbox.glob("*.csv"))
    assert len(snapshots) == 4  # REDCap records + dictionary, ODK, Kobo
    assert before["accounting"]["balanced"].all()
    rows_in = before["accounting"].groupby("source_file")["rows_read"].max()

    added = new_laredo_submissions(servers.kobo)
    for submission in added:
        servers.kobo.add(submission)
    second = evaluate_program(str(program))
    after = tables(program)
    assert second["status"] == "complete" and second["problems"] == []
    # Two more baseline answers to a two-form test move the equating lines, which every
    # cohort's equated scores use: every cohort is analysed again, none reused stale.
    assert sorted(second["cohorts_recomputed"]) == sorted(before["scores"]["cohort"].unique())
    assert second["cohorts_reused"] == []
    # Only the Kobo snapshot is new; the others are the same files, read again unchanged.
    now = sorted(p.name for p in inbox.glob("*.csv"))
    kobo_old = next(n for n in snapshots if n.startswith("conocimientos_"))
    kobo_new = next(n for n in now if n.startswith("conocimientos_"))
    assert [n for n in now if n != kobo_new] == [n for n in snapshots if n != kobo_old]
    assert kobo_new > kobo_old and (inbox / "superseded" / kobo_old).exists()
    rows_now = after["accounting"].groupby("source_file")["rows_read"].max()
    assert rows_now[kobo_new] == rows_in[kobo_old] + 2
    assert rows_now.drop(kobo_new).equals(rows_in.drop(kobo_old))
    assert after["accounting"]["balanced"].all()
    # Exactly two new people, knowledge test, Laredo, baseline; every other score unchanged.
    new_people = set(after["scores"]["participant"]) - set(before["scores"]["participant"])
    assert len(new_people) == 2
    fresh = after["scores"][after["scores"]["participant"].isin(new_people)]
    assert set(zip(fresh["instrument"], fresh["cohort"], fresh["wave"])) == {
        ("tic_knowledge", LAREDO, "pre")}
    # Equated knowledge scores are fitted on everyone's baseline answers, so two more people
    # move them program-wide; every other score stays as it was.
    def kept(scores: pd.DataFrame) -> pd.DataFrame:
        scores = scores[~scores["participant"].isin(new_people)]
        return scores[scores["scale"] != "equated_percent_correct"].reset_index(drop=True)

    pd.testing.assert_frame_equal(kept(after["scores"]), kept(before["scores"]),
                                  check_dtype=False)
    def others(table: pd.DataFrame, equated: bool = False) -> pd.DataFrame:
        rows = ~table["cohort"].isin([LAREDO, "ALL"]) & (
            (table["scale"] == "equated_percent_correct") == equated)
        # RCI columns use program-wide references, refreshed on every run.
        return table.loc[rows, [c for c in table.columns if not c.startswith("rci_")]
                         ].reset_index(drop=True)

    for name in ("reliability", "change"):  # the other cohorts' figures are the same...
        pd.testing.assert_frame_equal(others(after[name]), others(before[name]), obj=name)
    # ... but for their equated change, which follows the new equating lines.
    moved = others(after["change"], True)["mean_from"] - others(before["change"], True)["mean_from"]
    assert len(moved) and (moved.abs() > 1e-9).all()

    servers.kobo.fault = "down"
    third = evaluate_program(str(program))
    assert third["status"] == "no_new_data"
    assert len(third["problems"]) == 1
    assert third["problems"][0].startswith("pull of source conocimientos (KoboToolbox")
    assert f"uses its last snapshot {kobo_new}" in third["problems"][0]
    history = runs(program)
    assert list(history["status"]) == ["complete", "complete", "no_new_data"]
    assert list(history["problems"].fillna("")[:2]) == ["", ""]
    assert "pull of source conocimientos" in history["problems"].iloc[2]

    # Secrets: the tokens, the ODK password and every ODK session token the server gave out.
    secrets = [REDCAP_TOKEN, KOBO_TOKEN, ODK_PASSWORD, *servers.odk.issued]
    assert len(servers.odk.issued) == 3  # one login per run, each logged out
    assert servers.odk.sessions == set()
    database = prefect_database_text()
    assert "pull-conocimientos" in database and "new snapshot" in database  # logs are there
    places = {"outputs": folder_text(program / "outputs"), "inbox": folder_text(inbox),
              "prefect database": database, "logs": caplog.text,
              "summaries": json.dumps([first, second, third], default=str),
              "console": "".join(capsys.readouterr())}
    leaks = [(place, s[:4]) for place, text in places.items() for s in secrets if s in text]
    assert leaks == []


def test_a_token_from_a_prefect_secret_block(tmp_path, demo, servers, monkeypatch,  # noqa: F811
                                             prefect_harness):
    from prefect.blocks.system import Secret

    from pipelines.flows import pull_program

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    root = write_program(tmp_path / "program", demo, servers)
    config = (root / "program.yaml").read_text(encoding="utf-8")
    (root / "program.yaml").write_text(config.replace("token_env: TEST_KOBO_TOKEN",
                                                      "token_block: kobo-tic-token"))
    missing = {r.source: r for r in pull_program(str(root))}["conocimientos"]
    assert "no Prefect Secret block named 'kobo-tic-token'" in missing.problem
    Secret(value=KOBO_TOKEN).save("kobo-tic-token", overwrite=True)
    monkeypatch.delenv("TEST_KOBO_TOKEN")
    pulled = {r.source: r for r in pull_program(str(root))}["conocimientos"]
    assert pulled.status == "new" and pulled.rows == len(servers.kobo.submissions)
    assert KOBO_TOKEN not in prefect_database_text()  # Prefect keeps block values encrypted


def test_capacitar_pull_and_run_no_pull_from_the_command_line(program, servers):
    env = {**os.environ, **SECRETS, "PREFECT_HOME": str(program.parent / "prefect-home"),
           "CAPACITAR_CHROMIUM": "/nonexistent"}
    env.pop("PREFECT_API_URL", None)
    servers.redcap.token = "0" * 32  # the REDCap server no longer accepts our token
    pulled = capacitar("pull", str(program), env=env)
    assert pulled.returncode == 1, pulled.stderr
    lines = pulled.stdout.splitlines()
    assert any(line.startswith("estigma: new snapshot estigma_") and "(219 rows)" in line
               for line in lines)
    assert any(line.startswith("conocimientos: new snapshot") for line in lines)
    assert any("pull of source bienestar (REDCap" in line and "HTTP 403" in line for line in lines)
    assert "Traceback" not in pulled.stdout + pulled.stderr
    assert REDCAP_TOKEN not in pulled.stdout + pulled.stderr
    servers.kobo.hits.clear()
    offline = capacitar("run", str(program), "--no-pull", "--no-pdf", env=env)
    # no REDCap snapshot yet: completed with problems (exit 1), the problem listed first
    assert offline.returncode == 1 and "Traceback" not in offline.stderr
    assert servers.kobo.hits == []  # --no-pull: no request at all
    lines = offline.stdout.splitlines()
    problems = [line for line in lines if line.startswith("  - ")]
    assert any(line.startswith("Completed with problems (1)") for line in lines)
    assert len(problems) == 1 and "source bienestar: no file matches" in problems[0]
