"""An agent (and text generator) backed by any Hugging Face causal LM, batched on one device.

:class:`TransformersAgent` turns each observation into prompt ids with
:func:`swirl_agents.prompting.encode_prompt` (the one rendering and tokenisation the trainer uses
too) and generates until the first closing action tag, so one call is one step. Each step is the
exact text of the ids it sampled, and those ids are returned with it (``StepOutput.token_ids``, with
the tokenizer's fingerprint): the rollout records them and the trainer trains on exactly them. The
agent remembers the ids of its recent steps, so the prompt of an episode's next step holds the
sampled ids of its earlier steps, not a re-tokenisation of their text. Many observations go through
one decoding loop per batch: prompts are sorted by length, left-padded and stopped row by row.

Consecutive steps of an episode share most of their context (each is the previous one plus a step
and a tool result), so the agent keeps the KV cache of recent prompts and of what it generated after
them (:class:`PrefixCache`) and prefills only the tokens after the longest common token prefix. The
token ids are always those of tokenising the whole prompt; only the work is reused.

Any model name :func:`swirl_agents.zoo.resolve_model` knows works: a named model
(``smollm2-135m-instruct``), a ``.gguf`` file, a local folder or a hub id.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from swirl_env.actions import STOP_STRINGS
from swirl_env.context import Context
from swirl_agents.agents.base import StepOutput
from swirl_agents.agents.decoding import (CachedContext, PrefixCache, StopStrings, buffer_cache, kv_layout,
                                          prefill_runs, returned_cache, sample_tokens, with_cache)
from swirl_agents.prompting import (decode_exact, encode_prompt, encode_text, has_chat_template, prompt_pieces,
                                    tokenizer_fingerprint)

Prompt = str | list[dict[str, str]]
"""A raw completion prompt, or chat messages rendered with the tokenizer's chat template."""


@dataclass(frozen=True)
class Completion:
    """One generated continuation with the bookkeeping an OpenAI-style server reports."""

    text: str
    """The new text, cut just after the first stop string (which is kept)."""
    finish_reason: str
    """``"stop"`` (a stop string or end-of-sequence) or ``"length"`` (``max_new_tokens`` reached)."""
    stop: str | None
    """The stop string that ended the text, ``None`` otherwise."""
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    """Prompt tokens whose keys and values came from the prefix cache instead of a forward pass."""
    token_ids: tuple[int, ...] = ()
    """The sampled ids through the one that completed the stop string (end-of-sequence excluded)."""
    raw_text: str = ""
    """Exactly what ``token_ids`` decode to (``text`` may end inside the last token, at the stop string)."""


SAMPLED_MEMORY = 1 << 17
"""Steps whose sampled ids a :class:`TransformersAgent` remembers (enough for every live episode of any run)."""


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, str | None]:
    """Cut ``text`` just after the earliest occurrence of any of ``stop``; return it and the match.

    Example:
        >>> cut_at_stop("a <answer>b</answer> c </answer>", ["</answer>"])
        ('a <answer>b</answer>', '</answer>')
        >>> cut_at_stop("no stop here", ["</answer>"])
        ('no stop here', None)
    """
    hits = [(text.find(s), -len(s), s) for s in stop if s and s in text]
    start, _, match = min(hits, default=(len(text), 0, ""))
    return text[: start + len(match)], match or None


def load_model(model: Any, tokenizer: Any = None, *, device: Any = None, dtype: Any = None) -> tuple[Any, Any, str]:
    """Load (or adopt) a causal LM and its tokenizer; return ``(model, tokenizer, model_id)``.

    A name goes through :func:`swirl_agents.zoo.resolve_model`; a local folder is loaded with
    ``local_files_only=True`` (never a download), a hub id as it is. A tokenizer without a pad token
    gets the EOS token as pad.
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(f"{e.name} is needed for TransformersAgent: pip install \"swirl-rl[train]\"") from e
    from swirl_agents.zoo import looks_like_hub_id, resolve_model

    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if isinstance(model, (str, os.PathLike)):
        model_id = resolve_model(model)
        kw = {} if looks_like_hub_id(model_id) else {"local_files_only": True}
        model = AutoModelForCausalLM.from_pretrained(model_id, dtype=dtype, **kw)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(model_id, **kw)
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    else:
        model_id = str(getattr(model.config, "_name_or_path", "") or type(model).__name__)
        if tokenizer is None:
            raise ValueError(f"expected a tokenizer with an already-loaded model ({model_id}), actual None: "
                             "pass tokenizer=AutoTokenizer.from_pretrained(...)")
        if device is not None or dtype is not None:
            model.to(device=device, dtype=dtype)
    if isinstance(tokenizer, (str, os.PathLike)):
        path = resolve_model(tokenizer)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=not looks_like_hub_id(path))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer, model_id


@dataclass
class _Batch:
    """One batch of prompts on its way through prefill and decoding, left-padded to ``width``."""

    index: list[int]
    """Where each row's prompt was in the :meth:`TransformersAgent.complete` call."""
    texts: list[str]
    ids: list[list[int]]
    reused: list[int]
    """Leading tokens of each prompt whose keys and values come from the prefix cache."""
    entries: list[CachedContext | None]

    @property
    def width(self) -> int:
        return max(len(x) for x in self.ids)


class TransformersAgent:
    """A policy (and text generator) running a Hugging Face causal LM locally, batched.

    Args:
        model: A model id, a local folder (loaded offline), or an already-loaded model.
        tokenizer: Defaults to the model's own (required with a loaded model object).
        max_new_tokens: Longest step, in tokens.
        temperature, top_p, do_sample: Sampling; ``do_sample=False`` or ``temperature=0`` is greedy.
        seed: Makes sampling reproducible: generate call ``i`` of this agent samples with a
            ``torch.Generator`` seeded ``seed + i`` (global random state is untouched).
        batch_size: Prompts per decoding loop.
        chat: Use the chat template (``None``: when the tokenizer has one), as in ``render_prompt``.
        device, dtype: Where and in what precision a model loaded from a path runs.
        prefill: How the prompts' uncached tokens are run: ``"batch"`` (one padded forward pass),
            ``"rows"`` (each prompt alone, written into the batch's cache) or ``"auto"``: on CPU,
            where padding costs as much as real tokens, prompts of similar uncached length share a
            pass (:func:`prefill_runs`); on GPU, one pass.
        prefix_cache: Prompts whose KV cache is kept for reuse by a prompt that extends them (an
            episode's next step), least recently used dropped first; ``0``: off; ``None``: twice the
            most prompts one call has had (at least ``2 * batch_size``), so lockstep episodes always
            find their previous step. The cache is dropped when the model's weights change. See
            :class:`PrefixCache`.

    Example:
        >>> import tempfile
        >>> from swirl_agents.tiny import make_tiny_policy
        >>> path = make_tiny_policy(tempfile.mkdtemp(), ["Question: Who? <answer>x</answer>"] * 5,
        ...                         vocab_size=300, n_layer=1, n_embd=32, n_head=2)
        >>> agent = TransformersAgent(path, max_new_tokens=8, do_sample=False)
        >>> step = agent.act("Question: Who?\\n\\n")
        >>> isinstance(step, str), agent.name.startswith("transformers:")
        (True, True)
    """

    def __init__(self, model: Any, tokenizer: Any = None, *, max_new_tokens: int = 256, temperature: float = 1.0,
                 top_p: float = 1.0, do_sample: bool = True, seed: int | None = None, batch_size: int = 16,
                 chat: bool | None = None, device: Any = None, dtype: Any = None, prefill: str = "auto",
                 prefix_cache: int | None = None):
        if prefill not in ("auto", "batch", "rows"):
            raise ValueError(f"expected prefill 'auto', 'batch' or 'rows', actual {prefill!r}")
        if batch_size < 1 or max_new_tokens < 1:
            raise ValueError(f"expected batch_size >= 1 and max_new_tokens >= 1, actual {batch_size}, {max_new_tokens}")
        self.model, self.tokenizer, model_id = load_model(model, tokenizer, device=device, dtype=dtype)
        self.name = f"transformers:{model_id}"
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.do_sample, self.seed, self.batch_size, self.prefill = do_sample, seed, batch_size, prefill
        self.chat = has_chat_template(self.tokenizer) if chat is None else chat
        eos = self.model.generation_config.eos_token_id  # chat models often end turns with several ids
        eos = eos if isinstance(eos, list) else [eos]
        self._eos = {e for e in [*eos, self.tokenizer.eos_token_id] if e is not None}
        self.cache = PrefixCache(2 * batch_size if prefix_cache is None else prefix_cache)
        self._grow_cache = prefix_cache is None
        self._layout = kv_layout(self.model)
        self._weights: tuple = ()
        self._stoppers: dict[tuple, StopStrings] = {}
        self._calls, self._warned_truncation = 0, False
        self.fingerprint = tokenizer_fingerprint(self.tokenizer)
        self._sampled: OrderedDict[bytes, tuple[int, ...]] = OrderedDict()
        self.sampled_memory = SAMPLED_MEMORY

    # --- the agent ---------------------------------------------------------------------------

    def act(self, observation: str) -> str:
        """The next step for one context: reasoning and at most one action, ending with its closing tag."""
        return self.step_batch([observation])[0].text

    def act_batch(self, observations: Sequence[str]) -> list[str]:
        """The next step for each context, generated in batches of ``batch_size``."""
        return [s.text for s in self.step_batch(observations)]

    def step_batch(self, observations: Sequence[str]) -> list[StepOutput]:
        """The next step for each context with the ids sampled for it (and this tokenizer's fingerprint).

        Each step's text is exactly what its ids decode to: generation stops at the token that
        completes the first closing action tag, and that token is kept whole.
        """
        prompts = [self._prompt(o) for o in observations]
        out = self.complete_ids([p for p, _ in prompts], [ids for _, ids in prompts], stop=STOP_STRINGS)
        for (prompt, _), c in zip(prompts, out):
            self._remember_step(prompt + c.raw_text, c.token_ids)
        return [StepOutput(c.raw_text, {}, c.token_ids, self.fingerprint) for c in out]

    def label_logprobs(self, prompts: Sequence[str], labels: Sequence[str]) -> list[dict[str, float]]:
        """log P(label | prompt) of each label (all its tokens, teacher-forced) after each raw-text prompt.

        What an LLM judge needs to grade by P(GOOD) instead of parsing a reply.

        Example:
            >>> import tempfile
            >>> from swirl_agents.tiny import make_tiny_policy
            >>> path = make_tiny_policy(tempfile.mkdtemp(), ["Verdict: GOOD or BAD"] * 5, vocab_size=300, n_layer=1,
            ...                         n_embd=32, n_head=2)
            >>> scores = TransformersAgent(path).label_logprobs(["Verdict:"], [" GOOD", " BAD"])[0]
            >>> sorted(scores), all(v < 0 for v in scores.values())
            ([' BAD', ' GOOD'], True)
        """
        import torch

        out = []
        label_ids = [self.tokenizer(label, add_special_tokens=False)["input_ids"] for label in labels]
        with torch.inference_mode():
            for prompt in prompts:
                if not isinstance(prompt, str):
                    raise TypeError("expected raw-text prompts for label_logprobs (use LLMJudge(chat=False))")
                head = self.tokenizer(prompt)["input_ids"] or [self.tokenizer.bos_token_id or min(self._eos)]
                rows = [head + ids for ids in label_ids]
                width = max(map(len, rows))
                pad = self.tokenizer.pad_token_id
                ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.model.device)
                logp = torch.log_softmax(self.model(input_ids=ids).logits.float(), dim=-1)  # (L, T, V)
                scores = {}
                for k, (label, lids) in enumerate(zip(labels, label_ids)):
                    positions = range(len(head) - 1, len(head) - 1 + len(lids))
                    scores[label] = float(sum(logp[k, t, tok] for t, tok in zip(positions, lids)))
                out.append(scores)
        return out

    def clear_cache(self) -> None:
        """Forget every cached prompt (the next prompts are prefilled in full)."""
        self.cache.clear()

    def _prompt(self, observation: str) -> tuple[str, list[int]]:
        """The prompt text and ids for an observation; earlier steps this agent wrote keep their sampled ids."""
        try:
            context = Context.parse(observation)
        except ValueError:  # not a swirl context: the text itself, tokenised whole
            return observation, encode_text(self.tokenizer, observation, first=True, chat=False)
        pieces = prompt_pieces(self.tokenizer, context, chat=self.chat)
        step_ids = {}
        if pieces is not None:
            for j in range(len(context.steps)):
                ids = self._sampled.get(_key("".join(pieces[: 2 * j + 2])))
                if ids is not None:
                    step_ids[j] = (ids, self.fingerprint)
        enc = encode_prompt(self.tokenizer, context, chat=self.chat, step_ids=step_ids)
        return "".join(enc.pieces) if enc.pieces is not None else observation, enc.ids

    def _remember_step(self, text: str, ids: tuple[int, ...]) -> None:
        """Keep the ids sampled for the step that ends ``text`` (a prompt and its step), most recent last."""
        key = _key(text)
        self._sampled[key] = ids
        self._sampled.move_to_end(key)
        while len(self._sampled) > self.sampled_memory:
            self._sampled.popitem(last=False)

    # --- the text generator ------------------------------------------------------------------

    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int | None = None,
                 stop: Sequence[str] | None = None) -> list[str]:
        """Continue each prompt: a string as raw text, a list of chat messages through the chat template.

        Each output is cut just after the first of ``stop`` (kept in the output).
        """
        return [c.text for c in self.complete_any(prompts, max_new_tokens=max_new_tokens, stop=stop)]

    def complete_any(self, prompts: Sequence[Prompt], **kw: Any) -> list[Completion]:
        """:meth:`complete` for a mix of raw-text prompts and chat-message prompts."""
        chat = [not isinstance(p, str) for p in prompts]
        if any(chat) and not has_chat_template(self.tokenizer):
            raise ValueError(f"expected a tokenizer with a chat template for chat messages, actual none for "
                             f"{self.name}: set tokenizer.chat_template or pass a string prompt")
        texts = [self.tokenizer.apply_chat_template(list(p), tokenize=False, add_generation_prompt=True) if c else p
                 for p, c in zip(prompts, chat)]
        return self.complete(texts, templated=chat, **kw)

    def complete(self, texts: Sequence[str], *, templated: bool | Sequence[bool] = False,
                 max_new_tokens: int | None = None, stop: Sequence[str] | None = None,
                 temperature: float | None = None, top_p: float | None = None, do_sample: bool | None = None,
                 seed: int | None = None) -> list[Completion]:
        """Generate for already-rendered prompt texts, sorted by length into batches; results in input order.

        ``templated`` says which texts came from a chat template (tokenised without added special
        tokens). ``None`` arguments take the agent's settings; ``seed`` overrides the agent's.
        """
        if isinstance(templated, bool):
            templated = [templated] * len(texts)
        return self.complete_ids(texts, self._encode(texts, templated), max_new_tokens=max_new_tokens, stop=stop,
                                 temperature=temperature, top_p=top_p, do_sample=do_sample, seed=seed)

    def complete_ids(self, texts: Sequence[str], ids: Sequence[Sequence[int]], *, max_new_tokens: int | None = None,
                     stop: Sequence[str] | None = None, temperature: float | None = None, top_p: float | None = None,
                     do_sample: bool | None = None, seed: int | None = None) -> list[Completion]:
        """:meth:`complete` for prompts already tokenised (``texts`` name them for the prefix cache)."""
        n_new = max_new_tokens or self.max_new_tokens
        ids = [self._fit(list(x), n_new) for x in ids]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        sample = self.do_sample if do_sample is None else do_sample
        temp = self.temperature if temperature is None else temperature
        settings = {"max_new_tokens": n_new, "do_sample": bool(sample and temp > 0),
                    "temperature": temp, "top_p": self.top_p if top_p is None else top_p}
        self._check_weights()
        if self._grow_cache:
            self.cache.capacity = max(self.cache.capacity, 2 * len(texts))
        out: list[Completion | None] = [None] * len(ids)
        for start in range(0, len(order), self.batch_size):
            batch = self._lookup(order[start : start + self.batch_size], texts, ids)
            for i, c in zip(batch.index, self._generate_batch(batch, tuple(stop or ()), settings, seed)):
                out[i] = c
        return out  # type: ignore[return-value]

    # --- internals -----------------------------------------------------------------------------

    def _encode(self, texts: Sequence[str], templated: Sequence[bool]) -> list[list[int]]:
        """Token ids of each text, tokenised in two batched calls (templated or not)."""
        out: list[list[int]] = [[] for _ in texts]
        for flag in (False, True):
            index = [i for i, t in enumerate(templated) if bool(t) == flag]
            if index:
                kw = {"add_special_tokens": False} if flag else {}
                for i, ids in zip(index, self.tokenizer([texts[i] for i in index], **kw)["input_ids"]):
                    out[i] = ids
        return out

    def _fit(self, ids: list[int], n_new: int) -> list[int]:
        """Left-truncate a prompt that would not fit the model's position range with ``n_new`` more tokens."""
        if not ids:  # an empty prompt: start from BOS (or EOS) so there is something to condition on
            return [self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else min(self._eos)]
        cfg = self.model.config
        limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        if not limit or len(ids) + n_new <= limit:
            return ids
        if not self._warned_truncation:
            warnings.warn(f"{self.name}: a prompt of {len(ids)} tokens + {n_new} new exceeds the model's {limit} "
                          "positions; keeping the last tokens of the prompt", stacklevel=3)
            self._warned_truncation = True
        return ids[len(ids) + n_new - limit :]

    def _next_seed(self, seed: int | None) -> int | None:
        if seed is not None or self.seed is None:
            return seed
        self._calls += 1
        return self.seed + self._calls - 1

    def _check_weights(self) -> None:
        """Drop the prefix cache if the weights changed (trained in place, reloaded, moved) since it was filled."""
        # Every in-place write to a tensor bumps its version counter (an optimizer step, load_state_dict);
        # tensors made under inference_mode keep none, so only their replacement is seen.
        weights = tuple((p.data_ptr(), 0 if p.is_inference() else p._version) for p in self.model.parameters())
        if weights != self._weights:
            self.cache.clear()
            self._weights = weights

    def _lookup(self, index: list[int], texts: Sequence[str], ids: list[list[int]]) -> _Batch:
        """The batch of prompts ``index``, with how much of each the prefix cache covers, most uncached first.

        The cache never covers a prompt's last token: its logits start the decoding.
        """
        if self._layout is None:
            return _Batch(index, [texts[i] for i in index], [ids[i] for i in index], [0] * len(index),
                          [None] * len(index))
        found = {i: self.cache.lookup(texts[i], ids[i]) for i in index}
        reused = {i: min(n, len(ids[i]) - 1) for i, (_, n) in found.items()}
        index = sorted(index, key=lambda i: len(ids[i]) - reused[i], reverse=True)
        return _Batch(index, [texts[i] for i in index], [ids[i] for i in index], [reused[i] for i in index],
                      [found[i][0] if reused[i] else None for i in index])

    def _generate_batch(self, batch: _Batch, stop: tuple[str, ...], settings: dict,
                        seed: int | None) -> list[Completion]:
        import torch

        n_new = settings["max_new_tokens"]
        with torch.inference_mode():
            pad = self._padding_mask(batch, n_new)
            cache, logits, reused = self._prefill(batch, pad, n_new)
            tokens, kept = self._decode(cache, logits, batch, pad, stop, self._picker(settings, seed), n_new)
        rows, kept = tokens.tolist(), kept.tolist()
        return [self._completion(row[:k], len(x), stop, n) for row, k, x, n in zip(rows, kept, batch.ids, reused)]

    def _padding_mask(self, batch: _Batch, n_new: int) -> Any:
        """(B, width + n_new) bool: which slots of the left-padded rows hold tokens; ``None`` without padding."""
        import torch

        width = batch.width
        if all(len(x) == width for x in batch.ids):
            return None
        starts = torch.tensor([width - len(x) for x in batch.ids], device=self.model.device)
        return torch.arange(width + n_new, device=self.model.device) >= starts[:, None]

    def _prefill(self, batch: _Batch, pad: Any, n_new: int) -> tuple[Any, Any, list[int]]:
        """Run the prompts' uncached tokens; return the batch's cache (room for ``n_new`` more), last logits (B, V)
        and how many tokens of each prompt came from the prefix cache."""
        import torch

        if self._layout is None:  # the model's own cache: one padded pass over the whole prompts
            out = self._prefill_run(batch, range(len(batch.ids)), batch.width, None, pad)
            return returned_cache(out), out.logits[:, -1], [0] * len(batch.ids)
        mode = self.prefill
        if mode == "auto":
            mode = "similar" if self.model.device.type == "cpu" else "batch"
        runs = prefill_runs([len(x) - n for x, n in zip(batch.ids, batch.reused)], mode)
        spans = [len(batch.ids[run.start]) - batch.reused[run.start] for run in runs for _ in run]
        filled = [max(0, len(x) - span) for x, span in zip(batch.ids, spans)]  # at most what the cache covers
        buffers = self._kv_buffers(batch, filled, n_new)
        logits = [self._prefill_run(batch, run, spans[run.start], buffers, pad).logits[:, -1] for run in runs]
        return buffer_cache(*buffers, batch.width), torch.cat(logits), filled

    def _kv_buffers(self, batch: _Batch, filled: list[int], n_new: int) -> tuple[list[Any], list[Any]]:
        """Per-layer (B, heads, width + n_new, head_dim) buffers, rows right-aligned at ``width``.

        Row ``i`` gets its first ``filled[i]`` tokens' keys and values from its cached entry; its
        padding is zeroed (masked, but it must not hold NaN); the rest is written by the forward passes.
        """
        import torch

        width, model = batch.width, self.model
        keys, values = [], []
        for layer, (heads, size) in enumerate(self._layout):
            k = torch.empty((len(batch.ids), heads, width + n_new, size), dtype=model.dtype, device=model.device)
            v = torch.empty_like(k)
            for row, (x, entry, n) in enumerate(zip(batch.ids, batch.entries, filled)):
                start = width - len(x)
                k[row, :, :start] = 0
                v[row, :, :start] = 0
                if n > 0:
                    k[row, :, start : start + n] = entry.keys[layer][:, :n]
                    v[row, :, start : start + n] = entry.values[layer][:, :n]
            keys.append(k)
            values.append(v)
        return keys, values

    def _prefill_run(self, batch: _Batch, run: range, span: int, buffers: tuple | None, pad: Any) -> Any:
        """One forward pass over the last ``span`` tokens of the rows in ``run``, left-padded; the model's output.

        With ``buffers`` the rows' keys and values before those tokens are already in place and the
        new ones are written next to them; without, the model makes its own cache.
        """
        import torch

        device, rows = self.model.device, batch.ids[run.start : run.stop]
        longest = max(len(x) for x in rows)
        start = batch.width - longest  # the run's first column in the batch's buffers
        cache = None
        if buffers is not None:
            cache = buffer_cache(*([b[run.start : run.stop, :, start:] for b in part] for part in buffers),
                                  longest - span)
        input_ids = torch.tensor([x[len(x) - span :] if len(x) >= span else
                                  [self.tokenizer.pad_token_id] * (span - len(x)) + x for x in rows], device=device)
        lengths = torch.tensor([len(x) for x in rows], device=device)
        positions = (torch.arange(longest - span, longest, device=device) - (longest - lengths)[:, None]).clamp_(min=0)
        mask = None if all(len(x) == longest for x in rows) else pad[run.start : run.stop, start : batch.width]
        return self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                          logits_to_keep=1, **with_cache(self.model, cache))

    def _picker(self, settings: dict, seed: int | None) -> Callable[[Any], Any]:
        """The next-token rule: argmax, or a seeded sample (see :func:`sample_tokens`)."""
        import torch

        if not settings["do_sample"]:
            return lambda logits: logits.max(dim=-1).indices  # the first maximum, like argmax, and faster on CPU
        seed = self._next_seed(seed)
        generator = None if seed is None else torch.Generator(device=self.model.device).manual_seed(seed)
        temperature, top_p = settings["temperature"], settings["top_p"]
        return lambda logits: sample_tokens(logits, temperature, top_p, generator)

    def _stopper(self, stop: tuple[str, ...], vocab_size: int) -> StopStrings | None:
        """The stop-string finder for ``stop``, built once per agent (it decodes the vocabulary)."""
        if not any(stop):
            return None
        key = (stop, vocab_size)
        if key not in self._stoppers:
            self._stoppers[key] = StopStrings(self.tokenizer, stop, vocab_size, self.model.device)
        return self._stoppers[key]

    def _decode(self, cache: Any, logits: Any, batch: _Batch, pad: Any, stop: tuple[str, ...],
                pick: Callable[[Any], Any], n_new: int) -> tuple[Any, Any]:
        """Sample up to ``n_new`` tokens per row; return them (B, T) and how many each row keeps.

        A row is done at end-of-sequence or once its text holds a stop string; the loop ends when
        every row is done. Once half the rows still in the forward pass are done, they leave it (their
        keys and values go to the prefix cache first): steps of different lengths do not keep paying
        for the rows that have already stopped.
        """
        import torch

        device, width, rows = logits.device, batch.width, len(batch.ids)
        stopper = self._stopper(stop, logits.shape[-1])
        eos = torch.tensor(sorted(self._eos), device=device)
        tokens = torch.zeros((rows, n_new), dtype=torch.long, device=device)
        kept = torch.full((rows,), n_new, dtype=torch.long, device=device)
        done = torch.zeros(rows, dtype=torch.bool, device=device)
        live = torch.arange(rows, device=device)  # the batch row of each row of the forward pass
        positions = torch.tensor([len(x) for x in batch.ids], device=device)[:, None]
        mask = self._step_mask(pad, rows, width, n_new)
        compact = self._layout is not None  # the buffer cache can drop rows; a model's own cache is left whole
        remember = self._layout is not None and self.cache.capacity > 0
        for step in range(n_new):
            tokens[live, step] = pick(logits)
            ended = torch.isin(tokens[:, step], eos)
            if stopper is not None:
                ended |= stopper.hits(tokens, step, ~done)
            kept = torch.where(ended & ~done, step + 1, kept)
            done |= ended
            if step + 1 == n_new or bool(done.all()):
                break
            stopped = done[live]
            if compact and 2 * int(stopped.sum()) >= len(live) > 1:
                if remember:
                    self._remember(batch, cache, live[stopped].tolist(), stopped.nonzero().flatten().tolist(),
                                   tokens, kept, step)
                stay = (~stopped).nonzero().flatten()
                for layer in cache.layers:
                    layer.select_rows(stay)
                live, logits, positions = live[stay], logits[stay], positions[stay]
                mask = None if mask is None else mask[stay]
            out = self.model(input_ids=tokens[live, step : step + 1], position_ids=positions + step,
                             attention_mask=None if mask is None else mask[..., : width + step + 1],
                             use_cache=True, **with_cache(self.model, cache))
            logits = out.logits[:, -1]
        if remember:
            self._remember(batch, cache, live.tolist(), list(range(len(live))), tokens, kept, step)
        return tokens[:, : step + 1], kept

    def _step_mask(self, pad: Any, rows: int, width: int, n_new: int) -> Any:
        """The attention mask of the decoding steps, each step's being its first ``width + step + 1`` slots.

        ``None`` where none is needed; for SDPA over the buffer cache a (rows, 1, 1, width + n_new)
        additive 4D mask (faster on CPU than boolean), built once; otherwise the padding mask.
        """
        sdpa = self._layout is not None and getattr(self.model.config, "_attn_implementation", None) == "sdpa"
        # With a mask, SDPA runs a grouped-query model's one-token step once per key/value head, its query
        # heads stacked; without, it repeats keys and values per query head: on CPU, 2.3x the time.
        grouped = sdpa and self.model.device.type == "cpu" and any(
            heads < getattr(self.model.config, "num_attention_heads", 0) for heads, _ in self._layout)
        if pad is None and not grouped:
            return None
        if not sdpa:
            return pad
        import torch

        dtype, device = self.model.dtype, self.model.device
        full = torch.zeros((rows, 1, 1, width + n_new), dtype=dtype, device=device)
        if pad is not None:
            full.masked_fill_(~pad[:, None, None, :], torch.finfo(dtype).min)
        return full

    def _remember(self, batch: _Batch, cache: Any, rows: list[int], slots: list[int], tokens: Any, kept: Any,
                  fed: int) -> None:
        """Store batch rows ``rows`` (at ``slots`` of the cache buffers) in the prefix cache: each prompt and its
        continuation through the stop, of which ``fed`` tokens have keys and values."""
        width = batch.width
        n_gen = kept[rows].clamp(max=fed).tolist()
        generated = tokens[rows].tolist()
        for row, slot, n, new in zip(rows, slots, n_gen, generated):
            x = batch.ids[row]
            spans = [layer.span(slot, width - len(x), width + n) for layer in cache.layers]  # copies: free the batch
            self.cache.store(batch.texts[row], CachedContext(x + new[:n], [k for k, _ in spans], [v for _, v in spans]))

    def _completion(self, new_ids: list[int], prompt_len: int, stop: tuple[str, ...], cached: int) -> Completion:
        """Decode one row's kept tokens: drop what follows EOS, cut after the stop, and count the tokens."""
        ended = next((i for i, t in enumerate(new_ids) if t in self._eos), None)
        if ended is not None:
            new_ids = new_ids[:ended]
        text, matched = cut_at_stop(self.tokenizer.decode(new_ids, skip_special_tokens=True), stop)
        reason = "stop" if matched is not None or ended is not None else "length"
        return Completion(text, reason, matched, prompt_len, len(new_ids) + (ended is not None), cached,
                          tuple(new_ids), decode_exact(self.tokenizer, new_ids))
