"""Hugging Face datasets export: a real run's episodes, judged and filtered transitions as Parquet.

The run is real: reference agents with deliberate mistakes play GSM8K test questions, the gold-guided
reference judge grades every step, and SWiRL's process filter keeps the all-GOOD episodes. The
export must read back as the same records, load with ``datasets``, and train with TRL's SFTTrainer
with exactly the trained assistant turns in the loss.
"""

from __future__ import annotations

import dataclasses
import sys

import gymnasium as gym
import pytest

import swirl_env  # noqa: F401  (registers the env ids)
from swirl_agents.agents.factory import make_agent
from swirl_agents.episodes import read_episodes, read_transitions, write_transitions
from swirl_agents.filters import filter_transitions
from swirl_agents.interop.hf_datasets import (TRAINED_TURNS_TEMPLATE, episode_from_row, export_run,
                                              read_episodes_parquet, read_transitions_parquet,
                                              write_episodes_parquet, write_transitions_parquet)
from swirl_agents.judges import BAD, GOOD, judge_episodes, make_judge, write_judgments
from swirl_agents.rollout import generate_episodes
from tests.conftest import require_data

pa = pytest.importorskip("pyarrow", reason='the Parquet export needs pip install "swirl-rl[datasets]"')


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A generate → judge → filter run on 12 GSM8K questions, as the ``swirl`` commands write it."""
    require_data("gsm8k/test.jsonl")
    folder = tmp_path_factory.mktemp("run")
    env = gym.make("SwirlGSM8K-v0")
    generate_episodes(env, make_agent("reference-noisy", env), out=folder / "episodes.jsonl", num_questions=12,
                      progress=False)
    episodes = list(read_episodes(folder / "episodes.jsonl"))
    judgments = judge_episodes(episodes, make_judge("reference", envs=[env]))
    write_judgments(folder / "judgments.jsonl", judgments)
    kept, _ = filter_transitions(episodes, judgments, "process")
    write_transitions(folder / "transitions.jsonl", kept)
    labels = [j.label for js in judgments.values() for j in js]
    assert GOOD in labels and BAD in labels and 0 < len(kept) < sum(len(e.steps) for e in episodes)  # a real filter
    return folder, episodes, judgments, kept


def test_export_run_reads_back_as_the_same_records(run, tmp_path):
    folder, episodes, judgments, kept = run
    files = export_run(folder / "episodes.jsonl", folder / "judgments.jsonl", folder / "transitions.jsonl",
                       out_dir=tmp_path / "hf")
    assert sorted(files) == ["episodes", "judged", "transitions"]
    assert read_episodes_parquet(files["episodes"]) == episodes
    judged, _ = filter_transitions(episodes, judgments, "none")
    assert read_transitions_parquet(files["judged"]) == judged
    assert read_transitions_parquet(files["transitions"]) == read_transitions(folder / "transitions.jsonl") == kept


def test_messages_are_the_chat_format_with_per_turn_flags(run, tmp_path):
    _, episodes, judgments, _ = run
    judged, _ = filter_transitions(episodes, judgments, "none")
    good = [t for t in judged if t.label == GOOD]  # a step-level filter: BAD steps stay as context only
    write_transitions_parquet(tmp_path / "good.parquet", good)
    rows = pa.parquet.read_table(tmp_path / "good.parquet").to_pylist()
    assert [r["episode_id"] for r in rows] == [e.episode_id for e in episodes if any(
        j.label == GOOD for j in judgments[e.episode_id])]
    for row in rows:
        episode = next(e for e in episodes if e.episode_id == row["episode_id"])
        assert [{"role": m["role"], "content": m["content"]} for m in row["messages"]] == episode.context().messages()
        turns = [m for m in row["messages"] if m["role"] == "assistant"]
        assert [m["train"] for m in turns] == [j.label == GOOD for j in judgments[episode.episode_id]]
        assert [m["reward"] for m in turns if m["train"]] == [1.0] * sum(m["train"] for m in turns)
        assert all(m["label"] is None and m["reward"] is None for m in turns if not m["train"])
        assert not any(m["train"] for m in row["messages"] if m["role"] != "assistant")
        assert (row["question_id"], row["env_id"], row["seed"], row["correct"]) == (
            episode.question_id, episode.env_id, episode.seed, episode.correct)
    assert read_transitions_parquet(tmp_path / "good.parquet") == good


def test_token_ids_and_meta_roundtrip(run, tmp_path):
    _, episodes, _, _ = run
    ep = episodes[0]
    steps = tuple(dataclasses.replace(s, token_ids=tuple(range(i, i + 5)), tokenizer="sha256:abc", meta={"k": [1, 2]})
                  for i, s in enumerate(ep.steps))
    recorded = dataclasses.replace(ep, steps=steps)
    write_episodes_parquet(tmp_path / "ids.parquet", [recorded])
    assert read_episodes_parquet(tmp_path / "ids.parquet") == [recorded]


def test_datasets_loads_the_export(run, tmp_path):
    datasets = pytest.importorskip("datasets", reason='loading needs pip install "swirl-rl[datasets]"')
    folder, episodes, _, kept = run
    files = export_run(folder / "episodes.jsonl", transitions_path=folder / "transitions.jsonl", out_dir=tmp_path / "hf")
    ds = datasets.load_dataset("parquet", data_files=str(files["episodes"]), cache_dir=str(tmp_path / "cache"))["train"]
    assert [episode_from_row(row) for row in ds] == episodes
    by_card = datasets.load_dataset(str(tmp_path / "hf"), "transitions", cache_dir=str(tmp_path / "cache"))["train"]
    assert by_card.num_rows == len({t.episode_id for t in kept})


def test_trl_sft_trains_only_the_trained_turns(run, tmp_path):
    pytest.importorskip("trl", reason='the TRL check needs pip install "swirl-rl[bench]"')
    datasets = pytest.importorskip("datasets", reason='loading needs pip install "swirl-rl[datasets]"')
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from swirl_agents.tiny import make_tiny_policy

    _, episodes, judgments, _ = run
    judged, _ = filter_transitions(episodes, judgments, "none")
    with_bad = {e.episode_id for e in episodes if any(j.label == BAD for j in judgments[e.episode_id])}
    chosen = [e.episode_id for e in episodes if e.episode_id in with_bad][:2] + [
        e.episode_id for e in episodes if e.episode_id not in with_bad][:1]
    good = [t for t in judged if t.label == GOOD and t.episode_id in chosen]
    write_transitions_parquet(tmp_path / "good.parquet", good)
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "good.parquet"),
                               cache_dir=str(tmp_path / "cache"))["train"]

    path = make_tiny_policy(tmp_path / "tiny", [e.final_context() for e in episodes] * 2, vocab_size=400,
                            n_layer=1, n_embd=32, n_head=2)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = TRAINED_TURNS_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(path)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=len(chosen),
                       assistant_only_loss=True, max_length=None, learning_rate=1e-2, report_to=[], use_cpu=True,
                       save_strategy="no", disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=config, train_dataset=ds, processing_class=tokenizer)

    for row in trainer.train_dataset:
        trained = "".join(m["content"] + tokenizer.eos_token for m in row["messages"] if m["train"])
        in_loss = [i for i, label in zip(row["input_ids"], row["labels"]) if label != -100]
        assert tokenizer.decode(in_loss) == trained  # exactly the GOOD turns and their end-of-turn token
    assert sum(not m["train"] for r in ds for m in r["messages"] if m["role"] == "assistant") >= 2  # BAD turns masked

    result = trainer.train()
    assert result.global_step == 1 and torch.isfinite(torch.tensor(result.training_loss))
    assert [n for n, p in model.named_parameters() if torch.equal(before[n], p.detach())] == []


def test_errors(run, tmp_path, monkeypatch):
    pa.parquet.write_table(pa.table({"text": ["not swirl"]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="expected a swirl Parquet file"):
        read_episodes_parquet(tmp_path / "other.parquet")
    _, episodes, _, kept = run
    other = next(t for t in kept if t.episode_id != episodes[0].episode_id)
    from swirl_agents.interop.hf_datasets import episode_row
    with pytest.raises(ValueError, match=f"expected transitions of episode {episodes[0].episode_id}"):
        episode_row(episodes[0], [other])
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    with pytest.raises(ImportError, match=r'pip install "swirl-rl\[datasets\]"'):
        write_episodes_parquet(tmp_path / "x.parquet", episodes)
