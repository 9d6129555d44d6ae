"""Paths and keys that cannot leak or escape (issue 17): program.yaml, keys, publication.

No Prefect here: config loading, key loading and the publication of outputs as
plain functions; the runs that use them are in test_runs.py and test_faults.py.
"""

import json
import os
from pathlib import Path

import pytest
import yaml

from pipelines.config import load_program
from pipelines.errors import ConfigError, SourceError
from pipelines.incremental import inbox_problems
from pipelines.ingest.pseudonym import key_identity, load_key, write_new_key
from pipelines.preflight import check_headers, check_instruments, csv_header
from pipelines.publish import (
    JOURNAL,
    MARKER,
    NotOurs,
    Publication,
    clean_stale,
    recover,
    tighten,
)
from tests.helpers import small_program, stss_csv

ROWS = [("Ana", "ana@x.pe", ["3"] * 17)]


@pytest.fixture
def root(tmp_path):
    program = tmp_path / "program"
    program.mkdir()
    return small_program(program, {"stss_pre.csv": stss_csv(ROWS)})


def edit(root: Path, change) -> Path:
    config = yaml.safe_load((root / "program.yaml").read_text())
    change(config)
    (root / "program.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    return root


def source(**fields):
    return lambda config: config["sources"][0].update(fields)


def top(**fields):
    return lambda config: config.update(fields)


def pseudo(**fields):
    return lambda config: config.setdefault("pseudonymisation", {}).update(fields)


OUTSIDE = "/tmp/capacitar-outside-the-program"
MISTAKES = {  # program.yaml mistake -> what the one-line message must say
    "template with another field": (source(instruments={"stss": {"items": "s{i}"}}),
                                    "may use only {n}"),
    "template not closed": (source(instruments={"stss": {"items": "s{n"}}), "e.g. 's{n}'"),
    "template without {n}": (source(instruments={"stss": {"items": "s"}}), "may use only {n}"),
    "header row beyond any export": (source(header_row=1000000), "less than or equal to 100"),
    "two-character delimiter": (source(delimiter=";;"), "give one character"),
    "negative sheet": (source(sheet=-1), "counting from 0"),
    "unknown encoding": (source(encoding="utf-9"), "unknown encoding"),
    "pattern going up": (source(pattern="../secrets/*"), "inside the inbox"),
    "pattern walking the disk": (source(pattern="../../../../**/*.csv"), "inside the inbox"),
    "absolute pattern": (source(pattern="/etc/*"), "inside the inbox"),
    "dictionary going up": (source(dictionary="../dict.csv"), "inside the inbox"),
    "output is the program folder": (top(output="."), "is the program folder itself"),
    "output is the root of the disk": (top(output="/"), "outside the program folder"),
    "inbox outside": (top(inbox="../../../../etc"), "outside the program folder"),
    "output inside the inbox": (top(output="inbox/out"), "overlaps the inbox"),
    "inbox inside the output": (top(output="data", inbox="data/inbox"), "overlaps the inbox"),
    "link file into the outputs": (pseudo(link_file="x/../outputs/links.csv"),
                                   "inside the output folder"),
    "absolute link file into the outputs": (pseudo(link_file="{root}/outputs/links.csv"),
                                            "inside the output folder"),
    "key in the inbox": (pseudo(key_file="inbox/key.txt"), "inside the inbox folder"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_each_mistake_in_program_yaml_is_one_clear_line(root, mistake):
    change, said = MISTAKES[mistake]

    def apply(config):
        change(config)
        for block in (config, config.get("pseudonymisation", {})):
            for field, value in block.items():
                if isinstance(value, str) and "{root}" in value:
                    block[field] = value.format(root=root)
    edit(root, apply)
    with pytest.raises(ConfigError) as error:
        load_program(root)
    message = str(error.value)
    assert said in message and "\n" not in message, message
    assert str(root / "program.yaml") in message


def test_the_same_program_without_the_mistakes_loads(root):
    config = load_program(edit(root, source(instruments={"stss": {"items": "s{n:d}"}},
                                            delimiter=";", sheet="Hoja 1", pattern="**/*.csv")))
    assert config.output_dir == root / "outputs"


def test_a_link_out_of_the_program_folder_is_followed_and_refused(root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "outputs").symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="outside the program folder"):
        load_program(root)


def test_an_inbox_link_leading_outside_is_not_read_and_is_reported(root, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text(stss_csv([("Eve", "eve@x.pe", ["1"] * 17)]))
    (root / "inbox" / "stss_post.csv").symlink_to(secret)
    (root / "inbox" / "notas.txt").write_text("llamar a Ana")
    (root / "inbox" / ".DS_Store").write_text("")
    config = load_program(root)
    assert [p.name for p in config.source_paths("stss_*.csv")] == ["stss_pre.csv"]
    problems = inbox_problems(config)
    assert len(problems) == 2
    assert problems[0].startswith("stss_post.csv: matches 'stss_*.csv' but leads outside")
    assert problems[1].startswith("notas.txt: in the inbox but no source pattern matches it")


# --- keys ------------------------------------------------------------------------------
def test_the_environment_key_has_the_same_minimum_as_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "a")
    with pytest.raises(ConfigError, match=r"CAPACITAR_PSEUDONYM_KEY: .* too short \(1 char"):
        load_key(tmp_path / "none.key")
    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 16)
    assert load_key(tmp_path / "none.key") == b"k" * 16
    monkeypatch.delenv("CAPACITAR_PSEUDONYM_KEY")
    short = tmp_path / "short.key"
    short.write_text("k" * 15)
    short.chmod(0o600)
    with pytest.raises(ConfigError, match="too short"):
        load_key(short)


def test_a_key_file_others_can_read_is_refused_with_the_chmod_to_run(tmp_path, monkeypatch):
    monkeypatch.delenv("CAPACITAR_PSEUDONYM_KEY", raising=False)
    key = tmp_path / "secrets" / "pseudonym.key"
    write_new_key(key)
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(load_key(key)) == 64
    key.chmod(0o644)
    with pytest.raises(ConfigError) as error:
        load_key(key)
    assert f"chmod 600 {key}" in str(error.value) and "mode 644" in str(error.value)
    with pytest.raises(ConfigError, match="is a folder"):
        load_key(key.parent)


def test_the_key_identity_tells_keys_apart_without_showing_them():
    one, other = key_identity(b"k" * 32), key_identity(b"j" * 32)
    assert one != other and len(one) == 16 and "kkkk" not in one
    assert one == key_identity(b"k" * 32)


def test_the_key_identity_is_part_of_the_run_fingerprint(root):
    from instruments import load_builtin

    from pipelines.incremental import plan_run

    config = load_program(root)
    one = plan_run(config, load_builtin(), "v", key_identity(b"k" * 32))
    other = plan_run(config, load_builtin(), "v", key_identity(b"j" * 32))
    assert one.fingerprint != other.fingerprint and one.key_id != other.key_id


# --- preflight -----------------------------------------------------------------------
def test_an_unknown_instrument_id_is_found_before_the_run(root):
    from instruments import load_builtin

    config = load_program(edit(root, source(instruments={"stsss": {"items": "s{n}"}})))
    with pytest.raises(ConfigError, match=r"unknown instrument 'stsss' \(did you mean 'stss'\?\)"):
        check_instruments(config, load_builtin())


def test_a_column_in_no_file_is_found_before_the_run_with_the_file_columns(root):
    from instruments import load_builtin

    config = load_program(edit(root, source(identifier=["emial"])))
    with pytest.raises(ConfigError) as error:
        check_headers(config, load_builtin())
    message = str(error.value)
    assert "column 'emial' is not in its file (did you mean 'email'?)" in message
    assert "stss_pre.csv has: name, email, sede, s1, s2" in message
    (root / "inbox" / "stss_post.csv").write_text(stss_csv(ROWS).replace("email", "emial"))
    check_headers(load_program(root), load_builtin())  # in some files: the run skips the others


def test_the_header_check_reads_only_the_header(tmp_path):
    path = tmp_path / "big.csv"
    lines = "nombre;correo;P1\n" + "Núñez;n@x.pe;3\n" * 5000  # 75 kB
    path.write_bytes(lines.encode("cp1252") + b"\x00" * 1_000_000)  # read, it would be refused
    assert csv_header(path) == ["nombre", "correo", "P1"]
    path.write_bytes(b"<html><body>Sign in</body></html>")
    with pytest.raises(SourceError):  # the run skips it with its own message
        csv_header(path)


# --- publication -------------------------------------------------------------------------
def published(out: Path, run_id: str, text: str, state: bool = True) -> Publication:
    pub = Publication(out, run_id)
    staging = pub.folder("tables")
    (staging / "scores.csv").write_text(text)
    pub.file("codebook.md", lambda p: p.write_text(text))
    pub.swap()
    if state:
        (out / "state.json").write_text(json.dumps({"run_id": run_id}))
        pub.commit()
    return pub


def snapshot(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def test_a_publication_cut_before_its_state_is_rolled_back_at_the_next_run(tmp_path):
    out = tmp_path / "outputs"
    published(out, "run1", "first")
    before = snapshot(out)
    published(out, "run2", "second", state=False)  # killed after the swap, before the state
    assert (out / "tables" / "scores.csv").read_text() == "second"
    assert recover(out) == "rolled back"
    assert snapshot(out) == before and not (out / JOURNAL).exists()
    published(out, "run3", "third", state=False)
    (out / "state.json").write_text(json.dumps({"run_id": "run3"}))  # killed after the state
    assert recover(out) == "committed"
    assert (out / "codebook.md").read_text() == "third"
    assert not list(out.glob(".*.previous")) and recover(out) is None


def test_a_failed_publication_undoes_its_swap_at_once(tmp_path):
    out = tmp_path / "outputs"
    published(out, "run1", "first")
    before = snapshot(out)
    published(out, "run2", "second", state=False).abandon()
    assert snapshot(out) == before


def test_folders_capacitar_did_not_make_are_never_replaced(tmp_path):
    out = tmp_path / "outputs"
    (out / "tables").mkdir(parents=True)
    (out / "tables" / "mine.xlsx").write_text("the user's own")
    with pytest.raises(NotOurs, match="was not made by capacitar"):
        Publication(out, "run1").folder("tables")
    assert (out / "tables" / "mine.xlsx").read_text() == "the user's own"
    assert not [p for p in out.iterdir() if "staging" in p.name]
    (out / "codebook.md").write_text("the user's notes")
    with pytest.raises(NotOurs):
        Publication(out, "run1").file("codebook.md", lambda p: p.write_text("x"))


def test_stale_leftovers_of_dead_runs_go_and_nothing_else(tmp_path):
    out = tmp_path / "outputs"
    published(out, "run1", "first")
    dead = out / ".tables.staging-abc123"
    dead.mkdir()
    (dead / MARKER).write_text("{}")
    (dead / "scores.csv").write_text("half")
    (out / ".reports.staging-x1").mkdir()  # empty: killed before its marker
    (out / ".state.json.ab12cd34.tmp").write_text("{")
    foreign = out / ".tables.staging-notmine"
    foreign.mkdir()
    (foreign / "data.csv").write_text("someone else's")
    assert sorted(clean_stale(out)) == [".reports.staging-x1", ".state.json.ab12cd34.tmp",
                                        ".tables.staging-abc123"]
    assert (foreign / "data.csv").exists()


def test_outputs_are_made_owner_only(tmp_path):
    out = tmp_path / "outputs"
    (out / "tables").mkdir(parents=True)
    (out / "warehouse.duckdb").write_text("x")
    os.chmod(out / "warehouse.duckdb", 0o644)
    os.chmod(out / "tables", 0o755)
    tighten(out)
    assert (out / "warehouse.duckdb").stat().st_mode & 0o777 == 0o600
    assert (out / "tables").stat().st_mode & 0o777 == 0o700
