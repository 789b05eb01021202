"""What a fuzz run records: one :class:`Outcome` per input, counted in a :class:`Report`."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

FAILURES = ("crash", "hang", "wrong")
"""Outcome kinds that fail a run: an exception that should never escape (or an internal error),
a call longer than its bound, a value or score that is wrong."""


@dataclass(frozen=True)
class Outcome:
    """What one input did: ``kind`` is a result kind, an error kind, or one of :data:`FAILURES`."""

    kind: str
    detail: str = ""


@dataclass
class Report:
    """Counts over many inputs, the slowest one, and up to five examples of every failure."""

    target: str
    tried: int = 0
    kinds: Counter = field(default_factory=Counter)
    examples: dict[str, list[dict]] = field(default_factory=dict)
    slowest: tuple[float, str] = (0.0, "")
    seconds: float = 0.0

    def add(self, case: str, outcome: Outcome, seconds: float) -> None:
        self.tried += 1
        self.kinds[outcome.kind] += 1
        if outcome.kind in FAILURES and len(self.examples.setdefault(outcome.kind, [])) < 5:
            self.examples[outcome.kind].append({"input": case[:300], "detail": outcome.detail[:300]})
        if seconds > self.slowest[0]:
            self.slowest = (seconds, case[:300])

    @property
    def failures(self) -> int:
        return sum(self.kinds[k] for k in FAILURES)

    def as_dict(self) -> dict:
        return {
            "target": self.target, "tried": self.tried, "failures": self.failures, "seconds": round(self.seconds, 1),
            "outcomes": dict(self.kinds.most_common()), "examples": self.examples,
            "slowest_s": round(self.slowest[0], 4), "slowest_input": self.slowest[1],
        }


def fuzz(
    name: str,
    generate: Callable[[random.Random], object],
    check: Callable[[object], Outcome],
    *,
    seconds: float,
    seed: int = 0,
    max_inputs: int | None = None,
) -> Report:
    """Generate and check inputs for ``seconds`` (or ``max_inputs`` inputs), deterministically in ``seed``."""
    rng, report = random.Random(seed), Report(name)
    start = time.monotonic()
    while time.monotonic() - start < seconds and (max_inputs is None or report.tried < max_inputs):
        case = generate(rng)
        began = time.perf_counter()
        outcome = check(case)
        report.add(case if isinstance(case, str) else repr(case), outcome, time.perf_counter() - began)
    report.seconds = time.monotonic() - start
    return report
