"""The replay agent reproduces recorded episodes byte for byte through the real envs."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import pytest

import swirl_env  # noqa: F401  (registers the env ids)
from swirl_env.context import render
from swirl_agents.agents.reference import ReferenceMathAgent, ReferenceQAAgent
from swirl_agents.agents.replay import ReplayAgent
from swirl_agents.episodes import read_episodes
from swirl_agents.rollout import generate_episodes
from tests.conftest import require_data

CASES = {
    "SwirlSynthQA-v0": ReferenceQAAgent,
    "SwirlSynthMath-v0": ReferenceMathAgent,
    "SwirlGSM8K-v0": ReferenceMathAgent,
}


def record(tmp_path, env_id, samples=3, n=6):
    """Episodes of a noisy reference agent (several samples per question), read back from JSONL."""
    if env_id == "SwirlGSM8K-v0":
        require_data("gsm8k/test.jsonl")
    env = gym.make(env_id)
    agent = CASES[env_id](env.unwrapped.questions, mistake_rate=0.3, seed=2)
    path = tmp_path / "recorded.jsonl"
    generate_episodes(env, agent, out=path, num_questions=n, samples_per_question=samples, progress=False)
    return env, path, list(read_episodes(path))


def replay(env, agent, episode):
    """(observations after each step, rewards, final flags) of ``agent`` replaying ``episode`` in ``env``."""
    obs, _ = env.reset(seed=episode.seed, options={"question_id": episode.question_id})
    observations, rewards, metas = [obs], [], []
    for _ in episode.steps:
        out = agent.step(obs)
        step, meta = out.text, out.meta
        obs, reward, terminated, truncated, _ = env.step(step)
        observations.append(obs)
        rewards.append(reward)
        metas.append(meta)
    return observations, rewards, metas, (terminated, truncated)


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_replay_reproduces_episodes_byte_for_byte(tmp_path, env_id):
    env, path, episodes = record(tmp_path, env_id)
    assert len({ep.question_id for ep in episodes}) == 6 and len(episodes) == 18
    agent = ReplayAgent(path)
    for ep in episodes:
        observations, rewards, metas, flags = replay(env, agent.with_seed(ep.seed), ep)
        assert observations == [*ep.states(), ep.final_context()]
        assert rewards == [s.reward for s in ep.steps]
        assert metas == [s.meta for s in ep.steps]  # the mistake annotations come back too
        assert flags == (ep.terminated, ep.truncated)


def test_replay_through_the_rollout_rewrites_the_same_episodes(tmp_path):
    env, path, episodes = record(tmp_path, "SwirlSynthQA-v0")
    again = tmp_path / "replayed.jsonl"
    generate_episodes(env, ReplayAgent(episodes), out=again, num_questions=6, samples_per_question=3, progress=False)

    def content(ep):
        steps = tuple(dataclasses.replace(s, seconds=0.0) for s in ep.steps)
        return dataclasses.replace(ep, steps=steps, seconds=0.0, created=0.0, agent="")

    assert [content(e) for e in read_episodes(again)] == [content(e) for e in episodes]


def test_unknown_and_ambiguous_contexts_raise_clearly(tmp_path):
    env, path, episodes = record(tmp_path, "SwirlSynthMath-v0")
    agent = ReplayAgent(episodes)
    with pytest.raises(KeyError, match="no recorded step for this context; the recording .* has 18 episodes"):
        agent.act(render(episodes[0].instructions, "What is 2+2?", []))
    diverged = render(episodes[0].instructions, episodes[0].question, [("<math_exp>123456*7</math_exp>", "864192")])
    with pytest.raises(KeyError, match="ask this question, but none reached this context"):
        agent.act(diverged)
    # all samples of a question start from the same context; noisy samples go on differently
    starts = {}
    for ep in episodes:
        starts.setdefault(ep.states()[0], set()).add(ep.steps[0].action)
    ambiguous = next(state for state, actions in starts.items() if len(actions) > 1)
    with pytest.raises(ValueError, match="with_seed"):
        agent.act(ambiguous)
