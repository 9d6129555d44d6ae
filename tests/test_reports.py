"""Reports of the demo program: languages, PDF, a real browser, and small-cell suppression."""

import re
import shutil
import subprocess

import pytest

from reports.render import number

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI has it)")
SMALL_COHORT = "laredo-2026-1"  # 4 people


def reports_dir(demo_run):
    return demo_run["root"] / "outputs" / "reports"


def test_every_cohort_and_the_program_in_both_languages(demo_run):
    names = {p.name for p in reports_dir(demo_run).iterdir()}
    cohorts = ["porvenir-2026-1", "alto-trujillo-2026-1", "florencia-2026-1", "viru-2026-1",
               SMALL_COHORT]
    for lang in ("es", "en"):
        assert f"program_{lang}.html" in names
        for cohort in cohorts:
            assert f"cohort_{cohort}_{lang}.html" in names
    if CHROMIUM:
        assert len([n for n in names if n.endswith(".pdf")]) == 2 * (len(cohorts) + 1)


def test_number_formats_follow_the_language(demo_run):
    es = (reports_dir(demo_run) / "cohort_alto-trujillo-2026-1_es.html").read_text("utf-8")
    en = (reports_dir(demo_run) / "cohort_alto-trujillo-2026-1_en.html").read_text("utf-8")
    change = demo_run["tables"]["change"]
    row = change[(change["cohort"] == "alto-trujillo-2026-1") & (change["scale"] == "total")
                 & (change["instrument"] == "omshc") & (change["to_wave"] == "post")].iloc[0]
    assert number(row["mean_from"], "es") in es and number(row["mean_from"], "en") in en
    assert "Lo principal" in es and "Headlines" in en


@needs_chromium
def test_headless_chromium_renders_the_report_without_console_errors(demo_run):
    page = reports_dir(demo_run) / "cohort_alto-trujillo-2026-1_es.html"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    dom = done.stdout
    change = demo_run["tables"]["change"]
    knowledge = change[(change["cohort"] == "alto-trujillo-2026-1")
                       & (change["scale"] == "equated_percent_correct")
                       & (change["to_wave"] == "post")].iloc[0]
    # The headline: knowledge from x% to y%, k of n improved reliably.
    assert f"{number(knowledge['mean_from'], 'es')}% a {number(knowledge['mean_to'], 'es')}%" in dom
    assert f"{int(knowledge['rci_improved'])} de {int(knowledge['n_pairs'])} personas" in dom
    assert dom.count("<svg") >= 2  # means and RCI bars drawn inline


@needs_chromium
@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
def test_pdf_pages_convert_to_png(demo_run, tmp_path):
    for n, name in enumerate(("program_en.pdf", "cohort_alto-trujillo-2026-1_es.pdf")):
        pdf = reports_dir(demo_run) / name
        done = subprocess.run(["pdftoppm", "-png", "-r", "50", str(pdf), str(tmp_path / f"p{n}")],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        pages = sorted(tmp_path.glob(f"p{n}-*.png"))
        assert len(pages) >= 2 and pages[0].stat().st_size > 5000  # a first page with content


def visible_text(html: str) -> str:
    """Page text without the methods appendix and footer (definitions hold constants)."""
    html = html.split('<h2>Métodos</h2>')[0].split("<h2>Methods</h2>")[0]
    html = re.sub(r"<svg.*?</svg>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


@pytest.mark.parametrize("lang", ["es", "en"])
def test_a_four_person_cohort_shows_no_mean_percentage_or_count(demo_run, lang):
    tables = demo_run["tables"]
    parts = tables["participation"]
    assert parts[parts["cohort"] == SMALL_COHORT]["n"].max() < 5
    text = visible_text((reports_dir(demo_run) / f"cohort_{SMALL_COHORT}_{lang}.html")
                        .read_text("utf-8"))
    program = visible_text((reports_dir(demo_run) / f"program_{lang}.html").read_text("utf-8"))
    secrets, public = set(), set()
    for table, columns in (("change", ["mean_from", "mean_to", "mean_diff", "d_z"]),
                           ("wave_means", ["mean", "ci_low", "ci_high"]),
                           ("reliability", ["alpha"])):
        rows = tables[table][tables[table]["cohort"] == SMALL_COHORT]
        pooled = tables[table][tables[table]["cohort"] == "ALL"]  # shown beside, legitimately
        for column in columns:
            for digits in (1, 2):
                public |= {number(v, lang, digits) for v in pooled[column].dropna()}
                for value in rows[column].dropna():
                    formatted = number(value, lang, digits)
                    if len(formatted.strip("-0,.")) >= 2:  # skip values like 0,0 seen anywhere
                        secrets.add(formatted)
    secrets -= public
    assert secrets
    leaked = sorted(s for s in secrets if re.search(rf"(?<![\d.,]){re.escape(s)}(?![\d])", text))
    assert leaked == []
    # No count of its people: every number cell of its participation table is suppressed.
    html = (reports_dir(demo_run) / f"cohort_{SMALL_COHORT}_{lang}.html").read_text("utf-8")
    section = html.split("Participa")[1].split("<h2>")[0]
    cells = re.findall(r'<td class="num">(.*?)</td>', section)
    assert cells and set(cells) == {"—"}
    # The program report lists the cohort as hidden, never its figures.
    row = program.split("Laredo")[2].split("\n")[0]  # its row in "cohorts side by side"
    assert "oculto" in row or "hidden" in row
    assert not re.search(r"\d", re.sub(r"\(&lt; \d+\)", "", row))


def test_report_command_rerenders_from_stored_tables(demo_run):
    from typer.testing import CliRunner

    from pipelines.cli import app

    page = reports_dir(demo_run) / "program_en.html"
    page.unlink()
    result = CliRunner().invoke(app, ["report", str(demo_run["root"]), "--no-pdf"])
    assert result.exit_code == 0, result.output
    assert page.exists() and "Cohorts side by side" in page.read_text("utf-8")


def test_report_command_without_a_previous_run_is_one_message(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.demo import write_demo

    root = write_demo(tmp_path / "demo")
    result = CliRunner().invoke(app, ["report", str(root), "--no-pdf"])
    assert result.exit_code == 2 and "run `capacitar run" in result.output
    assert "Traceback" not in result.output
