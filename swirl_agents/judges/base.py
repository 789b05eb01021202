"""The judge contract: ``judge(state, action) -> Judgment`` with a label, a score, a rationale and provenance.

The state is a :class:`~swirl_env.context.Context`: the recorded structure of what the agent saw
(the question, its earlier steps and what the tools actually returned), never text read back out
of a rendering. A rendered string is accepted too, and parsed by the one exact parser.
Optional forms are declared here (:class:`BatchJudge`, :class:`EpisodeJudge`) and adapted in one
place, :func:`judge_batch` and :func:`swirl_agents.judges.judge_episodes`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from swirl_env.context import Context

GOOD, BAD, UNPARSEABLE = "GOOD", "BAD", "UNPARSEABLE"
LABELS = (GOOD, BAD, UNPARSEABLE)


@dataclass(frozen=True)
class Judgment:
    """One verdict on one (state, action) pair."""

    label: str
    """``GOOD``, ``BAD`` or ``UNPARSEABLE`` (an LLM reply with no clear verdict; never guessed)."""
    score: float
    """The reward R(a|s) in [0, 1]: 1 for GOOD, 0 for BAD and UNPARSEABLE unless the judge grades finer."""
    rationale: str
    judge_id: str
    judge_version: str
    fault: str = ""
    """Non-empty when the judge could not judge (its backend failed after its retries): the label is
    ``UNPARSEABLE``, the score 0, nothing is cached, and a re-run judges the step again."""

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"expected label in {LABELS}, actual {self.label!r}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"expected score in [0, 1], actual {self.score}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Judge(Protocol):
    """Anything with ``id``, ``version`` and ``judge(state, action)``."""

    id: str
    version: str

    def judge(self, state: Context, action: str) -> Judgment: ...


@runtime_checkable
class BatchJudge(Protocol):
    """A judge that grades many steps in one call (an LLM judge batches its model calls)."""

    def judge_batch(self, pairs: Sequence[tuple[Context, str]]) -> list[Judgment]: ...


@runtime_checkable
class EpisodeJudge(Protocol):
    """A judge of whole episodes: one judgment per step, knowing how the episode ended (the outcome judge)."""

    id: str
    version: str

    def judge_episode(self, episode: Any) -> list[Judgment]: ...


def judge_batch(judge: Judge, pairs: Sequence[tuple[Context | str, str]]) -> list[Judgment]:
    """Judge many (state, action) pairs, in one call for a :class:`BatchJudge`; string states are parsed."""
    pairs = [(as_context(s), a) for s, a in pairs]
    if isinstance(judge, BatchJudge):
        out = list(judge.judge_batch(pairs))
    else:
        out = [judge.judge(s, a) for s, a in pairs]
    if len(out) != len(pairs):
        raise ValueError(f"expected {len(pairs)} judgments from {judge.id}, actual {len(out)}")
    return out


def as_context(state: Context | str) -> Context:
    """A judge's state as a :class:`Context` (a rendered string is parsed by :meth:`Context.parse`)."""
    return state if isinstance(state, Context) else Context.parse(state)


def verdict(label: str, rationale: str, judge: Judge, score: float | None = None) -> Judgment:
    """A Judgment from ``judge`` with the usual score for ``label``."""
    return Judgment(label, (1.0 if label == GOOD else 0.0) if score is None else score, rationale, judge.id, judge.version)


def digest(text: str) -> str:
    """A stable content hash (sha256 hex) used for cache keys."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
