"""The outcome judge: every step of an episode is as good as its final answer."""

from __future__ import annotations

from swirl_agents.episodes import Episode
from swirl_agents.judges.base import BAD, GOOD, Judgment


class OutcomeJudge:
    """Labels every step GOOD when the episode's final answer is correct (by the env's scoring), else BAD.

    It judges whole episodes (:meth:`judge_episode`): a single (state, action) pair does not know
    how its episode ended.
    """

    id = "outcome"
    version = "1"

    def judge_episode(self, episode: Episode) -> list[Judgment]:
        label = GOOD if episode.correct else BAD
        why = f"final answer {episode.answer!r} scored {episode.reward:g}" if episode.answer is not None else "no answer"
        return [Judgment(label, 1.0 if label == GOOD else 0.0, why, self.id, self.version) for _ in episode.steps]

    def judge(self, state: object, action: str) -> Judgment:
        raise TypeError("OutcomeJudge judges whole episodes: use judge_episodes(episodes, OutcomeJudge())")
