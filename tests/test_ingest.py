"""Reading raw exports: encodings, delimiters, labels, pseudonyms, clear errors, accounting."""

import pandas as pd
import pytest
import yaml
from instruments import load_builtin
from pipelines.config import load_program
from pipelines.errors import ConfigError, SourceError
from pipelines.ingest import ingest_program
from pipelines.ingest.pseudonym import load_key, normalise_identifier, pseudonym
from pipelines.ingest.readers import read_table
from tests.helpers import small_program, stss_csv

KEY = b"0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "encoding, sep",
    [("utf-8", ","), ("utf-8-sig", ","), ("cp1252", ";"), ("latin-1", "\t"), ("utf-8", ";")],
)
def test_csv_encodings_and_delimiters(tmp_path, encoding, sep):
    text = sep.join(["Nombre", "Sede", "q1"]) + "\n" + sep.join(["José Núñez", "Virú", "3"]) + "\n"
    path = tmp_path / "x.csv"
    path.write_bytes(text.encode(encoding))
    frame = read_table(path, "csv")
    assert frame.to_dict("records") == [{"Nombre": "José Núñez", "Sede": "Virú", "q1": "3"}]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"<!DOCTYPE html><html><body>login</body></html>", "web page"),
    ],
)
def test_unreadable_csv_gives_clear_message(tmp_path, content, message):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=message):
        read_table(path, "csv")


def test_xlsx_header_row_and_missing_sheet(tmp_path):
    path = tmp_path / "x.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"id": ["a@x.pe"], "q1": [4]}).to_excel(writer, sheet_name="Datos",
                                                             index=False, startrow=1)
    frame = read_table(path, "xlsx", sheet="Datos", header_row=2)
    assert frame.to_dict("records") == [{"id": "a@x.pe", "q1": "4"}]
    with pytest.raises(SourceError, match="no sheet named 'Hoja1'"):
        read_table(path, "xlsx", sheet="Hoja1")


def test_identifier_normalisation_matches_retyped_email():
    a = pseudonym(normalise_identifier("María.Pérez@X.pe "), KEY)
    b = pseudonym(normalise_identifier("maria.perez@x.pe"), KEY)
    assert a == b and a.startswith("P") and "maria" not in a
    assert pseudonym("maria.perez@x.pe", b"another key of 32 bytes........") != a


def test_missing_key_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("CAPACITAR_PSEUDONYM_KEY", raising=False)
    with pytest.raises(ConfigError, match="capacitar keygen"):
        load_key(tmp_path / "none.key")
    created = load_key(tmp_path / "demo.key", create_if_missing=True)
    assert len(created) == 64 and (tmp_path / "demo.key").stat().st_mode & 0o077 == 0


def test_labels_map_to_codes_and_every_row_is_accounted(tmp_path):
    answers = ["Nunca", "rara vez", "OCASIONALMENTE", "A menudo", "muy a menudo"] + ["3"] * 12
    bad = ["x"] + ["3"] * 16
    root = small_program(tmp_path, {"stss_pre.csv": stss_csv([
        ("Ana Pérez", "ana@x.pe", answers), ("Luis Díaz", "luis@x.pe", bad),
        ("Sin correo", "", ["3"] * 17)])})
    result = ingest_program(load_program(root), load_builtin(), KEY)
    frame = result.responses["stss"]
    assert frame[[f"stss_{n:02d}" for n in range(1, 6)]].iloc[0].tolist() == [1, 2, 3, 4, 5]
    assert frame["cohort"].tolist() == ["c1", "c1"]  # site name matched without accent/case
    # The unreadable answer is one missing cell; the row without identifier is set aside whole.
    assert pd.isna(frame["stss_01"].iloc[1]) and frame["stss_02"].iloc[1] == 3
    rejected = result.rejected.set_index("rule")
    assert rejected.loc["unreadable_answer", ["scope", "column", "value"]].tolist() == [
        "cell", "stss_01", "x"]
    assert rejected.loc["missing_identifier", "scope"] == "row"
    rows = result.rejected["scope"].eq("row").sum()
    assert result.accounting["rows_in"].sum() == len(frame) + rows == 3
    assert "name" not in frame.columns and "email" not in frame.columns


def test_a_bad_file_is_skipped_with_a_message_and_others_go_on(tmp_path):
    good = stss_csv([("Ana", "ana@x.pe", ["3"] * 17)])
    missing_column = good.replace(",s17", ",zz")
    root = small_program(tmp_path, {"stss_pre.csv": good, "stss_post.csv": missing_column})
    result = ingest_program(load_program(root), load_builtin(), KEY)
    assert len(result.responses["stss"]) == 1
    assert len(result.problems) == 1
    assert "stss_post.csv" in result.problems[0] and "s17" in result.problems[0]
    assert result.inputs.set_index("source_file").loc["stss_post.csv", "status"] == "skipped"


def test_program_yaml_errors_name_the_field(tmp_path):
    root = small_program(tmp_path, {})
    config = yaml.safe_load((root / "program.yaml").read_text())
    config["sources"][0]["wave"] = {"column": "x", "value": "y"}
    (root / "program.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="sources.0.wave"):
        load_program(root)


def test_two_processes_read_the_inbox_as_one_does(tmp_path, monkeypatch):
    """A big inbox is shared between this process and forked ones: same result, same order."""
    import pipelines.ingest.core as core

    files = {f"stss_{wave}_{i}.csv": stss_csv([(f"P{i}{j}", f"p{i}{j}@x.pe",
                                                [str(1 + (i + j + k) % 5) for k in range(17)])
                                               for j in range(4 + i)])
             for i in range(5) for wave in ("pre", "post")}
    files["stss_pre_9.csv"] = files["stss_pre_0.csv"].replace(",s17", ",zz")  # skipped
    root = small_program(tmp_path, files)
    one = ingest_program(load_program(root), load_builtin(), KEY)
    monkeypatch.setattr(core, "PARALLEL_BYTES", 0)
    monkeypatch.setenv("CAPACITAR_WORKERS", "3")
    forked = []
    real = core.Shared
    monkeypatch.setattr(core, "Shared", lambda *a: forked.append(1) or real(*a))
    two = ingest_program(load_program(root), load_builtin(), KEY)
    assert forked  # the parallel path ran
    pd.testing.assert_frame_equal(one.responses["stss"], two.responses["stss"])
    for part in ("rejected", "accounting", "inputs"):
        pd.testing.assert_frame_equal(getattr(one, part), getattr(two, part))
    assert one.problems == two.problems and len(one.problems) == 1
    assert len(one.inputs) == 11 and one.inputs["source_file"].is_monotonic_increasing


def test_an_error_while_reading_stops_the_forked_reader(tmp_path, monkeypatch):
    import psutil

    import pipelines.ingest.core as core

    files = {f"stss_pre_{i}.csv": stss_csv([(f"P{i}", f"p{i}@x.pe", ["3"] * 17)]) for i in range(4)}
    root = small_program(tmp_path, files)
    monkeypatch.setattr(core, "PARALLEL_BYTES", 0)
    monkeypatch.setenv("CAPACITAR_WORKERS", "2")
    parent = __import__("os").getpid()

    def slow_or_broken(source, path, *args):
        if __import__("os").getpid() != parent:
            __import__("time").sleep(60)  # the forked reader: still busy
        raise RuntimeError("simulated bug while reading")

    monkeypatch.setattr(core, "ingest_file", slow_or_broken)
    forked, real = [], core.Shared

    def recorded(*args):
        shared = real(*args)
        forked.extend(child._proc.pid for child in shared._children)
        return shared

    monkeypatch.setattr(core, "Shared", recorded)
    with pytest.raises(RuntimeError, match="simulated bug"):
        ingest_program(load_program(root), load_builtin(), KEY)
    assert len(forked) == 1 and not psutil.pid_exists(forked[0])  # stopped and reaped
