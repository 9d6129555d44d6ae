"""PDF printing (issue 22): one browser for every page, and no browser left behind."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from contextlib import nullcontext
from pathlib import Path

import pytest

from reports import pdf
from tests.test_faults import survivors

REPO = Path(__file__).resolve().parent.parent
needs_chromium = pytest.mark.skipif(pdf.chromium() is None, reason="no Chromium here")


def page(path: Path, marker: str, paragraphs: int = 60) -> Path:
    body = "".join(f"<p>{marker} paragraph {i}: {'text ' * 40}</p>" for i in range(paragraphs))
    path.write_text(f"<!doctype html><html><head><style>@page {{ size: A4; margin: 18mm 14mm; }}"
                    f"</style></head><body><h1>{marker}</h1>{body}</body></html>",
                    encoding="utf-8")
    return path


def pdf_pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    return int(next(line.split()[1] for line in info.stdout.splitlines()
                    if line.startswith("Pages:")))


def pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


@needs_chromium
def test_every_page_is_printed_by_one_browser(tmp_path, monkeypatch):
    binary = pdf.chromium()
    launched = []
    real_popen = subprocess.Popen

    class Counting(real_popen):
        def __init__(self, args, *rest, **options):
            if binary in [str(a) for a in args]:
                launched.append(args)
            super().__init__(args, *rest, **options)

    monkeypatch.setattr(subprocess, "Popen", Counting)
    pages = [page(tmp_path / f"report_{i}.html", f"Report{i}", paragraphs=20 * (i + 1))
             for i in range(5)]
    printed, message = pdf.print_all(pages)
    assert message == "" and len(launched) == 1
    assert printed == [p.with_suffix(".pdf") for p in pages]
    counts = [pdf_pages(p) for p in printed]
    assert counts == sorted(counts) and counts[0] < counts[-1]  # each page its own document
    for i, printed_pdf in enumerate(printed):
        assert f"Report{i} paragraph" in pdf_text(printed_pdf)
        assert f"Report{i + 1} paragraph" not in pdf_text(printed_pdf)


def test_no_browser_means_a_message_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPACITAR_CHROMIUM", str(tmp_path / "no-such-browser"))
    printed, message = pdf.print_all([page(tmp_path / "a.html", "A")])
    assert printed == [] and "no Chromium" in message


@needs_chromium
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_run_leaves_no_browser_running(tmp_path):
    pages = [str(page(tmp_path / f"p{i}.html", f"P{i}", paragraphs=400)) for i in range(40)]
    script = textwrap.dedent(f"""
        import threading, time, psutil
        from pathlib import Path
        from reports.pdf import print_all

        def tell():  # once the browser prints, the pids of everything this process started
            me = psutil.Process()
            while not any("chrom" in p.name() for p in me.children(recursive=True)):
                time.sleep(0.1)
            time.sleep(1)
            print(*[p.pid for p in me.children(recursive=True)], flush=True)

        threading.Thread(target=tell, daemon=True).start()
        print_all([Path(p) for p in {pages!r}])
    """)
    env = {**os.environ, "CAPACITAR_NO_PROGRESS": "1"}
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, text=True)
    children = [int(pid) for pid in parent.stdout.readline().split()]
    assert children, "the printer started no process"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert survivors(children) == []


def test_a_page_is_reprinted_exactly_when_its_html_changed(tmp_path, monkeypatch):
    """Second and third runs of the report stage: an unchanged page keeps its PDF (the very
    file), a changed or new page is printed, a page gone takes its PDF with it."""
    from reports import render

    printed_now: list[str] = []

    class FakePrinting(pdf.Skipped):
        def done(self):
            for html in self.added:
                html.with_suffix(".pdf").write_text(f"PDF of {html.read_text('utf-8')}", "utf-8")
                printed_now.append(html.name)
            return [html.with_suffix(".pdf") for html in self.added]

    def run(pages: dict[str, str]) -> render.Rendered:
        printed_now.clear()
        monkeypatch.setattr(render, "page_stream", lambda *args: iter(pages.items()))
        return render.render_report_folder({}, None, None, folder)

    monkeypatch.setattr(render, "printer", lambda: nullcontext(FakePrinting("")))
    folder = tmp_path / "outputs" / "reports"
    folder.parent.mkdir()
    first = {"program_en.html": "<p>program 1</p>", "cohort_a_en.html": "<p>a 1</p>",
             "cohort_b_en.html": "<p>b 1</p>", "index_en.html": "<p>program 1</p>"}
    done = run(first)
    assert sorted(printed_now) == ["cohort_a_en.html", "cohort_b_en.html", "program_en.html"]
    assert (done.printed, done.reused) == (3, 0)
    kept_before = (folder / "cohort_a_en.pdf").stat()

    second = {**first, "program_en.html": "<p>program 2</p>", "cohort_b_en.html": "<p>b 2</p>",
              "index_en.html": "<p>program 2</p>"}
    done = run(second)
    assert sorted(printed_now) == ["cohort_b_en.html", "program_en.html"]
    assert (done.printed, done.reused) == (2, 1)
    kept = (folder / "cohort_a_en.pdf").stat()
    assert (kept.st_ino, kept.st_mtime_ns) == (kept_before.st_ino, kept_before.st_mtime_ns)
    assert (folder / "cohort_b_en.pdf").read_text("utf-8") == "PDF of <p>b 2</p>"

    third = {name: page for name, page in second.items() if name != "cohort_b_en.html"}
    third["cohort_c_en.html"] = "<p>a 1</p>"  # a new page, though its HTML is a's
    done = run(third)
    assert printed_now == ["cohort_c_en.html"] and (done.printed, done.reused) == (1, 2)
    assert not (folder / "cohort_b_en.pdf").exists()


@needs_chromium
@pytest.mark.parametrize("missing", [0, pdf.TABS + 1])  # a tab's first page (opened from its
def test_a_page_that_cannot_be_printed_is_one_line_naming_it(tmp_path, missing):  # file), a later
    pages = [page(tmp_path / f"report_{i}.html", f"Report{i}", paragraphs=5)
             for i in range(pdf.TABS + 2)]
    pages[missing].unlink()
    with pytest.raises(RuntimeError) as raised:
        pdf.print_all(pages)
    message = str(raised.value)
    assert message.startswith(f"Chromium could not print report_{missing}.html: ")
    assert "\n" not in message


def test_a_browser_that_stops_is_one_line_not_a_hang(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPACITAR_CHROMIUM", shutil.which("false"))
    with pytest.raises(RuntimeError) as raised:
        pdf.print_all([page(tmp_path / "a.html", "A")])
    assert str(raised.value) == ("Chromium could not print any page: Chromium stopped: "
                                 "no message, exit code 1")


@needs_chromium
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="psutil children, /proc")
def test_the_browser_starts_before_the_pages_are_rendered_and_is_gone_at_exit(tmp_path,
                                                                              monkeypatch):
    """The report stage starts Chromium first (it comes up while the pages are rendered);
    after the stage the browser exits on its own, and at exit none is left, nor its profile."""
    import tempfile

    import psutil

    from reports import render

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    seen = {}

    def pages_while_checking(*args):
        me = psutil.Process()
        seen["browser while rendering"] = any("chrom" in p.name().lower()
                                              for p in me.children(recursive=True))
        yield "program_en.html", page(tmp_path / "x.html", "Program").read_text("utf-8")

    monkeypatch.setattr(render, "page_stream", pages_while_checking)
    folder = tmp_path / "outputs" / "reports"
    folder.parent.mkdir()
    done = render.render_report_folder({}, None, None, folder)
    assert seen == {"browser while rendering": True}
    assert done.printed == 1 and "Program paragraph" in pdf_text(folder / "program_en.pdf")
    pdf.closed()  # what the exit handler does
    assert not any("chrom" in p.name().lower() for p in psutil.Process().children(recursive=True))
    assert list((tmp_path / "tmp").iterdir()) == []  # the browser's profile removed


@needs_chromium
def test_a_page_is_printed_while_the_next_is_rendered(tmp_path, monkeypatch):
    """The report stage hands each page to the browser as soon as it is rendered: the first
    page's PDF exists before the second page is rendered (a stage printing only after
    rendering every page never gets there)."""
    import time

    from reports import render

    folder = tmp_path / "outputs" / "reports"
    folder.parent.mkdir()
    waited = {}

    def slow_pages(*args):
        yield "program_en.html", page(tmp_path / "p.html", "Program").read_text("utf-8")
        deadline = time.monotonic() + 60
        while not list(folder.parent.rglob("program_en.pdf")) and time.monotonic() < deadline:
            time.sleep(0.05)
        waited["printed before the next page"] = bool(list(folder.parent.rglob("program_en.pdf")))
        yield "cohort_a_en.html", page(tmp_path / "a.html", "Cohort").read_text("utf-8")

    monkeypatch.setattr(render, "page_stream", slow_pages)
    done = render.render_report_folder({}, None, None, folder)
    assert waited == {"printed before the next page": True} and done.printed == 2
    assert "Cohort paragraph" in pdf_text(folder / "cohort_a_en.pdf")


def test_a_run_writes_its_tables_while_its_pdfs_print_and_then_waits_for_them(tmp_path,
                                                                              monkeypatch):
    """With a run's printing and staging folder, the pages are written and handed over and
    the stage returns before any PDF is done; ``finish`` waits and adds the PDFs under their
    published names (index pages last)."""
    from reports import render

    class SlowPrinting(pdf.Skipped):
        def done(self):
            for html in self.added:
                html.with_suffix(".pdf").write_text("PDF", "utf-8")
            return [html.with_suffix(".pdf") for html in self.added]

    pages = {"program_en.html": "<p>p</p>", "cohort_a_en.html": "<p>a</p>",
             "index_en.html": "<p>p</p>"}
    monkeypatch.setattr(render, "page_stream", lambda *args: iter(pages.items()))
    folder, staging = tmp_path / "outputs" / "reports", tmp_path / "staging"
    staging.mkdir()
    printing = SlowPrinting("")
    rendered = render.render_report_folder({}, None, None, folder, staging=staging,
                                           printing=printing)
    assert rendered.printing is printing and not list(staging.glob("*.pdf"))
    assert [p.name for p in printing.added] == ["program_en.html", "cohort_a_en.html"]
    assert rendered.finish() is rendered and rendered.printing is None
    assert [p.name for p in rendered.paths] == [
        "program_en.html", "cohort_a_en.html", "program_en.pdf", "cohort_a_en.pdf",
        "index_en.html"]
    assert all(p.parent == folder for p in rendered.paths) and rendered.printed == 2
    assert rendered.finish().printed == 2  # once only
