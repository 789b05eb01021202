"""Fixtures for judge tests: the tiny transformers policy of the agent tests, and small episode sets.

``tiny_model_dir`` is re-exported from ``tests/agents/conftest.py`` (a 2-layer random Llama with a
tokenizer trained on swirl contexts); ``gsm8k_episodes`` are real GSM8K episodes written by the
reference maths agent with injected mistakes (no search index needed, built in well under a second).
"""

from __future__ import annotations

import gymnasium as gym
import pytest

import swirl_env  # noqa: F401 - registers the env ids
from swirl_agents.agents.reference.math import ReferenceMathAgent
from swirl_agents.episodes import read_episodes
from swirl_agents.rollout import generate_episodes
from tests.agents.conftest import tiny_model_dir  # noqa: F401 - re-exported fixture
from tests.conftest import require_data


@pytest.fixture(scope="session")
def gsm8k_env():
    """``SwirlGSM8K-v0`` on the real GSM8K test split."""
    require_data("gsm8k/test.jsonl")
    return gym.make("SwirlGSM8K-v0")


@pytest.fixture(scope="session")
def gsm8k_episodes(gsm8k_env, tmp_path_factory):
    """12 real GSM8K episodes of the reference maths agent (mistake rate 0.3): ``(episodes, questions)``."""
    questions = gsm8k_env.unwrapped.questions
    path = tmp_path_factory.mktemp("episodes") / "gsm8k.jsonl"
    generate_episodes(gsm8k_env, ReferenceMathAgent(questions, mistake_rate=0.3), out=path, num_questions=12,
                      progress=False)
    return list(read_episodes(path)), questions
