"""The base policy: a warm start that teaches the action format, from a tiny model made locally or a real one.

SWiRL starts from a base model that already writes steps in the right format but makes mistakes.
:func:`build_base_policy` makes one from the environments themselves:

1. **Reference episodes.** The gold-guided reference agents play ``warm_start_questions`` train
   questions of every env with ``warm_start_mistake_rate`` of their steps wrong on purpose (an
   off-target search, a wrong expression, a premature or wrong answer).
2. **Model.** With ``--model`` that model (a named model such as ``smollm2-135m-instruct``, a folder, a
   hub id). Without, a tiny model made on the spot (:mod:`swirl_agents.tiny`): a byte-level BPE fitted on
   those episodes and the search corpus, where every whole number up to ``recipe.max_number`` is one
   token and every newline its own pre-token (copying a number is copying one token), and a small GPT-2
   whose first two layers start as a copying circuit.
3. **Warm start.** SFT (``--sft.*``, objective ``sft``) on every step of the reference episodes,
   mistakes included: the base policy follows the format and is mediocre, which is what SWiRL's data
   filtering then improves on. The trainer checkpoints as it goes, so an interrupted warm start resumes.

Example:
    >>> import tempfile
    >>> from swirl_agents.pipeline.config import PipelineConfig, RecipeConfig
    >>> from swirl_agents.training import TrainConfig
    >>> cfg = PipelineConfig(envs=("SwirlSynthMath-v0",), warm_start_questions=4, progress=False,
    ...                      recipe=RecipeConfig(vocab_size=400, n_embd=48, copy_heads=1),
    ...                      sft=TrainConfig(objective="sft", max_steps=2, learning_rate=1e-3))
    >>> path = build_base_policy(tempfile.mkdtemp(), cfg)
    >>> path.name, (path / "config.json").exists()
    ('final', True)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

from swirl_agents.agents.factory import make_agent
from swirl_agents.configs import to_dict
from swirl_agents.episodes import decompose, read_episodes
from swirl_agents.pipeline.config import PipelineConfig, env_kwargs_for
from swirl_agents.rollout import generate_episodes

MAX_CORPUS_TEXTS = 20000
"""Search-corpus passages the tiny tokenizer sees at most (beyond this the vocabulary barely changes)."""


def corpus_passages(env: gym.Env, limit: int = MAX_CORPUS_TEXTS) -> list[Any]:
    """Up to ``limit`` passages of ``env``'s search corpus (none without search)."""
    search = env.unwrapped.tools.get("search_query")
    passages = getattr(search, "passages", None) or ()
    return [passages[i] for i in range(min(len(passages), limit))]


def reference_episodes(out: Path, config: PipelineConfig) -> tuple[Path, list[Any]]:
    """The warm start's reference episodes (resumable) and the search corpora's passages."""
    path, corpus = out / "reference.jsonl", []
    for env_id in config.envs:
        env = gym.make(env_id, split=config.train_split, **env_kwargs_for(env_id, config.env_kwargs))
        agent = make_agent("reference", env, mistake_rate=config.warm_start_mistake_rate, seed=config.seed)
        generate_episodes(env, agent, out=path, num_questions=config.warm_start_questions, batch_size=64,
                          seed=config.seed, progress=config.progress)
        corpus += corpus_passages(env)
    return path, corpus


def tiny_model(config: PipelineConfig, texts: list[str], names: list[str] = ()) -> tuple[Any, Any]:
    """The tiny tokenizer and model of the recipe (``config.recipe``), fitted on ``texts``, ``names`` single tokens."""
    from swirl_agents.tiny import build_tiny_model, train_tokenizer

    r = config.recipe
    tokenizer = train_tokenizer(texts, r.vocab_size, numbers=r.max_number, isolate_newlines=True,
                                words=list(dict.fromkeys(names))[: r.entity_tokens])
    model = build_tiny_model(tokenizer, arch="gpt2", n_layer=r.n_layer, n_embd=r.n_embd, n_head=r.n_head,
                             copy_heads=r.copy_heads, max_position_embeddings=r.max_positions, seed=config.seed)
    return model, tokenizer


def build_base_policy(out_dir: str | Path, config: PipelineConfig) -> Path:
    """Warm-start the base policy in ``out_dir`` and return its model folder (``out_dir/sft/final``).

    Writes ``reference.jsonl`` (the SFT episodes), ``sft/`` (the trainer's metrics, checkpoints, run info
    and ``final/`` model + tokenizer) and ``recipe.json`` (sizes, timings). A finished folder is reused as
    it is; an interrupted one resumes (the reference rollout and the trainer both pick up where they stopped).
    """
    from swirl_agents.training import train

    out = Path(out_dir)
    final = out / "sft" / "final"
    if (final / "config.json").exists() and (out / "recipe.json").exists():
        return final
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    episodes_path, corpus = reference_episodes(out, config)
    episodes = list(read_episodes(episodes_path))
    reference_seconds = time.perf_counter() - start
    model = tokenizer = None
    if not config.model:
        texts = [ep.final_context() for ep in episodes] + [f"{p.title}: {p.text}" for p in corpus]
        model, tokenizer = tiny_model(config, texts, [p.title for p in corpus])
    sft = config.train_config("sft", str(out / "sft"), config.model)
    if not config.model and not sft.max_seq_len:
        sft.max_seq_len = config.recipe.max_positions
    result = train(sft, [t for ep in episodes for t in decompose(ep)], model=model, tokenizer=tokenizer)
    info = {"config": to_dict(config), "envs": list(config.envs), "episodes": len(episodes),
            "reference_accuracy": sum(ep.correct for ep in episodes) / max(len(episodes), 1),
            "pack_stats": result.pack_stats, "reference_seconds": reference_seconds,
            "seconds": time.perf_counter() - start}
    if model is not None:
        info.update(vocab_size=len(tokenizer), parameters=sum(p.numel() for p in model.parameters()))
    (out / "recipe.json").write_text(json.dumps(info, indent=2))
    return final
