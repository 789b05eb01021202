"""Shared fixtures for agent tests: a tiny random policy saved once per session, and one wired to act.

``tiny_model_dir``: a 2-layer Llama (hidden 64) and a byte-level BPE tokenizer trained on rendered
swirl contexts, saved in Hugging Face format. Load it with ``TransformersAgent(tiny_model_dir)``,
``AutoModelForCausalLM.from_pretrained(tiny_model_dir)`` or serve it. Its weights are random: it
writes garbage, which is exactly what agents, envs and trainers must survive.

``scripted_model_dir``: the same model rewired to answer any context
with :data:`SCRIPTED_STEP` (a search, then a second action it must never get to write). It is a
bigram model wired by :func:`swirl_agents.tiny.script_model`: deterministic, built in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from swirl_env import context as ctx

SCRIPTED_STEP = "Lookup:<search_query>capital city</search_query>Done<answer>Paris</answer>"
"""What ``scripted_model_dir`` writes after a first-step context; one call must stop after ``</search_query>``."""

QUESTIONS = (
    "Which river flows through the capital of the country where Zoë Ardent was born?",
    "What is the official language of the country whose capital is Holorn?",
    "How many books did the author of The Amber Gate write before 1990?",
    "Who directed the film that won the award founded by Mira Okonkwo?",
    "A baker sells 12 loaves at $3.50 each. How much does she earn?",
    "Which is older, the Tarn Bridge or the Velmar Tower?",
)


def _passages(n: int = 300) -> list[str]:
    """``title: text`` paragraphs from the built-in synthetic world (no data files needed)."""
    from swirl_env.data.synth import synth_passages

    return [f"{p.title}: {p.text}" for p in synth_passages()[:n]]


def first_step_contexts() -> list[str]:
    """Contexts before the first step, for QA and maths instructions."""
    qa, math = ctx.instructions(("search_query",), 5), ctx.instructions(("math_exp",), 10)
    return [ctx.render_start(ins, q) for q in QUESTIONS for ins in (qa, math)]


def training_texts() -> list[str]:
    """Rendered multi-step contexts: instructions, questions, actions and ``<result>`` blocks."""
    paragraphs = _passages()
    texts = []
    for i, start in enumerate(first_step_contexts()):
        results = ["\n\n".join(paragraphs[(5 * (i + j)) % len(paragraphs):][:5]) for j in range(3)]
        steps = [(f"Search first. <search_query>{p.split(':')[0]}</search_query>", r) for p, r in zip(paragraphs[i::7], results)]
        steps += [("<math_exp>12 * 3.5</math_exp>", "42"), ("So the answer is <answer>42</answer>", None)]
        texts.append(start.removesuffix("\n\n") + "\n\n" + "".join(ctx.render_step(s, r) for s, r in steps))
    return texts + paragraphs


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny models on one CPU thread, then restore the setting.

    A 64-wide model gives each op microseconds of work; with two threads the hand-offs cost more
    than the work, and on a busy machine the spinning threads make tests several times slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama + tokenizer saved once per test session (Hugging Face format)."""
    from swirl_agents.tiny import make_tiny_policy

    return make_tiny_policy(tmp_path_factory.mktemp("tiny_policy"), training_texts(), vocab_size=1024,
                            n_layer=2, n_embd=64, n_head=4, seed=0)


@pytest.fixture(scope="session")
def scripted_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """``tiny_model_dir`` rewired to write :data:`SCRIPTED_STEP` (then EOS) after any context."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_agents.tiny import script_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = script_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, SCRIPTED_STEP)
    path = tmp_path_factory.mktemp("scripted_policy")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
