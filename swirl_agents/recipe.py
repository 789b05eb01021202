"""The tiny-model recipe: a base policy built and warm-started on a CPU in minutes, no download.

SWiRL starts from a base model that already writes steps in the right format but makes mistakes.
Without a GPU or a hub, this recipe makes one from the environments themselves:

1. **Reference episodes.** The gold-guided reference agents play ``base_questions`` train
   questions of every env with ``base_mistake_rate`` of their steps wrong on purpose (an
   off-target search, a wrong expression, a premature or wrong answer).
2. **Tokenizer.** A byte-level BPE fitted on those episodes and the search corpus, so entity
   names are one to three tokens. Two choices matter for a small model: every whole number up
   to ``max_number`` is one token, the same token wherever it appears (after a space in the
   question, after a tag in an expression, alone in a tool result), so copying a number is
   copying one token (larger numbers are split in chunks); and every newline
   is its own pre-token, so that tokenising a context segment by segment (the trainer's rule,
   :mod:`swirl_agents.training.data`) gives the same ids as tokenising it whole (what the
   generating agent does).
3. **Model.** A small GPT-2 from a config whose first two layers start as a copying circuit
   (:func:`build_copy_model`). Multi-hop QA and maths are mostly copying: an entity name from the
   question into a query, a name from a search result into the next query or the answer, numbers
   into an expression. A transformer learns to copy with *induction heads* (a head that finds the
   previous occurrence of the current token and predicts the token that followed it), but trained
   from random weights it takes far more tokens to grow them than a CPU gets through in minutes:
   held-out loss on copied tokens stayed above 5 nats after 2M tokens. Wired in at the start
   (previous-token heads in layer 0, induction heads reading them in layer 1) and then trained
   like every other weight, it brings that loss under 1.5 nats after the same number of tokens.
4. **Warm start.** SFT (``TrainConfig(objective="sft")``) on every step of the reference
   episodes, mistakes included: the base policy follows the format and is mediocre, which is
   what SWiRL's data filtering then improves on.

Example:
    >>> tok = train_recipe_tokenizer(["Question: 263 - 29?\\n\\nSubtract. <math_exp>263-29</math_exp>"] * 4,
    ...                              vocab_size=320)
    >>> tok.convert_ids_to_tokens(tok("<math_exp>263*4</math_exp> 12345")["input_ids"])
    ['<math_exp>', '263', '*', '4', '</math_exp>', 'Ġ', '1234', '5']
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from swirl_agents.episodes import decompose, read_episodes
from swirl_agents.models import BOS, EOS, PAD, TAG_TOKENS
from swirl_agents.rollout import generate_episodes

DEFAULT_ENV_KWARGS: dict[str, dict[str, Any]] = {
    "SwirlSynthQA-v0": {"top_k": 2},
    "SwirlSynthMath-v0": {"max_steps": 6},
}
"""Env arguments that keep contexts short for a small model: two passages per search in the built-in
world (the question's two articles are usually both found), and six steps for its maths problems
(they take at most five calculations and the answer)."""

MAX_CORPUS_TEXTS = 20000
"""Search-corpus passages the tokenizer sees at most (beyond this the vocabulary barely changes)."""


@dataclass
class RecipeConfig:
    """How the tiny base policy is made (ignored when a model is given)."""

    base_questions: int = 1500
    """Train questions per env that the reference agent plays for the SFT warm start."""
    base_mistake_rate: float = 0.2
    """Share of the reference agent's steps that are deliberate mistakes in the SFT data."""
    vocab_size: int = 4096
    """Tokenizer vocabulary size (BPE fitted on the reference episodes and the search corpus)."""
    n_layer: int = 2
    """Transformer blocks of the tiny model (at least 2: the first two hold the copying circuit)."""
    n_embd: int = 192
    """Hidden size of the tiny model."""
    n_head: int = 6
    """Attention heads of the tiny model; ``copy_heads`` of them in each of the first two layers start as copiers."""
    copy_heads: int = 2
    """Previous-token heads (layer 0) and induction heads (layer 1) wired in at initialisation; 0: plain random init."""
    max_positions: int = 2048
    """Longest sequence the tiny model handles, in tokens (a whole episode must fit)."""
    sft_steps: int = 2500
    """Optimizer steps of the SFT warm start. 2500 rather than 1000: the base policy solves more than twice
    the bridge questions (12 of 132 against 5 on seed 0), and SWiRL then lifts QA as well as maths."""
    sft_learning_rate: float = 3e-3
    """Peak learning rate of the SFT warm start (cosine decay, 5% warmup)."""
    sft_tokens_per_batch: int = 2048
    """Padded tokens per SFT optimizer step (small batches, more steps: better for a tiny model on a CPU)."""
    max_number: int = 2100
    """Whole numbers from 0 to this (years included) are single tokens."""


def train_recipe_tokenizer(texts: Iterable[str], vocab_size: int = 4096, max_number: int = 2100) -> Any:
    """A byte-level BPE for swirl contexts: numbers up to ``max_number`` and action tags one token each.

    Every string round-trips (``decode(encode(x)) == x``), and a context tokenised piece by piece
    at step boundaries gives the same ids as the whole string, because every boundary between a
    step and its context is a newline.

    Args:
        texts: Training texts (rendered episodes, corpus passages).
        vocab_size: Target vocabulary size of the BPE, tags and ``<s>``, ``</s>``, ``<pad>`` included.
        max_number: Whole numbers ``0..max_number`` are added as tokens (beyond ``vocab_size``);
            a longer digit run is cut into the longest such numbers, left to right.

    Returns:
        A ``PreTrainedTokenizerFast`` with bos, eos and pad tokens.

    Example:
        >>> tok = train_recipe_tokenizer(["Question: Who?\\n\\nLook. <search_query>Tarsk</search_query>"] * 4,
        ...                              vocab_size=320)
        >>> text = "Look.\\n\\n<result>\\nTarsk: 12 km\\n</result>"
        >>> tok.decode(tok(text)["input_ids"]) == text
        True
    """
    try:
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(f"{e.name} is needed for the tiny-model recipe: pip install \"swirl-rl[train]\"") from e
    texts = list(texts)
    if not texts:
        raise ValueError("expected at least one training text, actual none: pass rendered episodes")
    min_size = 256 + 3 + len(TAG_TOKENS)
    if vocab_size < min_size:
        raise ValueError(f"expected vocab_size >= {min_size} (256 bytes + special and tag tokens), actual {vocab_size}")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("\n", behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(TAG_TOKENS), special_tokens=[BOS, EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(texts, trainer=trainer)
    # Not special: decoding with skip_special_tokens=True must keep the tags in the step text.
    bpe.add_tokens([AddedToken(t, normalized=False, special=False) for t in TAG_TOKENS])
    # Added tokens are matched before the BPE, leftmost-longest: "1952" is one token, "12345" is "1234" "5".
    bpe.add_tokens([AddedToken(str(n), normalized=False, special=False) for n in range(max_number + 1)])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   clean_up_tokenization_spaces=False)


PREV_SHARPNESS = 4.0
"""Query/key gain of the previous-token heads: attention to the previous position dominates a 2k-token context."""
MATCH_SHARPNESS = 2.0
"""Query/key gain of the induction heads: how strongly a token matches its earlier occurrences."""
COPY_GAIN = 2.0
"""Output gain of the induction heads: how strongly the copied token is predicted before any training."""
IDENTITY_NORM = 4.0
"""Norm of the random token-identity part of every embedding."""
NUMBER_NORM = 3.0
"""Norm of the direction shared by every number token (so attention can look for "a number")."""


def build_copy_model(tokenizer: Any, *, n_layer: int = 2, n_embd: int = 192, n_head: int = 6, copy_heads: int = 2,
                     max_positions: int = 2048, seed: int = 0) -> Any:
    """A GPT-2 whose first two layers start as a copying circuit (previous-token + induction heads).

    The residual stream is laid out in head-sized blocks: ``copy_heads`` blocks of token identity
    (random, tied input/output embeddings), one block of sinusoidal positions, ``copy_heads``
    blocks that receive the previous token's identity, and free room (where every number token
    shares one direction, so that "attend to a number" is easy to learn). Previous-token head ``h`` of
    layer 0 attends from position m to m - 1 (its query is the position rotated back by one step,
    its key the position) and copies identity block ``h`` into previous-token block ``h``.
    Induction head ``h`` of layer 1 matches the current token's identity block against every
    position's previous-token block and copies the matched position's identity into the output,
    so "A B ... A" predicts "B". Every other weight is a normal random init, and all of them,
    the circuit included, are trained; dropout is off.

    Args:
        tokenizer: Gives the vocabulary size and the bos/eos/pad ids.
        n_layer: Blocks (>= 2 when ``copy_heads`` > 0).
        n_embd: Hidden size; a multiple of ``n_head``, with room for ``2 * copy_heads + 1`` head-sized blocks.
        n_head: Attention heads per layer.
        copy_heads: Previous-token and induction heads to wire in; 0 gives a plain random GPT-2.
        max_positions: Longest sequence in tokens.
        seed: Seeds the random weights.

    Example:
        >>> import torch
        >>> tok = train_recipe_tokenizer([" ".join(f"w{i}" for i in range(300))] * 3, vocab_size=400)
        >>> model = build_copy_model(tok, n_embd=96, n_head=6, copy_heads=2)
        >>> seq = torch.randint(10, len(tok), (1, 30), generator=torch.Generator().manual_seed(0))
        >>> logits = model(input_ids=seq.repeat(1, 2)).logits[0, 30:-1]  # the second copy, untrained
        >>> bool((logits.argmax(-1) == seq[0, 1:]).float().mean() > 0.8)
        True
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    head = n_embd // n_head if n_head and n_embd % n_head == 0 else 0
    if not head or (copy_heads and (n_layer < 2 or (2 * copy_heads + 1) * head > n_embd or head % 2)):
        raise ValueError(f"expected n_embd divisible by n_head into even head sizes, n_layer >= 2 and room for "
                         f"{2 * copy_heads + 1} head-sized blocks, actual n_embd={n_embd}, n_head={n_head}, "
                         f"n_layer={n_layer}, copy_heads={copy_heads}: raise n_embd or lower copy_heads")
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                        n_positions=max_positions, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
        if copy_heads:
            with torch.no_grad():
                _wire_copying(model, copy_heads, head)
                _mark_numbers(model, tokenizer, (2 * copy_heads + 1) * head)
    for key, value in ids.items():
        setattr(model.generation_config, key, value)
    return model.eval()


def _mark_numbers(model: Any, tokenizer: Any, first_free: int) -> None:
    """Add one shared random direction, in the dims after the circuit's blocks, to every number token's embedding."""
    import torch

    numbers = [i for token, i in tokenizer.get_vocab().items() if token.isdigit()]
    width = model.config.n_embd - first_free
    if not numbers or width <= 0:
        return
    direction = torch.randn(width)
    model.transformer.wte.weight[numbers, first_free:] += direction * (NUMBER_NORM / direction.norm())


def _wire_copying(model: Any, k: int, head: int) -> None:
    """Set the embeddings and ``k`` heads of layers 0 and 1 to the circuit of :func:`build_copy_model`."""
    import torch

    d, wte, wpe = model.config.n_embd, model.transformer.wte.weight, model.transformer.wpe.weight
    ident, pos, prev = 0, k * head, (k + 1) * head  # first dims of the identity, position, previous-token blocks
    wte[:, : prev + k * head] = 0
    wte[:, : k * head] = torch.randn(len(wte), k * head) * (IDENTITY_NORM / (k * head) ** 0.5)
    freqs = 2.5 * 0.7 ** torch.arange(head // 2, dtype=torch.float32)  # fast to slow: sharp and alias-free to 2k
    angles = torch.arange(len(wpe), dtype=torch.float32)[:, None] * freqs  # (P, head/2)
    wpe.zero_()
    wpe[:, pos : pos + head : 2], wpe[:, pos + 1 : pos + head : 2] = torch.cos(angles), torch.sin(angles)
    back = torch.zeros(head, head)  # rotates each (cos, sin) pair of position m to position m - 1
    for j, f in enumerate(freqs.tolist()):
        c, s = torch.cos(torch.tensor(f)), torch.sin(torch.tensor(f))
        back[2 * j : 2 * j + 2, 2 * j : 2 * j + 2] = torch.tensor([[c, s], [-s, c]])
    eye = torch.eye(head)
    for h in range(k):
        block = slice(h * head, (h + 1) * head)
        # Layer 0, head h: query = position m - 1, key = position n, value = identity block h -> previous block h.
        _set_head(model.transformer.h[0].attn, h, head, d,
                  q=(slice(pos, pos + head), back.T * PREV_SHARPNESS), k=(slice(pos, pos + head), eye * PREV_SHARPNESS),
                  v=(slice(ident + h * head, ident + (h + 1) * head), eye), out=slice(prev + h * head, prev + (h + 1) * head))
        # Layer 1, head h: query = identity block h, key = previous block h, value = identity block h -> identity block h.
        _set_head(model.transformer.h[1].attn, h, head, d,
                  q=(block, eye * MATCH_SHARPNESS), k=(slice(prev + h * head, prev + (h + 1) * head), eye * MATCH_SHARPNESS),
                  v=(block, eye), out=block, gain=COPY_GAIN)


def _set_head(attn: Any, h: int, head: int, d: int, *, q: tuple, k: tuple, v: tuple, out: slice, gain: float = 1.0) -> None:
    """Head ``h`` of a GPT-2 attention reads residual dims ``q[0]``/``k[0]``/``v[0]`` through the given maps
    (``x @ W``, Conv1D layout) and writes its value to residual dims ``out``."""
    import torch

    weight, bias, proj = attn.c_attn.weight, attn.c_attn.bias, attn.c_proj.weight  # (d, 3d), (3d,), (d, d)
    for part, (rows, matrix) in enumerate((q, k, v)):
        cols = slice(part * d + h * head, part * d + (h + 1) * head)
        weight[:, cols] = 0
        bias[cols] = 0
        weight[rows, cols] = matrix
    proj[h * head : (h + 1) * head, :] = 0
    proj[h * head : (h + 1) * head, out] = torch.eye(head) * gain


def env_kwargs_for(env_id: str, overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The recipe's arguments for ``env_id`` (:data:`DEFAULT_ENV_KWARGS`) updated by ``overrides[env_id]``.

    Example:
        >>> env_kwargs_for("SwirlSynthQA-v0", {"SwirlSynthQA-v0": {"max_steps": 4}})
        {'top_k': 2, 'max_steps': 4}
    """
    return {**DEFAULT_ENV_KWARGS.get(env_id, {}), **(overrides or {}).get(env_id, {})}


def reference_agent(env: gym.Env, *, mistake_rate: float = 0.0, seed: int = 0) -> Any:
    """The gold-guided reference agent that fits ``env`` (maths or multi-hop QA), over its questions."""
    from swirl_agents.agents.reference import ReferenceMathAgent, ReferenceQAAgent
    from swirl_env.envs.math import SwirlMathEnv

    cls = ReferenceMathAgent if isinstance(env.unwrapped, SwirlMathEnv) else ReferenceQAAgent
    return cls(env.unwrapped.questions, mistake_rate=mistake_rate, seed=seed)


def reference_judge(env: gym.Env) -> Any:
    """The gold-guided step judge that fits ``env``, over its questions."""
    from swirl_agents.evaluate import default_judge

    return default_judge(env)


def corpus_texts(env: gym.Env, limit: int = MAX_CORPUS_TEXTS) -> list[str]:
    """Up to ``limit`` passages of ``env``'s search corpus as ``title: text`` (none without search)."""
    search = getattr(env.unwrapped, "tools", {}).get("search_query")
    passages = getattr(search, "passages", None) or ()
    return [f"{p.title}: {p.text}" for p in (passages[i] for i in range(min(len(passages), limit)))]


def build_base_policy(
    out_dir: str | Path,
    envs: Sequence[str],
    recipe: RecipeConfig,
    *,
    env_kwargs: dict[str, dict[str, Any]] | None = None,
    split: str = "train",
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Make the tiny base policy in ``out_dir`` and return its Hugging Face folder (``out_dir/sft/final``).

    Writes ``reference.jsonl`` (the SFT episodes), ``sft/`` (the trainer's metrics, run info and
    ``final/`` model + tokenizer) and ``recipe.json`` (sizes, timings). A finished folder is
    reused as it is; an interrupted reference rollout resumes.

    Args:
        out_dir: Folder for everything above.
        envs: Env ids whose ``split`` questions the reference agent plays.
        recipe: Sizes and SFT settings.
        env_kwargs: Per-env overrides of :data:`DEFAULT_ENV_KWARGS`.
        split: The data split of the SFT questions.
        seed: Seeds mistakes, weights and data order.
        progress: Progress bars for the rollout.

    Example:
        >>> import tempfile
        >>> small = RecipeConfig(base_questions=4, vocab_size=400, n_embd=48, copy_heads=1, sft_steps=2)
        >>> path = build_base_policy(tempfile.mkdtemp(), ["SwirlSynthMath-v0"], small, progress=False)
        >>> path.name, (path / "config.json").exists()
        ('final', True)
    """
    from swirl_agents.training import TrainConfig, train

    out = Path(out_dir)
    final = out / "sft" / "final"
    if (final / "config.json").exists() and (out / "recipe.json").exists():
        return final
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    episodes_path, corpus = out / "reference.jsonl", []
    for env_id in envs:
        env = gym.make(env_id, split=split, **env_kwargs_for(env_id, env_kwargs))
        agent = reference_agent(env, mistake_rate=recipe.base_mistake_rate, seed=seed)
        generate_episodes(env, agent, out=episodes_path, num_questions=recipe.base_questions, batch_size=64,
                          seed=seed, progress=progress)
        corpus += corpus_texts(env)
    episodes = list(read_episodes(episodes_path))
    reference_seconds = time.perf_counter() - start
    tokenizer = train_recipe_tokenizer([ep.final_context() for ep in episodes] + corpus, recipe.vocab_size,
                                       recipe.max_number)
    model = build_copy_model(tokenizer, n_layer=recipe.n_layer, n_embd=recipe.n_embd, n_head=recipe.n_head,
                             copy_heads=recipe.copy_heads, max_positions=recipe.max_positions, seed=seed)
    transitions = [t for ep in episodes for t in decompose(ep)]
    config = TrainConfig(output_dir=str(out / "sft"), objective="sft", learning_rate=recipe.sft_learning_rate,
                         max_steps=recipe.sft_steps, warmup_steps=max(recipe.sft_steps // 20, 1),
                         max_tokens_per_batch=recipe.sft_tokens_per_batch, max_seq_len=recipe.max_positions,
                         seed=seed, log_every=25, print_metrics=progress)
    _reset_metrics(out / "sft")
    result = train(config, transitions, model=model, tokenizer=tokenizer)
    info = {"recipe": dataclasses.asdict(recipe), "envs": list(envs), "episodes": len(episodes),
            "reference_accuracy": sum(ep.correct for ep in episodes) / max(len(episodes), 1),
            "vocab_size": len(tokenizer), "parameters": sum(p.numel() for p in model.parameters()),
            "pack_stats": result.pack_stats, "reference_seconds": reference_seconds,
            "seconds": time.perf_counter() - start}
    (out / "recipe.json").write_text(json.dumps(info, indent=2))
    return final


def _reset_metrics(train_dir: Path) -> None:
    """A re-run after an interruption trains from scratch: drop the partial metrics log it appends to."""
    (train_dir / "metrics.jsonl").unlink(missing_ok=True)
