"""The replay agent: answer each context with the step a recorded episode took there.

A recording (episodes, or a JSONL file of them) is indexed by the SHA-256 of every state the
agent saw (:meth:`swirl_agents.episodes.Episode.states`). Given an observation, the agent returns
the recorded step for that exact context, with its ``Step.meta``, so replaying an episode through
the same env reproduces it byte for byte: observations, rewards and the final context.

The first context of every sample of a question is the same, so a recording with several samples
per question is ambiguous there. ``with_seed(seed)`` keeps the episodes recorded with that seed
(the rollout gives each sample its own seed and calls ``with_seed`` per sample), and a context
that several kept episodes continue differently raises, naming the fix.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Iterable, Sequence

from swirl_env import context as ctx
from swirl_agents.agents.base import StepOutput
from swirl_agents.episodes import Episode, Step, read_episodes

__all__ = ["ReplayAgent"]


def state_key(state: str) -> bytes:
    """The index key of a context: its SHA-256 digest (hashlib, stable across processes)."""
    return hashlib.sha256(state.encode("utf-8")).digest()


class ReplayAgent:
    """Replays recorded episodes: for a context it has seen, the step that was taken there.

    Args:
        episodes: :class:`~swirl_agents.episodes.Episode` objects, or the path of an episodes JSONL file.

    Raises (from :meth:`act`):
        KeyError: the context is in no recorded episode.
        ValueError: recorded episodes continue the context differently (use :meth:`with_seed`).

    Example:
        >>> from swirl_agents.episodes import Episode, Step
        >>> ep = Episode("e", "q", "SwirlSynthQA-v0", "demo", 0, "Who?", "Be brief.",
        ...              (Step("Look. <search_query>x</search_query>", "search_query", "x", "x: y"),
        ...               Step("<answer>y</answer>", "answer", "y", None, reward=1.0)),
        ...              "y", {"exact_match": 1.0}, 1.0, True, False)
        >>> agent = ReplayAgent([ep])
        >>> [agent.act(state) for state in ep.states()]
        ['Look. <search_query>x</search_query>', '<answer>y</answer>']
    """

    def __init__(self, episodes: Iterable[Episode] | str | os.PathLike):
        if isinstance(episodes, (str, os.PathLike)):
            self.source = os.fspath(episodes)
            episodes = read_episodes(episodes)
        else:
            self.source = "episodes given in memory"
        self.episodes: list[Episode] = list(episodes)
        self.seed: int | None = None
        self._index = _build_index(self.episodes)

    @property
    def name(self) -> str:
        return f"replay({self.source})"

    def with_seed(self, seed: int) -> ReplayAgent:
        """The same recording restricted to the episodes recorded with ``seed`` (one sample per question).

        With no episode of that seed the recording is kept whole, so a recording made without
        per-sample seeds still replays.
        """
        kept = [ep for ep in self.episodes if ep.seed == seed]
        if not kept:
            return self
        other = copy.copy(self)
        other.episodes, other.seed = kept, seed
        other._index = _build_index(kept)
        return other

    def act(self, observation: str) -> str:
        return self.step(observation).text

    def step(self, observation: str) -> StepOutput:
        """The recorded step for ``observation`` and its recorded ``Step.meta``."""
        steps = self._index.get(state_key(observation))
        if not steps:
            raise KeyError(self._missing_message(observation))
        first = steps[0]
        if any(s.action != first.action for s in steps[1:]):
            raise ValueError(
                f"expected one recorded step for this context, actual {len(steps)} different ones "
                f"({len({s.action for s in steps})} distinct) from samples with different seeds; replay one "
                f"sample at a time with agent.with_seed(episode.seed), or pass only one episode per question"
            )
        return StepOutput(first.action, dict(first.meta))

    def step_batch(self, observations: Sequence[str]) -> list[StepOutput]:
        return [self.step(o) for o in observations]

    def _missing_message(self, observation: str) -> str:
        try:
            question = ctx.Context.parse(observation).question
        except ValueError:
            question = ""
        ids = sorted({ep.question_id for ep in self.episodes})
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        same = [ep for ep in self.episodes if ep.question == question]
        hint = (
            f" {len(same)} recorded episode(s) ask this question, but none reached this context: "
            f"the env, its instructions or an earlier step differ from the recording"
            if same else " the recording has no episode of this question"
        )
        seed = f" with seed {self.seed}" if self.seed is not None else ""
        return (
            f"no recorded step for this context; the recording ({self.source}) has {len(self.episodes)} "
            f"episodes{seed} of questions {shown};{hint}"
        )


def _build_index(episodes: list[Episode]) -> dict[bytes, list[Step]]:
    """State digest -> the steps recorded from that state (one per episode that reached it)."""
    index: dict[bytes, list[Step]] = {}
    for ep in episodes:
        for state, step in zip(ep.states(), ep.steps):
            index.setdefault(state_key(state), []).append(step)
    return index
