"""Hostile-input benchmark: hostile inputs and injected faults, from the tools up to the judges, servers and files.

    python benchmarks/hostile_bench.py [--scale 1.0] [--seed 0]

Writes ``benchmarks/results/hostile.json`` and ``hostile.md`` with the command, the machine and, per
section, inputs tried, failures (crashes, hangs past the stated bound, wrong values) with examples,
outcomes by kind and the slowest input; for the calculator also per-call latency (p50/p95/p99) on
the in-process fast path and in a worker, worker restarts and peak memory.

A section is a function ``(args) -> dict`` listed in :data:`SECTIONS`; its dict has at least
``name`` and, when it checks anything, ``tried`` and ``failures``. Adding a section (forged evidence
against judges, HTTP faults, data loss) is writing one such function and listing it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swirl_env.data.paths import data_dir, iter_jsonl  # noqa: E402
from swirl_env.fuzz import calculator as calc_fuzz  # noqa: E402
from swirl_env.fuzz import loaders, parser, scoring  # noqa: E402
from swirl_env.fuzz.core import fuzz  # noqa: E402
from swirl_env.tools.base import ToolError  # noqa: E402
from swirl_env.tools.calculator import TIME_LIMIT, Calculator, is_cheap, parse, worker_pool  # noqa: E402
from swirl_env.tools.sandbox import WorkerPool  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile_agents  # noqa: E402  (the sections above the tools: forged evidence, code, servers, data loss)

RESULTS = Path(__file__).resolve().parent / "results"
ANNOTATION = re.compile(r"<<([^=>]*)=([^>]*)>>")


# --- sections -------------------------------------------------------------------------------------


def calculator_fuzz(args) -> dict:
    """Random, exotic and noisy expressions through the tool, checked against an independent reference."""
    generate, check = calc_fuzz.target()
    report = fuzz("calculator", generate, check, seconds=120 * args.scale, seed=args.seed,
                  max_inputs=int(12_000 * args.scale))
    return {"name": "calculator: fuzz", "bound_s": TIME_LIMIT + 1.0, **report.as_dict(), **_pool_stats()}


def calculator_latency(args) -> dict:
    """Per-call cost on every GSM8K train annotation and on hostile expressions: in process vs in a worker."""
    expressions = [e for _, row in iter_jsonl(data_dir() / "gsm8k/train.jsonl.gz") for e, _ in ANNOTATION.findall(row["answer"])]
    calc, pool = Calculator(), worker_pool()
    calc("sqrt(2)")  # a started worker: no start inside a timing
    cheap = [e for e in expressions if _cheap(e)]
    rng = __import__("random").Random(args.seed)
    hostile = [calc_fuzz.random_expression(rng, rng.randint(1, 4)) for _ in range(int(2000 * args.scale))]
    rows = {
        "gsm8k annotations, Calculator (fast path where provably cheap)": _timings(calc, expressions),
        "gsm8k annotations, forced through a worker": _timings(pool.call, expressions[: int(5000 * args.scale)]),
        "hostile expressions, Calculator": _timings(calc, hostile),
    }
    return {"name": "calculator: per-call latency", "gsm8k_annotations": len(expressions),
            "fast_path_share": round(len(cheap) / len(expressions), 4), "latency_ms": rows, **_pool_stats()}


def calculator_known_hangs(args) -> dict:
    """The inputs that hung sympy before the bounds: each must answer (a value or an error) within the bound."""
    texts = ["(pi/50)**(1/5**9)", "(pi/50)**(1/5**300)", "floor((sqrt(2)+sqrt(3))**2-5-2*sqrt(6))",
             "1/((sqrt(2)+sqrt(3))**2-5-2*sqrt(6))", "acos(cos(exp(1000)))", "sin(10**2999) * cos(10**2999)",
             "sqrt(factorial(1000) + 1)", "(1+10**-1000)**(10**1000)", "9**9**9**9", "factorial(10**9)"]
    calc, out, failures = Calculator(), [], 0
    calc("sqrt(2)")  # a started worker: the start is not part of any input's time
    for text in texts:
        start = time.perf_counter()
        try:
            result = calc(text)
        except ToolError as error:
            result = f"error: {error}"
        seconds = time.perf_counter() - start
        failures += seconds > TIME_LIMIT + 1.0
        out.append({"input": text, "result": result[:80], "seconds": round(seconds, 4)})
    return {"name": "calculator: inputs that hung sympy", "tried": len(texts), "failures": failures,
            "bound_s": TIME_LIMIT + 1.0, "cases": out}


def worker_kills(args) -> dict:
    """The bound itself: an uninterruptible C loop and a 1 GiB allocation in workers, then a normal call."""
    pool = WorkerPool("builtins:eval", time_limit=1.0, memory_limit=512 * 2**20, size=1)
    pool.call("1")
    cases, failures = [], 0
    for text in ["sum(range(10**12))", "bytearray(2**30)", "__import__('os')._exit(3)"] * max(1, int(3 * args.scale)):
        start, kind = time.perf_counter(), "none"
        try:
            pool.call(text)
            failures += 1  # each of these must be stopped
        except ToolError as error:
            kind = calc_fuzz.error_kind(str(error))
        stopped = time.perf_counter() - start
        start = time.perf_counter()
        failures += pool.call("6*7") != 42
        cases.append({"input": text, "error_kind": kind, "stopped_after_s": round(stopped, 3),
                      "next_call_with_restart_s": round(time.perf_counter() - start, 3)})
    pool.close()
    return {"name": "worker bounds (time 1 s, memory 512 MiB)", "tried": len(cases), "failures": failures,
            "cases": cases, "restarts": pool.stats.restarts, "timeouts": pool.stats.timeouts,
            "out_of_memory": pool.stats.out_of_memory, "deaths": pool.stats.crashes}


def parser_fuzz(args) -> dict:
    """Tags, half tags, lookalikes and noise through parse_action."""
    return {"name": "action parser: fuzz", "bound_s": 1.0, **fuzz(
        "parser", *parser.target(), seconds=60 * args.scale, seed=args.seed, max_inputs=int(100_000 * args.scale)
    ).as_dict()}


def scoring_fuzz(args) -> dict:
    """Known numbers in many wrappings, near misses, QA answers and noise through scoring."""
    return {"name": "scoring: fuzz", "bound_s": 1.0, **fuzz(
        "scoring", *scoring.target(), seconds=60 * args.scale, seed=args.seed, max_inputs=int(50_000 * args.scale)
    ).as_dict()}


def loader_fuzz(args) -> dict:
    """Random valid records in every published format, and damaged files, through load_questions."""
    return {"name": "loaders: fuzz", **fuzz(
        "loaders", *loaders.target(), seconds=90 * args.scale, seed=args.seed, max_inputs=int(10_000 * args.scale)
    ).as_dict()}


SECTIONS: list[Callable[[argparse.Namespace], dict]] = [
    calculator_known_hangs, calculator_latency, calculator_fuzz, worker_kills, parser_fuzz, scoring_fuzz, loader_fuzz,
    *hostile_agents.SECTIONS,
]
"""What the benchmark runs, in order; append a function to add a section."""


# --- helpers --------------------------------------------------------------------------------------


def _cheap(text: str) -> bool:
    try:
        return is_cheap(parse(text))
    except ToolError:
        return False


def _timings(call: Callable[[str], object], texts: list[str]) -> dict:
    seconds = []
    for text in texts:
        start = time.perf_counter()
        try:
            call(text)
        except ToolError:
            pass
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    q = statistics.quantiles(seconds, n=100)
    return {"calls": len(texts), "p50": round(q[49] * 1e3, 4), "p95": round(q[94] * 1e3, 4),
            "p99": round(q[98] * 1e3, 4), "max": round(seconds[-1] * 1e3, 2)}


def _pool_stats() -> dict:
    stats = worker_pool().stats
    return {"worker_calls": stats.calls, "workers_started": stats.started, "worker_restarts": stats.restarts,
            "worker_timeouts": stats.timeouts, "worker_out_of_memory": stats.out_of_memory,
            "worker_peak_rss_mb": round(stats.peak_rss_bytes / 2**20, 1)}


def _machine() -> dict:
    return {"nproc": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "platform": platform.platform(terse=True),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def _n(value) -> str:
    return "–" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _markdown(result: dict) -> str:
    lines = ["# Hostile-input benchmark", "", f"Command: `{result['command']}`  ",
             f"Machine: {result['machine']} (load average at the end: {result['load_average_end']})  ",
             f"Wall time: {result['wall_s']} s; peak memory: this process {result['peak_rss_mb']} MB, "
             f"largest worker {result['peak_worker_rss_mb']} MB", "",
             "| section | tried | failures | bound (s) | slowest (s) | outcomes |", "|---|---|---|---|---|---|"]
    for s in result["sections"]:
        outcomes = ", ".join(f"{k} {v:,}" for k, v in s.get("outcomes", {}).items())
        lines.append(f"| {s['name']} | {_n(s.get('tried'))} | {_n(s.get('failures'))} | {s.get('bound_s', '–')} | "
                     f"{s.get('slowest_s', '–')} | {outcomes or '–'} |")
    for s in result["sections"]:
        lines += ["", f"## {s['name']}", ""]
        if "latency_ms" in s:
            lines += [f"{s['gsm8k_annotations']:,} GSM8K train annotations, {s['fast_path_share']:.2%} provably cheap "
                      "(evaluated in process).", "", "| inputs | calls | p50 ms | p95 ms | p99 ms | max ms |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {k} | {v['calls']:,} | {v['p50']} | {v['p95']} | {v['p99']} | {v['max']} |"
                      for k, v in s["latency_ms"].items()]
        for case in s.get("cases", []):
            lines.append(f"- `{case['input']}`: " + ", ".join(f"{k} {v}" for k, v in case.items() if k != "input"))
        for kind, examples in s.get("examples", {}).items():
            lines += [f"- {kind}: `{e['input'][:120]}` ({e['detail'][:120]})" for e in examples]
        extra = {k: v for k, v in s.items() if k.startswith("worker_") or k in ("restarts", "slowest_input")}
        if extra:
            lines.append("- " + ", ".join(f"{k}: {str(v)[:100]}" for k, v in extra.items()))
    return "\n".join(lines) + "\n"


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("--scale", type=float, default=1.0, help="multiply every section's input count (default 1)")
    cli.add_argument("--seed", type=int, default=0)
    cli.add_argument("--only", nargs="*", default=None, help="section functions to run (default all)")
    cli.add_argument("--out", default=str(RESULTS / "hostile"), help="results path without extension")
    args = cli.parse_args()
    machine, start = _machine(), time.monotonic()
    sections = []
    for section in SECTIONS:
        if args.only is not None and section.__name__ not in args.only:
            continue
        began = time.monotonic()
        sections.append({**section(args), "section_wall_s": round(time.monotonic() - began, 1)})
        print(f"{sections[-1]['name']}: {sections[-1].get('tried', '-')} tried, "
              f"{sections[-1].get('failures', '-')} failures", file=sys.stderr)
    worker_pool().close()  # reaped now, so that RUSAGE_CHILDREN counts the workers
    result = {
        "command": "python benchmarks/hostile_bench.py" + "".join(f" {a}" for a in sys.argv[1:]),
        "machine": machine, "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.monotonic() - start, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_worker_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "sections": sections,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    out.with_suffix(".md").write_text(_markdown(result))
    failures = sum(s.get("failures", 0) for s in sections)
    print(f"{failures} failure(s); wrote {out.with_suffix('.md')}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
