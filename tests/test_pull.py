"""Pulls from REDCap, ODK Central and KoboToolbox (issue 23), against local stand-ins of the APIs.

The servers (tests/pull_servers.py) serve the demo program's answers in each tool's shape; the
pulled snapshots must ingest to the same canonical responses as the demo's hand exports.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from pipelines import stages
from pipelines.config import load_program
from pipelines.errors import ConfigError
from pipelines.pull import BadResponse, ServerDown, TokenRefused, pull_source
from pipelines.pull.snapshots import DATA, SUPERSEDED, current_snapshot
from tests.pull_servers import (
    KOBO_TOKEN,
    ODK_PASSWORD,
    REDCAP_TOKEN,
    KoboServer,
    OdkServer,
    RedcapServer,
    pull_program_yaml,
)

SECRETS = {"TEST_REDCAP_TOKEN": REDCAP_TOKEN, "TEST_ODK_PASSWORD": ODK_PASSWORD,
           "TEST_KOBO_TOKEN": KOBO_TOKEN}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from pipelines.demo import write_demo

    return write_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def servers(demo):
    inbox = demo / "inbox"
    running = SimpleNamespace(redcap=RedcapServer(inbox), odk=OdkServer(inbox),
                              kobo=KoboServer(inbox))
    yield running
    for server in vars(running).values():
        server.stop()


def write_program(root: Path, demo: Path, servers, **pull_settings) -> Path:
    (root / "inbox").mkdir(parents=True)
    shutil.copytree(demo / "secrets", root / "secrets")  # the demo's key: the same pseudonyms
    config = pull_program_yaml(servers.redcap, servers.odk, servers.kobo, **pull_settings)
    (root / "program.yaml").write_text(yaml.safe_dump(config, allow_unicode=True),
                                       encoding="utf-8")
    return root


@pytest.fixture
def program(tmp_path, demo, servers, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CAPACITAR_CHROMIUM", "/nonexistent")  # HTML reports only: faster
    monkeypatch.delenv("CAPACITAR_PSEUDONYM_KEY", raising=False)
    return write_program(tmp_path / "program", demo, servers)


def pull_all(root: Path) -> dict:
    ctx = stages.load_context(root)
    return {s.name: pull_source(ctx.config, s, ctx.instruments) for s in ctx.config.sources}


def inbox_files(root: Path) -> dict[str, bytes]:
    inbox = root / "inbox"
    return {str(p.relative_to(inbox)): p.read_bytes() for p in inbox.rglob("*") if p.is_file()}


def canonical(responses: pd.DataFrame, drop: tuple = ()) -> pd.DataFrame:
    """Responses without where they were read from, in one order (for comparing two inboxes)."""
    frame = responses.drop(columns=["source_file", "source_row", *drop])
    frame = frame.astype("string")
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


# --- what is fetched, and that it reads as the hand exports do ------------------------------
def test_pulled_snapshots_ingest_to_the_hand_exports_responses(program, demo, servers):
    results = pull_all(program)
    assert {n: r.status for n, r in results.items()} == dict.fromkeys(results, "new")
    assert results["bienestar"].rows == len(servers.redcap.records)
    pulled = stages.ingest(stages.load_context(program))
    hand = stages.ingest(stages.load_context(demo))
    assert pulled.problems == [] and hand.problems == []
    for instrument in ("proqol", "stss", "omshc", "tic_knowledge"):
        # The hand workbook has no submission time; Kobo's API gives _submission_time.
        drop = ("submitted_at",) if instrument == "tic_knowledge" else ()
        pd.testing.assert_frame_equal(canonical(pulled.responses[instrument], drop),
                                      canonical(hand.responses[instrument], drop),
                                      obj=instrument)
    # REDCap's rows keep their line numbers; its contact-log rows (a repeating instrument)
    # are set aside for proqol and stss, never read as answers.
    redcap = pulled.responses["proqol"]
    assert redcap["source_file"].eq(results["bienestar"].file).all()
    hand_rows = hand.responses["proqol"]["source_row"].sort_values().to_list()
    assert redcap["source_row"].sort_values().to_list() == hand_rows
    contacts = pulled.rejected[pulled.rejected["source_file"] == results["bienestar"].file]
    assert len(contacts) - len(hand.rejected[hand.rejected["source_file"].str.startswith(
        "redcap_")]) == 2 * 6


def test_what_each_snapshot_holds(program, servers):
    results = pull_all(program)
    inbox = program / "inbox"
    redcap = pd.read_csv(inbox / results["bienestar"].file, dtype=str, keep_default_na=False)
    assert list(redcap.columns[:4]) == ["record_id", "redcap_event_name",
                                        "redcap_repeat_instrument", "redcap_repeat_instance"]
    assert {"formacion_previa___1", "contactos_complete"} <= set(redcap.columns)
    assert redcap["redcap_repeat_instrument"].eq("contactos").sum() == 6
    stem = results["bienestar"].file.removesuffix(DATA)
    dictionary = pd.read_csv(inbox / f"{stem}.dictionary.csv", dtype=str, keep_default_na=False)
    assert "Primeros auxilios psicológicos" in dictionary.set_index("field_name").loc[
        "formacion_previa", "select_choices_or_calculations"]
    structure = (inbox / f"{stem}.project.json").read_text(encoding="utf-8")
    assert "Línea de base" in structure and "contactos" in structure
    odk = pd.read_csv(inbox / results["estigma"].file, dtype=str, keep_default_na=False)
    assert odk.columns[0] == "SubmissionDate" and odk.columns[-1] == "FormVersion"
    assert {"datos-correo", "estigma-oms15", "ReviewState", "KEY"} <= set(odk.columns)
    assert not any("familiares" in c or "meta-" not in c and "instanceID" in c
                   for c in odk.columns)
    assert set(odk["ReviewState"]) == {"", "approved"} and len(odk) == 219  # 6 pages of 40
    kobo = pd.read_csv(inbox / results["conocimientos"].file, dtype=str, keep_default_na=False)
    assert list(kobo.columns[:3]) == ["start", "end", "datos/momento"]
    assert "prueba/instrucciones" not in kobo.columns  # a note holds no data
    assert not any(c.startswith("capacitaciones") or c in ("_attachments", "_geolocation")
                   for c in kobo.columns)
    assert set(kobo["_validation_status"]) == {"", "validation_status_approved"}
    assert kobo["datos/cursos_previos"].str.contains("pap tic").any()
    for name in results.values():
        assert (inbox / name.file).stat().st_mode & 0o077 == 0  # personal data: owner only


def test_a_snapshot_is_written_only_when_the_content_changed(program, servers):
    first = pull_all(program)
    before = inbox_files(program)
    again = pull_all(program)
    assert {r.status for r in again.values()} == {"unchanged"}
    assert inbox_files(program) == before
    servers.kobo.add(dict(servers.kobo.submissions[0], _id=99_999))
    third = pull_all(program)
    assert third["conocimientos"].status == "new" and third["conocimientos"].rows == 220
    assert third["conocimientos"].file > first["conocimientos"].file  # later UTC time stamp
    inbox = program / "inbox"
    superseded = sorted(p.name for p in (inbox / SUPERSEDED).iterdir())
    assert superseded == [first["conocimientos"].file]  # kept as the audit trail, not read
    config = load_program(program)
    source = next(s for s in config.sources if s.name == "conocimientos")
    assert [p.name for p in inbox.glob(source.pattern)] == [third["conocimientos"].file]


def test_interrupted_pull_leftovers_are_tidied_and_never_read_twice(program, servers):
    from pipelines.pull.snapshots import STAGING, tidy

    first = pull_all(program)
    inbox = program / "inbox"
    stem = first["bienestar"].file.removesuffix(DATA)
    # A pull killed midway: a half-staged file, an older data file, a newer orphan dictionary.
    (inbox / STAGING / "bienestar").mkdir(parents=True)
    (inbox / STAGING / "bienestar" / "half.csv").write_text("record_id,correo\n1,")
    (inbox / "bienestar_20000101T000000Z.csv").write_text("old")
    orphan = inbox / "bienestar_29990101T000000Z.dictionary.csv"
    orphan.write_text("newer, without its data file")
    current = tidy(inbox, "bienestar")
    assert current[DATA].name == first["bienestar"].file
    assert sorted(p.name for p in inbox.glob("bienestar_*")) == sorted(
        f"{stem}{s}" for s in (".csv", ".dictionary.csv", ".project.json"))
    assert not (inbox / STAGING / "bienestar").exists()
    assert {p.name for p in (inbox / SUPERSEDED).iterdir()} == {
        "bienestar_20000101T000000Z.csv", orphan.name}


# --- faults --------------------------------------------------------------------------------
def test_wrong_token_is_one_message_naming_the_source_and_others_go_on(
        program, servers, monkeypatch, prefect_harness):
    from pipelines.flows import pull_program

    wrong = "FFFFEEEEDDDDCCCCBBBBAAAA99998888"
    monkeypatch.setenv("TEST_REDCAP_TOKEN", wrong)
    results = {r.source: r for r in pull_program(str(program))}
    refused = results["bienestar"]
    assert refused.status == "failed" and refused.file is None
    assert refused.problem.startswith("pull of source bienestar (REDCap at http://127.0.0.1:")
    assert "refused the token (HTTP 403)" in refused.problem
    assert wrong not in refused.problem and "\n" not in refused.problem
    assert servers.redcap.hits == ["POST /api/"]  # a refused token is not retried
    assert results["estigma"].status == results["conocimientos"].status == "new"


@pytest.mark.parametrize("fault, expected", [
    ("html", "web page (HTML"),
    ("truncated", "not valid JSON"),
])
@pytest.mark.parametrize("kind", ["redcap", "odk", "kobo"])
def test_an_answer_the_api_does_not_document_is_refused_and_nothing_written(
        program, servers, kind, fault, expected):
    pull_all(program)
    before = inbox_files(program)
    server = getattr(servers, kind)
    server.fault = fault
    name = {"redcap": "bienestar", "odk": "estigma", "kobo": "conocimientos"}[kind]
    ctx = stages.load_context(program)
    with pytest.raises(BadResponse, match=expected.replace("(", r"\(")):
        pull_source(ctx.config, next(s for s in ctx.config.sources if s.name == name),
                    ctx.instruments)
    assert inbox_files(program) == before


@pytest.mark.parametrize("kind", ["odk", "kobo"])
def test_fewer_submissions_than_the_server_counts_are_refused(program, servers, kind):
    getattr(servers, kind).fault = "short"
    ctx = stages.load_context(program)
    source = ctx.config.sources[{"odk": 1, "kobo": 2}[kind]]
    with pytest.raises(BadResponse, match=r"220 submissions \((@odata\.)?count\), got 219"):
        pull_source(ctx.config, source, ctx.instruments)
    assert inbox_files(program) == {}


def test_a_changed_field_list_is_refused_with_the_missing_columns(program, servers):
    from tests import pull_servers

    pull_all(program)
    before = inbox_files(program)
    servers.kobo.submissions = [{("prueba/P4b" if k == "prueba/P4" else k): v
                                 for k, v in s.items()} for s in servers.kobo.submissions]
    renamed = [dict(q, name="P4b") if q.get("name") == "P4" else q
               for q in pull_servers.KOBO_SURVEY]
    original, pull_servers.KOBO_SURVEY = pull_servers.KOBO_SURVEY, renamed
    try:
        ctx = stages.load_context(program)
        source = next(s for s in ctx.config.sources if s.name == "conocimientos")
        with pytest.raises(BadResponse, match=r"field list changed: P4 not in the answer"):
            pull_source(ctx.config, source, ctx.instruments)
    finally:
        pull_servers.KOBO_SURVEY = original
    assert inbox_files(program) == before


def test_records_that_disagree_with_their_dictionary_are_refused(program, servers):
    servers.redcap.metadata = [f for f in servers.redcap.metadata
                               if f["field_name"] != "stss_17"]
    ctx = stages.load_context(program)
    with pytest.raises(BadResponse, match="not in the dictionary: stss_17"):
        pull_source(ctx.config, ctx.config.sources[0], ctx.instruments)
    assert inbox_files(program) == {}


@pytest.mark.parametrize("fault", ["down", "drop", "hang"])
def test_a_server_down_or_slow_is_a_retryable_failure(program, servers, fault, monkeypatch):
    config = yaml.safe_load((program / "program.yaml").read_text(encoding="utf-8"))
    config["sources"][1]["pull"]["timeout"] = 0.5
    (program / "program.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    servers.odk.fault = fault
    ctx = stages.load_context(program)
    with pytest.raises(ServerDown):
        pull_source(ctx.config, ctx.config.sources[1], ctx.instruments)
    assert inbox_files(program) == {}


def test_down_server_is_retried_with_back_off_then_the_last_snapshot_is_used(
        program, servers, prefect_harness):
    from pipelines.flows import pull_program

    first = {r.source: r for r in pull_program(str(program))}
    servers.kobo.fault = "down"
    servers.kobo.hits.clear()
    second = {r.source: r for r in pull_program(str(program))}
    failed = second["conocimientos"]
    assert failed.status == "failed" and failed.file == first["conocimientos"].file
    assert servers.kobo.hits == ["GET /api/v2/assets/aTicKnowledge2026LaLib/"] * 3  # 1 + 2 retries
    assert "HTTP 503 (3 attempts)" in failed.problem
    assert f"this run uses its last snapshot {first['conocimientos'].file}" in failed.problem
    assert second["bienestar"].status == second["estigma"].status == "unchanged"


def test_missing_token_variable_is_a_clear_problem(program, monkeypatch):
    monkeypatch.delenv("TEST_KOBO_TOKEN")
    ctx = stages.load_context(program)
    with pytest.raises(TokenRefused, match="environment variable TEST_KOBO_TOKEN"):
        pull_source(ctx.config, ctx.config.sources[2], ctx.instruments)


@pytest.mark.parametrize("pull_part, message", [
    ({"token": KOBO_TOKEN}, "token: never write a token"),
    ({"token_env": KOBO_TOKEN}, "token_env: never write a token"),
    ({"token_env": "X", "password": ODK_PASSWORD}, "password: never write"),
    ({"token_env": "X", "url": f"https://u:{ODK_PASSWORD}@odk.example.org"}, "no credentials"),
    ({"token_env": "X", "token_block": "kobo"}, "exactly one of token_env"),
    ({"token_env": "X", "url": "https://redcap.example.org/"}, "ends in /api/"),
])
def test_a_token_in_program_yaml_is_refused_without_repeating_it(tmp_path, pull_part, message):
    pull = {"kind": "redcap", "url": "https://redcap.example.org/api/", **pull_part}
    config = {"name": "t", "cohorts": [{"id": "c1", "site": "Virú"}],
              "waves": [{"id": "pre", "order": 1}],
              "sources": [{"name": "s", "identifier": ["correo"], "cohort": {"column": "sede"},
                           "wave": {"value": "pre"}, "instruments": {"stss": {"items": "s{n}"}},
                           "pull": pull}]}
    (tmp_path / "program.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as error:
        load_program(tmp_path)
    assert message in str(error.value)
    assert KOBO_TOKEN not in str(error.value) and ODK_PASSWORD not in str(error.value)


def test_a_pulled_source_reads_its_own_snapshots_only(tmp_path):
    config = {"name": "t", "cohorts": [{"id": "c1", "site": "Virú"}],
              "waves": [{"id": "pre", "order": 1}],
              "sources": [{"name": "kobo_tic", "identifier": ["correo"],
                           "cohort": {"column": "sede"}, "wave": {"value": "pre"},
                           "instruments": {"stss": {"items": "s{n}"}},
                           "pull": {"kind": "kobo", "url": "https://kf.kobotoolbox.org",
                                    "asset": "aX", "token_env": "KOBO_TOKEN"}}]}
    (tmp_path / "program.yaml").write_text(yaml.safe_dump(config))
    source = load_program(tmp_path).sources[0]
    assert (source.pattern, source.format) == ("kobo_tic_????????T??????Z.csv", "kobo")
    config["sources"].append({**config["sources"][0], "name": "hand", "pattern": "*.csv",
                              "pull": None})
    del config["sources"][1]["pull"]
    (tmp_path / "program.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="pattern of source hand also matches the snapshots"):
        load_program(tmp_path)


def test_odk_review_state_and_kobo_validation_reach_the_quarantine(program, servers):
    servers.odk.submissions[5]["__system"]["reviewState"] = "rejected"
    servers.kobo.submissions[7]["_validation_status"] = {
        "uid": "validation_status_not_approved", "label": "Not Approved",
        "by_whom": "evaluadora", "timestamp": 1772470000}
    pull_all(program)
    rejected = stages.ingest(stages.load_context(program)).rejected
    assert (rejected["rule"] == "odk_rejected").sum() == 1
    assert (rejected["rule"] == "kobo_not_approved").sum() == 1


def test_current_snapshot_is_none_before_the_first_pull(tmp_path):
    assert current_snapshot(tmp_path, "x") is None
