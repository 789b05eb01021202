"""What every benchmark records beside its numbers: the machine, its load, wall and CPU seconds, peak memory."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


def reproducing_command(script: str, argv: list[str]) -> str:
    """The command line that reproduces a benchmark's figures: its arguments without ``--note TEXT``, which describes
    the run rather than shaping it.

    Example:
        >>> reproducing_command("paper_bench.py", ["--seeds", "0", "--note", "resumed", "--jobs", "2"])
        'python benchmarks/paper_bench.py --seeds 0 --jobs 2'
    """
    args = list(argv)
    if "--note" in args:
        del args[args.index("--note"):args.index("--note") + 2]
    return " ".join(["python", f"benchmarks/{script}", *args])


RESULT_ENV = "SWIRL_BENCH_RESULT"
"""Where a process started by :func:`run_isolated` writes its result (:func:`report`)."""


def run_isolated(argv: list[str]) -> dict[str, Any]:
    """Run ``python *argv`` in a process of its own; return the result it :func:`report`-ed, with ``process``: its
    wall seconds, CPU seconds (user + system, all threads) and peak resident memory, of that process alone.

    One process per measured method makes peak memory a per-method number (``ru_maxrss`` of a process only grows).
    """
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, *argv], env={**os.environ, RESULT_ENV: str(out)})
        _, status, usage = os.wait4(child.pid, 0)  # the rusage of this child, not of every child so far
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        if child.returncode:
            raise RuntimeError(f"expected {' '.join(argv)} to exit with 0, actual {child.returncode}; see its output above")
        result = json.loads(out.read_text())
    result["process"] = {"wall_seconds": round(wall, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
                         "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}  # Linux reports ru_maxrss in KiB
    return result


def report(result: dict[str, Any]) -> None:
    """In a process started by :func:`run_isolated`: hand ``result`` (JSON-able) back to the parent."""
    if RESULT_ENV not in os.environ:
        raise RuntimeError(f"expected ${RESULT_ENV} (set by machine.run_isolated), actual none: run the benchmark "
                           "without its internal --run flag")
    Path(os.environ[RESULT_ENV]).write_text(json.dumps(result))


MODEL_STEMS = {"smollm2-135m-instruct": "smollm2"}


def model_stem(model: str | os.PathLike) -> str:
    """A short results-file stem for a model: ``smollm2`` for ``smollm2-135m-instruct``, else its last path part."""
    return MODEL_STEMS.get(os.fspath(model), Path(model).name.removesuffix(".gguf"))
