"""The command line: user mistakes give one clear message and no traceback."""

import subprocess
import sys

import pytest

from tests.helpers import small_program, stss_csv


def capacitar(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def test_instruments_list_and_show():
    listed = capacitar("instruments", "list")
    assert listed.returncode == 0 and "proqol" in listed.stdout and "tic_knowledge" in listed.stdout
    shown = capacitar("instruments", "show", "proqol", "--language", "es")
    assert "Stamm" in shown.stdout and "proqol_01, proqol_04, proqol_15" in shown.stdout
    missing = capacitar("instruments", "show", "nope")
    assert missing.returncode == 2 and "no instrument 'nope'" in missing.stderr


def test_broken_program_yaml_is_one_message(tmp_path):
    root = small_program(tmp_path, {"stss_pre.csv": stss_csv([("A", "a@x.pe", ["3"] * 17)])})
    (root / "program.yaml").write_text((root / "program.yaml").read_text().replace(
        "waves:", "wavez:"))
    result = capacitar("run", str(root))
    assert result.returncode == 2
    assert "program.yaml" in result.stderr and "waves" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_key_is_one_message(tmp_path):
    root = small_program(tmp_path, {"stss_pre.csv": stss_csv([("A", "a@x.pe", ["3"] * 17)])})
    env = {k: v for k, v in __import__("os").environ.items() if k != "CAPACITAR_PSEUDONYM_KEY"}
    result = capacitar("validate", str(root), env=env)
    assert result.returncode == 2 and "capacitar keygen" in result.stderr
    assert "Traceback" not in result.stderr


USAGE_MISTAKES = {  # arguments -> what the one line must say
    ("rn",): "No such command 'rn'. Did you mean 'run'?",
    ("run",): "Missing argument",
    ("run", "somewhere", "--forse"): "--force",
    ("demo", "x", "--no-pfd"): "--no-pdf",
    ("status", "a", "b"): "unexpected extra argument",
}


@pytest.mark.parametrize("args", list(USAGE_MISTAKES))
def test_every_usage_mistake_is_one_line_and_status_2(args, capsys):
    from pipelines.cli import main

    with pytest.raises(SystemExit) as stop:
        main(list(args))
    said = capsys.readouterr()
    assert stop.value.code == 2
    lines = said.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert USAGE_MISTAKES[args].casefold() in lines[0].casefold()
    assert "Traceback" not in said.out + said.err


def test_capacitar_alone_prints_help_and_version_is_known():
    alone = capacitar()
    assert alone.returncode == 0 and "Usage: capacitar" in alone.stdout
    assert "run" in alone.stdout and "Traceback" not in alone.stdout + alone.stderr
    version = capacitar("--version")
    assert version.returncode == 0 and version.stdout.startswith("capacitar ")


def test_messages_are_plain_text_brackets_included(capsys):
    from pipelines.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["instruments", "show", "capacitar[dask]"])
    assert stop.value.code == 2
    assert "no instrument 'capacitar[dask]'" in capsys.readouterr().err


def test_config_mistakes_are_one_line_before_anything_runs(tmp_path, capsys):
    from pipelines.cli import main

    root = small_program(tmp_path, {"stss_pre.csv": stss_csv([("A", "a@x.pe", ["3"] * 17)])},
                         output=".")
    for command in ("run", "validate", "report"):
        with pytest.raises(SystemExit) as stop:
            main([command, str(root)])
        said = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and len(said) == 1
        assert "output '.' is the program folder itself" in said[0]
    assert sorted(p.name for p in root.iterdir()) == ["inbox", "program.yaml"]


def test_a_misspelled_column_stops_validate_with_the_file_columns(tmp_path, capsys, monkeypatch):
    from pipelines.cli import main

    monkeypatch.setenv("CAPACITAR_PSEUDONYM_KEY", "k" * 32)
    rows = [("A", "a@x.pe", ["3"] * 17)]
    root = small_program(tmp_path, {"stss_pre.csv": stss_csv(rows)},
                         sources=[{"name": "s", "pattern": "stss_*.csv", "identifier": ["correo"],
                                   "cohort": {"column": "sede"},
                                   "wave": {"filename": r"stss_([a-z]+)"},
                                   "instruments": {"stss": {"items": "s{n}"}}}])
    with pytest.raises(SystemExit) as stop:
        main(["validate", str(root)])
    said = capsys.readouterr().err
    assert stop.value.code == 2 and "column 'correo' is not in its file" in said
    assert "stss_pre.csv has: name, email, sede, s1" in said


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    from pipelines.cli import main

    (tmp_path / "thesis.docx").write_text("months of work")
    with pytest.raises(SystemExit) as stop:
        main(["demo", str(tmp_path)])
    assert stop.value.code == 2 and "is not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.docx"]
