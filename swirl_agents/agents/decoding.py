"""Decoding pieces of :class:`~swirl_agents.agents.hf.TransformersAgent`: sampling, stop strings, the prefix KV cache.

Consecutive steps of an episode share most of their context, so the agent keeps the KV cache of
recent prompts (:class:`PrefixCache`) and prefills only the tokens after the longest common token
prefix, into preallocated per-layer buffers (:func:`buffer_cache`). Each piece here is small and
tested on its own; the agent wires them into one decoding loop.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token id sequences.

    Example:
        >>> common_prefix([1, 2, 3, 4], [1, 2, 9]), common_prefix([1, 2], [1, 2, 3])
        (2, 2)
    """
    import numpy as np

    n = min(len(a), len(b))
    differ = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))  # vectorised: contexts run to thousands of tokens
    return int(differ[0]) if differ.size else n


def sample_tokens(logits: Any, temperature: float, top_p: float, generator: Any) -> Any:
    """One token per row of ``logits`` (B, V) from ``softmax(logits / temperature)`` within the top-``top_p`` mass.

    Inverse-CDF sampling: one uniform number per row, from ``generator`` (so a seed reproduces steps
    without touching torch's global random state), located in the cumulative probabilities. A CPU
    batch costs a quarter of the Gumbel-max trick, which draws a random number per vocabulary entry.
    """
    import torch

    scores, order = logits.float(), None
    if temperature != 1.0:
        scores = scores / temperature
    if top_p < 1.0:
        scores, order = scores.sort(dim=-1, descending=True)
    probs = scores.softmax(dim=-1)
    if order is not None:  # keep the smallest prefix of the ranking that holds top_p of the mass
        probs = probs.masked_fill(probs.cumsum(dim=-1) - probs > top_p, 0.0)
    cdf = probs.cumsum(dim=-1)
    # 1 - U lies in (0, 1], so the target lies in (0, total]: a token of zero probability is never hit.
    target = (1.0 - torch.rand((len(cdf), 1), generator=generator, device=cdf.device)) * cdf[:, -1:]
    picks = torch.searchsorted(cdf, target)  # (B, 1)
    return (picks if order is None else order.gather(-1, picks)).squeeze(-1)


def can_end(token_text: str, stop: Sequence[str]) -> bool:
    """Whether a token decoded alone as ``token_text`` can complete one of ``stop``.

    It can if its text holds a stop string or begins with the end of one. A token holding part of a
    character (decoded alone as ``"\\ufffd"``) can only complete a stop string that is not ASCII.

    Example:
        >>> can_end("r>\\n", ["</answer>"]), can_end("x>", ["</answer>"]), can_end("a</answer>b", ["</answer>"])
        (True, False, True)
    """
    if "\ufffd" in token_text and not all(s.isascii() for s in stop):
        return True
    # Sentencepiece drops the leading space of a token decoded alone ("\u2581of" -> "of"), not in context.
    texts = (token_text, " " + token_text)
    return any(s in t or any(t.startswith(s[-k:]) for k in range(1, len(s))) for s in stop for t in texts)


class StopStrings:
    """Finds, at each decoding step, the rows whose new text has just come to hold a stop string.

    Only rows whose newest token can complete a stop string (:func:`can_end`, looked up in a table
    over the vocabulary) are decoded, and only their last few tokens: a step with no candidate costs
    one table look-up for the whole batch.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str], vocab_size: int, device: Any):
        import torch

        self.tokenizer, self.stop = tokenizer, tuple(s for s in stop if s)
        self.window = max(len(s.encode()) for s in self.stop) + 1  # in tokens: each token holds a byte or more
        texts = tokenizer.batch_decode([[i] for i in range(min(len(tokenizer), vocab_size))], skip_special_tokens=True)
        able = [can_end(t, self.stop) for t in texts]
        self.can_end = torch.zeros(vocab_size, dtype=torch.bool)
        self.can_end[: len(able)] = torch.tensor(able, dtype=torch.bool)
        self.can_end = self.can_end.to(device)

    def hits(self, tokens: Any, step: int, live: Any) -> Any:
        """Which rows of ``live`` (B,) hold a stop string in ``tokens[:, : step + 1]`` ending at ``step``."""
        hit = self.can_end[tokens[:, step]] & live
        rows = hit.nonzero().flatten().tolist()
        if rows:
            tails = self.tokenizer.batch_decode(tokens[rows, max(0, step + 1 - self.window) : step + 1],
                                                skip_special_tokens=True)
            for row, tail in zip(rows, tails):
                hit[row] = any(s in tail for s in self.stop)
        return hit


@dataclass(frozen=True)
class CachedContext:
    """The token ids of one prompt and its continuation, with their keys and values in every layer."""

    ids: list[int]
    keys: list[Any]
    """Per layer, a (heads, len(ids), head_dim) tensor."""
    values: list[Any]

    @functools.cached_property
    def id_array(self) -> Any:
        """``ids`` as a numpy array, made once: lookups compare it with many prompts."""
        import numpy as np

        return np.asarray(self.ids)


class PrefixCache:
    """The KV caches of the last ``capacity`` prompts, keyed by prompt text; the least recently used go first.

    A new prompt looks for the longest cached prompt text it starts with (an episode's previous step)
    and reuses that entry's keys and values up to their longest common token prefix. A prompt that
    extends no cached text (an episode's first step) takes the entry sharing the most leading tokens
    with it: episodes of one env share their instructions, so a new episode prefills only its
    question. Memory is ``capacity`` contexts' worth of KV cache; ``capacity=0`` keeps nothing.

    Example:
        >>> cache = PrefixCache(1)
        >>> cache.store("Q: a", CachedContext([5, 6, 7], [], []))
        >>> entry, n = cache.lookup("Q: a, b", [5, 6, 8, 9])
        >>> entry.ids, n
        ([5, 6, 7], 2)
        >>> cache.lookup("R: c", [5, 9])[1], cache.lookup("S: d", [4, 6])
        (1, (None, 0))
        >>> cache.store("Q: z", CachedContext([1], [], [])); len(cache), cache.lookup("Q: a, b", [5])[0]
        (1, None)
    """

    def __init__(self, capacity: int):
        if capacity < 0:
            raise ValueError(f"expected a prefix cache capacity >= 0, actual {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[str, CachedContext] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()

    def lookup(self, text: str, ids: Sequence[int]) -> tuple[CachedContext | None, int]:
        """The entry of the longest cached prompt that ``text`` extends, and how many of ``ids`` it covers."""
        key = max((k for k in self._entries if text.startswith(k)), key=len, default=None)
        if key is not None:
            self._entries.move_to_end(key)
            return self._entries[key], common_prefix(self._entries[key].id_array, ids)
        return self._longest_shared(ids)

    def _longest_shared(self, ids: Sequence[int]) -> tuple[CachedContext | None, int]:
        """The entry sharing the most leading tokens with ``ids``, and how many (``None, 0`` if none shares one)."""
        import numpy as np

        query, best, shared = np.asarray(ids), None, 0
        for key, entry in self._entries.items():
            if min(len(query), len(entry.ids)) <= shared or entry.ids[0] != query[0]:
                continue
            n = common_prefix(entry.id_array, query)
            if n > shared:
                best, shared = key, n
        if best is None:
            return None, 0
        self._entries.move_to_end(best)
        return self._entries[best], shared

    def store(self, text: str, entry: CachedContext) -> None:
        """Keep ``entry`` as the cache of prompt ``text``, dropping the least recently used beyond capacity."""
        if self.capacity == 0:
            return
        self._entries[text] = entry
        self._entries.move_to_end(text)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


@functools.cache  # one class: building it per call would cost more than the cache saves
def buffer_layer_class():
    from transformers.cache_utils import DynamicLayer

    class BufferLayer(DynamicLayer):
        """A :class:`DynamicLayer` that writes new keys into preallocated buffers instead of concatenating.

        ``DynamicLayer`` copies the whole batch's cache at every token; here a token writes one slot,
        and ``keys``/``values`` are views of the filled part. The buffers may be views of a larger
        batch buffer: a row prefilled alone writes straight into its place in the batch.
        """

        def __init__(self, keys: Any, values: Any, filled: int):  # keys, values: (B, heads, capacity, head_dim)
            super().__init__()
            self.lazy_initialization(keys, values)
            self._k, self._v, self._n = keys, values, filled
            self.keys, self.values = keys[:, :, :filled], values[:, :, :filled]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            n = key_states.shape[-2]
            self._k[:, :, self._n : self._n + n] = key_states
            self._v[:, :, self._n : self._n + n] = value_states
            self._n += n
            self.keys, self.values = self._k[:, :, : self._n], self._v[:, :, : self._n]
            return self.keys, self.values

        def span(self, row: int, start: int, end: int) -> tuple[Any, Any]:
            """Copies of batch row ``row``'s keys and values in slots ``start:end`` (each (heads, n, head_dim))."""
            return self._k[row, :, start:end].clone(), self._v[row, :, start:end].clone()

        def select_rows(self, rows: Any) -> None:
            """Keep only the batch rows ``rows`` (a copy of their buffers)."""
            self._k, self._v = self._k[rows], self._v[rows]
            self.keys, self.values = self._k[:, :, : self._n], self._v[:, :, : self._n]

    return BufferLayer


def buffer_cache(keys: list[Any], values: list[Any], filled: int) -> Any:
    """A :class:`~transformers.DynamicCache` over per-layer buffers whose first ``filled`` slots hold keys."""
    from transformers import DynamicCache

    layer_class, cache = buffer_layer_class(), DynamicCache()
    cache.layers = [layer_class(k, v, filled) for k, v in zip(keys, values)]
    return cache


@functools.cache
def cache_argument(model_class: type) -> str:
    """The keyword a model's ``forward`` takes its KV cache by: ``cache`` in newer transformers, else
    ``past_key_values`` (the old name, which newer versions warn about and will drop)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def with_cache(model: Any, cache: Any) -> dict[str, Any]:
    """``{name: cache}`` for ``model(**...)``, under the name this transformers version uses."""
    return {cache_argument(type(model)): cache}


def returned_cache(output: Any) -> Any:
    """The KV cache a forward pass returned, read by the name this transformers version uses."""
    return output["cache"] if "cache" in output else output["past_key_values"]


def kv_layout(model: Any) -> list[tuple[int, int]] | None:
    """Each layer's (KV heads, head size); ``None`` if the cache is not a plain :class:`~transformers.DynamicCache`.

    Found by running one token. Models with sliding windows or hybrid layers return ``None``: they
    prefill as one padded batch, without prefix reuse.
    """
    import torch
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    with torch.inference_mode():
        cache = returned_cache(model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=model.device),
                                     use_cache=True, logits_to_keep=1))
    if not isinstance(cache, DynamicCache) or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    return [(layer.keys.shape[1], layer.keys.shape[-1]) for layer in cache.layers]


def prefill_runs(uncached: Sequence[int], mode: str, waste: float = 0.25) -> list[range]:
    """Split rows, sorted by uncached tokens (most first), into runs that each share one padded forward pass.

    ``"batch"``: one run. ``"rows"``: a run per row (no padding at all). ``"similar"``: a run grows
    while padding every row to its first (longest) costs at most ``waste`` more than the real
    tokens; on CPU padding costs as much as real tokens, while each pass costs a fixed overhead.

    Example:
        >>> prefill_runs([40, 38, 35, 9, 8, 2], "similar")
        [range(0, 3), range(3, 5), range(5, 6)]
        >>> prefill_runs([40, 38, 35], "batch"), prefill_runs([40, 38], "rows")
        ([range(0, 3)], [range(0, 1), range(1, 2)])
    """
    if mode == "batch":
        return [range(len(uncached))]
    runs, start = [], 0
    for row in range(1, len(uncached) + 1):
        real = sum(uncached[start : row + 1])
        if mode == "rows" or row == len(uncached) or (row + 1 - start) * uncached[start] > (1 + waste) * real:
            runs.append(range(start, row))
            start = row
    return runs
