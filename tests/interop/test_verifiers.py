"""A swirl env under verifiers' Gymnasium adapter: the chat is swirl's context, the reward the env's.

Needs ``verifiers`` (not in the dev extra): ``pip install "verifiers>=0.2.1,<0.4"``.
"""

from __future__ import annotations

import gymnasium as gym
import pytest

import swirl_env  # noqa: F401  (registers the env ids)
from swirl_agents.agents.factory import make_agent
from swirl_env.context import Context
from tests.conftest import require_data

pytest.importorskip("verifiers.envs.experimental.gym_env",
                    reason='the verifiers bridge needs pip install "verifiers>=0.2.1,<0.4"')

from swirl_agents.interop.verifiers import agent_client, verifiers_env  # noqa: E402


def _replay(env_id: str, seed: int, steps: list[str]):
    """The same steps played straight through the swirl env: its final context and reward."""
    env = gym.make(env_id)
    env.reset(seed=seed)
    reward = 0.0
    for text in steps:
        _, reward, terminated, truncated, _ = env.step(text)
        if terminated or truncated:
            break
    return env.unwrapped.context, reward


def test_gsm8k_rollouts_are_swirl_episodes():
    require_data("gsm8k/test.jsonl")
    env_id = "SwirlGSM8K-v0"
    vf_env = verifiers_env(env_id, num_train_episodes=1, num_eval_episodes=6, seed=3)
    client = agent_client(make_agent("reference-noisy", gym.make(env_id), seed=1))
    outputs = vf_env.evaluate_sync(client, model="reference-noisy", num_examples=6)["outputs"]
    assert len(outputs) == 6
    rewards = []
    for out in outputs:
        chat = [{"role": m["role"], "content": m["content"]} for m in [*out["prompt"], *out["completion"]]]
        steps = [m["content"] for m in chat if m["role"] == "assistant"]
        context, reward = _replay(env_id, int(out["answer"]), steps)
        assert chat[:-1] == context.messages()  # swirl's chat format, turn for turn
        assert chat[-1]["content"].endswith("Episode already ended.")  # verifiers' closing message
        assert out["reward"] == reward
        assert Context.from_messages(chat[:-1]) == context
        rewards.append(reward)
    assert 0.0 in rewards and 1.0 in rewards  # right and wrong answers both scored (20% deliberate mistakes)
