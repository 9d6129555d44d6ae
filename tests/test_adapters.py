"""Every source kind, written as its tool writes it, ingests to the same canonical responses."""

import os

import pandas as pd
import pytest
import yaml

from instruments import load_builtin
from pipelines.config import load_program
from pipelines.ingest import ingest_program
from pipelines.ingest.pseudonym import normalise_identifier, pseudonym
from tests.export_fixtures import PEOPLE, WRITERS, answers

KEY = b"adapter-test-key-0123456789"
ITEM_IDS = [f"omshc_{i:02d}" for i in range(1, 16)]


def program(tmp_path, kind: str):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source, expected_rules = WRITERS[kind](inbox)
    config = {"name": "t", "cohorts": [{"id": "c1", "site": "Virú"}],
              "waves": [{"id": "pre", "order": 1}, {"id": "post", "order": 2}],
              "sources": [source]}
    (tmp_path / "program.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    return load_program(tmp_path / "program.yaml"), expected_rules


def expected_canonical() -> pd.DataFrame:
    rows = []
    for (p, wave), values in answers().items():
        who = pseudonym(normalise_identifier(PEOPLE[p][1]), KEY)  # pre email: matched at post
        rows.append({"participant": who, "wave": wave, **dict(zip(ITEM_IDS, map(float, values)))})
    return pd.DataFrame(rows).sort_values(["participant", "wave"]).reset_index(drop=True)


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_each_export_kind_gives_the_same_canonical_responses(tmp_path, kind):
    config, expected_rules = program(tmp_path, kind)
    result = ingest_program(config, {"omshc": load_builtin()["omshc"]}, KEY)
    assert result.problems == []
    got = result.responses["omshc"]
    assert (got["cohort"] == "c1").all() and (got["instrument"] == "omshc").all()
    got = got[["participant", "wave", *ITEM_IDS]].sort_values(["participant", "wave"])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected_canonical(),
                                  check_dtype=False)
    # Each tool's own noise is set aside with its rule, and every row is accounted for.
    assert result.rejected["rule"].value_counts().to_dict() == expected_rules
    accounting = result.accounting.iloc[0]
    assert accounting["rows_read"] == len(got) + accounting["rows_rejected_at_ingest"]


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_source_rows_point_at_the_file(tmp_path, kind):
    config, _ = program(tmp_path, kind)
    result = ingest_program(config, {"omshc": load_builtin()["omshc"]}, KEY)
    rows = result.responses["omshc"]["source_row"]
    first = {"xlsx": 3, "qualtrics": 4, "sav": 1, "dta": 1}.get(kind, 2)
    assert rows.min() == first and rows.is_unique


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_no_personal_data_survives_ingest(tmp_path, kind):
    config, _ = program(tmp_path, kind)
    result = ingest_program(config, {"omshc": load_builtin()["omshc"]}, KEY)
    text = result.responses["omshc"].to_csv() + result.rejected.to_csv()
    for name, pre, post, _ in PEOPLE:
        for secret in (name, pre.strip(), post, "190.12.34.56", "Ana Enumeradora", "tablet3"):
            assert secret.casefold() not in text.casefold()


def test_redcap_checkbox_and_repeating_instrument(tmp_path):
    from pipelines.ingest.adapters import combine_checkboxes

    table = pd.DataFrame({"k7___a": ["1", "0", "1"], "k7___c": ["1", "0", "0"], "x": ["", "", ""]})
    combined = combine_checkboxes(table, None)
    assert combined["k7"].tolist() == ["a;c", "", "a"] and "k7___a" not in combined


def test_link_file_is_written_outside_outputs_only_when_asked(tmp_path):
    from pipelines.stages import ingest, load_context

    config, _ = program(tmp_path, "csv")
    raw = yaml.safe_load((tmp_path / "program.yaml").read_text())
    raw["pseudonymisation"] = {"link_file": "secrets/link.csv"}
    (tmp_path / "program.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    os.environ["CAPACITAR_PSEUDONYM_KEY"] = KEY.decode()
    try:
        result = ingest(load_context(tmp_path))
    finally:
        del os.environ["CAPACITAR_PSEUDONYM_KEY"]
    link = pd.read_csv(tmp_path / "secrets" / "link.csv", dtype=str)
    assert set(link["participant"]) == set(result.responses["omshc"]["participant"])
    assert "maria.perez@minsa.gob.pe" in set(link["identifier"])
    assert (tmp_path / "secrets" / "link.csv").stat().st_mode & 0o077 == 0
    assert result.links is None


def test_link_file_inside_outputs_is_refused(tmp_path):
    from pipelines.errors import ConfigError

    config, _ = program(tmp_path, "csv")
    raw = yaml.safe_load((tmp_path / "program.yaml").read_text())
    raw["pseudonymisation"] = {"link_file": "outputs/link.csv"}
    (tmp_path / "program.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ConfigError, match="outside the output folder"):
        load_program(tmp_path / "program.yaml")


def test_person_seen_only_at_post_is_kept_and_reported_unmatched():
    from pipelines.cohort_analysis import participation_table

    scores = pd.DataFrame({"cohort": "c1", "instrument": "omshc", "scale": "total",
                           "participant": ["a", "b", "a", "b", "z"],
                           "wave": ["pre", "pre", "post", "post", "post"],
                           "score": [1.0, 2, 3, 4, 5]})
    table = participation_table(scores, "pre").set_index("wave")
    assert table.loc["post", "n"] == 3 and table.loc["post", "n_unmatched"] == 1
    assert table.loc["pre", "n_unmatched"] == 0 and table.loc["post", "n_matched_first_wave"] == 2


def test_every_output_of_a_run_over_all_export_kinds_is_free_of_personal_data(tmp_path):
    """All nine kinds in one program, run through every stage; then scan every output file."""
    from pipelines import run_records, stages

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sources = []
    for kind, writer in sorted(WRITERS.items()):
        folder = tmp_path / kind
        folder.mkdir()
        source, _ = writer(folder)
        for path in folder.iterdir():  # one file per kind in the shared inbox, unique names
            path.rename(inbox / f"{kind}__{path.name}")
        source["pattern"] = f"{kind}__{source['pattern']}"
        if source.get("dictionary"):
            source["dictionary"] = f"{kind}__{source['dictionary']}"
        sources.append(source)
    config = {"name": "t", "cohorts": [{"id": "c1", "site": "Virú"}],
              "waves": [{"id": "pre", "order": 1}, {"id": "post", "order": 2}],
              "sources": sources}
    (tmp_path / "program.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    os.environ["CAPACITAR_PSEUDONYM_KEY"] = KEY.decode()
    try:
        ctx = stages.load_context(tmp_path)
        ingested = stages.ingest(ctx)
        assert ingested.problems == []
        contracts = stages.validate(ctx, ingested)
        scores = stages.score(ctx, contracts)
        tables = stages.analyse(ctx, contracts, scores)
        tables.update(scores=scores, quarantine=contracts.quarantine,
                      validation_summary=contracts.summary,
                      accounting=stages.accounting_table(ingested, contracts))
        tables["runs"] = run_records.run_record(ctx, ingested, contracts, tables["accounting"])
        stages.export(ctx, tables)
        stages.report(ctx, tables)
    finally:
        del os.environ["CAPACITAR_PSEUDONYM_KEY"]
    assert tables["participation"]["n"].max() == len(PEOPLE)  # one person per pseudonym
    chunks = [p.read_bytes().decode("utf-8", errors="ignore")
              for p in (tmp_path / "outputs").rglob("*") if p.is_file()]
    text = "\n".join(chunks).casefold()
    assert len(chunks) > 20
    for name, pre, post, dni in PEOPLE:
        for secret in (name, name.split()[1], pre.strip(), post, dni, "190.12.34.56",
                       "Ana Enumeradora", "tablet3", "otra@x.pe", "preview@x.pe"):
            assert secret.casefold() not in text, secret


def test_missing_redcap_dictionary_is_one_message_and_other_files_go_on(tmp_path):
    config, _ = program(tmp_path, "redcap")
    (tmp_path / "inbox" / "redcap_dictionary.csv").unlink()
    result = ingest_program(config, {"omshc": load_builtin()["omshc"]}, KEY)
    assert len(result.problems) == 1
    assert "redcap_export.csv" in result.problems[0] and "data dictionary" in result.problems[0]


def test_redcap_dictionary_linked_from_outside_the_inbox_is_not_read(tmp_path):
    config, _ = program(tmp_path, "redcap")
    dictionary = tmp_path / "inbox" / "redcap_dictionary.csv"
    outside = tmp_path / "elsewhere.csv"
    dictionary.rename(outside)
    dictionary.symlink_to(outside)
    result = ingest_program(config, {"omshc": load_builtin()["omshc"]}, KEY)
    assert len(result.problems) == 1
    assert "outside the inbox is not read" in result.problems[0]
