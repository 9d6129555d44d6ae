"""Print HTML reports to PDF with one headless Chromium (what the reader's browser would print).

The binary is ``$CAPACITAR_CHROMIUM`` or the first of chromium / chromium-browser /
google-chrome on the PATH. Without one, PDFs are skipped with a message, not an error.

One browser prints every page of a run: it is started once, with the flags a
``chromium --headless --print-to-pdf`` run uses, and Playwright drives it over
the DevTools protocol, several pages at a time in their own tabs. The browser
gets SIGTERM from the kernel when the thread that started it ends, so a killed
run leaves no Chromium behind (:func:`pipelines.parallel.dying_with_parent`).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from pipelines.parallel import dying_with_parent
from pipelines.progress import progress

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
         "--disable-extensions", "--no-first-run", "--allow-file-access-from-files"]
TABS = 4  # pages printed at once: layout of one overlaps the PDF encoding of another
# What `--print-to-pdf` asks of the page: its CSS page size and margins, backgrounds, no
# header or footer but the report's own (@page margin boxes), a tagged (accessible) PDF.
PRINT = {"prefer_css_page_size": True, "print_background": True, "display_header_footer": False,
         "tagged": True}
LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    configured = os.environ.get("CAPACITAR_CHROMIUM")
    if configured:
        return configured if shutil.which(configured) or Path(configured).exists() else None
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


@contextmanager
def browser(binary: str, timeout: float = 60) -> Iterator[str]:
    """A headless Chromium for this block; yields its DevTools address (``ws://...``).

    It runs with a fresh profile (no locks between runs) and is stopped when the
    block ends, or by the kernel when the calling thread's process dies.
    """
    with tempfile.TemporaryDirectory() as profile:
        process = subprocess.Popen(
            dying_with_parent([binary, *FLAGS, "--remote-debugging-port=0",
                               f"--user-data-dir={profile}", "about:blank"]),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        try:
            yield devtools_address(process, timeout)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def devtools_address(process: subprocess.Popen, timeout: float) -> str:
    """The ``ws://`` address Chromium prints on stderr once it listens; RuntimeError if not."""
    said: list[str] = []
    found: list[str] = []

    def read() -> None:
        for line in process.stderr:
            said.append(line)
            if match := LISTENING.search(line):
                found.append(match.group(1))
                break

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found:
        process.kill()
        raise RuntimeError(f"Chromium did not start: {''.join(said)[-300:]}")
    # Keep draining stderr so Chromium never blocks on a full pipe; the reader ends at EOF,
    # when the browser and its helper processes are gone.
    threading.Thread(target=drain, args=(process.stderr,), daemon=True).start()
    return found[0]


def drain(stream) -> None:
    """Read ``stream`` to its end, then close it."""
    with stream:
        for _ in stream:
            pass


async def print_pages(address: str, pages: list[Path], advance: Callable[[], None],
                      tabs: int = TABS, timeout: float = 120) -> list[Path]:
    """Print ``pages`` (``report.html`` -> ``report.pdf`` beside it) in the browser at
    ``address``, ``tabs`` at a time; the PDFs in the order of ``pages``."""
    from playwright.async_api import async_playwright

    slots = asyncio.Semaphore(tabs)
    async with async_playwright() as driver:
        connected = await driver.chromium.connect_over_cdp(address, timeout=timeout * 1000)
        context = connected.contexts[0] if connected.contexts else await connected.new_context()

        async def one(html: Path) -> Path:
            async with slots:
                tab = await context.new_page()
                try:
                    await tab.goto(html.resolve().as_uri(), wait_until="load",
                                   timeout=timeout * 1000)
                    pdf = html.with_suffix(".pdf")
                    await tab.pdf(path=pdf, **PRINT)
                except Exception as exc:  # noqa: BLE001 - said with the page's name
                    raise RuntimeError(f"Chromium could not print {html.name}: {exc}") from None
                finally:
                    await tab.close()
            advance()
            return pdf

        try:
            return list(await asyncio.gather(*(one(page) for page in pages)))
        finally:
            await connected.close()


def print_all(pages: list[Path]) -> tuple[list[Path], str]:
    """PDFs of ``pages`` from one browser, and a message (why PDFs were skipped, or "").

    The browser and Playwright's event loop live on a thread of their own, so
    this works from any caller, including one inside a running event loop.

    Examples
    --------
    >>> print_all([])
    ([], '')
    """
    if not pages:
        return [], ""
    binary = chromium()
    if binary is None:
        return [], "PDF skipped: no Chromium/Chrome found (set CAPACITAR_CHROMIUM)"

    def in_thread() -> list[Path]:
        with progress("Printing PDFs", len(pages)) as advance, browser(binary) as address:
            return asyncio.run(print_pages(address, pages, advance))

    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(in_thread).result(), ""
