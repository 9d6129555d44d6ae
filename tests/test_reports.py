"""Reports of the demo program: languages, PDF, a real browser, and small-cell suppression."""

import re
import shutil
import subprocess

import pandas as pd
import pytest

from reports.pdf import chromium
from reports.render import number

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI has it)")
PRINTS_PDF = chromium() is not None  # what the report stage uses ($CAPACITAR_CHROMIUM first)
needs_pdfs = pytest.mark.skipif(not PRINTS_PDF, reason="no Chromium for printing PDFs")
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
    if PRINTS_PDF:
        assert len([n for n in names if n.endswith(".pdf")]) == 2 * (len(cohorts) + 1)


def test_number_formats_follow_the_language(demo_run):
    es = (reports_dir(demo_run) / "cohort_alto-trujillo-2026-1_es.html").read_text("utf-8")
    en = (reports_dir(demo_run) / "cohort_alto-trujillo-2026-1_en.html").read_text("utf-8")
    change = demo_run["tables"]["change"]
    row = change[(change["cohort"] == "alto-trujillo-2026-1") & (change["scale"] == "total")
                 & (change["instrument"] == "omshc") & (change["to_wave"] == "post")].iloc[0]
    assert number(row["mean_from"], "es") in es and number(row["mean_from"], "en") in en
    assert "Lo principal" in es and "Headlines" in en


def rendered_dom(page) -> tuple[str, list[str]]:
    """The page's DOM after headless Chromium ran its scripts, and its console errors."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    return done.stdout, console


@needs_chromium
def test_headless_chromium_renders_the_report_without_console_errors(demo_run):
    page = reports_dir(demo_run) / "cohort_alto-trujillo-2026-1_es.html"
    dom, console = rendered_dom(page)
    assert console == []
    change = demo_run["tables"]["change"]
    knowledge = change[(change["cohort"] == "alto-trujillo-2026-1")
                       & (change["scale"] == "equated_percent_correct")
                       & (change["to_wave"] == "post")].iloc[0]
    # The headline: knowledge from x% to y%, k of n improved reliably.
    assert f"{number(knowledge['mean_from'], 'es')}% a {number(knowledge['mean_to'], 'es')}%" in dom
    assert f"{int(knowledge['rci_improved'])} de {int(knowledge['n_pairs'])} personas" in dom
    assert dom.count("<svg") >= 2  # means and RCI bars drawn inline


@needs_pdfs
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


# --- the SVG charts (drawn without a plotting library) ----------------------------------------

def bar_segments(svg: str, fill: str) -> list[dict]:
    """Attributes of the bars' segments of one colour (legend swatches have no white edge)."""
    return [dict(re.findall(r'([\w-]+)="([^"]*)"', rect))
            for rect in re.findall(r"<rect [^>]*/>", svg)
            if f'fill="{fill}"' in rect and 'stroke="white"' in rect]


def test_stacked_bar_segments_are_proportional_to_the_counts():
    from reports import plots

    counts = [{"improved": 12, "no_change": 24, "deteriorated": 6},
              {"improved": 30, "no_change": 10, "deteriorated": 0}]
    svg = plots.rci_bars([{"title": "A", "counts": counts[0]}, {"title": "B", "counts": counts[1]}],
                         {"improved": "up", "no_change": "same", "deteriorated": "down"})
    assert svg.startswith("<svg") and svg.count("<svg") == 1 and svg.endswith("</svg>")
    full = None
    for key, colour in (("improved", plots.GREEN), ("no_change", plots.LIGHT),
                        ("deteriorated", plots.VERMILLION)):
        rects = bar_segments(svg, colour)
        widths = [float(r["width"]) for r in rects]
        drawn = [c for c in counts if c[key]]  # zero counts draw nothing
        assert len(widths) == len(drawn)
        for width, c in zip(widths, drawn):
            share = c[key] / sum(c.values())
            full = full or width / share
            assert width == pytest.approx(share * full, abs=0.15)
    assert ">12<" in svg and ">24<" in svg and ">6<" in svg  # counts printed in the segments


def test_means_points_follow_the_means_and_whiskers_the_intervals():
    from reports import plots

    panel = {"title": "Scale", "waves": ["Pre", "Post", "Follow-up"],
             "cohort": [(10.0, 8.0, 12.0), None, (20.0, 17.0, 23.0)],
             "program": [(12.0, 11.0, 13.0), (15.0, 14.0, 16.0), (14.0, 13.0, 15.0)]}
    svg = plots.means_panels([panel], {"cohort": "This cohort", "program": "Whole program"})
    circles = [(float(x), float(y)) for x, y in re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)" '
                                                           r'r="4.5"', svg)]
    assert len(circles) == 2  # the missing wave is not drawn
    (x1, y1), (x2, y2) = circles
    assert x2 > x1 and y2 < y1  # later wave to the right, higher mean higher up
    squares = [(float(x) + 4, float(y) + 4) for x, y in re.findall(
        rf'<rect x="([\d.]+)" y="([\d.]+)" width="8" height="8" fill="{plots.GREY}"', svg)]
    assert len(squares) == 4  # 3 points + legend
    ys = [y for _, y in squares[1:]]
    # y is linear in the mean: (12 -> 15) and (15 -> 14) keep their ratio of -3.
    assert (ys[1] - ys[0]) / (ys[2] - ys[1]) == pytest.approx(-3, rel=0.05)
    assert "<title>Scale</title>" in svg and "Pre, This cohort: 10.0 (8.0–12.0)" in svg


def test_chart_numbers_follow_the_language():
    from reports import plots
    from reports.render import number

    panel = {"title": "S", "waves": ["a", "b"], "cohort": [(2.5, 2.25, 2.75), None],
             "program": [None, None]}
    labels = {"cohort": "c", "program": "p"}
    es = plots.means_panels([panel], labels, lambda v, d: number(v, "es", d))
    en = plots.means_panels([panel], labels, lambda v, d: number(v, "en", d))
    es_ticks = re.findall(r'text-anchor="end" fill="#1b1b1b">([^<]+)<', es)
    en_ticks = re.findall(r'text-anchor="end" fill="#1b1b1b">([^<]+)<', en)
    assert es_ticks and [t.replace(",", ".") for t in es_ticks] == en_ticks
    assert any("," in t for t in es_ticks) and not any("," in t for t in en_ticks)
    assert "2,5 (2,2–2,8)" in es or "2,5 (2,3–2,8)" in es
    rows = [{"title": "x", "d": 0.25, "low": -0.5, "high": 1.0, "n": 20}]
    forest = plots.forest(rows, None, "t", "d_z", lambda v, d: number(v, "es", d))
    assert "0,25 (-0,50; 1,00)" in forest or "0,25 (−0,50; 1,00)" in forest


def test_a_suppressed_cohort_page_draws_no_chart(demo_run):
    for lang in ("es", "en"):
        html = (reports_dir(demo_run) / f"cohort_{SMALL_COHORT}_{lang}.html").read_text("utf-8")
        assert "<svg" not in html
        big = (reports_dir(demo_run) / f"cohort_alto-trujillo-2026-1_{lang}.html").read_text(
            "utf-8")
        for svg in re.findall(r"<svg.*?</svg>", big, flags=re.S):
            assert re.search(r"<title>[^<]+</title><desc>[^<]+</desc>", svg)  # accessible
            assert "laredo" not in svg.lower()


def many_cohorts(demo_run, copies: int):
    """The demo's tables and config with each cohort repeated ``copies`` times (new ids)."""
    from pipelines import stages

    ctx = stages.load_context(demo_run["root"])
    config = ctx.config
    cohorts, tables = [], {}
    for k in range(copies):
        for c in config.cohorts:
            cohorts.append(c.model_copy(update={"id": f"{c.id}-{k}", "site": f"{c.site} {k}"}))
    for name, table in demo_run["tables"].items():
        if "cohort" not in table.columns:
            tables[name] = table
            continue
        parts = [table[table["cohort"] == "ALL"]]
        for k in range(copies):
            part = table[table["cohort"] != "ALL"].copy()
            part["cohort"] = part["cohort"] + f"-{k}"
            parts.append(part)
        tables[name] = pd.concat(parts, ignore_index=True)
    return tables, config.model_copy(update={"cohorts": cohorts}), ctx.instruments


def test_a_program_of_many_cohorts_gets_a_readable_program_report(demo_run):
    from reports.render import FOREST_EXTREMES, report_pages

    tables, config, instruments = many_cohorts(demo_run, 10)  # 50 cohorts, 10 of 4 people
    pages = report_pages(tables, config, instruments)
    assert len([n for n in pages if n.startswith("cohort_")]) == 2 * 50
    program = pages["program_en.html"]
    # The side-by-side table has a row per cohort linking to its page, and verdict counts.
    grid = program.split('class="sortable grid')[1].split("</table>")[0]
    assert grid.count("<tr>") == 51
    assert grid.count('href="cohort_') == 50
    assert "How many cohorts improved" in program
    # Forests: a caterpillar of every shown cohort and a forest naming only the extremes.
    forests = program.split("Effect size per cohort")[1].split("<h2>")[0]
    figures = re.findall(r"<figure>(.*?)</figure>", forests, flags=re.S)
    assert figures
    for figure in figures:
        assert figure.count("<svg") == 2  # every cohort (unnamed), then the extremes (named)
        named = re.findall(r">([^<>]+ \d) \(n \d+\)</text>", figure)
        assert len(named) == len(set(named)) == 2 * FOREST_EXTREMES
        assert "more cohorts" in figure
        assert not any("Laredo" in site for site in named)  # 4 people: never in a forest
    small = [c for c in config.cohorts if c.site.startswith("Laredo")]
    for c in small:
        row = grid.split(f">{c.site}</a>")[1].split("</tr>")[0]
        assert "hidden" in row and not re.search(r">[^<]*\d[^<]*<", row.replace("(&lt; 5)", ""))
        assert "<svg" not in pages[f"cohort_{c.id}_en.html"]


@needs_chromium
def test_the_program_report_sorts_in_a_browser_without_errors(demo_run, tmp_path):
    from reports.render import report_pages

    tables, config, instruments = many_cohorts(demo_run, 8)
    page = tmp_path / "program_en.html"
    script = ('<script>document.querySelectorAll("table.grid th button")[1].click();'
              'document.querySelectorAll("table.grid th button")[1].click();</script></body>')
    page.write_text(report_pages(tables, config, instruments)["program_en.html"]
                    .replace("</body>", script), encoding="utf-8")
    dom, errors = rendered_dom(page)
    assert errors == []
    grid = dom.split('class="sortable grid')[1].split("</tbody>")[0]
    first_column = [float(v) for v in re.findall(
        r'<tr><td><a [^>]*>[^<]*</a></td><td [^>]*data-sort="(-?[\d.]+)"', grid)]
    # Clicked twice: descending.
    assert len(first_column) > 8 and first_column == sorted(first_column, reverse=True)
