"""Import trajectories recorded by other systems in ReAct format as swirl episodes.

A ReAct record is chat JSONL, one trajectory per line::

    {"messages": [{"role": "user", "content": "<question>"},
                  {"role": "assistant", "content": "Thought: ...\\nAction: search[entity]"},
                  {"role": "user", "content": "Observation: ..."},
                  ...
                  {"role": "assistant", "content": "Thought: ...\\nAction: finish[answer]"},
                  {"role": "user", "content": "Observation: Episode finished, reward = True"}]}

Each Thought + Action becomes one :class:`~swirl_agents.episodes.Step` whose action text is the
thought followed by a swirl action, so the rebuilt states look like the ones swirl's own envs
produce:

* ``search[entity]`` -> ``<search_query>entity</search_query>``;
* ``lookup[keyword]`` -> ``<search_query>keyword</search_query>`` (swirl has no in-page lookup;
  the keyword becomes a query, and the recorded observation is kept as its result);
* ``finish[answer]`` -> ``<answer>answer</answer>``, which ends the episode.

The result of each step is the recorded observation (the ``Observation:`` label removed), never
re-run. ``Thought 1:`` / ``Action 1:`` numbering and upper-case verbs (original ReAct prompts)
are accepted; a leading system message is skipped; the question is the first user message.

Outcome: a record rarely carries its gold answer. The final observation's
``reward = True/False`` (FireAct, ReAct) becomes the episode's and the final step's reward (1.0
or 0.0), so ``Episode.correct`` reflects the recorded outcome; ``gold_answers`` is empty and
``score`` is ``{}`` (unknown under swirl's metrics) unless the record has an ``answer`` or
``gold_answers`` field, in which case the finish answer is scored by the env's metric.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from swirl_agents.episodes import Episode, Step
from swirl_env import context as ctx
from swirl_env.actions import parse_action

VERB_TAGS = {"search": "search_query", "lookup": "search_query", "finish": "answer"}
"""ReAct action verb -> swirl action tag."""
TOOL_TAGS = {"search": "search_query", "calculator": "math_exp"}
"""swirl env tool name -> the tag it answers to (what the env's instructions list)."""

_ACTION = re.compile(r"(?:^|\n)[ \t]*Action(?:[ \t]*\d+)?[ \t]*:[ \t]*", re.IGNORECASE)
_CALL = re.compile(r"(\w+)\[(.*)\]\s*$", re.DOTALL)
_THOUGHT = re.compile(r"^\s*Thought(?:[ \t]*\d+)?[ \t]*:[ \t]*", re.IGNORECASE)
_OBSERVATION = re.compile(r"^\s*Observation(?:[ \t]*\d+)?[ \t]*:[ \t]?", re.IGNORECASE)
_REWARD = re.compile(r"reward\s*=\s*(True|False|[-+]?\d*\.?\d+)", re.IGNORECASE)


class ReactFormatError(ValueError):
    """A record that is not a ReAct trajectory; the message names the file and line."""


def env_instructions(env_id: str, max_steps: int | None = None) -> str:
    """The task prompt of ``env_id`` (what ``gym.make(env_id).unwrapped.instructions`` holds), without building the env.

    Building a QA env loads its questions and search index; the prompt only depends on the tools
    offered and the step limit, which the registration and the env class's defaults fix.

    Example:
        >>> import swirl_env
        >>> "<math_exp>" in env_instructions("SwirlGSM8K-v0")
        True
    """
    spec = gym.spec(env_id)
    params = inspect.signature(load_env_creator(spec.entry_point)).parameters
    tools = spec.kwargs.get("tools", params["tools"].default)
    steps = max_steps or spec.kwargs.get("max_steps", params["max_steps"].default)
    return ctx.instructions(tuple(TOOL_TAGS[t] for t in tools), steps)


def _score_fn(env_id: str):
    from swirl_env import scoring

    entry = gym.spec(env_id).entry_point
    return scoring.math_scores if "math" in str(entry).lower() else scoring.qa_scores


def split_react_step(content: str) -> tuple[str, str, str]:
    """``"Thought: t\\nAction: verb[arg]"`` -> ``(t, verb, arg)``; raises ``ValueError`` when there is no action.

    Example:
        >>> split_react_step("Thought: Find him.\\nAction: search[Badr Hari]")
        ('Find him.', 'search', 'Badr Hari')
    """
    marks = list(_ACTION.finditer(content))
    if not marks:
        raise ValueError(f"expected 'Action: verb[argument]' in the assistant message, actual {content[:120]!r}")
    thought = _THOUGHT.sub("", content[: marks[-1].start()], count=1).strip()
    call = _CALL.match(content[marks[-1].end():].strip())
    if call is None:
        raise ValueError(f"expected 'verb[argument]' after 'Action:', actual {content[marks[-1].end():][:120]!r}")
    return thought, call.group(1).lower(), call.group(2).strip()


def react_to_swirl(thought: str, verb: str, argument: str) -> str:
    """The swirl step text for one ReAct thought and action (see the module docs for the mapping)."""
    if verb not in VERB_TAGS:
        raise ValueError(f"expected a ReAct action in {sorted(VERB_TAGS)}, actual {verb!r}")
    tag = VERB_TAGS[verb]
    action = f"<{tag}>{argument}</{tag}>"
    return f"{thought} {action}" if thought else action


def _recorded_reward(observation: str) -> float | None:
    found = _REWARD.search(observation)
    if found is None:
        return None
    value = found.group(1).lower()
    return {"true": 1.0, "false": 0.0}.get(value) if value in ("true", "false") else float(value)


def _parse_record(record: Any, tags: tuple[str, ...]) -> tuple[str, list[Step], float | None]:
    """(question, steps, recorded reward) of one record; ``ValueError`` says what is wrong."""
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise ValueError("expected an object with a 'messages' list")
    messages = [m for m in record["messages"] if not (isinstance(m, dict) and m.get("role") == "system")]
    if not messages or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        raise ValueError("expected messages {role, content} with string content")
    if messages[0].get("role") != "user":
        raise ValueError(f"expected the first message to be the user's question, actual role {messages[0].get('role')!r}")
    question = messages[0]["content"].strip().removeprefix(ctx.QUESTION_PREFIX).strip()
    steps: list[Step] = []
    reward: float | None = None
    for i in range(1, len(messages), 2):
        turn = messages[i]
        if turn.get("role") != "assistant":
            raise ValueError(f"message {i}: expected role 'assistant', actual {turn.get('role')!r}")
        observation = messages[i + 1]["content"] if i + 1 < len(messages) else None
        if observation is not None and messages[i + 1].get("role") != "user":
            raise ValueError(f"message {i + 1}: expected role 'user' (an observation), actual {messages[i + 1].get('role')!r}")
        thought, verb, argument = split_react_step(turn["content"])
        text = react_to_swirl(thought, verb, argument)
        parsed = parse_action(text, tags)
        shown = None if observation is None else _OBSERVATION.sub("", observation, count=1)
        if parsed.is_answer:
            reward = _recorded_reward(shown or "")
            shown = None
        steps.append(Step(text, parsed.tag or "", parsed.argument, shown, parsed.error or ""))
        if parsed.is_answer:
            break
    if not steps:
        raise ValueError("expected at least one Thought/Action step, actual none")
    return question, steps, reward


def import_react(path: str | os.PathLike, *, env_id: str = "SwirlHotpot-v0") -> Iterator[Episode]:
    """Yield one swirl :class:`Episode` per ReAct trajectory in the JSONL file ``path``.

    Args:
        path: Chat JSONL, ``{"messages": [{role, content}]}`` per line (see the module docs).
        env_id: The env whose instructions the episodes get, so the states look like its own.

    Raises:
        ReactFormatError: A line that is not a ReAct trajectory (the message names file and line).

    Example:
        >>> import json, os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "react.jsonl")
        >>> msgs = [{"role": "user", "content": "Who?"},
        ...         {"role": "assistant", "content": "Thought: Look.\\nAction: search[X]"},
        ...         {"role": "user", "content": "Observation: X is Y."},
        ...         {"role": "assistant", "content": "Thought: Done.\\nAction: finish[Y]"},
        ...         {"role": "user", "content": "Observation: Episode finished, reward = True"}]
        >>> _ = open(path, "w").write(json.dumps({"messages": msgs}) + "\\n")
        >>> ep = next(import_react(path))
        >>> [s.action for s in ep.steps], ep.answer, ep.correct
        (['Look. <search_query>X</search_query>', 'Done. <answer>Y</answer>'], 'Y', True)
    """
    instructions = env_instructions(env_id)
    tags = (*(t for t in TOOL_TAGS.values() if f"<{t}>" in instructions), "answer")
    seen: Counter[str] = Counter()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                question, steps, reward = _parse_record(record, tags)
            except ValueError as e:  # json.JSONDecodeError is a ValueError
                raise ReactFormatError(f"{path}:{lineno}: not a ReAct trajectory: {e}") from None
            qid = "react-" + hashlib.sha1(question.encode("utf-8")).hexdigest()[:12]
            yield _episode(record, question, qid, seen[qid], steps, reward, instructions, env_id,
                           meta={"source": str(path), "line": lineno})
            seen[qid] += 1


def _episode(record: dict, question: str, qid: str, k: int, steps: list[Step], reward: float | None,
             instructions: str, env_id: str, meta: dict) -> Episode:
    answered = steps[-1].tool == "answer"
    answer = steps[-1].tool_input if answered else None
    gold = record.get("gold_answers") or ([record["answer"]] if isinstance(record.get("answer"), str) else [])
    score: dict[str, float] = {}
    if reward is not None:
        meta["recorded_reward"] = reward
    if gold and answered:
        score = {name: float(v) for name, v in _score_fn(env_id)(answer, tuple(gold)).items()}
        reward = score.get("exact_match", 0.0)
    final_reward = float(reward or 0.0) if answered else 0.0
    steps = [*steps[:-1], replace(steps[-1], reward=final_reward)]
    return Episode(
        episode_id=f"{env_id}/{qid}/{k}",
        question_id=qid,
        env_id=env_id,
        agent=f"react:{Path(meta['source']).name}",
        seed=0,
        question=question,
        instructions=instructions,
        steps=tuple(steps),
        answer=answer,
        score=score,
        reward=final_reward,
        terminated=answered,
        truncated=not answered,
        gold_answers=tuple(str(g) for g in gold),
        meta=meta,
    )
