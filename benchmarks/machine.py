"""What every benchmark records beside its numbers: the machine, its load, wall and CPU seconds."""

from __future__ import annotations

import os
import platform
import resource
import time
from contextlib import contextmanager
from collections.abc import Iterator
from typing import Any


def machine() -> dict[str, Any]:
    """CPUs, platform and the 1-minute load average now."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average": round(os.getloadavg()[0], 2)}


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextmanager
def measured() -> Iterator[dict[str, Any]]:
    """Yields a dict that, after the block, holds wall seconds, CPU seconds (this process and its children) and the
    load average at the start and the end (a loaded machine stretches wall time, not CPU time)."""
    record: dict[str, Any] = {"load_start": round(os.getloadavg()[0], 2)}
    wall, cpu = time.perf_counter(), _cpu_seconds()
    try:
        yield record
    finally:
        record.update(wall_seconds=round(time.perf_counter() - wall, 1), cpu_seconds=round(_cpu_seconds() - cpu, 1),
                      load_end=round(os.getloadavg()[0], 2))


def describe(record: dict[str, Any], info: dict[str, Any]) -> str:
    """One line for a results page: machine, load and seconds."""
    return (f"{info['cpus']} CPUs ({info['platform']}); {record['wall_seconds']:.0f} s wall, {record['cpu_seconds']:.0f} s "
            f"CPU; 1-minute load average {record['load_start']} at the start, {record['load_end']} at the end")
