"""Every registered env behaves as a Gymnasium env should, on real data and the built-in world."""

import gymnasium as gym
import numpy as np
import pytest

# 2Wiki and Bamboogle warn that the default corpus does not cover them; test_cards asserts the warning itself.
pytestmark = pytest.mark.filterwarnings("ignore:.*does not cover.*:UserWarning")
from gymnasium.utils.env_checker import check_env

import swirl_env
from swirl_env import context as ctx
from tests.conftest import FIXTURES, require_data

# Env ids and the data each needs (None: the built-in world, no file).
NEEDS = {
    "SwirlHotpot-v0": "hotpotqa/hotpot_dev_distractor_subset.json.gz",
    "SwirlMuSiQue-v0": "musique/musique_dev_subset_with_paragraphs.jsonl.gz",
    "SwirlGSM8K-v0": "gsm8k/test.jsonl",
    "SwirlBamboogle-v0": "bamboogle/test.jsonl",
    "Swirl2Wiki-v0": "2wikimultihopqa/dev_questions.json.gz",
    "SwirlBeerQA-v0": None,
    "SwirlCofCA-v0": None,
    "SwirlSynthQA-v0": None,
    "SwirlSynthMath-v0": None,
}
FIXTURE_KWARGS = {
    "SwirlBeerQA-v0": {"data_path": FIXTURES / "beerqa_sample.json"},
    "SwirlCofCA-v0": {"data_path": FIXTURES / "cofca_sample.json"},
}


def make(env_id, **kwargs):
    if NEEDS[env_id]:
        require_data(NEEDS[env_id])
    if env_id in ("SwirlHotpot-v0", "SwirlBamboogle-v0", "Swirl2Wiki-v0"):
        require_data("wikipedia/hotpotqa_paragraphs.jsonl.gz")
    return gym.make(env_id, **{**FIXTURE_KWARGS.get(env_id, {}), **kwargs})


def test_every_id_is_listed_here():
    assert set(swirl_env.ENV_IDS) == set(NEEDS)


def test_module_prefixed_make_registers_without_import():
    env = gym.make("swirl_env:SwirlSynthMath-v0")
    assert env.spec.id == "SwirlSynthMath-v0"


@pytest.mark.parametrize("env_id", sorted(NEEDS))
def test_check_env(env_id):
    env = make(env_id)
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", sorted(NEEDS))
def test_same_seed_same_episode(env_id):
    steps = ["Think. <search_query>first</search_query>", "<math_exp>2*3</math_exp>", "no tag", "<answer>6</answer>"]

    def run(seed):
        env = make(env_id)
        obs, info = env.reset(seed=seed)
        trace = [obs]
        for s in steps:
            obs, reward, terminated, truncated, info = env.step(s)
            trace.append((obs, reward, terminated, truncated))
            if terminated or truncated:
                break
        return trace

    assert run(3) == run(3)
    env = make(env_id)
    if len(env.unwrapped.questions) > 1:  # different seeds reach different questions
        assert len({env.reset(seed=s)[0] for s in range(10)}) > 1


def test_hotpot_episode_on_a_real_question():
    env = make("SwirlHotpot-v0", render_mode="ansi")
    q = env.unwrapped.questions[0]
    obs, info = env.reset(options={"question_id": q.id})
    assert obs.endswith(f"Question: {q.question}\n\n")
    assert "gold_answers" not in info and "supporting_facts" not in info
    title = q.supporting_titles[0]
    obs, reward, terminated, truncated, info = env.step(f"Search the first article. <search_query>{title}</search_query>")
    assert f"{title}: " in obs.split("<result>")[-1]
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["tool"] == "search_query" and info["tool_calls"] == 1
    assert "gold_answers" not in info
    assert env.render().startswith(f"Question: {q.question}\n\n[step 1/5] Search the first article.")
    obs, reward, terminated, truncated, info = env.step(f"<answer>{q.answer}</answer>")
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert info["gold_answers"] == q.answers and info["supporting_facts"] == q.supporting_facts
    assert info["score"]["exact_match"] == 1.0


def test_wrong_answer_scores_zero():
    env = make("SwirlHotpot-v0")
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("<answer>Definitely Not The Answer Xyzzy</answer>")
    assert (reward, terminated) == (0.0, True) and info["score"]["f1"] == 0.0


def test_malformed_steps_count_and_truncate():
    env = make("SwirlSynthQA-v0", max_steps=3)
    env.reset(seed=0)
    for i, bad in enumerate(["no action at all", "<answer></answer>", "<search_query>a</search_query><answer>b</answer>"]):
        obs, reward, terminated, truncated, info = env.step(bad)
        assert info["error"] and info["malformed_steps"] == i + 1
        assert obs.rstrip().endswith("</result>") and "Invalid step:" in obs
    assert (terminated, truncated, reward) == (False, True, 0.0)
    assert info["answered"] is False and info["gold_answers"]


def test_tool_not_offered_is_an_observation():
    env = make("SwirlSynthQA-v0")
    env.reset(seed=0)
    obs, *_, info = env.step("<math_exp>1+1</math_exp>")
    assert "not available" in info["error"] and "<math_exp>" not in env.unwrapped.instructions


def test_calculator_offered_in_qa_and_search_in_math():
    env = make("SwirlSynthQA-v0", tools=("search", "calculator"))
    env.reset(seed=0)
    obs, *_ = env.step("<math_exp>1/3 + 1/6</math_exp>")
    assert obs.split("<result>")[-1].startswith("\n0.5\n")
    env = make("SwirlSynthMath-v0", tools=("calculator", "search"))
    env.reset(seed=0)
    obs, *_, info = env.step("<search_query>bakery</search_query>")
    assert info["tool"] == "search_query" and not info["error"]


def test_unknown_question_id_suggests():
    env = make("SwirlSynthQA-v0")
    qid = env.unwrapped.questions[0].id
    with pytest.raises(KeyError, match="Did you mean"):
        env.reset(options={"question_id": qid + "x"})


def test_unknown_tool_suggests():
    with pytest.raises(ValueError, match="Did you mean 'search'"):
        make("SwirlSynthQA-v0", tools=("serach",))


def _vector_rollout(vec):
    obs, info = vec.reset(seed=[0, 1])
    assert isinstance(obs, tuple) and all(o.endswith("\n\n") for o in obs)
    obs, rewards, terminated, truncated, info = vec.step(("<math_exp>6*7</math_exp>", "é中 <answer>4</answer>"))
    assert "42" in obs[0] and isinstance(rewards, np.ndarray)
    assert terminated.tolist() == [False, True]
    return obs


def test_sync_vector_env():
    vec = gym.vector.SyncVectorEnv([lambda: make("SwirlSynthMath-v0") for _ in range(2)])
    _vector_rollout(vec)
    vec.close()


@pytest.mark.parametrize("shared_memory", [True, False])
def test_async_vector_env(shared_memory):
    vec = gym.vector.AsyncVectorEnv([lambda: make("SwirlSynthMath-v0") for _ in range(2)], shared_memory=shared_memory)
    try:
        obs = _vector_rollout(vec)
        sync = gym.vector.SyncVectorEnv([lambda: make("SwirlSynthMath-v0") for _ in range(2)])
        assert obs == _vector_rollout(sync)
    finally:
        vec.close()
