"""Tiny causal LMs built from a config, no download: policies for tests, examples, benchmarks and the main job.

A real base model is gigabytes and a network fetch away; the code paths that generate, serve and
train are the same for a 2-layer model. :func:`build_tiny_model` makes a randomly initialised Llama
or GPT-2 sized for a tokenizer from :mod:`swirl_agents.tiny.tokenizer`; with ``copy_heads`` its first
two GPT-2 layers start as a copying circuit (below). :func:`make_tiny_policy` saves a tokenizer and a
model in the Hugging Face format that :class:`~swirl_agents.agents.hf.TransformersAgent` and
``python -m swirl_agents.serve`` load; :func:`script_model` rewires one to write a fixed text.

**The copying circuit.** Multi-hop QA and maths are mostly copying: an entity name from the question
into a query, a name from a search result into the next query or the answer, numbers into an
expression. A transformer learns to copy with *induction heads* (a head that finds the previous
occurrence of the current token and predicts the token that followed it), but trained from random
weights it takes far more tokens to grow them than a CPU gets through in minutes: held-out loss on
copied tokens stayed above 5 nats after 2M tokens. Wired in at the start (previous-token heads in
layer 0, induction heads reading them in layer 1) and then trained like every other weight, it
brings that loss under 1.5 nats after the same number of tokens.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from swirl_agents.tiny.tokenizer import require_train_extra, train_tokenizer

DEFAULT_MAX_POSITIONS = 8192
"""Covers a full QA episode (5 steps x 5 paragraphs, about 10k characters, 3-4k tokens) with room to spare."""

def build_tiny_model(
    tokenizer: Any,
    *,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_kv_head: int | None = None,
    max_position_embeddings: int = DEFAULT_MAX_POSITIONS,
    seed: int = 0,
    arch: str = "llama",
    copy_heads: int = 0,
) -> Any:
    """A randomly initialised causal LM sized for ``tokenizer``, built from a config (no download, no dropout).

    Args:
        tokenizer: Gives the vocabulary size and the bos/eos/pad ids.
        n_layer: Transformer blocks.
        n_embd: Hidden size.
        n_head: Attention heads (must divide ``n_embd``).
        n_kv_head: Key/value heads for grouped-query attention, as in Llama 3 or Qwen (must divide
            ``n_head``; Llama only). ``None``: one per attention head.
        max_position_embeddings: Longest sequence (prompt + generated tokens). Llama's rotary
            positions cost no parameters, so the default covers whole QA episodes.
        seed: Seeds the initial weights.
        arch: ``"llama"`` or ``"gpt2"``.
        copy_heads: GPT-2 only: previous-token heads (layer 0) and induction heads (layer 1) wired in
            at initialisation (the module docstring); needs ``n_layer >= 2`` and room in ``n_embd`` for
            ``2 * copy_heads + 1`` head-sized blocks.

    Example:
        >>> tok = train_tokenizer(["a b c"] * 5, vocab_size=300)
        >>> model = build_tiny_model(tok, n_layer=1, n_embd=32, n_head=2)
        >>> type(model).__name__, model.config.vocab_size == len(tok)
        ('LlamaForCausalLM', True)
        >>> import torch
        >>> tok = train_tokenizer([" ".join(f"w{i}" for i in range(300))] * 3, vocab_size=400, numbers=2100)
        >>> model = build_tiny_model(tok, arch="gpt2", n_embd=96, n_head=6, copy_heads=2, max_position_embeddings=2048)
        >>> seq = torch.randint(10, len(tok), (1, 30), generator=torch.Generator().manual_seed(0))
        >>> logits = model(input_ids=seq.repeat(1, 2)).logits[0, 30:-1]  # the second copy, untrained
        >>> bool((logits.argmax(-1) == seq[0, 1:]).float().mean() > 0.8)
        True
    """
    require_train_extra()
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if n_embd % n_head:
        raise ValueError(f"expected n_embd divisible by n_head, actual n_embd={n_embd}, n_head={n_head}")
    n_kv_head = n_head if n_kv_head is None else n_kv_head
    if n_kv_head < 1 or n_head % n_kv_head or (arch != "llama" and n_kv_head != n_head):
        raise ValueError(f"expected n_kv_head dividing n_head={n_head} (and a llama arch for n_kv_head < n_head), "
                         f"actual n_kv_head={n_kv_head}, arch={arch!r}")
    head = n_embd // n_head
    if copy_heads and (arch != "gpt2" or n_layer < 2 or (2 * copy_heads + 1) * head > n_embd or head % 2):
        raise ValueError(f"expected arch='gpt2', even head sizes, n_layer >= 2 and room for {2 * copy_heads + 1} "
                         f"head-sized blocks for copy_heads={copy_heads}, actual arch={arch!r}, n_embd={n_embd}, "
                         f"n_head={n_head}, n_layer={n_layer}: raise n_embd or lower copy_heads")
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    if arch == "llama":
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=n_embd, intermediate_size=4 * n_embd,
                             num_hidden_layers=n_layer, num_attention_heads=n_head, num_key_value_heads=n_kv_head,
                             max_position_embeddings=max_position_embeddings, tie_word_embeddings=False, **ids)
        model_cls = LlamaForCausalLM
    elif arch == "gpt2":
        config = GPT2Config(vocab_size=len(tokenizer), n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                            n_positions=max_position_embeddings, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids)
        model_cls = GPT2LMHeadModel
    else:
        raise ValueError(f"expected arch 'llama' or 'gpt2', actual {arch!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
        if copy_heads:
            with torch.no_grad():
                _wire_copying(model, copy_heads, head)
                _mark_numbers(model, tokenizer, (2 * copy_heads + 1) * head)
    for key, value in ids.items():
        setattr(model.generation_config, key, value)
    return model.eval()


def script_model(model: Any, tokenizer: Any, script: str, *, strength: float = 20.0) -> Any:
    """Rewire a tiny Llama in place so that it writes ``script`` (then EOS) after any prompt.

    The transformer blocks are zeroed, which leaves a bigram model: the next token depends only on
    the current one. The script's tokens get orthogonal embeddings, each predicting the next; every
    other token predicts the script's first token. A deterministic policy with real actions, built
    in milliseconds: for tests of stopping, parsing and serving, and for benchmarks whose contexts
    should grow with real tool results. Sampling at temperature 1 still follows the script.

    Args:
        model: A model from :func:`build_tiny_model` (``arch="llama"``).
        tokenizer: Its tokenizer.
        script: The text to write; its tokens must all differ (a bigram model cannot count).
        strength: Logit margin of the scripted token over the rest.

    Example:
        >>> tok = train_tokenizer(["Question: Who? <answer>x</answer>"] * 5, vocab_size=300)
        >>> model = script_model(build_tiny_model(tok, n_layer=1, n_embd=32, n_head=2), tok, "Hi<answer>x</answer>")
        >>> ids = model.generate(**tok("Question: Who?\\n\\n", return_tensors="pt"), do_sample=False, max_new_tokens=9)
        >>> tok.decode(ids[0], skip_special_tokens=True).split("\\n\\n")[-1]
        'Hi<answer>x</answer>'
    """
    import torch

    chain = tokenizer(script, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    width = model.config.hidden_size
    if getattr(model.config, "tie_word_embeddings", False):
        raise ValueError("expected a model with untied input and output embeddings (build_tiny_model makes one)")
    if len(set(chain)) != len(chain):
        repeated = sorted({tokenizer.decode([t]) for t in chain if chain.count(t) > 1})
        raise ValueError(f"expected a script whose tokens all differ, actual repeats {repeated}: reword it")
    if len(chain) + 1 > width:
        raise ValueError(f"expected a script of at most {width - 2} tokens for hidden size {width}, actual {len(chain) - 1}")
    with torch.no_grad():
        for p in model.model.layers.parameters():
            p.zero_()
        emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
        emb[:, 1 : len(chain) + 1] = 0  # dims 1..len(chain) belong to the script tokens only
        emb[:, 0] = 1.0  # a shared feature: "not in the script" predicts the first script token
        head.zero_()
        head[chain[0], 0] = strength
        for i, token in enumerate(chain[:-1]):
            emb[token] = 0
            emb[token, 0], emb[token, i + 1] = 1.0, 4.0
            head[chain[i + 1], i + 1] = strength
    return model


def make_tiny_policy(save_dir: str | os.PathLike, texts: Iterable[str], *, vocab_size: int = 2048, **model_kw: Any) -> Path:
    """Train a tokenizer on ``texts``, build a tiny model for it and save both to ``save_dir``.

    ``model_kw`` goes to :func:`build_tiny_model`. The folder loads with
    ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``, with
    ``TransformersAgent(save_dir)`` and with ``python -m swirl_agents.serve --model save_dir``.

    Example:
        >>> import tempfile
        >>> from transformers import AutoTokenizer
        >>> path = make_tiny_policy(tempfile.mkdtemp(), ["Question: Who? <answer>x</answer>"] * 5,
        ...                         vocab_size=300, n_layer=1, n_embd=32, n_head=2)
        >>> sorted(p.name for p in path.iterdir() if p.suffix == ".json")[:2]
        ['config.json', 'generation_config.json']
        >>> AutoTokenizer.from_pretrained(path).decode([len(AutoTokenizer.from_pretrained(path)) - 1])
        '</result>'
    """
    path = Path(save_dir)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, save_dir=path)
    build_tiny_model(tokenizer, **model_kw).save_pretrained(str(path))
    return path


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
    """Set the embeddings and ``k`` heads of GPT-2 layers 0 and 1 to the copying circuit.

    The residual stream is laid out in head-sized blocks: ``k`` blocks of token identity (random, tied
    input/output embeddings), one block of sinusoidal positions, ``k`` blocks that receive the previous
    token's identity, and free room (where every number token shares one direction, so that "attend to a
    number" is easy to learn). Previous-token head ``h`` of layer 0 attends from position m to m - 1 (its
    query is the position rotated back by one step, its key the position) and copies identity block ``h``
    into previous-token block ``h``. Induction head ``h`` of layer 1 matches the current token's identity
    block against every position's previous-token block and copies the matched position's identity into
    the output, so "A B ... A" predicts "B". Every other weight keeps its random init, and all are trained.
    """
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
