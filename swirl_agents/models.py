"""Tiny causal LMs and tokenizers built locally: policies for tests, examples and benchmarks, no downloads.

A real base model is gigabytes and a network fetch away; the code paths that generate, serve and
train are the same for a 2-layer model with random weights. :func:`train_tokenizer` fits a
byte-level BPE on a few texts (so any unicode round-trips), :func:`build_tiny_model` makes a
randomly initialised Llama (or GPT-2) from a config, and :func:`make_tiny_policy` saves both in the
Hugging Face format that :class:`swirl_agents.agents.hf.TransformersAgent` and
``python -m swirl_agents.serve`` load.

The action tags and the ``<result>`` markers are single added tokens (not "special", so decoding
with ``skip_special_tokens=True`` keeps them): a stop check sees a whole ``</answer>`` in one token
and a trained policy learns one token per tag.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from swirl_env.actions import ACTION_TAGS

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
TAG_TOKENS = tuple(t for tag in (*ACTION_TAGS, "result") for t in (f"<{tag}>", f"</{tag}>"))
"""``<search_query>``, ``</search_query>``, ..., ``<result>``, ``</result>``: one token each."""

DEFAULT_MAX_POSITIONS = 8192
"""Covers a full QA episode (5 steps x 5 paragraphs, about 10k characters, 3-4k tokens) with room to spare."""


def _require_train_extra() -> None:
    try:
        import tokenizers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(f"{e.name} is needed for local models: pip install \"swirl-rl[train]\"") from e


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048, save_dir: str | os.PathLike | None = None) -> Any:
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it for transformers.

    Every string round-trips exactly (``decode(encode(x)) == x``): the BPE works on bytes, no
    normaliser or prefix space is added, and the tag tokens are matched before the BPE.

    Args:
        texts: Training texts, e.g. a few rendered contexts.
        vocab_size: Target vocabulary size (bytes, merges, ``<s>``, ``</s>``, ``<pad>`` and the tags).
        save_dir: Where to ``save_pretrained`` the tokenizer, if given.

    Returns:
        A ``PreTrainedTokenizerFast`` with ``bos``, ``eos`` and ``pad`` tokens set.

    Example:
        >>> tok = train_tokenizer(["Question: Who? <search_query>x</search_query>"] * 10, vocab_size=300)
        >>> text = "Hi <answer>Zoë</answer>\\n<result>\\nx: y\\n</result>"
        >>> tok.decode(tok(text)["input_ids"]) == text
        True
        >>> tok.convert_ids_to_tokens(tok("</answer>")["input_ids"])
        ['</answer>']
    """
    _require_train_extra()
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)
    if not texts:
        raise ValueError("expected at least one training text, actual none: pass a few rendered contexts")
    specials = [BOS, EOS, PAD]
    min_size = 256 + len(specials) + len(TAG_TOKENS)
    if vocab_size < min_size:
        raise ValueError(f"expected vocab_size >= {min_size} (256 bytes + special and tag tokens), actual {vocab_size}")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(TAG_TOKENS),
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    # Not special: decoding with skip_special_tokens=True must keep the tags in the step text.
    bpe.add_tokens([AddedToken(t, normalized=False, special=False) for t in TAG_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=BOS, eos_token=EOS, pad_token=PAD, clean_up_tokenization_spaces=False
    )
    if save_dir is not None:
        tokenizer.save_pretrained(str(save_dir))
    return tokenizer


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
) -> Any:
    """A randomly initialised causal LM sized for ``tokenizer``, built from a config (no download).

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

    Example:
        >>> tok = train_tokenizer(["a b c"] * 5, vocab_size=300)
        >>> model = build_tiny_model(tok, n_layer=1, n_embd=32, n_head=2)
        >>> type(model).__name__, model.config.vocab_size == len(tok)
        ('LlamaForCausalLM', True)
    """
    _require_train_extra()
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if n_embd % n_head:
        raise ValueError(f"expected n_embd divisible by n_head, actual n_embd={n_embd}, n_head={n_head}")
    n_kv_head = n_head if n_kv_head is None else n_kv_head
    if n_kv_head < 1 or n_head % n_kv_head or (arch != "llama" and n_kv_head != n_head):
        raise ValueError(f"expected n_kv_head dividing n_head={n_head} (and a llama arch for n_kv_head < n_head), "
                         f"actual n_kv_head={n_kv_head}, arch={arch!r}")
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    if arch == "llama":
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=n_embd, intermediate_size=4 * n_embd,
                             num_hidden_layers=n_layer, num_attention_heads=n_head, num_key_value_heads=n_kv_head,
                             max_position_embeddings=max_position_embeddings, tie_word_embeddings=False, **ids)
        model_cls = LlamaForCausalLM
    elif arch == "gpt2":
        config = GPT2Config(vocab_size=len(tokenizer), n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                            n_positions=max_position_embeddings, **ids)
        model_cls = GPT2LMHeadModel
    else:
        raise ValueError(f"expected arch 'llama' or 'gpt2', actual {arch!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
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
