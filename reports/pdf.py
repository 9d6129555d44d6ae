"""Print HTML reports to PDF with a headless Chromium (what the reader's browser would print).

The binary is ``$CAPACITAR_CHROMIUM`` or the first of chromium / chromium-browser /
google-chrome on the PATH. Without one, PDFs are skipped with a message, not an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipelines.progress import progress

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
         "--disable-extensions", "--no-first-run", "--allow-file-access-from-files"]


def chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    configured = os.environ.get("CAPACITAR_CHROMIUM")
    if configured:
        return configured if shutil.which(configured) or Path(configured).exists() else None
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


def print_pdf(html: Path, binary: str, timeout: int = 120) -> Path:
    """``report.html`` -> ``report.pdf`` beside it; RuntimeError with Chromium's message on failure."""
    pdf = html.with_suffix(".pdf")
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: no locks between runs
        done = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", f"--print-to-pdf={pdf}",
             html.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not pdf.exists():
        raise RuntimeError(f"Chromium could not print {html.name}: {done.stderr[-300:]}")
    return pdf


def print_all(pages: list[Path]) -> tuple[list[Path], str]:
    """PDFs of ``pages`` (two at a time: the machines have two cores) and a message."""
    binary = chromium()
    if binary is None:
        return [], "PDF skipped: no Chromium/Chrome found (set CAPACITAR_CHROMIUM)"
    with ThreadPoolExecutor(max_workers=2) as pool, progress("Printing PDFs", len(pages)) as advance:
        futures = [pool.submit(print_pdf, page, binary) for page in pages]
        pdfs = []
        for future in futures:
            pdfs.append(future.result())
            advance()
    return pdfs, ""
