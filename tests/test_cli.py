"""The command line: user mistakes give one clear message and no traceback."""

import subprocess
import sys

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
