"""Print the machine a benchmark ran on."""

import os
import platform
import sys

import numpy
import pandas


def describe() -> str:
    """One line: CPU, cores, memory, Python and library versions."""
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024**2:.0f} GiB"
    except OSError:
        pass
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"machine: {cpu}, {os.cpu_count()} cores, {mem}; Python {sys.version.split()[0]}, "
            f"pandas {pandas.__version__}, numpy {numpy.__version__}")
