"""Evaluate a policy in the same envs it was trained in: accuracy and process label accuracy."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym

from swirl_agents.agents.base import agent_name
from swirl_agents.episodes import Episode, read_episodes
from swirl_agents.judges import Judge, judge_episodes, process_label_accuracy
from swirl_agents.rollout import episode_id, generate_episodes, make_env, select_questions


@dataclass(frozen=True)
class EvalResult:
    """The metrics of one policy on one env split."""

    env_id: str
    split: str
    agent: str
    episodes: int
    accuracy: float
    """Mean primary score at the answer (exact match for QA, numeric match for math); no answer counts 0."""
    f1: float
    """Mean answer F1 for QA (equal to accuracy for math)."""
    answered: float
    """Share of episodes that ended with an answer rather than the step limit."""
    mean_steps: float
    malformed_rate: float
    """Share of steps that were malformed."""
    process_label_accuracy: float
    """Share of the policy's steps the judge calls GOOD (SWiRL's process label accuracy)."""
    judge: str
    tool_calls: float = 0.0
    """Mean tool calls (searches, calculations) per episode."""
    faults: int = 0
    """Episodes the agent could not finish (its server failed after its retries), left out of every mean."""
    judge_faults: int = 0
    """Steps the judge could not judge, counted as not GOOD."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(episodes: list[Episode], judgments: dict, *, env_id: str, split: str, agent: str, judge: str,
              faults: int = 0) -> EvalResult:
    """Metrics over recorded episodes and their judgments."""
    from swirl_agents.judges import count_faults

    n = max(len(episodes), 1)
    steps = sum(len(ep.steps) for ep in episodes)
    return EvalResult(
        env_id=env_id,
        split=split,
        agent=agent,
        episodes=len(episodes),
        accuracy=sum(ep.score.get("exact_match", 0.0) if ep.answer is not None else 0.0 for ep in episodes) / n,
        f1=sum(ep.score.get("f1", ep.score.get("exact_match", 0.0)) if ep.answer is not None else 0.0
               for ep in episodes) / n,
        answered=sum(ep.answer is not None for ep in episodes) / n,
        mean_steps=steps / n,
        malformed_rate=sum(bool(s.error) for ep in episodes for s in ep.steps) / max(steps, 1),
        process_label_accuracy=process_label_accuracy(judgments),
        judge=judge,
        tool_calls=sum(s.tool not in ("", "answer") for ep in episodes for s in ep.steps) / n,
        faults=faults,
        judge_faults=count_faults(judgments),
    )


def evaluate(
    env: str | gym.Env,
    agent: Any,
    *,
    out: str | os.PathLike,
    split: str | None = None,
    num_questions: int | None = None,
    judge: Judge | None = None,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = True,
    env_kwargs: dict | None = None,
) -> EvalResult:
    """Run ``agent`` once on each of ``num_questions`` questions of an env and score it.

    Args:
        env: An env id (built with ``split`` and ``env_kwargs``) or an env already built.
        agent: Anything with ``act``, or an agent spec for :func:`~swirl_agents.agents.factory.make_agent`.
        out: Episodes JSONL (resumable: a re-run finishes what is missing).
        split: With an env id: the split (default: the env's held-out split).
        num_questions: The first N questions (default all).
        judge: Labels every step for process label accuracy (default: the env's reference judge).
    """
    from swirl_agents.agents.factory import make_agent
    from swirl_agents.judges import make_judge

    if isinstance(env, str):
        env = make_env(env, **({"split": split} if split else {}), **(env_kwargs or {}))
    env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    agent = make_agent(agent, env, seed=seed, temperature=0.0)
    summary = generate_episodes(env, agent, out=out, num_questions=num_questions, batch_size=batch_size, seed=seed,
                                progress=progress)
    wanted = {episode_id(env_id, q, 0) for q in select_questions(env, None, num_questions)}
    episodes = [ep for ep in read_episodes(out) if ep.episode_id in wanted]
    judge = judge or make_judge("reference", envs=[env])
    judgments = judge_episodes(episodes, judge)
    split = (env.spec.kwargs.get("split") if env.spec is not None else None) or split or ""
    return summarize(episodes, judgments, env_id=env_id, split=split, agent=agent_name(agent), judge=judge.id,
                     faults=summary.faults)
