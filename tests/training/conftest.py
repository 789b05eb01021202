"""Shared helpers for the trainer tests: real GSM8K episodes as transitions, a tiny local model.

Episodes are built from GSM8K solutions' ``<<expr=value>>`` calculator annotations: step k is the
solution sentence and ``<math_exp>expr_k</math_exp>``, its result the annotated value, and the
last step the gold answer. States are rendered with :mod:`swirl_env.context`, exactly as the env
renders them.
"""

from __future__ import annotations

import re

import pytest

from swirl_agents.episodes import Episode, Step, Transition, decompose
from swirl_env import context as ctx
from tests.conftest import require_data

ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
INSTRUCTIONS = ctx.instructions(("math_exp",), 10)


def make_episode(episode_id: str, question: str, steps: list[tuple[str, str | None]],
                 instructions: str = INSTRUCTIONS, token_ids: list | None = None, tokenizer: str = "") -> Episode:
    """An episode whose steps are ``[(action, result or None), ...]`` (optionally with sampled ids per step)."""
    ids = token_ids or [None] * len(steps)
    recorded = tuple(Step(a, "", "", r, token_ids=i, tokenizer=tokenizer if i else "") for (a, r), i in zip(steps, ids))
    return Episode(episode_id, episode_id, "SwirlGSM8K-v0", "test", 0, question, instructions, recorded, None, {},
                   1.0, True, False)


def episode_transitions(episode_id: str, question: str, steps: list[tuple[str, str | None]],
                        rewards: list[float] | None = None, instructions: str = INSTRUCTIONS) -> list[Transition]:
    """The transitions of an episode whose steps are ``[(action, result or None), ...]``."""
    return decompose(make_episode(episode_id, question, steps, instructions), rewards or [1.0] * len(steps))


def gsm8k_steps(solution: str, answer: str) -> list[tuple[str, str | None]]:
    """Steps replaying a GSM8K solution: one calculator call per annotation, then the answer."""
    steps: list[tuple[str, str | None]] = []
    for line in solution.splitlines():
        for found in ANNOTATION.finditer(line):
            reasoning = ANNOTATION.sub("", line).strip()
            steps.append((f"{reasoning} <math_exp>{found.group(1)}</math_exp>", found.group(2)))
    steps.append((f"So the answer is {answer}. <answer>{answer}</answer>", None))
    return steps


def gsm8k_transitions(n: int, min_steps: int = 3, max_steps: int = 5) -> list[Transition]:
    """Transitions of the first ``n`` GSM8K test problems with ``min_steps..max_steps`` actions (real data)."""
    from swirl_env.data.gsm8k import read_gsm8k

    out, count = [], 0
    for q in read_gsm8k(require_data("gsm8k/test.jsonl"), limit=400):
        steps = gsm8k_steps(q.solution, q.answers[0])
        if min_steps <= len(steps) <= max_steps:
            out += episode_transitions(q.id, q.question, steps)
            count += 1
        if count == n:
            break
    return out


@pytest.fixture(scope="session")
def gsm8k_episodes() -> list[Transition]:
    """8 real GSM8K episodes (3-5 actions each) as transitions with reward 1."""
    return gsm8k_transitions(8)


@pytest.fixture(scope="session")
def tiny_tokenizer(gsm8k_episodes):
    """A byte-level BPE tokenizer trained on the episodes' final contexts (no download)."""
    from swirl_agents.tiny import train_tokenizer

    texts = [t.state + t.action for t in gsm8k_episodes]
    return train_tokenizer(texts * 3, vocab_size=600)


def tiny_model(tokenizer, seed: int = 0):
    """A float32 2-layer Llama, dropout off (the default), built from a config."""
    from swirl_agents.tiny import build_tiny_model

    return build_tiny_model(tokenizer, n_layer=2, n_embd=64, n_head=4, max_position_embeddings=2048, seed=seed)
