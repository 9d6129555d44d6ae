"""Print HTML reports to PDF with one headless Chromium (what the reader's browser would print).

The binary is ``$CAPACITAR_CHROMIUM`` or the first of chromium / chromium-browser /
google-chrome on the PATH. Without one, PDFs are skipped with a message, not an error.

One browser prints every page of a run. It is started once and driven over
its DevTools pipe (``--remote-debugging-pipe``: the DevTools protocol as
NUL-separated JSON on the browser's file descriptors 3 and 4), straight from
Python, several pages at a time in tabs that stay open for the whole run.
A tab opens the first page it prints from its file (so relative links resolve
in the pages' folder) and then takes each next page's HTML in place
(``Page.setDocumentContent``): no navigation, no new document loader, no
browser-side work per page but the PDF itself; the tab shows print media. The
browser gets SIGTERM from the kernel when the thread that started it ends, so a
killed run leaves no Chromium behind (:func:`pipelines.parallel.dying_with_parent`).
The pipe is a POSIX one: on Windows PDFs are skipped with a message.
"""

from __future__ import annotations

import atexit
import base64
import collections
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from pathlib import Path

from pipelines.parallel import dying_with_parent
from pipelines.progress import progress

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# New headless Chrome is the whole browser: without these features it loads the omnibox
# popup's web UI in a renderer of its own and keeps it busy while pages are printed.
# (No --no-pdf-header-footer: it makes Chromium take its URL as a --print-to-pdf command.)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions", "--no-first-run",
         "--allow-file-access-from-files", "--disable-features=WebUIOmniboxPopup,"
         "WebUIOmniboxAimPopup,WebUIOmniboxFullPopup,PreloadTopChromeWebUI"]
TABS = 4  # pages printed at once: layout of one overlaps the PDF encoding of another
# What `--print-to-pdf` asks of the page: its CSS page size and margins (the paper and
# margins below are only the fallback of a page without @page), backgrounds, no header or
# footer but the report's own (@page margin boxes), a tagged (accessible) PDF.
PRINT = {"preferCSSPageSize": True, "printBackground": True, "displayHeaderFooter": False,
         "generateTaggedPDF": True, "generateDocumentOutline": False, "paperWidth": 8.5,
         "paperHeight": 11, "marginTop": 0, "marginBottom": 0, "marginLeft": 0,
         "marginRight": 0, "scale": 1, "landscape": False, "pageRanges": "",
         "transferMode": "ReturnAsBase64"}
# Become argv[3:] with the pipe ends argv[1] and argv[2] as file descriptors 3 and 4.
ON_FDS_3_AND_4 = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
                  "os.close(int(sys.argv[1])); os.close(int(sys.argv[2])); "
                  "os.execv(sys.argv[3], sys.argv[3:])")


def chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    configured = os.environ.get("CAPACITAR_CHROMIUM")
    if configured:
        return configured if shutil.which(configured) or Path(configured).exists() else None
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


class DevTools:
    """The DevTools protocol over a browser's pipe: commands, their replies, awaited events.

    :meth:`send` returns a future of the command's result; :meth:`expect`, called
    before the command that causes it, a future of an event's parameters. When the
    browser goes away every future still waiting fails with what it said last.
    """

    def __init__(self, to_browser, from_browser, said: Callable[[], str]):
        self._out, self._in, self._said = to_browser, from_browser, said
        self._lock = threading.Lock()
        self._last_id = 0
        self._replies: dict[int, Future] = {}
        self._events: dict[tuple[str | None, str], Future] = {}
        self._gone: str | None = None
        threading.Thread(target=self._read, name="capacitar-devtools", daemon=True).start()

    def send(self, method: str, params: dict | None = None,
             session: str | None = None) -> Future:
        reply: Future = Future()
        message = {"method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        with self._lock:
            if self._gone is not None:
                reply.set_exception(RuntimeError(self._gone))
                return reply
            self._last_id += 1
            message["id"] = self._last_id
            self._replies[self._last_id] = reply
            try:
                self._out.write(json.dumps(message).encode() + b"\0")
            except OSError:
                self._replies.pop(self._last_id)
                reply.set_exception(RuntimeError(f"Chromium stopped: {self._said()}"))
        return reply

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 120) -> dict:
        """The result of ``method``; RuntimeError with Chromium's message if it failed."""
        return awaited(self.send(method, params, session), method, timeout)

    def expect(self, session: str | None, event: str) -> Future:
        waiting: Future = Future()
        with self._lock:
            self._events[(session, event)] = waiting
        return waiting

    def _read(self) -> None:
        pending = b""
        with self._in:  # to the browser's exit, after Browser.close
            while chunk := self._in.read(1 << 20):
                *messages, pending = (pending + chunk).split(b"\0")
                for message in messages:
                    self._dispatch(json.loads(message))
        gone = f"Chromium stopped: {self._said()}"
        with self._lock:
            self._gone = gone
            waiting = [*self._replies.values(), *self._events.values()]
            self._replies.clear()
            self._events.clear()
        for future in waiting:
            future.set_exception(RuntimeError(self._gone))

    def _dispatch(self, message: dict) -> None:
        with self._lock:
            if "id" in message:
                future = self._replies.pop(message["id"], None)
            else:
                future = self._events.pop((message.get("sessionId"), message["method"]), None)
        if future is None:
            return
        if "error" in message:
            future.set_exception(RuntimeError(message["error"].get("message", "error")))
        else:
            future.set_result(message.get("result", message.get("params", {})))


def awaited(future: Future, what: str, timeout: float = 120):
    """The result of ``future``; RuntimeError naming ``what`` after ``timeout`` seconds."""
    try:
        return future.result(timeout)
    except FutureTimeout:
        raise RuntimeError(f"no {what} in {timeout:g} s") from None


@contextmanager
def browser(binary: str) -> Iterator[DevTools]:
    """A headless Chromium for this block, and the DevTools pipe to it.

    It runs with a fresh profile (no locks between runs) and is told to close when the
    block ends (:func:`closing_beside`), or stopped by the kernel when the calling
    thread's process dies.
    """
    import fcntl  # POSIX only: see print_all

    to_read, to_browser = os.pipe()
    from_browser, to_write = os.pipe()
    # Above 4, so that putting one end on 3 cannot close the other.
    ends = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_read, to_write)]
    os.close(to_read)
    os.close(to_write)
    profile = tempfile.mkdtemp(prefix="capacitar-chromium-")
    try:
        process = subprocess.Popen(
            dying_with_parent([sys.executable, "-I", "-S", "-c", ON_FDS_3_AND_4,
                               *map(str, ends), binary, *FLAGS, "--remote-debugging-pipe",
                               f"--user-data-dir={profile}", "about:blank"]),
            pass_fds=ends, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    finally:
        for fd in ends:
            os.close(fd)
    last_lines = collections.deque(maxlen=5)
    threading.Thread(target=keep_last, args=(process.stderr, last_lines), daemon=True).start()

    def said() -> str:  # once the pipe is closed: Chromium's last words, or its exit code
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        return (" ".join(line.strip() for line in last_lines)[-300:]
                or f"no message, exit code {process.returncode}")

    with open(to_browser, "wb", buffering=0) as out:  # the reader closes the other end
        devtools = DevTools(out, open(from_browser, "rb", buffering=0), said)
        try:
            yield devtools
        finally:
            devtools.send("Browser.close")
            closing_beside(process, profile)


CLOSING: list[threading.Thread] = []


def closing_beside(process: subprocess.Popen, profile: str) -> None:
    """Let Chromium exit (a few tenths of a second after ``Browser.close``) and remove its
    profile on a thread while the run goes on; :func:`closed` waits for every such thread
    and runs at exit, so no browser or profile outlives the process."""
    def reap() -> None:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)

    thread = threading.Thread(target=reap, name="capacitar-chromium-exit", daemon=True)
    thread.start()
    CLOSING.append(thread)


@atexit.register
def closed() -> None:
    """Wait until every browser started here has exited and its profile is gone."""
    while CLOSING:
        CLOSING.pop().join()


def keep_last(stream, lines: collections.deque) -> None:
    """Read ``stream`` to its end (Chromium never blocks on a full pipe), keeping its last
    ``lines`` for an error message, then close it."""
    with stream:
        for line in stream:
            lines.append(line)


class Printing:
    """Pages printed as they come: :meth:`add` one (``report.html`` -> ``report.pdf`` beside
    it) and a tab of the browser prints it while the caller goes on; :meth:`done` waits for
    every page added and returns their PDFs in that order (a progress bar shows the rest).

    Up to ``tabs`` tabs, opened as pages come, each printing the next page added.
    """

    message = ""  # pages are printed (see Skipped)

    def __init__(self, devtools: DevTools, tabs: int = TABS):
        self.devtools, self.tabs = devtools, tabs
        self.todo: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self.added: list[Path] = []
        self.failed: list[str] = []
        self.workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._printed = 0
        self._advance: Callable[[], None] = lambda: None

    def add(self, html: Path) -> None:
        self.added.append(html)
        self.todo.put(html)
        if len(self.workers) < self.tabs:
            worker = threading.Thread(target=self._tab, name=f"capacitar-pdf-{len(self.workers)}",
                                      daemon=True)
            worker.start()
            self.workers.append(worker)

    def stop(self) -> None:
        """No more pages: each tab ends once the pages before are printed."""
        for _ in self.workers:
            self.todo.put(None)

    def done(self) -> list[Path]:
        """The PDFs of every page added; RuntimeError naming the first page that failed."""
        self.stop()
        with progress("Printing PDFs", len(self.added)) as advance:
            with self._lock:
                for _ in range(self._printed):
                    advance()
                self._advance = advance
            for worker in self.workers:
                worker.join()
        if self.failed:
            raise RuntimeError(self.failed[0])
        return [html.with_suffix(".pdf") for html in self.added]

    def _printed_one(self) -> None:
        with self._lock:
            self._printed += 1
            self._advance()

    def _tab(self) -> None:
        html = None
        devtools = self.devtools
        try:
            target = devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = devtools.call("Target.attachToTarget",
                                    {"targetId": target, "flatten": True})["sessionId"]
            devtools.call("Page.enable", session=session)
            # The tab shows pages as printed: its own layouts then use the print style sheet,
            # as printing does, and the style is not worked out twice per page.
            devtools.call("Emulation.setEmulatedMedia", {"media": "print"}, session=session)
            folder = frame = None
            while not self.failed and (html := self.todo.get()) is not None:
                loaded = devtools.expect(session, "Page.loadEventFired")
                if html.parent == folder:
                    devtools.call("Page.setDocumentContent", {
                        "frameId": frame, "html": html.read_text(encoding="utf-8")},
                        session=session)
                else:
                    opened = devtools.call("Page.navigate", {"url": html.resolve().as_uri()},
                                           session=session)
                    if opened.get("errorText"):
                        raise RuntimeError(opened["errorText"])
                    frame = opened["frameId"]
                    folder = html.parent
                awaited(loaded, "load event")  # images or style sheets a page may refer to
                pdf = devtools.call("Page.printToPDF", PRINT, session=session)["data"]
                html.with_suffix(".pdf").write_bytes(base64.b64decode(pdf))
                self._printed_one()
        except Exception as exc:  # noqa: BLE001 - said with the page's name
            self.failed.append(f"Chromium could not print {html.name if html else 'any page'}: "
                               f"{exc}")


class Skipped:
    """The stand-in for :class:`Printing` where PDFs cannot be printed: it says why."""

    def __init__(self, message: str):
        self.message, self.added = message, []

    def add(self, html: Path) -> None:
        self.added.append(html)

    def done(self) -> list[Path]:
        if not self.added:
            self.message = ""  # nothing was to be printed: nothing to say
        return []


def skipped() -> str:
    """Why PDFs cannot be printed here ("" when they can)."""
    if os.name != "posix":
        return "PDF skipped: printing needs Linux or macOS (Chromium's DevTools pipe)"
    if chromium() is None:
        return "PDF skipped: no Chromium/Chrome found (set CAPACITAR_CHROMIUM)"
    return ""


@contextmanager
def printer() -> Iterator[Printing | Skipped]:
    """A :class:`Printing` (or a :class:`Skipped`), its browser started at once.

    Chromium comes up in its own processes while the caller goes on (a run renders
    its pages meanwhile), and closes when the block ends.
    """
    message = skipped()
    if message:
        yield Skipped(message)
        return
    with browser(chromium()) as devtools:
        printing = Printing(devtools)
        try:
            yield printing
        finally:  # a caller that failed before done(): its tabs end too
            printing.stop()


def print_all(pages: list[Path]) -> tuple[list[Path], str]:
    """PDFs of ``pages`` from one browser, and a message (why PDFs were skipped, or "").

    Examples
    --------
    >>> print_all([])
    ([], '')
    """
    if not pages:
        return [], ""
    with printer() as printing:
        for html in pages:
            printing.add(html)
        return printing.done(), printing.message
