"""Benchmark: a small program as a user sees it, and PDF printing at national scale (issue 22).

Run: python benchmarks/small.py                                  # this tree only
     python benchmarks/small.py --repo /work/wt/baseline --repo .  # before and after, side by side

Every figure comes from the ``capacitar`` command line of each tree (its own
``.venv``), run in a subprocess under a pseudo-terminal, so it measures what a
user at a terminal sees and works on any version of the code. Install each tree
as a user does (``pip install -e .``): with the test extras, Prefect's embedded
server also imports prefect-dask at every start (0.26 CPU-s a run, measured).

(a) ``capacitar run`` on the demo program after one answer changed in one file
    (new data, PDFs on), with a Prefect home made by an earlier run: wall time;
(b) of that run: time to the first output on screen, the longest silence until
    the summary ("Done in ..."), and the time from the summary to the exit;
(c) ``capacitar validate`` on the demo: wall time;
(d) PDF printing of cohort reports of a national-like program (20 cohorts of the
    national benchmark's generator, pages printed through ``reports.pdf.print_all``
    of each tree): seconds per page and the extrapolation to the 2,000 cohort pages
    of ``benchmarks/national.py``; with two trees, the same pages (page count and
    ``pdftotext`` text) from both printers. CPU seconds per page by process (browser,
    renderers, Python): ``benchmarks/pdf_profile.py`` (the renderers Chromium starts are
    not children this script can account for).
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"run": 8.0, "first_output": 1.0, "longest_silence": 2.0, "exit_after_done": 1.0,
         "validate": 3.0, "pdf_all_minutes": 4.0}
NATIONAL_COHORT_PAGES = 2000  # benchmarks/national.py: 1,000 cohorts x 2 languages
SUMMARY = re.compile(rb"Done in |No new data since")


def environment(prefect_home: Path) -> dict:
    """A user's environment: offline Prefect settings, its own Prefect home, a wide terminal."""
    # A user's Python keeps compiled modules (__pycache__); a sandbox's PYTHONDONTWRITEBYTECODE
    # would compile every module of an editable tree again in each command.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "CAPACITAR_"))
           and k not in ("CI", "PYTHONDONTWRITEBYTECODE")}
    env.update(DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_HOME=str(prefect_home), COLUMNS="160", LINES="50", TERM="xterm")
    return env


def capacitar(tree: Path) -> list[str]:
    return [str(tree / ".venv" / "bin" / "capacitar")]


def python(tree: Path) -> str:
    return str(tree / ".venv" / "bin" / "python")


def on_terminal(command: list[str], env: dict, cwd: Path) -> dict:
    """Run ``command`` on a pseudo-terminal; times of every output chunk, the summary and exit."""
    controller, terminal = pty.openpty()
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal,
                            env=env, cwd=cwd, close_fds=True)
    os.close(terminal)
    chunks: list[tuple[float, bytes]] = []
    exited = None  # the shell's prompt comes back then, whatever children still hold the terminal
    while True:
        if exited is None and proc.poll() is not None:
            exited = time.perf_counter() - start
        ready, _, _ = select.select([controller], [], [], 0.02)
        if ready:
            try:
                data = os.read(controller, 65536)
            except OSError:  # the terminal closed: every process holding it has exited
                data = b""
            if not data:
                break
            chunks.append((time.perf_counter() - start, data))
    proc.wait()
    end = exited if exited is not None else time.perf_counter() - start
    os.close(controller)
    output = b"".join(data for _, data in chunks)
    visible = [t for t, data in chunks if data.strip()]
    summary = next((t for t, data in chunks if SUMMARY.search(data)), None)
    until = [t for t in visible if summary is None or t <= summary]
    gaps = [b - a for a, b in zip(until, until[1:])]
    timeline = "\n".join(f"{t:6.2f} {data.decode('utf-8', 'replace').rstrip()}"
                         for t, data in chunks if data.strip() and "\u2501".encode() not in data)
    return {"wall": end, "status": proc.returncode, "output": output.decode("utf-8", "replace"),
            "timeline": timeline,
            "first_output": visible[0] if visible else None,
            "longest_silence": max(gaps, default=0.0),
            "exit_after_done": end - summary if summary is not None else None}


def change_one_answer(program: Path) -> None:
    """Change one stigma answer (post wave, first person, item OMS1) as an evaluator would."""
    path = program / "inbox" / "estigma_OMSHC_post.csv"
    lines = path.read_text(encoding="cp1252").splitlines(keepends=True)
    header = lines[0].rstrip("\r\n").split(";")
    cells = lines[1].rstrip("\r\n").split(";")
    column = header.index("OMS1")
    cells[column] = "2" if cells[column] != "2" else "3"
    lines[1] = ";".join(cells) + "\n"
    path.write_text("".join(lines), encoding="cp1252")
    earlier = time.time() - 60  # a saved file, not one still being written
    os.utime(path, (earlier, earlier))


def small_program(tree: Path, work: Path, repeat: int = 1) -> dict:
    """(a)-(c) for one tree: demo written and run once, then ``repeat`` times one answer
    changed, the program run and validated; each figure is the median of the repeats (the
    worst for the longest silence), the timeline the median run's."""
    work.mkdir(parents=True)
    program, home = work / "demo", work / "prefect-home"
    env = environment(home)
    first = subprocess.run([*capacitar(tree), "demo", str(program)], env=env, cwd=work,
                           capture_output=True, text=True)
    if first.returncode not in (0, 1):
        raise SystemExit(f"{tree}: capacitar demo failed:\n{first.stderr[-3000:]}")
    runs, checks = [], []
    for _ in range(repeat):
        change_one_answer(program)
        ran = on_terminal([*capacitar(tree), "run", str(program)], env, work)
        if "Done in" not in ran["output"]:
            raise SystemExit(f"{tree}: the run did not finish:\n{ran['output'][-3000:]}")
        runs.append(ran)
        checks.append(on_terminal([*capacitar(tree), "validate", str(program)], env, work)["wall"])
    runs.sort(key=lambda ran: ran["wall"])
    middle = runs[len(runs) // 2]
    return {"run": middle["wall"], "runs": [ran["wall"] for ran in runs],
            "first_output": statistics.median(ran["first_output"] for ran in runs),
            "longest_silence": max(ran["longest_silence"] for ran in runs),
            "exit_after_done": statistics.median(ran["exit_after_done"] for ran in runs),
            "validate": statistics.median(checks), "timeline": middle["timeline"]}


def national_pages(tree: Path, work: Path, cohorts: int) -> list[Path]:
    """HTML cohort reports of a national-like program (written and run by ``tree``, no PDFs)."""
    work.mkdir(parents=True)
    program = work / "national"
    code = ("import sys; from pathlib import Path; sys.path.insert(0, '.');"
            "from benchmarks.national_program import write_national;"
            f"write_national(Path({str(program)!r}), {cohorts})")
    env = environment(work / "prefect-home")
    subprocess.run([python(tree), "-c", code], cwd=tree, env=env, check=True,
                   capture_output=True)
    done = subprocess.run([*capacitar(tree), "run", "--no-pdf", str(program)], env=env, cwd=work,
                          capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"the national-like run failed:\n{done.stderr[-3000:]}")
    return sorted((program / "outputs" / "reports").glob("cohort_*.html"))


def print_pages(tree: Path, pages: list[Path], folder: Path) -> float:
    """Wall seconds for ``tree``'s ``reports.pdf.print_all`` to print copies of ``pages``."""
    folder.mkdir(parents=True)
    copies = []
    for page in pages:
        shutil.copy(page, folder / page.name)
        copies.append(str(folder / page.name))
    code = ("import sys, time; from pathlib import Path; from reports.pdf import print_all;"
            f"pages = [Path(p) for p in {copies!r}]; start = time.perf_counter();"
            "pdfs, message = print_all(pages); seconds = time.perf_counter() - start;"
            "assert len(pdfs) == len(pages), message; print(seconds)")
    env = {**environment(folder.parent / "prefect-home"), "CAPACITAR_NO_PROGRESS": "1"}
    done = subprocess.run([python(tree), "-c", code], cwd=tree, env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: printing failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def pdf_facts(pdf: Path) -> tuple[int, str]:
    """Page count and text of a PDF (poppler's pdfinfo and pdftotext)."""
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    pages = int(re.search(r"^Pages:\s+(\d+)", info.stdout, re.M).group(1))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    return pages, text


def same_pages(first: Path, second: Path) -> str:
    """'same' when every PDF in both folders has the same page count and text."""
    differ = []
    for pdf in sorted(first.glob("*.pdf")):
        if pdf_facts(pdf) != pdf_facts(second / pdf.name):
            differ.append(pdf.name)
    n = len(list(first.glob("*.pdf")))
    return f"same pages ({n} PDFs)" if not differ else f"DIFFERENT: {', '.join(differ[:5])}"


def load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cell(value, unit: str = "s") -> str:
    return "-" if value is None else f"{value:.2f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", action="append", type=Path,
                        help="a capacitar tree with its .venv (repeat: before, after)")
    parser.add_argument("--pdf-pages", type=int, default=40, help="cohort pages to print")
    parser.add_argument("--cohorts", type=int, default=20, help="cohorts of the national-like "
                        "program whose pages are printed")
    parser.add_argument("--skip-pdf", action="store_true")
    parser.add_argument("--skip-small", action="store_true", help="only (d)")
    parser.add_argument("--repeat", type=int, default=3, help="runs after one changed answer "
                        "per tree (medians; default 3)")
    parser.add_argument("--timeline", action="store_true",
                        help="print the run's output with the second each part appeared")
    args = parser.parse_args()
    trees = [tree.resolve() for tree in (args.repo or [ROOT])]
    sys.path.insert(0, str(ROOT))
    from benchmarks._machine import describe

    print(describe())
    print(f"load average at start: {load()} (2 cores shared with other work)")
    results = {tree: {} for tree in trees}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for i, tree in enumerate(trees if not args.skip_small else []):
            results[tree].update(small_program(tree, work / f"small{i}", args.repeat))
            if args.timeline:
                print(f"\n{tree.name}: `capacitar run` as it appeared (seconds from start)\n"
                      + results[tree]["timeline"])
        if not args.skip_pdf:
            pages = national_pages(trees[-1], work / "pages", args.cohorts)[:args.pdf_pages]
            for i, tree in enumerate(trees):
                seconds = print_pages(tree, pages, work / f"pdf{i}" / "out")
                results[tree]["pdf_page"] = seconds / len(pages)
                results[tree]["pdf_all_minutes"] = seconds / len(pages) * NATIONAL_COHORT_PAGES / 60
            check = (same_pages(work / "pdf0" / "out", work / f"pdf{len(trees) - 1}" / "out")
                     if len(trees) > 1 else "")
        print(f"load average at end: {load()}")
        rows = [("(a) run after one answer changed, PDFs on", "run", "s"),
                ("(b) first output on screen", "first_output", "s"),
                ("(b) longest silence until the summary (worst)", "longest_silence", "s"),
                ("(b) exit after the summary ('Done')", "exit_after_done", "s"),
                ("(c) validate on the demo", "validate", "s"),
                ("(d) PDF, seconds per cohort page", "pdf_page", "s"),
                (f"(d) PDF, all {NATIONAL_COHORT_PAGES:,} national cohort pages",
                 "pdf_all_minutes", "min")]
        print(f"\n{'goal':<48}" + "".join(f"{tree.name:>14}" for tree in trees) + "   goal")
        for label, key, unit in rows:
            goal = GOALS.get(key)
            print(f"{label:<48}" + "".join(f"{cell(results[t].get(key), unit):>14}"
                                           for t in trees)
                  + (f"   <= {goal:g} {unit}" if goal else ""))
        for tree in trees:
            if "runs" in results[tree]:
                print(f"(a) {tree.name}: runs of " + ", ".join(f"{w:.2f}" for w in
                                                            results[tree]["runs"]) + " s")
        if not args.skip_pdf:
            print(f"(d) {len(pages)} pages of a {args.cohorts}-cohort national-like program; "
                  + (f"old vs new printer: {check}" if check else "one tree, nothing compared"))


if __name__ == "__main__":
    main()
