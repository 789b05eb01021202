"""Env cards: one source of defaults, a split every env has, honest corpora, and docs/envs.md in sync."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import gymnasium as gym
import pytest

import swirl_env
from swirl_env import cards
from swirl_env.data.paths import data_dir
from swirl_env.envs import tools as env_tools
from swirl_env.envs.math import SwirlMathEnv
from swirl_env.envs.qa import SwirlQAEnv
from tests.conftest import require_data

PAGE = Path(__file__).resolve().parents[2] / "docs" / "envs.md"


@pytest.mark.parametrize("env_id", sorted(swirl_env.ENV_IDS))
def test_every_env_defaults_to_a_split_it_has_and_evaluates_on_one_with_answers(env_id):
    card = cards.card(env_id)
    assert card.default_split in card.splits and card.eval_split in card.splits
    assert card.eval_split not in card.unanswered_splits
    assert card.task == {SwirlQAEnv: "qa", SwirlMathEnv: "math"}[
        gym.envs.registration.load_env_creator(gym.spec(env_id).entry_point)
    ]


def test_the_evaluation_splits_are_the_held_out_ones():
    assert {i: cards.eval_split(i) for i in swirl_env.ENV_IDS} == {
        "SwirlHotpot-v0": "dev", "SwirlMuSiQue-v0": "dev", "SwirlBeerQA-v0": "dev", "SwirlCofCA-v0": "test",
        "SwirlBamboogle-v0": "test", "Swirl2Wiki-v0": "dev", "SwirlSynthQA-v0": "test", "SwirlGSM8K-v0": "test",
        "SwirlSynthMath-v0": "test",
    }
    with pytest.raises(KeyError, match="Did you mean 'SwirlHotpot-v0'"):
        cards.eval_split("SwirlHotpot")


def test_an_env_built_from_its_card_has_the_cards_task_split_and_limits():
    card = cards.card("SwirlSynthMath-v0", count=True)
    env = gym.make(card.id).unwrapped
    assert (env.task, env.max_steps, env.reward_metric) == (card.task, card.max_steps, card.reward_metric)
    assert tuple(t.name for t in env.tools.values()) == card.tools
    assert dict((s, n) for s, n, _ in card.questions)[card.default_split] == len(env.questions)


def test_the_gsm8k_card_counts_what_the_env_loads():
    require_data("gsm8k/train.jsonl.gz")
    counts = {split: n for split, n, _ in cards.card("SwirlGSM8K-v0", count=True).questions}
    assert counts == {"test": 1319, "train": 7473}
    assert len(gym.make("SwirlGSM8K-v0", split="train").unwrapped.questions) == counts["train"]


def test_the_committed_page_is_what_the_code_renders():
    """With all the data the page names, exactly; without it, everything but the question counts."""
    committed = PAGE.read_text(encoding="utf-8")
    rendered = cards.render_markdown(cards.cards(count=True))
    sources = [row.split("|")[4].strip(" `") for row in committed.split(cards.COUNTS_HEADING)[1].splitlines()
               if row.startswith("| `")]
    if all(s.startswith("(") or (data_dir() / s).exists() for s in sources):
        assert rendered == committed, "docs/envs.md is stale: run python -m swirl_env.cards > docs/envs.md"
    else:
        assert rendered.split(cards.COUNTS_HEADING)[0] == committed.split(cards.COUNTS_HEADING)[0]


@pytest.mark.parametrize("env_id", ["SwirlBamboogle-v0", "Swirl2Wiki-v0"])
def test_an_uncovered_corpus_is_said_once(env_id, monkeypatch):
    require_data("wikipedia/hotpotqa_paragraphs.jsonl.gz")
    require_data({"SwirlBamboogle-v0": "bamboogle/test.jsonl", "Swirl2Wiki-v0": "2wikimultihopqa/dev_questions.json.gz"}[env_id])
    monkeypatch.setattr(env_tools, "_WARNED", set())
    with pytest.warns(UserWarning, match="does not cover .*corpus="):
        gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym.make(env_id)  # once per process
    assert cards.card(env_id).corpus_covers_questions != "yes"


def test_hotpotqa_and_an_explicit_corpus_are_not_warned_about(monkeypatch):
    require_data("wikipedia/hotpotqa_paragraphs.jsonl.gz")
    monkeypatch.setattr(env_tools, "_WARNED", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym.make("SwirlHotpot-v0")
        gym.make("SwirlBamboogle-v0", corpus=data_dir() / "wikipedia/hotpotqa_paragraphs.jsonl.gz")


def test_2wiki_official_files_search_their_own_paragraphs(tmp_path, monkeypatch):
    record = {"_id": "w1", "question": "Who directed Amber Gate?", "answer": "Tarsk", "type": "compositional",
              "supporting_facts": [["Amber Gate", 0]], "evidences": [["Amber Gate", "director", "Tarsk"]],
              "context": [["Amber Gate", ["Amber Gate is a film directed by Tarsk."]], ["Other", ["Unrelated."]]]}
    path = tmp_path / "dev.json"
    path.write_text(json.dumps([record]))
    monkeypatch.setattr(env_tools, "_WARNED", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make("Swirl2Wiki-v0", data_path=path)
    env.reset(seed=0)
    obs, *_ = env.step("<search_query>Amber Gate director</search_query>")
    assert "Amber Gate: Amber Gate is a film directed by Tarsk." in obs
