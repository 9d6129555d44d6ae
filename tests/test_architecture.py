"""The import rules of ARCHITECTURE.md, checked on the source (nothing is imported or run)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# folder (a package, or a module) -> packages it must never import, and why (ARCHITECTURE.md)
FORBIDDEN = {
    "pipelines/analysis": (["prefect", "pipelines.ingest", "pipelines.stages", "pipelines.flows",
                            "reports", "data_contracts", "duckdb"],
                           "the statistics are plain numpy/pandas, usable from a notebook"),
    "reports": (["prefect", "pipelines.flows", "pipelines.stages", "pipelines.ingest",
                 "pipelines.serve", "data_contracts.checkpoints", "great_expectations"],
                "reports read result tables; they never run stages or the flow"),
    "pipelines/ingest": (["prefect", "pipelines.analysis", "pipelines.stages", "pipelines.flows",
                          "reports", "data_contracts"],
                         "ingest turns files into canonical responses and knows nothing after"),
    "instruments": (["prefect", "pipelines.analysis", "pipelines.ingest", "pipelines.stages",
                     "pipelines.flows", "reports", "data_contracts"],
                    "instrument definitions stand alone"),
    "data_contracts": (["prefect", "pipelines.analysis", "pipelines.stages", "pipelines.flows",
                        "reports"], "contracts split rows before any statistic"),
    "pipelines/stages.py": (["prefect"], "the stages are plain functions; only the flow "
                                         "and serving use Prefect"),
    "pipelines/cohort_analysis.py": (["prefect", "reports"], "plain functions, no Prefect"),
    "pipelines/parallel.py": (["pipelines.analysis", "pipelines.stages", "pandas", "prefect"],
                              "the concurrency seam knows nothing of what it runs"),
}


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names), wherever the import statement is."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def broken_rules(folder: str, forbidden: list[str]) -> list[str]:
    target = ROOT / folder
    files = [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))
    assert files, f"{folder}: no Python files (was it moved? update ARCHITECTURE.md)"
    return [f"{path.relative_to(ROOT)} imports {name}" for path in files
            for name in sorted(imported(path))
            if any(name == banned or name.startswith(banned + ".") for banned in forbidden)]


@pytest.mark.parametrize("folder", list(FORBIDDEN))
def test_each_folder_imports_only_what_architecture_md_allows(folder):
    forbidden, why = FORBIDDEN[folder]
    assert broken_rules(folder, forbidden) == [], why


def test_the_rules_catch_a_forbidden_import(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("def f():\n    from prefect import flow\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert broken_rules("pkg", ["prefect"]) == ["pkg/a.py imports prefect",
                                                "pkg/a.py imports prefect.flow"]


def test_architecture_md_names_every_folder_with_rules():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert all(f"`{folder}" in text for folder in FORBIDDEN)
