"""Recorded episodes and transitions: frozen records in a versioned JSONL format, crash-safe appends.

One JSON object per line. An episode record holds everything needed to rebuild every state the
agent saw byte for byte (instructions, question, each step's text and what the env showed after
it) without re-running a tool, and, for model agents, the token ids the policy sampled at each step
with a fingerprint of their tokenizer, so that training scores exactly those tokens. Appends go
through :class:`swirl_agents.jsonl.JsonlAppender`: whole lines, one writer per file, a torn last
line dropped on the next open, so an interrupted run resumes without losing or duplicating episodes.

Schema versions: 1 had no token ids; 2 adds ``Step.token_ids`` and ``Step.tokenizer``. Version-1
files read as version 2 without ids.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from swirl_env.context import Context, Turn
from swirl_agents.jsonl import JsonlAppender, from_record, read_jsonl, write_jsonl

SCHEMA_VERSION = 2
TRANSITIONS_SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Step:
    """One action of an episode and what it led to."""

    action: str
    """The step text exactly as the env recorded it (as the agent wrote it, capped at the env's ``max_action_chars``)."""
    tool: str
    """``search_query``, ``math_exp``, ``answer``, or ``""`` when the step was malformed."""
    tool_input: str
    """The text between the action tags."""
    result: str | None
    """The tool output or error message the env showed; ``None`` for the final answer."""
    error: str = ""
    """Why the step was malformed, ``""`` otherwise."""
    reward: float = 0.0
    seconds: float = 0.0
    """Wall time of the agent call and the tool call for this step."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Agent-specific annotations, e.g. the mistake a reference agent injected (``{"mistake": "wrong_query"}``)."""
    token_ids: tuple[int, ...] | None = None
    """The ids the policy sampled for ``action`` (model agents), ``None`` otherwise."""
    tokenizer: str = ""
    """Fingerprint of the tokenizer of ``token_ids`` (:func:`swirl_agents.prompting.tokenizer_fingerprint`)."""


def _steps(value: Any) -> tuple[Step, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list of steps, actual {type(value).__name__}")
    out = []
    for i, s in enumerate(value):
        if not isinstance(s, dict):
            raise TypeError(f"step {i}: expected an object, actual {type(s).__name__}")
        try:
            out.append(from_record(Step, s, convert={"token_ids": lambda v: None if v is None else tuple(v)}))
        except (TypeError, KeyError) as e:
            raise TypeError(f"step {i}: {e if isinstance(e, TypeError) else f'missing field {e.args[0]!r}'}") from None
    return tuple(out)


@dataclass(frozen=True)
class Episode:
    """A whole episode: ids, the question, every step, the outcome and provenance."""

    episode_id: str
    question_id: str
    env_id: str
    agent: str
    """Agent id (class and model, e.g. ``transformers:/path/to/model``)."""
    seed: int
    question: str
    instructions: str
    steps: tuple[Step, ...]
    answer: str | None
    """The final answer, ``None`` when the episode was truncated without one."""
    score: dict[str, float]
    """The env's scores at the end (``exact_match``, ``f1`` for QA; ``exact_match`` for math)."""
    reward: float
    terminated: bool
    truncated: bool
    gold_answers: tuple[str, ...] = ()
    seconds: float = 0.0
    created: float = 0.0
    """Unix time the episode finished."""
    versions: dict[str, str] = field(default_factory=dict)
    """Package versions (swirl, and the env) that produced it."""
    meta: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def correct(self) -> bool:
        """Whether the final answer scored full marks on the env's primary metric."""
        return self.answer is not None and self.reward >= 1.0

    def context(self, i: int | None = None) -> Context:
        """The context before step ``i`` (what the agent saw when it wrote it); ``None``: after the last step."""
        whole = Context(self.instructions, self.question, tuple(Turn(s.action, s.result) for s in self.steps))
        return whole if i is None else whole.prefix(i)

    def states(self) -> list[str]:
        """The observation before each step, byte for byte what the agent saw (``len(steps)`` items)."""
        whole = self.context()
        return [whole.prefix(i).render() for i in range(len(self.steps))]

    def final_context(self) -> str:
        """The context after the last step, rendered."""
        return self.context().render()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Episode:
        """An episode from its JSON record, every field checked (a wrong type names the field)."""
        version = d.get("schema_version", 1)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(f"episode schema version {version!r} is newer than this swirl ({SCHEMA_VERSION}); upgrade swirl")
        episode = from_record(cls, d, convert={"steps": _steps, "gold_answers": _strings})
        return episode if version == SCHEMA_VERSION else _replace(episode, schema_version=SCHEMA_VERSION)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


@dataclass(frozen=True)
class Transition:
    """One (state, action, reward) training example: step ``step_index`` of ``episode`` and its reward.

    The state is derived from the episode (:meth:`context`), never stored or parsed from text.
    """

    episode: Episode
    step_index: int
    reward: float
    judge_id: str = ""
    label: str = ""
    """The judge's label (``GOOD``/``BAD``/``UNPARSEABLE``) when judged."""

    @property
    def episode_id(self) -> str:
        return self.episode.episode_id

    @property
    def step(self) -> Step:
        return self.episode.steps[self.step_index]

    @property
    def action(self) -> str:
        return self.step.action

    def context(self) -> Context:
        """What the agent saw before this action."""
        return self.episode.context(self.step_index)

    @property
    def state(self) -> str:
        """The observation before this action, rendered (byte for byte what the agent saw)."""
        return self.context().render()


def decompose(episode: Episode, rewards: Iterable[float] | None = None, judge_id: str = "",
              labels: Sequence[str] | None = None) -> list[Transition]:
    """Split a K-step episode into K transitions whose states are exactly what the agent saw.

    ``rewards`` defaults to each step's env reward.

    Example:
        >>> ep = Episode("e", "q", "SwirlSynthQA-v0", "demo", 0, "Who?", "Be brief.",
        ...              (Step("<search_query>x</search_query>", "search_query", "x", "x: y"),
        ...               Step("<answer>y</answer>", "answer", "y", None, reward=1.0)),
        ...              "y", {"exact_match": 1.0}, 1.0, True, False)
        >>> [t.reward for t in decompose(ep)]
        [0.0, 1.0]
        >>> decompose(ep)[1].state.endswith("<result>\\nx: y\\n</result>\\n\\n")
        True
    """
    rewards = [s.reward for s in episode.steps] if rewards is None else list(rewards)
    labels = [""] * len(episode.steps) if labels is None else list(labels)
    if len(rewards) != len(episode.steps) or len(labels) != len(episode.steps):
        raise ValueError(f"expected {len(episode.steps)} rewards and labels for episode {episode.episode_id}, "
                         f"actual {len(rewards)} and {len(labels)}")
    return [Transition(episode, i, float(r), judge_id, label) for i, (r, label) in enumerate(zip(rewards, labels))]


# --- JSONL I/O ---------------------------------------------------------------------------------


def read_episodes(path: str | os.PathLike, *, strict: bool = True) -> Iterator[Episode]:
    """Yield the episodes of a JSONL file. A malformed line raises ``RecordError`` (a ``ValueError``) naming the
    file, the line and the field.

    With ``strict=False`` a torn last line (an interrupted write) is skipped instead.
    """
    return read_jsonl(path, Episode.from_dict, "episode", skip_torn_tail=not strict)


class EpisodeWriter:
    """Append episodes to a JSONL file, crash-safe, one writer at a time, skipping ids already present.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "episodes.jsonl")
        >>> with EpisodeWriter(path) as w:
        ...     len(w.done)
        0
    """

    def __init__(self, path: str | os.PathLike, *, fsync: bool = False):
        self.path = Path(path)
        self._out = JsonlAppender(self.path, fsync=fsync)
        try:
            self.done: set[str] = {ep.episode_id for ep in read_episodes(self.path)}
        except BaseException:
            self._out.close()
            raise

    def write(self, episode: Episode) -> bool:
        """Append ``episode`` unless its id is already in the file; return whether it was written."""
        if episode.episode_id in self.done:
            return False
        self._out.append(episode.to_dict())
        self.done.add(episode.episode_id)
        return True

    def close(self) -> None:
        self._out.close()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Fault:
    """An episode (or judgment) that could not be completed: the agent or judge backend failed after its retries."""

    episode_id: str
    step: int
    """The step that could not be written (the episode is not recorded; a re-run tries it again)."""
    agent: str
    message: str
    created: float = 0.0


def faults_path(episodes_path: str | os.PathLike) -> Path:
    """Where a run records its faults: ``faults.jsonl`` beside its episodes."""
    return Path(episodes_path).with_name("faults.jsonl")


def read_faults(path: str | os.PathLike) -> list[Fault]:
    """The faults recorded in ``path`` (none when the file does not exist)."""
    if not Path(path).exists():
        return []
    return list(read_jsonl(path, lambda r: from_record(Fault, r), "fault", skip_torn_tail=True))


# --- recording a live env ----------------------------------------------------------------------


class EpisodeRecorder:
    """Run one episode of a swirl env step by step and record it as an :class:`Episode`.

    Each step's text and result are copied from the env's ``info`` (``step_text``, ``result``), so
    the record rebuilds every observation byte for byte; the recorder checks that it does.
    :func:`swirl_agents.rollout.generate_episodes` runs many of these in lockstep;
    :func:`swirl_agents.solve.solve` runs one.

    Example:
        >>> import gymnasium as gym, swirl_env
        >>> env = gym.make("SwirlSynthMath-v0")
        >>> qid = env.unwrapped.questions[0].id
        >>> rec = EpisodeRecorder(env, episode_id="e", env_id="SwirlSynthMath-v0", agent="me", seed=0, question_id=qid)
        >>> rec.step("Add. <math_exp>2+3</math_exp>") is None
        True
        >>> ep = rec.step(" Done. <answer>5</answer>")
        >>> [s.action for s in ep.steps], ep.states()[1] == ep.states()[0] + "Add. <math_exp>2+3</math_exp>\\n\\n<result>\\n5\\n</result>\\n\\n"
        (['Add. <math_exp>2+3</math_exp>', ' Done. <answer>5</answer>'], True)
    """

    def __init__(self, env: Any, *, episode_id: str, env_id: str, agent: str, seed: int, question_id: str,
                 versions: dict[str, str] | None = None, meta: dict[str, Any] | None = None):
        self.env = env
        self.observation, info = env.reset(seed=seed, options={"question_id": question_id})
        self._ids = dict(episode_id=episode_id, question_id=question_id, env_id=env_id, agent=agent, seed=seed)
        self._question = info["question"]
        self._instructions = env.unwrapped.instructions
        self._versions, self._meta = dict(versions or {}), dict(meta or {})
        self._steps: list[Step] = []
        if self.observation != Context(self._instructions, self._question).render():
            raise RuntimeError(f"expected {env_id}'s first observation to be the rendered Context, actual "
                               f"{self.observation[:80]!r}...; the env and swirl_env.context disagree")

    @property
    def episode_id(self) -> str:
        return self._ids["episode_id"]

    @property
    def steps_taken(self) -> int:
        return len(self._steps)

    def step(self, text: str, *, meta: dict | None = None, agent_seconds: float = 0.0,
             token_ids: Sequence[int] | None = None, tokenizer: str = "") -> Episode | None:
        """Step the env with ``text``; return the finished :class:`Episode` at its end, else ``None``."""
        start = time.perf_counter()
        obs, reward, terminated, truncated, info = self.env.step(text)
        seconds = agent_seconds + time.perf_counter() - start
        action = info["step_text"]
        ids = tuple(token_ids) if token_ids is not None and action == text else None  # a capped step lost its ids
        self._steps.append(Step(action, info["tool"], info["tool_input"], info["result"], info["error"], float(reward),
                                seconds, dict(meta or {}), ids, tokenizer if ids is not None else ""))
        if obs != self.observation + "".join(self._context().pieces()[-2:]):
            raise RuntimeError(f"expected the env to append the rendered step, actual {obs[len(self.observation):][:120]!r}"
                               "...; the env and swirl_env.context disagree")
        self.observation = obs
        return self._finish(reward, terminated, truncated, info) if terminated or truncated else None

    def _context(self) -> Context:
        return Context(self._instructions, self._question, tuple(Turn(s.action, s.result) for s in self._steps))

    def _finish(self, reward: float, terminated: bool, truncated: bool, info: dict) -> Episode:
        return Episode(
            **self._ids,
            question=self._question,
            instructions=self._instructions,
            steps=tuple(self._steps),
            answer=info["answer"] if info["answered"] else None,
            score={k: float(v) for k, v in info["score"].items()},
            reward=float(reward),
            terminated=bool(terminated),
            truncated=bool(truncated),
            gold_answers=tuple(info["gold_answers"]),
            seconds=sum(s.seconds for s in self._steps),
            created=time.time(),
            versions=self._versions,
            meta=self._meta,
        )


# --- transitions files -----------------------------------------------------------------------------


def write_transitions(path: str | os.PathLike, transitions: Iterable[Transition]) -> int:
    """Write transitions as JSONL, one line per episode with its kept steps (atomically); return how many.

    Each line is ``{"schema_version": 2, "episode": {...}, "steps": [{"step_index", "reward", "judge_id",
    "label"}, ...]}``: the states are in the episode, so nothing is stored twice or parsed back.
    """
    groups: dict[str, tuple[Episode, list[Transition]]] = {}
    for t in transitions:
        groups.setdefault(t.episode_id, (t.episode, []))[1].append(t)
    n = sum(len(ts) for _, ts in groups.values())
    write_jsonl(path, ({"schema_version": TRANSITIONS_SCHEMA_VERSION, "episode": ep.to_dict(),
                        "steps": [{"step_index": t.step_index, "reward": t.reward, "judge_id": t.judge_id,
                                   "label": t.label} for t in ts]} for ep, ts in groups.values()))
    return n


def read_transitions(path: str | os.PathLike) -> list[Transition]:
    """Read a transitions file (schema 2, or schema 1's one line per transition); a bad line names the file and line."""
    out: list[Transition] = []
    legacy: dict[str, list[dict[str, Any]]] = {}

    def parse(record: dict[str, Any]) -> None:
        if "episode" not in record:  # schema 1: {state, action, reward, episode_id, step_index, judge_id, label}
            for key, kind in (("state", str), ("action", str), ("episode_id", str), ("step_index", int)):
                if not isinstance(record.get(key), kind):
                    raise TypeError(f"field {key!r}: expected {kind.__name__}, actual {type(record.get(key)).__name__}")
            legacy.setdefault(record["episode_id"], []).append(record)
            return
        if record.get("schema_version", 1) > TRANSITIONS_SCHEMA_VERSION:
            raise ValueError(f"transitions schema version {record['schema_version']} is newer than this swirl; upgrade swirl")
        if not isinstance(record["episode"], dict) or not isinstance(record.get("steps"), list):
            raise TypeError("expected 'episode' to be an object and 'steps' a list")
        episode = Episode.from_dict(record["episode"])
        for k, s in enumerate(record["steps"]):
            t = from_record(_KeptStep, s)
            if not 0 <= t.step_index < len(episode.steps):
                raise ValueError(f"steps[{k}]: step_index {t.step_index} is not a step of the episode ({len(episode.steps)} steps)")
            out.append(Transition(episode, t.step_index, float(t.reward), t.judge_id, t.label))

    for _ in read_jsonl(path, parse, "transition"):
        pass
    return out + [t for eid, records in legacy.items() for t in _legacy_transitions(eid, records)]


@dataclass(frozen=True)
class _KeptStep:
    step_index: int
    reward: float
    judge_id: str = ""
    label: str = ""


def _legacy_transitions(episode_id: str, records: list[dict[str, Any]]) -> list[Transition]:
    """Schema-1 transitions of one episode: the episode is rebuilt from its longest state (the one parser)."""
    records = sorted(records, key=lambda r: r["step_index"])
    last = records[-1]
    context = Context.parse(last["state"])
    actions = {r["step_index"]: r["action"] for r in records}
    steps = [Step(t.text, "", "", t.result) for t in context.steps] + [Step(last["action"], "", "", None)]
    for i, action in actions.items():
        if i < len(steps) and steps[i].action != action:
            raise ValueError(f"episode {episode_id}: step {i}'s action differs from its later state; "
                             "the transitions are not from one episode")
    episode = Episode(episode_id, "", "", "", 0, context.question, context.instructions, tuple(steps), None, {},
                      0.0, False, False)
    return [Transition(episode, r["step_index"], float(r.get("reward", 0.0)), r.get("judge_id", ""),
                       r.get("label", "")) for r in records]
