"""Multi-step inference: answer one question with an agent and a tool, the paper's loop at test time."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from swirl_agents.agents.base import AgentFault, agent_name, step_batch
from swirl_agents.episodes import Episode, EpisodeRecorder
from swirl_agents.rollout import run_versions
from swirl_env.data.types import Question


@dataclass(frozen=True)
class Solution:
    """The outcome of :func:`solve`."""

    answer: str | None
    """The agent's final answer; ``None`` when the step limit came first (no answer)."""
    answered: bool
    episode: Episode
    """The whole episode: every step, tool result and timing (``episode.score`` is empty-gold scoring
    for a free-form question)."""


def free_question(text: str, dataset: str = "") -> Question:
    """A :class:`Question` for free text: no gold answers, an id derived from the text.

    Example:
        >>> free_question("Who wrote Dune?").id
        'free-...'
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected a non-empty question, actual {text!r}")
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
    return Question(id=f"free-{digest}", question=text.strip(), answers=(), dataset=dataset)


def _env_for(question: str | Question, env_id: str | gym.Env, max_steps: int | None, env_kwargs: dict) -> tuple[gym.Env, str]:
    """An env that holds ``question``, and that question's id."""
    if isinstance(env_id, gym.Env):
        if max_steps is not None or env_kwargs:
            raise ValueError("expected max_steps and env kwargs only with an env id, actual an env instance; "
                             "build the env with them, or pass its id")
        return env_id, _find(env_id, question)
    q = question if isinstance(question, Question) else free_question(question)
    kwargs = dict(env_kwargs, questions=[q])
    if max_steps is not None:
        kwargs["max_steps"] = max_steps
    return gym.make(env_id, **kwargs), q.id


def _find(env: gym.Env, question: str | Question) -> str:
    """The id of ``question`` (a Question, an id, or the exact text) among an env's questions."""
    questions = env.unwrapped.questions
    if isinstance(question, Question):
        question = question.id
    for q in questions:
        if question in (q.id, q.question):
            return q.id
    raise KeyError(f"expected a question of this env (an id or its exact text), actual {question[:80]!r}; "
                   "pass env_id as a string to solve a question the env does not hold")


def _next_step(agent: Any, observation: str) -> tuple[str, dict, float]:
    start = time.perf_counter()
    out = step_batch(agent, [observation])[0]
    if out.fault:
        raise AgentFault(f"{agent_name(agent)} could not write a step: {out.fault}")
    return out.text, dict(out.meta or {}), time.perf_counter() - start


def solve(
    question: str | Question,
    agent: Any,
    *,
    env_id: str | gym.Env = "SwirlHotpot-v0",
    max_steps: int | None = None,
    seed: int = 0,
    **env_kwargs: Any,
) -> Solution:
    """Answer ``question`` step by step with ``agent`` and the env's tools; stop at an answer or the step limit.

    Args:
        question: Free text (not necessarily in any data set; scored against no gold answers), or a
            :class:`Question`. With an env instance, an id or the exact text of one of its questions.
        agent: Anything with ``act`` (or ``step_batch``, whose ``meta`` is recorded).
        env_id: A registered env id, built with ``questions=[question]`` (its tools and prompt), or an
            env instance.
        max_steps: Step limit (default the env's: 5 for QA, 10 for math).
        seed: The episode seed.
        **env_kwargs: More ``gym.make`` arguments (``corpus``, ``top_k``, ``tools``...).

    Returns:
        A :class:`Solution`; ``answered=False`` and ``answer=None`` when the limit came first.

    Example:
        >>> class Calc:
        ...     def act(self, obs):
        ...         return "<answer>5</answer>" if obs.endswith("</result>\\n\\n") else "<math_exp>2+3</math_exp>"
        >>> solve("What is 2 + 3?", Calc(), env_id="SwirlSynthMath-v0").answer
        '5'
        >>> solve("What is 2 + 3?", Calc(), env_id="SwirlSynthMath-v0", max_steps=1).answered
        False
    """
    env, question_id = _env_for(question, env_id, max_steps, env_kwargs)
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    recorder = EpisodeRecorder(
        env,
        episode_id=f"{name}/{question_id}/solve",
        env_id=name,
        agent=agent_name(agent),
        seed=seed,
        question_id=question_id,
        versions=run_versions(name),
    )
    while True:
        text, meta, seconds = _next_step(agent, recorder.observation)
        episode = recorder.step(text, meta=meta, agent_seconds=seconds)
        if episode is not None:
            return Solution(answer=episode.answer, answered=episode.answer is not None, episode=episode)
