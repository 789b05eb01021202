"""Decomposition: a K-step episode gives K transitions whose states are exactly what the agent saw in a live run."""

from __future__ import annotations

import gymnasium as gym
import pytest

import swirl_env  # noqa: F401  (registers the env ids)
from swirl_agents.agents import reference
from swirl_agents.agents.base import StepOutput
from swirl_agents.episodes import decompose, read_episodes
from swirl_agents.rollout import generate_episodes
from tests.conftest import require_data

CASES = {
    "SwirlHotpot-v0": ("ReferenceQAAgent", ["hotpotqa/hotpot_dev_distractor_subset.json.gz",
                                          "wikipedia/hotpotqa_paragraphs.jsonl.gz"]),
    "SwirlGSM8K-v0": ("ReferenceMathAgent", ["gsm8k/test.jsonl"]),
}


class SeenLog:
    """Logs, in order, each observation it is shown and the raw step it returned (one episode at a time)."""

    def __init__(self, inner, log):
        self.inner, self.log = inner, log

    def with_seed(self, seed):
        return SeenLog(self.inner.with_seed(seed), self.log)

    def step_batch(self, observations):
        out = []
        for observation in observations:
            s = self.inner.step(observation)
            # Surrounding whitespace (kept exactly: the policy trains on its own tokens) and a stray unclosed tag.
            step = f"\n  {s.text}  \n" if len(self.log) % 3 else s.text.replace("</", "<", 1)
            self.log.append((observation, step))
            out.append(StepOutput(step, s.meta))
        return out


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_transitions_are_the_live_observations(env_id, tmp_path):
    cls_name, files = CASES[env_id]
    for f in files:
        require_data(f)
    env = gym.make(env_id)
    log: list[tuple[str, str]] = []
    agent = SeenLog(getattr(reference, cls_name)(env.unwrapped.questions, mistake_rate=0.3, seed=5), log)
    out = tmp_path / "episodes.jsonl"
    # batch_size=1: episodes run one after another, so the log splits into episodes in file order.
    generate_episodes(env, agent, out=out, num_questions=10, batch_size=1, tool_workers=1, progress=False)
    episodes = list(read_episodes(out))
    assert len(episodes) == 10
    pos = 0
    for ep in episodes:
        transitions = decompose(ep)
        k = len(ep.steps)
        assert len(transitions) == k > 0
        seen = log[pos : pos + k]
        pos += k
        assert [t.state for t in transitions] == [obs for obs, _ in seen]  # byte for byte
        assert [t.action for t in transitions] == [step for _, step in seen]
        assert [t.step_index for t in transitions] == list(range(k))
        assert {t.episode_id for t in transitions} == {ep.episode_id}
        # env rewards: 0 before the end, the outcome at the last step
        assert [t.reward for t in transitions[:-1]] == [0.0] * (k - 1)
        assert transitions[-1].reward == ep.reward == (ep.score.get("exact_match", 0.0) if ep.answer is not None else 0.0)
    assert pos == len(log)
    assert any(s.error for ep in episodes for s in ep.steps)  # malformed steps were decomposed too


def test_judge_rewards_replace_env_rewards(tmp_path):
    require_data("gsm8k/test.jsonl")
    env = gym.make("SwirlGSM8K-v0")
    out = tmp_path / "e.jsonl"
    generate_episodes(env, reference.ReferenceMathAgent(env.unwrapped.questions), out=out, num_questions=2, progress=False)
    ep = next(read_episodes(out))
    k = len(ep.steps)
    judged = decompose(ep, rewards=[1.0] * k, judge_id="reference")
    assert [t.reward for t in judged] == [1.0] * k and {t.judge_id for t in judged} == {"reference"}
    with pytest.raises(ValueError, match=f"expected {k} rewards"):
        decompose(ep, rewards=[1.0] * (k + 1))
