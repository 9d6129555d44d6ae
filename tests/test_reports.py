"""Reports of the demo program: languages, PDF, a real browser, and small-cell suppression."""

import re
import shutil
from html import unescape
import subprocess

import numpy as np
import pandas as pd
import pytest

from reports.pdf import chromium
from reports.i18n import number

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
    text = re.sub(r"<[^>]+>", "", dom)
    assert f"{number(knowledge['mean_from'], 'es')}% a {number(knowledge['mean_to'], 'es')}%" in text
    assert f"{int(knowledge['rci_improved'])} de {int(knowledge['n_pairs'])} personas" in text
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
def test_a_four_person_cohort_gets_one_page_without_a_figure(demo_run, lang):
    tables = demo_run["tables"]
    parts = tables["participation"]
    assert parts[parts["cohort"] == SMALL_COHORT]["n"].max() < 5
    html = (reports_dir(demo_run) / f"cohort_{SMALL_COHORT}_{lang}.html").read_text("utf-8")
    body = unescape(visible_text(html.split("<h2>", 1)[1].split("<footer>")[0]))
    assert "<table" not in html and "data-k" not in html and "<svg" not in html
    assert set(re.findall(r"\d+", body)) == {"5"}  # only "fewer than 5 people"
    assert 'href="program_' in html
    # The program report lists the cohort as hidden, never its figures.
    program = (reports_dir(demo_run) / f"program_{lang}.html").read_text("utf-8")
    for grid in program.split('class="sortable grid')[1:]:
        row = grid.split(">Laredo</a>")[1].split("</tr>")[0]
        assert ("oculto" in row or "hidden" in row) and "data-k" not in row
        assert not re.search(r"\d", re.sub(r"\(&lt; \d+\)", "", visible_text(row)))


def test_report_command_rerenders_from_stored_tables(demo_run):
    from typer.testing import CliRunner

    from pipelines.cli import app

    page = reports_dir(demo_run) / "program_en.html"
    before = {p.name: p.read_text("utf-8") for p in reports_dir(demo_run).glob("*_en.html")}
    page.unlink()
    result = CliRunner().invoke(app, ["report", str(demo_run["root"]), "--no-pdf"])
    assert result.exit_code == 0, result.output
    assert page.exists() and "Cohorts side by side" in page.read_text("utf-8")
    # From the stored tables, the same pages as the run's (data quality and run included), so
    # their PDFs are reused.
    assert {p.name: p.read_text("utf-8") for p in reports_dir(demo_run).glob("*_en.html")} == before


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
    svg = plots.means_panel(panel, {"cohort": "This cohort", "program": "Whole program"})
    circles = [(float(x), float(y)) for x, y in re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)" '
                                                           r'r="4.5"', svg)]
    assert len(circles) == 2  # the missing wave is not drawn
    (x1, y1), (x2, y2) = circles
    assert x2 > x1 and y2 < y1  # later wave to the right, higher mean higher up
    squares = [(float(x) + 4, float(y) + 4) for x, y in re.findall(
        rf'<rect x="([\d.]+)" y="([\d.]+)" width="8" height="8" fill="{plots.GREY}"', svg)]
    assert len(squares) == 3
    ys = [y for _, y in squares]
    # y is linear in the mean: (12 -> 15) and (15 -> 14) keep their ratio of -3.
    assert (ys[1] - ys[0]) / (ys[2] - ys[1]) == pytest.approx(-3, rel=0.05)
    assert "<title>Scale</title>" in svg and "Pre, This cohort: 10.0 (8.0–12.0)" in svg
    # At a wave both series show, the cohort's point sits clear of the program's.
    program_x = [x for x, _ in squares]
    assert x1 - program_x[0] >= 2 * 4.5 + 4 and x2 - program_x[2] >= 2 * 4.5 + 4


def test_chart_numbers_follow_the_language():
    from reports import plots
    from reports.i18n import number

    panel = {"title": "S", "waves": ["a", "b"], "cohort": [(2.5, 2.25, 2.75), None],
             "program": [None, None]}
    labels = {"cohort": "c", "program": "p"}
    es = plots.means_panel(panel, labels, lambda v, d: number(v, "es", d))
    en = plots.means_panel(panel, labels, lambda v, d: number(v, "en", d))
    es_ticks = re.findall(r'text-anchor="end">([^<]+)<', es)
    en_ticks = re.findall(r'text-anchor="end">([^<]+)<', en)
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
    from reports.render import report_pages
    from reports.view import FOREST_EXTREMES

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
    figures = re.findall(r"<figure[^>]*>(.*?)</figure>", forests, flags=re.S)
    assert figures
    for figure in figures:
        assert figure.count("<svg") == 2  # every cohort (unnamed), then the extremes (named)
        extremes = re.findall(r"<desc>([^<]*)</desc>", figure)[1]  # the second chart's rows
        named = re.findall(r"(?:^|; )([^;:]+ \d): ", unescape(extremes))
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


# --- verdicts are read, never decided, by the reports --------------------------------------------

TRUE_ZERO = {("proqol", "burnout"), ("proqol", "compassion_satisfaction"),
             ("proqol", "secondary_traumatic_stress"), ("stss", "total"), ("stss", "intrusion"),
             ("stss", "avoidance"), ("stss", "arousal")}


def test_the_demos_flat_scales_get_no_improved_or_worse_verdict(demo_run):
    """truth.json: burnout, compassion satisfaction and secondary traumatic stress do not
    change. The old rule (the unadjusted 95% CI) said "got worse" on four rows of the shown
    cohorts; the verdict rule says no clear change on every one of them."""
    effects = demo_run["truth"]["true_effects_sd_units"]
    assert all(v == 0 for t in ("burnout", "compassion", "sts") for v in effects[t].values())
    change = demo_run["tables"]["change"]
    zero = np.array([(i, s) in TRUE_ZERO for i, s in zip(change["instrument"], change["scale"])])
    flat = change[zero & (change["n_pairs"] >= 5).to_numpy()]
    worse = np.where(flat["improvement"] == "lower", flat["ci_low"] > 0, flat["ci_high"] < 0)
    assert worse.sum() == 4  # what the old rule printed as "empeoró" / "got worse"
    assert set(flat["verdict"]) <= {"no_clear_change", "not_estimable"}
    florencia = change[(change["cohort"] == "florencia-2026-1")
                       & (change["scale"] == "disclosure_help_seeking")
                       & (change["to_wave"] == "post")].iloc[0]
    assert florencia["ci_high"] < 0 and florencia["verdict"] == "no_clear_change"
    for lang, word in (("es", "empeoró"), ("en", "got worse")):
        for page in reports_dir(demo_run).glob(f"cohort_*_{lang}.html"):
            html = page.read_text("utf-8")
            cells = re.findall(r'<td class="(\w+)">([^<]*)</td>', html)
            assert not [c for c in cells if c[0] == "worsened" or word in c[1]]
            assert 'class="worsened"' not in html


def headlines(html: str) -> list[tuple[str, str]]:
    return [(kind, re.sub(r"<[^>]+>", "", text))
            for kind, text in re.findall(r'<li class="(\w+)">(.*?)</li>', html)]


def test_a_report_prints_the_verdict_of_the_analysis_and_nothing_else(demo_run):
    from pipelines import stages
    from reports.render import report_pages

    ctx = stages.load_context(demo_run["root"])
    tables = dict(demo_run["tables"])
    change = tables["change"].copy()
    row = (change["cohort"] == "alto-trujillo-2026-1") & (change["scale"] == "total") & (
        change["instrument"] == "omshc") & (change["to_wave"] == "post")
    change["verdict"] = "no_clear_change"
    change.loc[row, "verdict"] = "worsened"  # whatever the figures say
    tables["change"] = change
    pages = report_pages(tables, ctx.config, ctx.instruments)
    for lang, better, worse in (("es", "mejoró", "empeoró"), ("en", "improved", "got worse")):
        found = headlines(pages[f"cohort_alto-trujillo-2026-1_{lang}.html"])
        assert [k for k, _ in found if k == "worsened"] == ["worsened"]
        for kind, text in found:
            assert (worse in text) == (kind == "worsened")
            assert better not in text
        for name, html in pages.items():
            if name.startswith("cohort_") and name.endswith(f"_{lang}.html"):
                assert "improved" not in {k for k, _ in headlines(html)}


def test_chart_text_stays_readable_on_a_400_px_phone(demo_run):
    """Every chart's smallest text, at the size a 400 px wide screen draws the chart (its
    natural width, or the 368 px left by the page's padding), is 11 px or more."""
    column = 400 - 2 * 16
    for page in reports_dir(demo_run).glob("*.html"):
        for svg in re.findall(r"<svg[^>]*>.*?</svg>", page.read_text("utf-8"), flags=re.S):
            width = float(re.search(r'width="([\d.]+)"', svg).group(1))
            sizes = [float(f) for f in re.findall(r'font-size="([\d.]+)"', svg)]
            assert sizes and min(sizes) * min(1.0, column / width) >= 11, (page.name, width)


def test_the_pdf_has_page_numbers_and_a_running_header(demo_run):
    html = (reports_dir(demo_run) / "program_es.html").read_text("utf-8")
    page_rule = html.split("@page")[1].split("</style>")[0]
    assert "@top-left" in page_rule and "counter(page)" in page_rule
    assert "counter(pages)" in page_rule
    run = demo_run["tables"]["runs"].iloc[0]
    assert run["run_id"] in html and str(run["code_version"]) in html


def test_a_program_name_cannot_break_out_of_the_running_header(demo_run):
    from pipelines import stages
    from reports.render import report_pages

    ctx = stages.load_context(demo_run["root"])
    name = 'Prog "x" </style><script>alert(1)</script> \\ é'
    config = ctx.config.model_copy(update={"name": name})
    html = report_pages(demo_run["tables"], config, ctx.instruments)["program_es.html"]
    style = html.split("<style>")[1].split("</style>")[0]
    assert "<script>" not in html.split("</style>")[0] and "alert(1)" not in style
    assert "<script>alert" not in html  # escaped in the page body too
    assert html.count("</style>") == 1


def test_a_single_wave_program_runs_end_to_end(prefect_harness, tmp_path):
    """A post-only survey (one wave, the demo's stigma sheet after training): reliability,
    items and reports, no change sections."""
    import yaml

    from pipelines.demo import write_demo
    from pipelines.flows import evaluate_program

    root = write_demo(tmp_path / "demo")
    spec = yaml.safe_load((root / "program.yaml").read_text(encoding="utf-8"))
    spec["waves"] = [{"id": "post", "order": 1, "label": {"es": "Después", "en": "After"}}]
    source = next(s for s in spec["sources"] if s["name"] == "estigma_excel")
    source["pattern"] = "estigma_OMSHC_post.csv"
    source["wave"] = {"value": "post"}
    spec["sources"] = [source]
    (root / "program.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    summary = evaluate_program(str(root), pdf=False)
    assert summary.get("status") != "failed" and summary["report"].endswith("program_es.html")
    tables = {p.stem: pd.read_parquet(p) for p in (root / "outputs" / "tables").glob("*.parquet")}
    assert tables["change"].empty and len(tables["reliability"]) > 0 and len(tables["items"]) > 0
    program = (root / "outputs" / "reports" / "program_en.html").read_text("utf-8")
    cohort = (root / "outputs" / "reports" / "cohort_porvenir-2026-1_en.html").read_text("utf-8")
    for html in (program, cohort):
        assert "single wave" in html and "Change between waves" not in html
        assert "Reliability" in html and "Participation" in html
