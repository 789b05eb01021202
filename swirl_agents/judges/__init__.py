"""Step judges: LLM judges on any backend, gold-guided reference judges, the outcome judge, a persistent cache."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from tqdm.auto import tqdm

from swirl_agents.episodes import Episode
from swirl_agents.jsonl import from_record, read_jsonl, write_jsonl
from swirl_agents.judges.base import (BAD, GOOD, LABELS, UNPARSEABLE, BatchJudge, EpisodeJudge, Judge, Judgment,
                                      judge_batch)
from swirl_agents.judges.cache import CachedJudge, JudgmentCache
from swirl_agents.judges.llm import LLMJudge, parse_verdict
from swirl_agents.judges.outcome import OutcomeJudge
from swirl_agents.judges.reference import ReferenceMathJudge, ReferenceQAJudge

Judgments = dict[str, list[Judgment]]
"""Episode id → one judgment per step."""


def judge_episodes(
    episodes: Sequence[Episode], judge: Judge, *, batch_size: int = 64, progress: bool = False
) -> Judgments:
    """Judge every step of every episode; whole-episode judges use ``judge_episode``.

    Example:
        >>> from swirl_agents.episodes import Step
        >>> ep = Episode("e", "q", "SwirlSynthMath-v0", "demo", 0, "2+2?", "Solve.",
        ...              (Step("<answer>4</answer>", "answer", "4", None, reward=1.0),), "4",
        ...              {"exact_match": 1.0}, 1.0, True, False)
        >>> judge_episodes([ep], OutcomeJudge())["e"][0].label
        'GOOD'
    """
    if isinstance(judge, EpisodeJudge):
        return {ep.episode_id: judge.judge_episode(ep) for ep in episodes}
    # The states are the episodes' recorded structure: what the tools returned, never re-parsed text.
    pairs = [(ep.episode_id, ep.context(i), step.action) for ep in episodes for i, step in enumerate(ep.steps)]
    out: Judgments = {ep.episode_id: [] for ep in episodes}
    bar = tqdm(total=len(pairs), desc=f"judge {judge.id}", unit="step", disable=not progress)
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i : i + batch_size]
        for (eid, _, _), j in zip(chunk, judge_batch(judge, [(s, a) for _, s, a in chunk])):
            out[eid].append(j)
        bar.update(len(chunk))
    bar.close()
    return out


def write_judgments(path: str | os.PathLike, judgments: Judgments) -> None:
    """One JSON line per episode: ``{"episode_id", "judgments": [...]}`` (written atomically)."""
    write_jsonl(path, ({"episode_id": eid, "judgments": [j.to_dict() for j in js]} for eid, js in judgments.items()))


def read_judgments(path: str | os.PathLike) -> Judgments:
    """Inverse of :func:`write_judgments`; a malformed line names the file, the line and the field."""
    out: Judgments = {}

    def parse(record: dict) -> None:
        eid, items = record["episode_id"], record["judgments"]
        if not isinstance(eid, str) or not isinstance(items, list):
            raise TypeError("expected 'episode_id' to be a string and 'judgments' a list")
        out[eid] = [from_record(Judgment, j) if isinstance(j, dict) else _not_object(j) for j in items]

    for _ in read_jsonl(path, parse, "judgments"):
        pass
    return out


def _not_object(value: object) -> Judgment:
    raise TypeError(f"expected each judgment to be an object, actual {type(value).__name__}")


def count_faults(judgments: Judgments) -> int:
    """Steps the judge could not judge (its backend failed after its retries)."""
    return sum(bool(j.fault) for js in judgments.values() for j in js)


def process_label_accuracy(judgments: Judgments | Iterable[Judgment]) -> float:
    """Share of steps judged GOOD — SWiRL's process label accuracy of a policy."""
    items = [j for js in judgments.values() for j in js] if isinstance(judgments, dict) else list(judgments)
    return sum(j.label == GOOD for j in items) / len(items) if items else 0.0


from swirl_agents.judges.factory import make_judge  # noqa: E402  (the factory builds the judges above)

__all__ = [
    "BAD", "GOOD", "LABELS", "UNPARSEABLE", "BatchJudge", "CachedJudge", "EpisodeJudge", "Judge", "Judgment",
    "JudgmentCache", "Judgments", "LLMJudge", "OutcomeJudge", "ReferenceMathJudge", "ReferenceQAJudge", "count_faults",
    "judge_batch", "judge_episodes", "make_judge", "parse_verdict", "process_label_accuracy", "read_judgments",
    "write_judgments",
]
