"""Benchmark: where the CPU of PDF printing goes, process by process (issue 22).

Run: python benchmarks/pdf_profile.py REPORTS_FOLDER [--pages 100] [--repo TREE]

Prints copies of the first ``--pages`` ``cohort_*.html`` of REPORTS_FOLDER (for instance
``outputs/reports`` of a national-like program written by ``benchmarks/national_program.py``
and run with ``capacitar run --no-pdf``) with ``reports.pdf.print_all`` of TREE (this tree by
default), sampling every process it starts (psutil, every 50 ms) and itself. CPU seconds per
page by kind of process: Python, the browser, its renderers, the PDF compositor, the GPU
process, the Playwright driver of an older tree. Unlike ``resource.getrusage`` of the
children, this counts processes that nobody waited for (Chromium's renderers).
CPU seconds are trustworthy on a shared machine; wall seconds are not.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil


def kind(process: psutil.Process) -> str | None:
    """What a process is, from its command line (None while it cannot be told yet)."""
    try:
        name, command = process.name(), process.cmdline()
    except psutil.Error:
        return None
    if not command:  # a zombie: told already
        return None
    if "node" in name:
        return "Playwright driver (node)"
    # Chromium rewrites the command line of the processes it forks, sometimes into one string.
    types = re.findall(r"--(?:utility-sub-)?type=(\S+)", " ".join(command))
    if types:
        return "chromium " + " ".join(types)
    if "chrom" in name:
        return "chromium browser"
    return None


def profile(pages: list[Path]) -> tuple[float, dict[str, float]]:
    """Wall seconds of ``print_all(pages)`` and CPU seconds by kind of process."""
    from reports.pdf import print_all

    me = psutil.Process()
    seen: dict[int, list] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for child in me.children(recursive=True):
                try:
                    times = child.cpu_times()
                except psutil.Error:
                    continue
                what = kind(child)
                entry = seen.setdefault(child.pid, ["other", 0.0])
                # A renderer shows the zygote's command line until it has rewritten it.
                if what and entry[0] in ("other", "chromium zygote"):
                    entry[0] = what
                entry[1] = times.user + times.system
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    before = me.cpu_times()
    start = time.perf_counter()
    sampler.start()
    printed, message = print_all(pages)
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    after = me.cpu_times()
    if len(printed) != len(pages):
        raise SystemExit(f"printing failed: {message}")
    cpu: dict[str, float] = collections.defaultdict(float)
    for what, seconds in seen.values():
        cpu[what] += seconds
    cpu["python (the printing process)"] = (after.user + after.system) - (before.user
                                                                          + before.system)
    return wall, dict(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reports", type=Path, help="a folder of cohort_*.html reports")
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the capacitar tree whose printer is profiled")
    args = parser.parse_args()
    sys.path.insert(0, str(args.repo.resolve()))
    os.environ["CAPACITAR_NO_PROGRESS"] = "1"
    sources = sorted(args.reports.glob("cohort_*.html"))[:args.pages]
    with tempfile.TemporaryDirectory() as tmp:
        pages = []
        for source in sources:
            pages.append(Path(shutil.copy(source, Path(tmp) / source.name)))
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        wall, cpu = profile(pages)
    n, total = len(pages), sum(cpu.values())
    print(f"{args.repo.resolve().name}: {n} pages, load {load}: wall {wall / n:.3f} s/page, "
          f"CPU {total / n:.3f} CPU-s/page")
    for what, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
        if seconds / total >= 0.005:
            print(f"  {what:<48} {seconds / n:6.3f} CPU-s/page {100 * seconds / total:5.1f}%")


if __name__ == "__main__":
    main()
