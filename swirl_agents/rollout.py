"""Generate episodes at scale: many envs in lockstep, one batched agent call per step, crash-safe resume.

:func:`generate_episodes` runs ``batch_size`` copies of an environment side by side. At every
step it gathers the observations of the live episodes, asks the agent for all of them at once,
steps the envs with their tool calls on a thread pool, and appends each finished episode to a
JSONL file immediately (:class:`~swirl_agents.episodes.EpisodeWriter`). Episode ids are
``{env_id}/{question_id}/{k}`` for sample ``k``, so a re-run of an interrupted command skips what
is already in the file and ends with exactly the episodes an uninterrupted run would have written.
A step the agent could not write (a server that failed after its retries) is recorded as a
:class:`~swirl_agents.episodes.Fault` in ``faults.jsonl`` beside the episodes, that episode is left
out, and the run goes on; a re-run tries it again. From the shell: ``swirl generate``.
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

import swirl_env
from swirl_agents import __version__
from swirl_agents.agents.base import StepOutput, agent_name, for_sample, step_batch
from swirl_agents.episodes import Episode, EpisodeRecorder, EpisodeWriter, Fault, faults_path
from swirl_agents.jsonl import JsonlAppender


@dataclass(frozen=True)
class RolloutSummary:
    """What one :func:`generate_episodes` call did."""

    episodes_written: int
    """Episodes appended by this call."""
    episodes_skipped: int
    """Episodes already in the file (a resumed run), not generated again."""
    accuracy: float
    """Share of the written episodes whose answer scored full marks (``Episode.correct``)."""
    mean_steps: float
    """Mean steps per written episode."""
    tool_calls: int
    malformed_steps: int
    seconds: float
    """Wall time of the call, environment construction excluded."""
    faults: int = 0
    """Episodes left out because the agent could not write a step (see ``faults.jsonl``); a re-run retries them."""

    @property
    def episodes_per_second(self) -> float:
        return self.episodes_written / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        rows = [
            ("episodes written", f"{self.episodes_written}"),
            ("episodes skipped", f"{self.episodes_skipped}"),
            ("accuracy", f"{self.accuracy:.3f}"),
            ("mean steps", f"{self.mean_steps:.2f}"),
            ("tool calls", f"{self.tool_calls}"),
            ("malformed steps", f"{self.malformed_steps}"),
            ("faults", f"{self.faults}"),
            ("seconds", f"{self.seconds:.1f}"),
            ("episodes/s", f"{self.episodes_per_second:.1f}"),
        ]
        return "\n".join(f"{name:<18}{value:>12}" for name, value in rows)


def make_env(env: str | gym.Env, **env_kwargs: Any) -> gym.Env:
    """``gym.make(env, **env_kwargs)`` for an id; an env instance is returned as it is."""
    if isinstance(env, gym.Env):
        if env_kwargs:
            raise ValueError(f"expected env_kwargs only with an env id, actual an env instance and {sorted(env_kwargs)}; "
                             "pass the id, or build the env with those arguments yourself")
        return env
    return gym.make(env, **env_kwargs)


def episode_seed(seed: int, question_id: str, sample: int) -> int:
    """The seed of sample ``sample`` of ``question_id``: stable across runs, machines and batch order.

    Example:
        >>> episode_seed(0, "q1", 0) == episode_seed(0, "q1", 0) != episode_seed(0, "q1", 1)
        True
    """
    digest = hashlib.sha256(f"{seed}/{question_id}/{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def episode_id(env_id: str, question_id: str, sample: int) -> str:
    """The id of sample ``sample`` of ``question_id`` in ``env_id``: how a re-run knows what is done."""
    return f"{env_id}/{question_id}/{sample}"


def select_questions(env: gym.Env, question_ids: Sequence[str] | None, num_questions: int | None) -> list[str]:
    """The question ids to run: ``question_ids`` (checked), else the first ``num_questions`` of the env."""
    known = [q.id for q in env.unwrapped.questions]
    if question_ids is not None:
        index = set(known)
        missing = [q for q in question_ids if q not in index]
        if missing:
            raise KeyError(f"expected question ids of this env, actual unknown ids {missing[:5]} "
                           f"({len(missing)} in all); list them with env.unwrapped.questions")
        return list(dict.fromkeys(question_ids))  # a repeated id would repeat episode ids
    if num_questions is not None and num_questions < 0:
        raise ValueError(f"expected num_questions >= 0, actual {num_questions}")
    return known if num_questions is None else known[:num_questions]


@dataclass
class _Slot:
    """One env of the lockstep batch and the episode it is running."""

    env: gym.Env
    recorder: EpisodeRecorder | None = None
    agent: Any = None


def _clone_envs(env: gym.Env, n: int) -> list[gym.Env]:
    # Shallow copies share the loaded questions and the search index (building one env per slot
    # would load them n times); reset() rebinds every piece of per-episode state.
    base = env.unwrapped
    return [base] + [copy.copy(base) for _ in range(n - 1)]


def _ask(slots: list[_Slot]) -> list[tuple[StepOutput, float]]:
    """One step for every live slot with the agent's seconds per step, batched per shared agent."""
    out: list[tuple[StepOutput, float] | None] = [None] * len(slots)
    groups: dict[int, list[int]] = {}
    for i, slot in enumerate(slots):
        groups.setdefault(id(slot.agent), []).append(i)
    for members in groups.values():
        agent = slots[members[0]].agent
        start = time.perf_counter()
        steps = step_batch(agent, [slots[i].recorder.observation for i in members])
        share = (time.perf_counter() - start) / len(members)  # the call's time, split evenly
        for i, s in zip(members, steps):
            out[i] = (s, share)
    return out  # type: ignore[return-value]


def run_versions(env_id: str) -> dict[str, str]:
    """The ``Episode.versions`` of a run: the swirl packages and the env id."""
    return {"swirl": __version__, "swirl_env": swirl_env.__version__, "env": env_id}


def generate_episodes(
    env_id: str | gym.Env,
    agent: Any,
    *,
    out: str | os.PathLike,
    question_ids: Sequence[str] | None = None,
    num_questions: int | None = None,
    samples_per_question: int = 1,
    env_kwargs: dict | None = None,
    batch_size: int = 16,
    tool_workers: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> RolloutSummary:
    """Run ``agent`` on questions of ``env_id`` and append every finished episode to ``out`` (JSONL).

    Args:
        env_id: A registered env id (``SwirlHotpot-v0``), or an env already built (its spec id names
            the episodes).
        agent: Anything with ``act``; its fastest form (:func:`swirl_agents.agents.base.step_batch`) is
            called once per lockstep step, and ``StepOutput.meta`` is stored in ``Step.meta``;
            ``with_seed(seed)`` when present gives each sample its own deterministic agent.
        out: The JSONL file; episodes already in it are skipped (resume).
        question_ids: Questions to run; default the first ``num_questions`` (or all) of the env.
        num_questions: How many questions, in the env's order, when ``question_ids`` is not given.
        samples_per_question: Episodes per question (sample ``k`` has id ``{env_id}/{qid}/{k}``).
        env_kwargs: Passed to ``gym.make`` (``split``, ``max_steps``, ``data_path``...).
        batch_size: Episodes run in lockstep (observations per agent call).
        tool_workers: Threads stepping the envs (running their tool calls) concurrently.
        seed: Root seed; each episode's seed is :func:`episode_seed` of (seed, question id, k).
        progress: Show a tqdm bar with rate and ETA.

    Returns:
        A :class:`RolloutSummary` of this call.

    Example:
        >>> import tempfile, os
        >>> class Answer42:
        ...     def act(self, observation): return "It is 42. <answer>42</answer>"
        >>> path = os.path.join(tempfile.mkdtemp(), "episodes.jsonl")
        >>> s = generate_episodes("SwirlSynthMath-v0", Answer42(), out=path, num_questions=3, progress=False)
        >>> s.episodes_written, s.mean_steps
        (3, 1.0)
        >>> generate_episodes("SwirlSynthMath-v0", Answer42(), out=path, num_questions=3, progress=False).episodes_skipped
        3
    """
    if samples_per_question < 1 or batch_size < 1 or tool_workers < 1:
        raise ValueError(f"expected samples_per_question, batch_size and tool_workers >= 1, actual "
                         f"{samples_per_question}, {batch_size}, {tool_workers}")
    env = make_env(env_id, **(env_kwargs or {}))
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    qids = select_questions(env, question_ids, num_questions)
    with EpisodeWriter(out) as writer:
        todo = [(q, k) for q in qids for k in range(samples_per_question)]
        pending = [(q, k) for q, k in todo if episode_id(name, q, k) not in writer.done]
        skipped = len(todo) - len(pending)
        start = time.perf_counter()
        faults = _FaultLog(faults_path(out))
        try:
            tally = _run(env, name, agent, pending, writer, faults, batch_size, tool_workers, seed, progress)
        finally:
            faults.close()
    return tally.summary(skipped, time.perf_counter() - start)


class _FaultLog:
    """``faults.jsonl``, opened on the first fault (a run without faults writes no file)."""

    def __init__(self, path: Path):
        self.path, self._out = path, None

    def write(self, fault: Fault) -> None:
        if self._out is None:
            self._out = JsonlAppender(self.path)
        self._out.append(asdict(fault))

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


def _run(env, name, agent, pending, writer, faults, batch_size, tool_workers, seed, progress) -> _Tally:
    from tqdm.auto import tqdm

    queue = list(reversed(pending))  # pop() from the end keeps the original order
    slots = [_Slot(e) for e in _clone_envs(env, min(batch_size, max(1, len(pending))))]
    tally = _Tally()
    bar = tqdm(total=len(pending), unit="ep", desc=name, disable=not progress, dynamic_ncols=True)
    pool = ThreadPoolExecutor(tool_workers) if tool_workers > 1 else None
    try:
        while True:
            for slot in slots:
                if slot.recorder is None and queue:
                    _start(slot, *queue.pop(), name=name, agent=agent, seed=seed)
            live = [s for s in slots if s.recorder is not None]
            if not live:
                break
            jobs = [(slot, out, secs) for slot, (out, secs) in zip(live, _ask(live))]
            finished = list(pool.map(_step, jobs)) if pool else [_step(j) for j in jobs]
            for (slot, out, _), episode in zip(jobs, finished):
                if out.fault:
                    faults.write(Fault(slot.recorder.episode_id, slot.recorder.steps_taken, agent_name(slot.agent),
                                       out.fault, time.time()))
                    tally.faults += 1
                elif episode is None:
                    continue
                else:
                    writer.write(episode)
                    tally.add(episode)
                slot.recorder = None
                bar.update(1)
                bar.set_postfix(acc=f"{tally.correct / max(tally.episodes, 1):.3f}", faults=tally.faults, refresh=False)
    finally:
        bar.close()
        if pool:
            pool.shutdown()
    return tally


def _start(slot: _Slot, question_id: str, sample: int, *, name: str, agent: Any, seed: int) -> None:
    ep_seed = episode_seed(seed, question_id, sample)
    slot.agent = for_sample(agent, ep_seed)
    slot.recorder = EpisodeRecorder(
        slot.env,
        episode_id=episode_id(name, question_id, sample),
        env_id=name,
        agent=agent_name(agent),
        seed=ep_seed,
        question_id=question_id,
        versions=run_versions(name),
        meta={"sample": sample, "rollout_seed": seed},
    )


def _step(job: tuple[_Slot, StepOutput, float]) -> Episode | None:
    slot, out, agent_seconds = job
    if out.fault:
        return None
    return slot.recorder.step(out.text, meta=out.meta, agent_seconds=agent_seconds, token_ids=out.token_ids,
                              tokenizer=out.tokenizer)


@dataclass
class _Tally:
    """Running totals of the episodes written (a run can be far too large to keep its episodes)."""

    episodes: int = 0
    correct: int = 0
    steps: int = 0
    tool_calls: int = 0
    malformed_steps: int = 0
    faults: int = 0

    def add(self, episode: Episode) -> None:
        self.episodes += 1
        self.correct += episode.correct
        self.steps += len(episode.steps)
        self.tool_calls += sum(s.tool not in ("", "answer") for s in episode.steps)
        self.malformed_steps += sum(bool(s.error) for s in episode.steps)

    def summary(self, skipped: int, seconds: float) -> RolloutSummary:
        n = max(self.episodes, 1)
        return RolloutSummary(self.episodes, skipped, self.correct / n, self.steps / n, self.tool_calls,
                              self.malformed_steps, seconds, self.faults)
