"""Fuzzing: throw generated hostile input at the calculator, the action parser, scoring and the loaders.

    python -m swirl_env.fuzz calculator --seconds 60
    python -m swirl_env.fuzz parser --seconds 10 --seed 3

Each target has a generator (a function of a :class:`random.Random`, so that hypothesis can drive
it through ``st.randoms()`` in the tests and ``benchmarks/hostile_bench.py`` can reuse it) and a
checker that says what one input did: a value, an error of some kind, or a failure
(:data:`~swirl_env.fuzz.core.FAILURES`: a crash, a hang past the bound, a wrong value). The report
gives inputs tried, outcomes by kind, the slowest input and examples of each failure; the command
exits 1 when there is any failure. ``atheris`` is not needed: the generators know the grammar.

Example:
    >>> report = run("parser", seconds=5, max_inputs=200)
    >>> report.tried, report.failures
    (200, 0)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from swirl_env.fuzz import calculator, loaders, parser, scoring
from swirl_env.fuzz.core import FAILURES, Outcome, Report, fuzz

TARGETS: dict[str, Callable[[], tuple[Callable, Callable]]] = {
    "calculator": calculator.target,
    "parser": parser.target,
    "loaders": loaders.target,
    "scoring": scoring.target,
}
"""Target name -> factory of (generator, checker)."""


def run(target: str, seconds: float, seed: int = 0, max_inputs: int | None = None) -> Report:
    """Fuzz ``target`` (a key of :data:`TARGETS`) for ``seconds`` or ``max_inputs`` inputs."""
    generate, check = TARGETS[target]()
    return fuzz(target, generate, check, seconds=seconds, seed=seed, max_inputs=max_inputs)


def main(argv: list[str] | None = None) -> int:
    """The command line: one target, a report as JSON on stdout, exit status 1 on any failure."""
    cli = argparse.ArgumentParser(prog="python -m swirl_env.fuzz", description=__doc__.split("\n")[0])
    cli.add_argument("target", choices=sorted(TARGETS))
    cli.add_argument("--seconds", type=float, default=30.0, help="how long to fuzz (default 30)")
    cli.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    cli.add_argument("--max-inputs", type=int, default=None, help="stop after this many inputs")
    args = cli.parse_args(argv)
    report = run(args.target, args.seconds, args.seed, args.max_inputs)
    print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    if report.failures:
        print(f"FAILED: {report.failures} failure(s) in {report.tried} inputs", file=sys.stderr)
        return 1
    return 0


__all__ = ["FAILURES", "TARGETS", "Outcome", "Report", "main", "run"]
