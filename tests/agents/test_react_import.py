"""ReAct trajectories recorded by another system (FireAct, real file) become swirl episodes."""

from __future__ import annotations

import json

import pytest

import swirl_env  # noqa: F401  (registers the env ids)
from swirl_agents.episodes import Episode, decompose
from swirl_agents.interop.react import ReactFormatError, env_instructions, import_react, split_react_step
from swirl_env import context as ctx
from tests.conftest import require_data

REACT = "hotpotqa/react_style_trajectories.jsonl"


@pytest.fixture(scope="module")
def imported() -> tuple[list[dict], list[Episode]]:
    path = require_data(REACT)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return records, list(import_react(path))


def test_every_real_record_imports(imported):
    records, episodes = imported
    assert len(episodes) == len(records) == 500
    assert len({e.episode_id for e in episodes}) == 500
    for rec, ep in zip(records, episodes):
        msgs = rec["messages"]
        assert ep.question == msgs[0]["content"].strip()
        assert len(ep.steps) == sum(m["role"] == "assistant" for m in msgs) > 0
        assert ep.steps[-1].tool == "answer" and ep.steps[-1].result is None and ep.terminated
        assert ep.answer == msgs[-2]["content"].rsplit("finish[", 1)[1].rstrip().removesuffix("]").strip()
        # FireAct's "reward = True": the recorded outcome, with no gold answer to score against
        assert ep.correct and ep.score == {} and ep.gold_answers == () and ep.meta["recorded_reward"] == 1.0
        for step, obs in zip(ep.steps[:-1], msgs[2::2]):
            assert step.tool == "search_query" and not step.error
            assert step.result == obs["content"].removeprefix("Observation: ")  # recorded, not re-run
            assert step.action.endswith(f"<search_query>{step.tool_input}</search_query>")
            assert not step.action.startswith("Thought:")


def test_states_rebuild_and_decompose(imported):
    _, episodes = imported
    instructions = env_instructions("SwirlHotpot-v0")
    for ep in episodes:
        assert ep.instructions == instructions
        states = ep.states()
        transitions = decompose(ep)
        assert len(transitions) == len(ep.steps) == len(states)
        assert states[0] == ctx.render_start(instructions, ep.question)
        for i, t in enumerate(transitions):
            assert t.state == states[i] and t.action == ep.steps[i].action
            # each state is a well-formed swirl context: it splits into messages and back unchanged
            assert ctx.Context.parse(t.state).render() == t.state
            following = states[i + 1] if i + 1 < len(states) else ep.final_context()
            assert following == t.state + ctx.render_step(t.action, ep.steps[i].result)
        assert ctx.Context.parse(ep.final_context()) == ep.context()
        assert [t.reward for t in transitions][-1] == 1.0


def test_instructions_match_the_real_env():
    import gymnasium as gym

    require_data("gsm8k/test.jsonl")
    assert env_instructions("SwirlGSM8K-v0") == gym.make("SwirlGSM8K-v0").unwrapped.instructions
    assert env_instructions("SwirlSynthQA-v0") == gym.make("SwirlSynthQA-v0").unwrapped.instructions


def _write(tmp_path, *records):
    path = tmp_path / "react.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def test_lookup_numbering_gold_and_unfinished(tmp_path):
    rec = {"answer": "Paris", "messages": [
        {"role": "system", "content": "You are ReAct."},
        {"role": "user", "content": "Question: Capital of France?"},
        {"role": "assistant", "content": "Thought 1: Search it.\nAction 1: Search[France]"},
        {"role": "user", "content": "Observation 1: France is a country."},
        {"role": "assistant", "content": "Thought 2: Find the capital.\nAction 2: Lookup[capital]"},
        {"role": "user", "content": "Observation 2: (Result 1 / 1) Its capital is Paris."},
        {"role": "assistant", "content": "Thought 3: Paris.\nAction 3: Finish[Paris]"},
    ]}
    unfinished = {"messages": rec["messages"][1:4]}
    ep, cut = import_react(_write(tmp_path, rec, unfinished))
    assert [s.action for s in ep.steps] == ["Search it. <search_query>France</search_query>",
                                          "Find the capital. <search_query>capital</search_query>",
                                          "Paris. <answer>Paris</answer>"]
    assert ep.question == "Capital of France?" and ep.steps[1].result == "(Result 1 / 1) Its capital is Paris."
    assert ep.gold_answers == ("Paris",) and ep.score["exact_match"] == 1.0 and ep.correct
    assert cut.truncated and cut.answer is None and cut.reward == 0.0 and len(cut.steps) == 1
    assert cut.episode_id == ep.episode_id[:-1] + "1"  # second trajectory of the same question


@pytest.mark.parametrize("bad, why", [
    ("{not json", "not a ReAct trajectory"),
    ({"turns": []}, "'messages' list"),
    ({"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "I think so."}]}, "Action:"),
    ({"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "Action: jump[x]"}]}, "jump"),
    ({"messages": [{"role": "assistant", "content": "Action: finish[x]"}]}, "user's question"),
])
def test_malformed_records_name_file_and_line(tmp_path, bad, why):
    good = {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "Action: finish[x]"}]}
    path = _write(tmp_path, good, bad)
    with pytest.raises(ReactFormatError, match=why) as e:
        list(import_react(path))
    assert f"{path}:2:" in str(e.value)


def test_split_react_step_takes_the_last_action():
    assert split_react_step("Thought: use Action: later\nAction: finish[a [b] c]") == ("use Action: later", "finish", "a [b] c")
