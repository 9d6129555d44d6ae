"""Small program folders for tests."""

from pathlib import Path

import yaml


def small_program(tmp_path: Path, files: dict[str, str], **settings) -> Path:
    """A one-cohort program reading STSS CSVs; files: name -> CSV text."""
    (tmp_path / "inbox").mkdir()
    for name, text in files.items():
        (tmp_path / "inbox" / name).write_text(text, encoding="utf-8")
    config = {
        "name": "t", "cohorts": [{"id": "c1", "site": "Virú"}],
        "waves": [{"id": "pre", "order": 1}, {"id": "post", "order": 2}],
        "sources": [{
            "name": "s", "pattern": "stss_*.csv", "identifier": ["email"], "pii": ["name"],
            "cohort": {"column": "sede"}, "wave": {"filename": r"stss_([a-z]+)"},
            "instruments": {"stss": {"items": "s{n}"}},
        }],
    }
    config.update(settings)
    (tmp_path / "program.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    return tmp_path


def stss_csv(rows: list[tuple], site: str = "VIRU") -> str:
    """STSS answers; a row is (name, email, answers) or (name, email, answers, site)."""
    header = "name,email,sede," + ",".join(f"s{n}" for n in range(1, 18))
    lines = [f"{r[0]},{r[1]},{r[3] if len(r) > 3 else site}," + ",".join(r[2]) for r in rows]
    return "\n".join([header, *lines]) + "\n"
