"""The one agent factory: every command line, the pipeline, benchmarks and examples build agents here.

An agent spec is a string:

- ``reference`` / ``reference-noisy``: the gold-guided reference agent for the env's task (maths or
  multi-hop QA), over its questions; ``-noisy`` injects 20% deliberate mistakes;
- ``replay:PATH``: replays the episodes recorded in ``PATH``;
- ``openai:URL:MODEL``: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, ``python -m swirl_agents.serve``);
- ``transformers:MODEL`` or a bare model name: a local causal LM, where ``MODEL`` is a named model
  (``smollm2-135m-instruct``), a ``.gguf`` file, a model folder or (with ``transformers:``) a hub id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swirl_agents.agents.base import Agent
from swirl_agents.zoo import NAMED_MODELS

SPECS = "reference, reference-noisy, replay:PATH, openai:URL:MODEL, transformers:MODEL, or a model name/folder/.gguf"
NOISY_MISTAKE_RATE = 0.2


def make_agent(spec: str | Agent, env: Any = None, *, seed: int = 0, temperature: float = 1.0,
               max_new_tokens: int = 256, batch_size: int = 16, mistake_rate: float | None = None,
               device: Any = None) -> Any:
    """The agent named by ``spec`` (an agent object is returned as it is).

    Args:
        spec: See the module docstring.
        env: The env the agent will play (reference agents need its questions and task).
        seed: Seeds sampling and a reference agent's mistakes.
        temperature: Model agents: sampling temperature; 0 is greedy.
        max_new_tokens: Model agents: longest step in tokens.
        batch_size: Transformers agents: prompts per decoding loop.
        mistake_rate: Reference agents: overrides the spec's rate.
        device: Transformers agents: where the model runs (default: a GPU when there is one).

    Example:
        >>> import gymnasium as gym, swirl_env
        >>> make_agent("reference-noisy", gym.make("SwirlSynthMath-v0")).name
        'reference-math(mistake_rate=0.2,seed=0)'
        >>> make_agent("nonsense:x")
        Traceback (most recent call last):
        ...
        ValueError: expected an agent spec (reference, reference-noisy, replay:PATH, openai:URL:MODEL, transformers:MODEL, or a model name/folder/.gguf), actual 'nonsense:x'
    """
    if not isinstance(spec, str):
        return spec
    kind, _, rest = spec.partition(":")
    if spec in ("reference", "reference-noisy"):
        if env is None:
            raise ValueError(f"the {spec} agent needs the env it will play (its questions): make_agent({spec!r}, env)")
        from swirl_agents.agents.reference import ReferenceMathAgent, ReferenceQAAgent

        rate = mistake_rate if mistake_rate is not None else (NOISY_MISTAKE_RATE if spec == "reference-noisy" else 0.0)
        cls = ReferenceMathAgent if env.unwrapped.task == "math" else ReferenceQAAgent
        return cls(env.unwrapped.questions, mistake_rate=rate, seed=seed)
    if kind == "replay" and rest:
        from swirl_agents.agents.replay import ReplayAgent

        return ReplayAgent(rest)
    if kind == "openai" and rest:
        from swirl_agents.agents.openai_compat import OpenAICompatAgent

        url, _, model = rest.rpartition(":")
        if not url or not model or "://" not in url:
            raise ValueError(f"expected openai:URL:MODEL (e.g. openai:http://localhost:8000/v1:my-model), actual {spec!r}")
        return OpenAICompatAgent(url, model, temperature=temperature, max_tokens=max_new_tokens, seed=seed)
    if kind == "transformers" and rest or is_model_name(spec):
        from swirl_agents.agents.hf import TransformersAgent

        return TransformersAgent(rest if kind == "transformers" else spec, max_new_tokens=max_new_tokens,
                                 temperature=temperature, do_sample=temperature > 0, seed=seed,
                                 batch_size=batch_size, device=device)
    if "/" in spec or spec.startswith((".", "~")):
        raise FileNotFoundError(f"model folder {spec} does not exist (an agent spec is {SPECS})")
    raise ValueError(f"expected an agent spec ({SPECS}), actual {spec!r}")


def is_model_name(spec: str) -> bool:
    """Whether a bare spec names a local model: a named model, a ``.gguf`` file, or a folder."""
    return spec in NAMED_MODELS or spec.endswith(".gguf") or Path(spec).is_dir()
