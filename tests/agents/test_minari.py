"""Minari export: real episodes written as a Minari dataset load back with the exact states."""

from __future__ import annotations

import itertools
import sys

import gymnasium as gym
import pytest

import swirl_env  # noqa: F401  (registers the env ids)
from swirl_agents.agents.reference import ReferenceMathAgent
from swirl_agents.episodes import read_episodes
from swirl_agents.interop.minari import INFO_KEYS, export_minari
from swirl_agents.interop.react import import_react
from swirl_agents.rollout import generate_episodes
from tests.conftest import require_data

minari = pytest.importorskip("minari", reason='the Minari export needs pip install "swirl-rl[minari]"')


def _check_roundtrip(episodes, dataset_id, root, monkeypatch):
    export_minari(episodes, dataset_id, data_path=root)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    loaded = minari.load_dataset(dataset_id)  # a fresh load from disk, as a Minari user would
    assert loaded.total_episodes == len(episodes)
    assert loaded.total_steps == sum(len(e.steps) for e in episodes)
    metadata = list(loaded.storage.get_episode_metadata(range(len(episodes))))
    for ep, data, meta in zip(episodes, loaded.iterate_episodes(), metadata):
        assert list(data.observations) == [*ep.states(), ep.final_context()]  # byte for byte
        assert list(data.actions) == [s.action for s in ep.steps]
        assert list(data.rewards) == [s.reward for s in ep.steps]
        assert bool(data.terminations[-1]) == ep.terminated and bool(data.truncations[-1]) == ep.truncated
        assert set(data.infos) == set(INFO_KEYS) and all(len(v) == len(ep.steps) + 1 for v in data.infos.values())
        assert list(data.infos["tool"][1:]) == [s.tool for s in ep.steps]
        assert meta["swirl_episode_id"] == ep.episode_id and meta["options"] == {"question_id": ep.question_id}
    return loaded


def test_generated_gsm8k_episodes_roundtrip(tmp_path, monkeypatch):
    require_data("gsm8k/test.jsonl")
    env = gym.make("SwirlGSM8K-v0")
    out = tmp_path / "e.jsonl"
    agent = ReferenceMathAgent(env.unwrapped.questions, mistake_rate=0.3)
    generate_episodes(env, agent, out=out, num_questions=6, progress=False)
    loaded = _check_roundtrip(list(read_episodes(out)), "swirl/gsm8k-reference-v0", tmp_path / "minari", monkeypatch)
    assert loaded.spec.env_spec.id == "SwirlGSM8K-v0"  # the env spec is recorded without building the env


def test_imported_react_episodes_roundtrip(tmp_path, monkeypatch):
    episodes = list(itertools.islice(import_react(require_data("hotpotqa/react_style_trajectories.jsonl")), 8))
    _check_roundtrip(episodes, "swirl/hotpot-react-v0", tmp_path / "minari", monkeypatch)


def test_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="at least one step"):
        export_minari([], "swirl/empty-v0", data_path=tmp_path)
    monkeypatch.setitem(sys.modules, "minari", None)  # as if minari were not installed
    with pytest.raises(ImportError, match=r'pip install "swirl-rl\[minari\]"'):
        export_minari([], "swirl/none-v0", data_path=tmp_path)
