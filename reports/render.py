"""Report pages from result tables: the templates, and the files (HTML, PDF reuse, publication).

The words come from ``reports/i18n.py``, what each section shows from the view
model (``reports/view.py``), PDFs from ``reports/pdf.py``.

Reports read result tables only; every figure shown was computed upstream, and every verdict
("improved", "got worse", ...) is the ``verdict`` column of the analysis. What may be shown is
decided once per program by :class:`reports.privacy.Disclosure` (small cells hidden, with
secondary suppression that holds across every table, chart and report), so that no page can
publish what another hides. Figures from 5-9 people are marked as small, no individual row ever
reaches a page, and a cohort with fewer than ``min_cell_size`` people gets a one-page report.
"""

from __future__ import annotations

import functools
import html
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2
import markupsafe
import pandas as pd

from pipelines.publish import write_folder
from reports.i18n import LANGUAGES, Catalogue
from reports.pdf import printer
from reports.view import SMALL, ReportData, TableIndex, cohort_context, program_context

log = logging.getLogger(__name__)


def css_string(value: object) -> markupsafe.Markup:
    r"""Text for a CSS string in a ``<style>`` (running headers): every character but letters,
    digits and spaces as a CSS escape (six digits and the space CSS consumes after one), so no
    quote, backslash or ``</style>`` gets through.

    Examples
    --------
    >>> print(css_string('A &amp; "B"</'))
    A \000026  \000022 B\000022 \00003C \00002F 
    """
    text = html.unescape(str(value))
    return markupsafe.Markup("".join(
        c if c.isalnum() or c == " " else f"\\{ord(c):06X} " for c in text))


class Environment(jinja2.Environment):
    """Jinja2 reading ``row.field`` of a dict row as its key first: the view model hands the
    templates plain dicts, and Jinja's default (attribute first, then key) pays for a failed
    attribute look-up on every cell of every page."""

    def getattr(self, obj, attribute):
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja2 environment with autoescaping (participant data never reach it), made once."""
    env = Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["css_string"] = css_string
    return env


def report_pages(tables: dict[str, pd.DataFrame], config, instruments) -> dict[str, str]:
    """Every report page's HTML by file name, the program report in the program's language first.

    Index pages (``index_<lang>.html``, a stable entry point) repeat the program report.
    """
    return dict(page_stream(tables, config, instruments))


def page_stream(tables: dict[str, pd.DataFrame], config, instruments
                ) -> Iterator[tuple[str, str]]:
    """The pages of :func:`report_pages` one by one, each as soon as it is rendered."""
    index = TableIndex(tables, config, instruments)
    env = environment()
    cohort_template = env.get_template("cohort.html.j2")
    small_template = env.get_template("cohort_small.html.j2")
    program_template = env.get_template("program.html.j2")
    for lang in sorted(LANGUAGES, key=lambda code: code != config.language):
        t = Catalogue(lang)
        data = ReportData(tables, config, instruments, t, index)
        run = data.run_info()
        # Cohort pages carry no run id or date: an unchanged cohort keeps its HTML, and so its
        # PDF, from run to run (only a run's problems are repeated there).
        common = {"t": t, "config": config, "min_n": config.min_cell_size, "lang": lang,
                  "other": [code for code in LANGUAGES if code != lang], "run": None,
                  "run_problems": len(run["problems"]) if run else 0,
                  "waves": [data.wave_label[w] for w in data.waves], "methods": data.methods(),
                  "verdict_rule": data.verdict_rule(), "has_pairs": bool(data.pairs),
                  "primary": bool(index.primary), "small_max": SMALL - 1}
        files = {c.id: f"cohort_{c.id}_{lang}.html" for c in config.cohorts}
        program = program_template.render(**{**common, "run": run},
                                          **program_context(data, files))
        yield f"program_{lang}.html", program
        for cohort in config.cohorts:
            if data.disclosure.reportable(cohort.id):
                yield files[cohort.id], cohort_template.render(**common,
                                                               **cohort_context(data, cohort))
            else:
                yield files[cohort.id], small_template.render(**common, cohort=cohort)
        yield f"index_{lang}.html", program


@dataclass
class Rendered:
    """What a report run wrote: every page, and how many PDFs were printed or reused.

    While :attr:`printing` is set, PDFs are still being printed: :meth:`finish` waits
    for them (a run writes its tables meanwhile).
    """

    paths: list[Path]
    printed: int = 0
    reused: int = 0
    message: str = ""
    printing: object = None
    published: Callable[[Path], Path] = lambda path: path  # a written file's published path

    def finish(self) -> Rendered:
        """Wait for the PDFs still being printed; they join :attr:`paths`."""
        if self.printing is not None:
            printing, self.printing = self.printing, None
            printed = printing.done()
            self.printed, self.message = len(printed), printing.message
            self.paths = index_last(self.paths + [self.published(p) for p in printed])
            if self.message:
                log.warning(self.message)
        return self


def index_last(paths: list[Path]) -> list[Path]:
    """``paths`` with the index pages (``index_<lang>.html``) last."""
    return ([p for p in paths if not p.name.startswith("index_")]
            + [p for p in paths if p.name.startswith("index_")])


def render_report_folder(tables: dict[str, pd.DataFrame], config, instruments, folder: Path,
                         pdf: bool = True, staging: Path | None = None,
                         run_id: str = "report", printing=None) -> Rendered:
    """Render into a staging folder and swap it in whole (a failed run keeps the old reports).

    With ``staging`` the pages are written there and the caller publishes them
    (a run does, together with its tables); the paths returned are those in ``folder``.
    A page whose HTML is byte-identical to the one already published keeps its
    PDF (hard-linked, not re-printed): printing is the slow part, and most
    cohorts do not change between weekly runs. Without PDFs (``pdf=False``)
    the published PDFs are kept as they are. PDFs need Chromium/Chrome;
    without one they are skipped with a logged message. With ``printing`` (a
    :func:`reports.pdf.printer`'s, and ``staging``) the PDFs are still being printed
    when this returns: the caller calls :meth:`Rendered.finish` before that printer ends.
    """
    pages = page_stream(tables, config, instruments)
    if pdf and printing is None:
        with printer() as printing:  # Chromium starts beside the rendering
            return fill_report_folder(pages, folder, printing, staging, run_id).finish()
    return fill_report_folder(pages, folder, printing if pdf else None, staging, run_id)


def fill_report_folder(pages: Iterable[tuple[str, str]], folder: Path, printing,
                       staging: Path | None, run_id: str) -> Rendered:
    """Write ``pages`` (name, HTML) as they come, keep the PDFs of unchanged ones, and hand
    the others to ``printing``: Chromium prints a page while the next is rendered
    (``printing`` None: no PDFs, the published ones kept). Without ``staging`` the folder
    is published once every PDF is printed; with it, the PDFs may still be printing
    (:meth:`Rendered.finish`)."""
    pdf = printing is not None
    result = Rendered([], printing=printing)

    def fill(staging: Path) -> list[Path]:
        written = []
        for name, page in pages:
            path = staging / name
            path.write_text(page, encoding="utf-8")
            written.append(path)
            if name.startswith("index_"):
                continue
            if not pdf:
                if keep_pdf(folder / name, path.with_suffix(".pdf")):
                    written.append(path.with_suffix(".pdf"))
                continue
            if reuse_pdf(folder / name, page, path.with_suffix(".pdf")):
                result.reused += 1
                written.append(path.with_suffix(".pdf"))
            else:
                printing.add(path)
        return index_last(written)

    def fill_and_print(staging: Path) -> list[Path]:
        result.paths = fill(staging)
        return result.finish().paths

    if staging is None:
        result.paths = write_folder(folder, fill_and_print, run_id)
    else:
        result.published = lambda path: folder / path.relative_to(staging)
        result.paths = [result.published(p) for p in fill(staging)]
    return result


def reuse_pdf(published: Path, html: str, target: Path) -> bool:
    """Link the published PDF into ``target`` when its HTML is unchanged; False otherwise."""
    try:
        if published.read_text(encoding="utf-8") != html:
            return False
    except OSError:
        return False
    return keep_pdf(published, target)


def keep_pdf(published: Path, target: Path) -> bool:
    """Link the published page's PDF into ``target`` (False when there is none)."""
    old_pdf = published.with_suffix(".pdf")
    try:
        if not old_pdf.exists():
            return False
        try:
            os.link(old_pdf, target)
        except OSError:  # file systems without hard links
            shutil.copy2(old_pdf, target)
        return True
    except OSError:
        return False
