"""One tokenizer trainer for tiny models: a byte-level BPE fitted on a few texts, no download.

Every string round-trips exactly (``decode(encode(x)) == x``): the BPE works on bytes, no normaliser
or prefix space is added. The action tags and the ``<result>`` markers are single added tokens (not
"special", so decoding with ``skip_special_tokens=True`` keeps them): a stop check sees a whole
``</answer>`` in one token and a trained policy learns one token per tag. Two options matter for a
small model that must copy: ``numbers`` makes every whole number up to it one token, the same token
wherever it appears (copying a number is copying one token; longer digit runs are cut into the
longest such numbers, left to right), and ``isolate_newlines`` makes every newline its own
pre-token, so that no BPE merge crosses a step boundary.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from swirl_env.actions import ACTION_TAGS

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
TAG_TOKENS = tuple(t for tag in (*ACTION_TAGS, "result") for t in (f"<{tag}>", f"</{tag}>"))
"""``<search_query>``, ``</search_query>``, ..., ``<result>``, ``</result>``: one token each."""


def require_train_extra() -> None:
    """ImportError naming the install command when the training extra is missing."""
    try:
        import tokenizers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(f"{e.name} is needed for local models: pip install \"swirl-rl[train]\"") from e


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048, *, numbers: int = -1, isolate_newlines: bool = False,
                    words: Iterable[str] = (), save_dir: str | os.PathLike | None = None) -> Any:
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it for transformers.

    Args:
        texts: Training texts, e.g. a few rendered contexts.
        vocab_size: Target vocabulary size of the BPE, with ``<s>``, ``</s>``, ``<pad>`` and the tags.
        numbers: Whole numbers ``0..numbers`` are added as single tokens (beyond ``vocab_size``);
            ``-1``: none, digits are merged by the BPE like any text.
        isolate_newlines: Every newline is its own pre-token.
        words: Whole words or names (entity names, say) added as single tokens, matched only as whole words, so
            that copying a name from a search result into a query or an answer is copying one token.
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
        >>> tok = train_tokenizer(["263 - 29?\\n<math_exp>263-29</math_exp>"] * 4, vocab_size=320, numbers=2100)
        >>> tok.convert_ids_to_tokens(tok("<math_exp>263*4</math_exp> 12345")["input_ids"])
        ['<math_exp>', '263', '*', '4', '</math_exp>', 'Ġ', '1234', '5']
        >>> tok = train_tokenizer(["Search The Amber Gate."] * 4, vocab_size=300, words=["The Amber Gate"])
        >>> tok.convert_ids_to_tokens(tok("<search_query>The Amber Gate</search_query>")["input_ids"])[1]
        'The Amber Gate'
        >>> tok.decode(tok("The Amber Gates")["input_ids"]) == "The Amber Gates"  # not a whole-word match: plain BPE
        True
    """
    require_train_extra()
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
    steps = [pre_tokenizers.Split("\n", behavior="isolated")] if isolate_newlines else []
    steps += [pre_tokenizers.Digits(individual_digits=True)] if numbers >= 0 else []
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.pre_tokenizer = pre_tokenizers.Sequence([*steps, byte_level]) if steps else byte_level
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(TAG_TOKENS), special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(texts, trainer=trainer)
    # Not special: decoding with skip_special_tokens=True must keep the tags in the step text.
    bpe.add_tokens([AddedToken(t, normalized=False, special=False) for t in TAG_TOKENS])
    # Added tokens are matched before the BPE, leftmost-longest: "1952" is one token, "12345" is "1234" "5".
    bpe.add_tokens([AddedToken(str(n), normalized=False, special=False) for n in range(numbers + 1)])
    bpe.add_tokens([AddedToken(w, normalized=False, special=False, single_word=True) for w in dict.fromkeys(words)
                    if w and not w.isdigit()])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                        clean_up_tokenization_spaces=False)
    if save_dir is not None:
        tokenizer.save_pretrained(str(save_dir))
    return tokenizer
