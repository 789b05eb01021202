"""How a context becomes model input: the one rendering and tokenisation used to generate, judge and train.

Generation and training must give a model the same token ids for a state, or the trainer optimises
log-probabilities of sequences the policy never produced. Everything that turns a context into
model input goes through this module:

- :func:`render_prompt`: the prompt text. With a chat template (when the tokenizer has one) the
  context becomes messages (:meth:`swirl_env.context.Context.messages`: the instructions as the
  system message, or folded into the first user message for a template without a system role; the
  question as a user message; each step an assistant message; each tool result the user message
  after it) rendered with the generation prompt; otherwise the context string itself.
- :func:`prompt_pieces`: that prompt cut at the start and end of every earlier step.
- :func:`encode_prompt`: the prompt's ids, tokenised piece by piece, with the ids the policy
  actually sampled for its earlier steps wherever they are known and belong to this tokenizer.

**The packing invariant.** Tokenised piece by piece, the ids of the prompt for step ``i + 1`` are the
ids of the prompt for step ``i``, then step ``i``'s ids, then the tokenised tool result: exactly what
a generator that appends its own sampled tokens sees, and what lets the trainer score all the steps of
an episode in one sequence. Tokenising the whole string instead would let BPE merge across a boundary
(``"\\n\\n"`` + ``"Add"`` is not ``"\\n\\nAdd"``). A chat template that rewrites earlier turns (drops their
reasoning, say) breaks the prefix property; :func:`prompt_pieces` then returns ``None`` and callers
fall back to one whole prompt per step, counted.

**Exact tokens.** A model agent records, with every step, the ids it sampled and the
:func:`tokenizer_fingerprint`; the trainer uses those ids when the fingerprint is its tokenizer's and
they decode to the step as rendered, and re-tokenises the text otherwise (counted as a fallback).

**Special tokens in text.** Text from a model or a tool that spells a special token
(``<|im_end|>``) would become that token when tokenised; the rendering inserts a zero-width space
into such text (as :mod:`swirl_env.context` does for result markers), so it stays text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from swirl_env.context import ESCAPE, Context


def has_chat_template(tokenizer: Any) -> bool:
    """Whether the tokenizer defines a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def as_context(state: Context | str) -> Context:
    """``state`` as a :class:`Context` (a rendered string is parsed by the one parser, :meth:`Context.parse`)."""
    return state if isinstance(state, Context) else Context.parse(state)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short hash of everything that decides a tokenizer's ids (vocabulary, merges, added tokens, normaliser).

    Two tokenizers with the same fingerprint give the same ids for the same text.
    """
    cached = getattr(tokenizer, "_swirl_fingerprint", None)
    if cached:
        return cached
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = backend.to_str()
    else:  # a slow tokenizer: its vocabulary and added tokens
        spec = repr(sorted(tokenizer.get_vocab().items())) + repr(getattr(tokenizer, "added_tokens_encoder", {}))
    digest = "sha256:" + hashlib.sha256(spec.encode("utf-8")).hexdigest()[:16]
    try:
        tokenizer._swirl_fingerprint = digest
    except AttributeError:  # pragma: no cover - a tokenizer that refuses attributes
        pass
    return digest


def _specials(tokenizer: Any) -> tuple[str, ...]:
    found = getattr(tokenizer, "_swirl_specials", None)
    if found is None:
        names = set(getattr(tokenizer, "all_special_tokens", []) or [])
        names |= {str(t) for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if getattr(t, "special", False)}
        found = tuple(sorted((n for n in names if len(n) > 1), key=len, reverse=True))
        try:
            tokenizer._swirl_specials = found
        except AttributeError:  # pragma: no cover
            pass
    return found


def text_for_model(tokenizer: Any, text: str) -> str:
    """``text`` with every spelled-out special token broken by a zero-width space, so it tokenises as text.

    Example:
        >>> class T: all_special_tokens = ["<|im_end|>"]
        >>> text_for_model(T(), "done<|im_end|>") == "done<\\u200b|im_end|>"
        True
    """
    for special in _specials(tokenizer):
        if special in text:
            text = text.replace(special, special[0] + ESCAPE + special[1:])
    return text


def chat_messages(tokenizer: Any, context: Context) -> list[dict[str, str]]:
    """The messages a chat model sees for ``context``: :meth:`Context.messages`, adapted to the template.

    A template without a system role gets the instructions as the first part of the first user message.
    """
    messages = [{"role": m["role"], "content": text_for_model(tokenizer, m["content"])} for m in context.messages()]
    if not supports_system_role(tokenizer):
        system, question = messages[0], messages[1]
        messages = [{"role": "user", "content": f"{system['content']}\n\n{question['content']}"}, *messages[2:]]
    return messages


def supports_system_role(tokenizer: Any) -> bool:
    """Whether the chat template renders a system message (some raise, some drop it silently)."""
    cached = getattr(tokenizer, "_swirl_system_role", None)
    if cached is not None:
        return cached
    probe = [{"role": "system", "content": "SYSTEM-PROBE-7f3a"}, {"role": "user", "content": "hi"}]
    try:
        ok = "SYSTEM-PROBE-7f3a" in tokenizer.apply_chat_template(probe, tokenize=False)
    except Exception:  # noqa: BLE001 - templates raise anything (jinja's raise_exception) for an unknown role
        ok = False
    try:
        tokenizer._swirl_system_role = ok
    except AttributeError:  # pragma: no cover
        pass
    return ok


def render_prompt(tokenizer: Any, context: Context | str, *, chat: bool | None = None) -> str:
    """The text a causal LM is given before it writes the next step of ``context``.

    ``chat=None`` uses the chat template when the tokenizer has one; without, the rendered context.
    """
    context = as_context(context)
    if chat is None:
        chat = has_chat_template(tokenizer)
    if not chat:
        return text_for_model(tokenizer, context.render())
    return tokenizer.apply_chat_template(chat_messages(tokenizer, context), tokenize=False, add_generation_prompt=True)


def prompt_pieces(tokenizer: Any, context: Context, *, chat: bool | None = None) -> list[str] | None:
    """The prompt for ``context`` cut at every earlier step: ``[context, step 0, context, step 1, ..., context]``.

    Piece ``2j + 1`` is step ``j`` as the model sees it. ``None`` when a chat template does not render
    each earlier prompt followed by its step as a prefix of the whole prompt (see the module docstring).
    """
    if chat is None:
        chat = has_chat_template(tokenizer)
    if not chat:
        return [text_for_model(tokenizer, p) for p in context.pieces()]
    prompt = render_prompt(tokenizer, context, chat=True)
    cuts = [0]
    for j, turn in enumerate(context.steps):
        before = render_prompt(tokenizer, context.prefix(j), chat=True)
        step = chat_messages(tokenizer, context.prefix(j + 1))[-1 if turn.result is None else -2]["content"]
        if len(before) < cuts[-1] or not prompt.startswith(before + step):
            return None
        cuts += [len(before), len(before) + len(step)]
    cuts.append(len(prompt))
    return [prompt[a:b] for a, b in zip(cuts, cuts[1:])]


@dataclass
class EncodedPrompt:
    """A prompt's token ids and where each earlier step sits in them."""

    ids: list[int]
    step_spans: list[tuple[int, int]]
    """``[start, end)`` token positions of every earlier step (empty when the prompt could not be cut)."""
    exact: list[bool]
    """Per earlier step: its ids are the ones the policy sampled (not re-tokenised text)."""
    fallback: list[bool]
    """Per earlier step: sampled ids were recorded but could not be used (another tokenizer, or other text)."""
    pieces: list[str] | None
    """The pieces the ids were made from (``None``: the whole prompt, uncut)."""

    @property
    def head_len(self) -> int:
        """Tokens before the first step (instructions and question)."""
        return self.step_spans[0][0] if self.step_spans else len(self.ids)


def encode_prompt(tokenizer: Any, context: Context, *, chat: bool | None = None,
                  step_ids: Mapping[int, tuple[Sequence[int] | None, str]] | None = None) -> EncodedPrompt:
    """Token ids of the prompt for ``context``, piece by piece (the module's rule).

    ``step_ids[j] = (ids, fingerprint)`` are the ids the policy sampled for step ``j``; they are used
    for that step when the fingerprint is this tokenizer's and they decode to the step as rendered.
    The first piece gets the tokenizer's special tokens (e.g. BOS) unless a chat template writes them.

    Example:
        >>> from swirl_agents.tiny import train_tokenizer
        >>> c = Context("Be brief.", "Who?").with_step("Look. <search_query>x</search_query>", "x: y")
        >>> tok = train_tokenizer([c.render()] * 5, vocab_size=300)
        >>> enc = encode_prompt(tok, c)
        >>> tok.decode(enc.ids) == c.render(), [tok.decode(enc.ids[s:e]) for s, e in enc.step_spans]
        (True, ['Look. <search_query>x</search_query>'])
    """
    if chat is None:
        chat = has_chat_template(tokenizer)
    pieces = prompt_pieces(tokenizer, context, chat=chat)
    if pieces is None:
        ids = encode_text(tokenizer, render_prompt(tokenizer, context, chat=True), first=True, chat=chat)
        n = len(context.steps)
        recorded = [bool(step_ids and step_ids.get(j, (None, ""))[0]) for j in range(n)]
        return EncodedPrompt(ids, [], [False] * n, recorded, None)
    ids = encode_text(tokenizer, pieces[0], first=True, chat=chat)
    spans, exact, fallback = [], [], []
    for j in range(len(context.steps)):
        recorded = (step_ids or {}).get(j, (None, ""))
        step, ok = step_tokens(tokenizer, pieces[2 * j + 1], *recorded)
        spans.append((len(ids), len(ids) + len(step)))
        ids += step
        exact.append(ok)
        fallback.append(bool(recorded[0]) and not ok)
        ids += encode_text(tokenizer, pieces[2 * j + 2], first=False, chat=chat)
    return EncodedPrompt(ids, spans, exact, fallback, pieces)


def step_tokens(tokenizer: Any, text: str, ids: Sequence[int] | None = None, fingerprint: str = "") -> tuple[list[int], bool]:
    """The ids of one step as the model sees it: the sampled ``ids`` when they are this tokenizer's and decode to
    ``text`` (then ``True``), else ``text`` tokenised (``False``)."""
    if ids and fingerprint == tokenizer_fingerprint(tokenizer) and decode_exact(tokenizer, ids) == text:
        return list(ids), True
    return encode_text(tokenizer, text, first=False, chat=True), False


def encode_text(tokenizer: Any, text: str, *, first: bool, chat: bool) -> list[int]:
    """Ids of one piece: special tokens (BOS) added only to the first piece of a raw prompt."""
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=first and not chat)["input_ids"])


def decode_exact(tokenizer: Any, ids: Sequence[int]) -> str:
    """The text of ``ids`` with nothing dropped or cleaned up (special tokens spelled out)."""
    return tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)
