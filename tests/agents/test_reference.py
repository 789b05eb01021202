"""Reference agents in the real envs: accurate when honest, annotated and worse with mistakes, deterministic."""

from __future__ import annotations

import gymnasium as gym
import pytest

import swirl_env  # noqa: F401  (registers the env ids)
from swirl_env.actions import parse_action
from swirl_env.context import render
from swirl_agents.agents.reference import ReferenceMathAgent, ReferenceQAAgent, draw, read_context
from swirl_agents.agents.reference.math import annotations, to_number
from swirl_agents.agents.reference.qa import targets
from tests.conftest import require_data

N = 30
QA_MISTAKES = {"off_target_query", "premature_answer", "wrong_answer"}
MATH_MISTAKES = {"wrong_expression", "premature_answer", "wrong_answer"}

_ENVS: dict[str, gym.Env] = {}


def make_env(env_id: str) -> gym.Env:
    """One env per id for the module (building a search index takes a few seconds)."""
    if env_id == "SwirlHotpot-v0":
        require_data("hotpotqa/hotpot_dev_distractor_subset.json.gz")
        require_data("wikipedia/hotpotqa_paragraphs.jsonl.gz")
    elif env_id == "SwirlGSM8K-v0":
        require_data("gsm8k/test.jsonl")
    elif env_id == "SwirlMuSiQue-v0":
        require_data("musique/musique_dev_subset_with_paragraphs.jsonl.gz")
    if env_id not in _ENVS:
        _ENVS[env_id] = gym.make(env_id)
    return _ENVS[env_id]


def run_episode(env: gym.Env, agent, question_id: str):
    """(steps, metas, rewards, final info) of one episode of ``agent`` on ``question_id``."""
    obs, info = env.reset(options={"question_id": question_id})
    steps, metas, rewards = [], [], []
    while True:
        out = agent.step(obs)
        step, meta = out.text, out.meta
        obs, reward, terminated, truncated, info = env.step(step)
        steps.append(step)
        metas.append(meta)
        rewards.append(reward)
        if terminated or truncated:
            return steps, metas, rewards, info


def run_many(env_id: str, agent, n: int = N) -> dict:
    env = make_env(env_id)
    questions = env.unwrapped.questions[:n]
    episodes = [run_episode(env, agent, q.id) for q in questions]
    metas = [m for _, ms, _, _ in episodes for m in ms]
    return {
        "questions": questions,
        "episodes": episodes,
        "accuracy": sum(r[-1] >= 1.0 for _, _, r, _ in episodes) / len(episodes),
        "mistake_share": sum(bool(m["mistake"]) for m in metas) / len(metas),
        "metas": metas,
    }


def agent_for(env_id: str, **kwargs):
    cls = ReferenceMathAgent if env_id in ("SwirlGSM8K-v0", "SwirlSynthMath-v0") else ReferenceQAAgent
    return cls(make_env(env_id).unwrapped.questions, **kwargs)


ENV_IDS = ["SwirlHotpot-v0", "SwirlGSM8K-v0", "SwirlSynthQA-v0", "SwirlSynthMath-v0", "SwirlMuSiQue-v0"]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_honest_agent_is_accurate_and_well_formed(env_id):
    out = run_many(env_id, agent_for(env_id))
    assert out["accuracy"] >= (0.95 if env_id in ("SwirlGSM8K-v0", "SwirlSynthMath-v0") else 0.9), out["accuracy"]
    assert out["mistake_share"] == 0.0
    for steps, metas, _, _ in out["episodes"]:
        for step, meta in zip(steps, metas):
            assert parse_action(step).error is None, step
            assert parse_action(step).reasoning, f"expected reasoning before the action, actual {step!r}"
            assert meta["mistake"] == "" and meta["intent"] and not meta.get("tainted")


@pytest.mark.parametrize("env_id", ["SwirlHotpot-v0", "SwirlSynthQA-v0"])
def test_honest_qa_agent_retrieves_the_gold_paragraphs(env_id):
    out = run_many(env_id, agent_for(env_id))
    answers = [ms[-1] for _, ms, _, _ in out["episodes"]]
    grounded = sum(m["grounded"] for m in answers) / len(answers)
    assert grounded >= (0.8 if env_id == "SwirlHotpot-v0" else 0.95), grounded
    assert all(len(steps) <= 5 for steps, _, _, _ in out["episodes"])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_mistakes_lower_accuracy_and_are_annotated(env_id):
    honest = run_many(env_id, agent_for(env_id))
    noisy = run_many(env_id, agent_for(env_id, mistake_rate=0.3))
    assert noisy["accuracy"] < honest["accuracy"] - 0.2, (noisy["accuracy"], honest["accuracy"])
    assert 0.15 <= noisy["mistake_share"] <= 0.45, noisy["mistake_share"]
    kinds = {m["mistake"] for m in noisy["metas"]} - {""}
    assert kinds <= (MATH_MISTAKES if "Math" in env_id or "GSM" in env_id else QA_MISTAKES)
    assert len(kinds) >= 2, kinds
    for steps, metas, rewards, _ in noisy["episodes"]:
        for step in steps:
            assert parse_action(step).error is None, step
        if not any(m["mistake"] for m in metas):  # a clean episode is still a correct one
            assert rewards[-1] == 1.0, (steps, metas)


@pytest.mark.parametrize("env_id", ["SwirlSynthQA-v0", "SwirlHotpot-v0"])
def test_qa_mistakes_are_what_they_say(env_id):
    out = run_many(env_id, agent_for(env_id, mistake_rate=0.5))
    for q, (steps, metas, rewards, _) in zip(out["questions"], out["episodes"]):
        plan = targets(q)
        for k, (step, meta) in enumerate(zip(steps, metas)):
            action = parse_action(step)
            if meta["mistake"] == "off_target_query":
                assert action.tag == "search_query"
                assert action.argument not in {t.query for t in plan} | {t.retry for t in plan}
                assert action.argument not in q.supporting_titles
            elif meta["mistake"] in ("premature_answer", "wrong_answer"):
                assert action.is_answer and rewards[k] == 0.0, (step, q.answers)
            if meta["mistake"] == "premature_answer":
                assert meta["intent"] in ("search_support", "retry_search")


@pytest.mark.parametrize("env_id", ["SwirlGSM8K-v0", "SwirlSynthMath-v0"])
def test_wrong_expression_taints_later_steps_only(env_id):
    out = run_many(env_id, agent_for(env_id, mistake_rate=0.3, mistakes=("wrong_expression",)))
    tainted_episodes = 0
    for q, (steps, metas, rewards, _) in zip(out["questions"], out["episodes"]):
        first = next((k for k, m in enumerate(metas) if m["mistake"]), None)
        assert all(not m["tainted"] for m in metas[: (len(metas) if first is None else first + 1)])
        plan = annotations(q.solution)
        if first is None:
            assert rewards[-1] == 1.0
            continue
        assert parse_action(steps[first]).argument != plan[first][0]  # the expression was changed
        if rewards[-1] == 0.0:
            tainted_episodes += 1
            assert metas[-1]["tainted"] or metas[-1]["mistake"], metas  # the wrong value reached the answer
    assert tainted_episodes >= 3


def test_same_seed_same_steps_different_seed_different_steps():
    env_id = "SwirlSynthQA-v0"
    a = run_many(env_id, agent_for(env_id, mistake_rate=0.3, seed=5), n=15)["episodes"]
    b = run_many(env_id, agent_for(env_id, mistake_rate=0.3, seed=5).with_seed(5), n=15)["episodes"]
    c = run_many(env_id, agent_for(env_id, mistake_rate=0.3).with_seed(6), n=15)["episodes"]
    assert [e[:3] for e in a] == [e[:3] for e in b]
    assert sum(x[0] != y[0] for x, y in zip(a, c)) >= 3


def test_math_agent_follows_the_annotations_on_gsm8k():
    env = make_env("SwirlGSM8K-v0")
    q = env.unwrapped.questions[0]  # Janet's ducks
    steps, metas, rewards, _ = run_episode(env, ReferenceMathAgent(env.unwrapped.questions), q.id)
    assert [parse_action(s).argument for s in steps] == ["16-3-4", "9*2", "18"]
    assert parse_action(steps[0]).reasoning == "Janet sells 16 - 3 - 4 duck eggs a day."
    assert [m["intent"] for m in metas] == ["compute", "compute", "answer"] and rewards[-1] == 1.0


def test_unknown_question_and_bad_arguments_raise():
    agent = agent_for("SwirlSynthMath-v0")
    with pytest.raises(ValueError, match="expected a question this ReferenceMathAgent was built with"):
        agent.act(render("You have at most 10 steps.", "What is 2+2?", []))
    with pytest.raises(ValueError, match="unknown mistake"):
        ReferenceQAAgent(make_env("SwirlSynthQA-v0").unwrapped.questions, mistakes=("typo",))
    with pytest.raises(ValueError, match="mistake_rate"):
        ReferenceMathAgent(make_env("SwirlSynthMath-v0").unwrapped.questions, mistake_rate=1.5)


def test_step_batch_equals_act_and_draw_is_stable():
    env = make_env("SwirlSynthQA-v0")
    agent = agent_for("SwirlSynthQA-v0", mistake_rate=0.5)
    observations = [env.reset(options={"question_index": i})[0] for i in range(8)]
    assert [s.text for s in agent.step_batch(observations)] == [agent.act(o) for o in observations]
    assert draw(0, "q", 1, "mistake") == pytest.approx(0.737799, abs=1e-6)  # a fixed function, not Python's hash


def test_agent_reads_the_step_limit_from_the_prompt():
    env = make_env("SwirlSynthMath-v0")
    q = next(q for q in env.unwrapped.questions if len(annotations(q.solution)) >= 3)
    obs = render("You have at most 2 steps.", q.question, [("<math_exp>1+1</math_exp>", "2")])
    assert parse_action(ReferenceMathAgent([q]).act(obs)).is_answer  # the last step must answer
    assert read_context(obs)[2] == 2
    assert to_number("1/3 ≈ 0.3333") == to_number("2/6")
