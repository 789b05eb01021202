"""SWiRL's four data strategies: which judged steps become training transitions, and with what reward."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from swirl_agents.episodes import Episode, Transition, decompose
from swirl_agents.judges.base import GOOD, Judgment

STRATEGIES = ("none", "outcome", "process", "process+outcome")


@dataclass(frozen=True)
class FilterStats:
    """What a filter kept."""

    strategy: str
    episodes: int
    episodes_kept: int
    transitions: int
    transitions_kept: int
    correct_kept_share: float
    """Share of kept episodes whose final answer is correct."""
    good_share_by_step: list[float] = field(default_factory=list)
    """Over all input episodes: share of GOOD judgments at step index 0, 1, 2, ..."""

    def __str__(self) -> str:
        return (
            f"{self.strategy}: kept {self.episodes_kept}/{self.episodes} episodes, "
            f"{self.transitions_kept}/{self.transitions} transitions; "
            f"{self.correct_kept_share:.1%} of kept episodes correct"
        )


def _keeps(strategy: str, episode: Episode, judgments: Sequence[Judgment]) -> bool:
    process_ok = all(j.label == GOOD for j in judgments)
    if strategy == "none":
        return True
    if strategy == "outcome":
        return episode.correct
    if strategy == "process":
        return process_ok
    return process_ok and episode.correct


def filter_transitions(
    episodes: Sequence[Episode], judgments: dict[str, list[Judgment]], strategy: str = "process"
) -> tuple[list[Transition], FilterStats]:
    """Keep whole episodes by ``strategy`` and return their transitions, rewarded by the judge.

    Strategies (SWiRL section 3): ``none`` keeps every episode; ``outcome`` keeps episodes whose
    final answer is correct; ``process`` keeps episodes whose every step was judged GOOD (the
    paper's best, wrong final answers included); ``process+outcome`` needs both. Each kept
    transition's reward is its judgment's score R(a|s).

    Example:
        >>> from swirl_agents.episodes import Step
        >>> from swirl_agents.judges import OutcomeJudge, judge_episodes
        >>> ep = Episode("e", "q", "SwirlSynthMath-v0", "demo", 0, "2+2?", "Solve.",
        ...              (Step("<answer>5</answer>", "answer", "5", None),), "5", {"exact_match": 0.0}, 0.0, True, False)
        >>> transitions, stats = filter_transitions([ep], judge_episodes([ep], OutcomeJudge()), "outcome")
        >>> len(transitions), stats.episodes_kept
        (0, 0)
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"expected strategy in {STRATEGIES}, actual {strategy!r}")
    kept_eps, kept = [], []
    good_by_step: dict[int, list[bool]] = {}
    for ep in episodes:
        js = judgments.get(ep.episode_id)
        if js is None or len(js) != len(ep.steps):
            raise ValueError(
                f"episode {ep.episode_id} has {len(ep.steps)} steps but {0 if js is None else len(js)} judgments; "
                "judge the same episode file you filter"
            )
        for i, j in enumerate(js):
            good_by_step.setdefault(i, []).append(j.label == GOOD)
        if _keeps(strategy, ep, js):
            kept_eps.append(ep)
            judge_id = js[0].judge_id if js else ""
            kept += decompose(ep, [j.score for j in js], judge_id, [j.label for j in js])
    stats = FilterStats(
        strategy=strategy,
        episodes=len(episodes),
        episodes_kept=len(kept_eps),
        transitions=sum(len(ep.steps) for ep in episodes),
        transitions_kept=len(kept),
        correct_kept_share=sum(ep.correct for ep in kept_eps) / len(kept_eps) if kept_eps else 0.0,
        good_share_by_step=[sum(v) / len(v) for _, v in sorted(good_by_step.items())],
    )
    return kept, stats
